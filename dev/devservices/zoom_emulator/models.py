"""The emulator's records: users, grants, authorization codes and meetings.

Mutable on purpose: they live inside the emulator's state and change only under its lock.
Secrets (tokens, codes) never appear in a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

UserStatus = Literal["active", "inactive", "pending"]
Plan = Literal["free", "pro", "business"]

# Zoom's user "type": 1 basic, 2 licensed.
USER_TYPE: dict[Plan, int] = {"free": 1, "pro": 2, "business": 2}


@dataclass(frozen=True)
class EmulatedUser:
    """A Zoom user as tests see it; ``id`` is the Zoom user id."""

    id: str
    account_id: str
    email: str


@dataclass
class UserRecord:
    id: str
    account_id: str
    email: str
    plan: Plan
    status: UserStatus

    @property
    def public(self) -> EmulatedUser:
        return EmulatedUser(self.id, self.account_id, self.email)


@dataclass
class AuthCode:
    code: str = field(repr=False)
    user_id: str
    client_id: str
    redirect_uri: str
    code_challenge: str | None = field(repr=False)
    scopes: str
    expires_at: datetime
    used: bool = False


@dataclass
class Grant:
    """One authorization of the app by one user: rotating refresh token, many access tokens."""

    id: int
    user_id: str
    client_id: str
    scopes: str
    refresh_token: str = field(repr=False)
    revoked: bool = False


@dataclass
class AccessToken:
    grant_id: int
    expires_at: datetime


@dataclass(frozen=True)
class ApiCall:
    """One ``/v2`` request as the emulator answered it: who asked (the Zoom user behind the
    bearer token; None when the token was refused) and, for a request about one meeting (create,
    get, patch, delete), that meeting and its host at the time. Never the token itself."""

    endpoint: str  # "DELETE /v2/meetings/{meetingId}"
    user_id: str | None
    meeting_id: int | None
    meeting_host_id: str | None
    status: int


@dataclass
class MeetingRecord:
    id: int
    uuid: str
    host_id: str
    host_email: str
    topic: str
    type: int
    start_time: datetime | None
    duration: int
    timezone: str
    agenda: str
    password: str = field(repr=False)
    join_url: str = field(repr=False)
    start_url: str = field(repr=False)
    created_at: datetime
    deleted: bool = False
    started_at: datetime | None = None  # while it runs (the control API's start and end)
