"""The connect side's ASGI app: routes, and the one place requests meet the token store.

Contracts:
- ``/zoom/connect`` changes nothing unless the ticket is good and its return URL allowed; then
  it uses the ticket's nonce, stores a state and redirects to Zoom (302) with state + PKCE.
  The state is also set as an HttpOnly cookie on ``/zoom/callback``, so only the browser that
  started a flow can finish it (someone who forwards their own authorize link to a victim
  cannot attach the victim's Zoom account to their Talivo user).
- ``/zoom/callback`` claims the state once and always redirects to the state's return URL,
  with ``zoom=connected`` or ``zoom=error&reason=<CallbackReason>``; only a state we never
  issued gets a 400 page (there is nowhere safe to send the browser).
- ``/zoom/disconnect`` (ticket in ``Authorization: Bearer`` or a form field ``ticket``) is 204
  whether or not a connection existed; the ticket itself is single use.
- ``/zoom/webhook`` answers only signed, fresh requests, and acts on each signed delivery once:
  a replay while its timestamp is still fresh is answered 200 ``{"status": "duplicate"}`` and
  changes nothing (``deliveries.DeliveryLog``; a delivery whose action failed is forgotten, so
  Zoom's retry acts). URL validation changes nothing and is answered every time. An
  ``app_deauthorized`` deletes the Zoom user's connections made at or before its
  ``deauthorization_time``; one made after it (the user came back) is kept and logged
  (``Connections.deauthorize``). ``meeting.updated``, ``meeting.deleted``, ``meeting.started``
  and ``meeting.ended`` go to ``meeting_changes`` (``connect.meeting_sync``): 200 with
  ``{"status": "published", "change": ..}`` or ``{"status": "ignored", "why": ..}``, 503
  ``webhook_deferred`` when it could not act now (Zoom retries); without ``meeting_changes``
  (no broker configured) they are acknowledged and ignored like any other event.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from structlog.stdlib import get_logger

from connect import meeting_events, webhook
from connect.deliveries import DeliveryLog
from connect.errors import (
    ReturnUrlRefused,
    StateUnknown,
    WebError,
    WebhookDeferred,
    WebhookMalformed,
)
from connect.meeting_changes import Decision, Publish
from connect.meeting_events import MEETING_EVENTS, ZoomMeetingEvent
from connect.meeting_sync import ChangeDeferred
from connect.openapi import document
from connect.pages import error_response
from connect.return_urls import ReturnUrlAllowlist
from connect.state import StateStore
from connect.tickets import MAX_TICKET_CHARS, Ticket, read_ticket
from token_store import (
    AccountInactive,
    ConnectionStatus,
    Deauthorized,
    MissingPermissions,
    TokenServiceUnavailable,
    TokenStoreError,
)
from worker.runtime.health import Check, health_routes

log = get_logger("connect")

STATE_COOKIE = "zoom_connect_state"
CallbackReason = Literal[
    "access_denied",  # the user clicked Deny on Zoom
    "zoom_error",  # Zoom sent the browser back with another error, or without a code
    "state_expired",  # the user took longer than the state's lifetime
    "state_used",  # the callback was replayed (reload, back button)
    "state_mismatch",  # finished in another browser than the one that started
    "account_inactive",  # the Zoom user is deactivated
    "missing_permissions",  # the user unticked a permission Talivo needs on Zoom's page
    "zoom_unavailable",  # Zoom's OAuth endpoints failed; trying again later may work
    "authorization_failed",  # Zoom refused the code (expired, reused) or our credentials
    "internal_error",  # our side failed (database); trying again later may work
]
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


class Connections(Protocol):
    """The token store's connect side (``token_store.TokenStore`` implements it)."""

    async def connect(
        self, user_id: str, code: str, code_verifier: str | None, redirect_uri: str
    ) -> ConnectionStatus: ...

    async def disconnect(self, user_id: str) -> bool: ...

    async def deauthorize(self, zoom_user_id: str, deauthorized_at: datetime) -> Deauthorized: ...


class MeetingChanges(Protocol):
    """Zoom's meeting webhooks carried out (``connect.meeting_sync.MeetingSync``); raises
    ``ChangeDeferred`` when it could not act now."""

    async def handle(self, event: ZoomMeetingEvent) -> Decision: ...


@dataclass(frozen=True)
class WebConfig:
    ticket_secret: bytes = field(repr=False)
    webhook_secret: bytes = field(repr=False)
    allowlist: ReturnUrlAllowlist
    redirect_uri: str  # ZOOM_REDIRECT_URI: this app's /zoom/callback as registered with Zoom
    client_id: str
    oauth_base_url: str
    state_ttl: timedelta = timedelta(minutes=10)


def create_app(
    config: WebConfig,
    connections: Connections,
    states: StateStore,
    deliveries: DeliveryLog,
    *,
    checks: Mapping[str, Check] | None = None,
    clock: Callable[[], float] = time.time,
    meeting_changes: MeetingChanges | None = None,
) -> Starlette:
    def now() -> datetime:
        return datetime.fromtimestamp(clock(), UTC)

    def checked(ticket: Ticket) -> Ticket:
        if not config.allowlist.allows(ticket.return_url):
            raise ReturnUrlRefused
        return ticket

    async def connect(request: Request) -> Response:
        raw = request.query_params.get("ticket")
        ticket = checked(read_ticket(config.ticket_secret, raw, now=clock(), purpose="connect"))
        begun = await states.begin(ticket, now())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": config.client_id,
                "redirect_uri": config.redirect_uri,
                "state": begun.state,
                "code_challenge": begun.code_challenge,
                "code_challenge_method": "S256",
            }
        )
        response = RedirectResponse(
            f"{config.oauth_base_url}/oauth/authorize?{query}", 302, headers=_NO_STORE
        )
        response.set_cookie(
            STATE_COOKIE,
            begun.state,
            max_age=int(config.state_ttl.total_seconds()),
            path=urlsplit(config.redirect_uri).path or "/",
            secure=config.redirect_uri.startswith("https://"),
            httponly=True,
            samesite="lax",
        )
        log.info("zoom_connect.redirected", user_id=ticket.user_id)
        return response

    async def callback(request: Request) -> Response:
        q = request.query_params
        state = q.get("state", "")
        pending = await states.finish(state, now()) if 0 < len(state) <= 512 else None
        if pending is None:
            raise StateUnknown
        if not config.allowlist.allows(pending.return_url):  # the list may have shrunk since
            raise ReturnUrlRefused
        cookie = request.cookies.get(STATE_COOKIE, "")
        reason: CallbackReason | None
        if pending.outcome == "used":
            reason = "state_used"
        elif pending.outcome == "expired":
            reason = "state_expired"
        elif not hmac.compare_digest(cookie.encode(), state.encode()):
            reason = "state_mismatch"
        elif "error" in q:
            reason = "access_denied" if q["error"] == "access_denied" else "zoom_error"
        elif not q.get("code"):
            reason = "zoom_error"
        else:
            reason = await exchange(pending.user_id, q["code"], pending.code_verifier)
        log.info("zoom_connect.finished", user_id=pending.user_id, outcome=reason or "connected")
        params = {"zoom": "connected"} if reason is None else {"zoom": "error", "reason": reason}
        response = RedirectResponse(_with_query(pending.return_url, params), 302, _NO_STORE)
        response.delete_cookie(STATE_COOKIE, path=urlsplit(config.redirect_uri).path or "/")
        return response

    async def exchange(user_id: str, code: str, verifier: str) -> CallbackReason | None:
        try:
            await connections.connect(user_id, code, verifier, config.redirect_uri)
        except AccountInactive:
            return "account_inactive"
        except MissingPermissions as exc:
            log.warning("zoom_connect.missing_permissions", user_id=user_id, missing=exc.missing)
            return "missing_permissions"
        except TokenServiceUnavailable:
            return "zoom_unavailable"
        except TokenStoreError as exc:
            log.warning("zoom_connect.refused", user_id=user_id, error=type(exc).__name__)
            return "authorization_failed"
        except Exception as exc:  # the browser still deserves a way back to Talivo
            log.error("zoom_connect.failed", user_id=user_id, error=type(exc).__name__)
            return "internal_error"
        return None

    async def disconnect(request: Request) -> Response:
        ticket = checked(
            read_ticket(
                config.ticket_secret, await _ticket_of(request), now=clock(), purpose="disconnect"
            )
        )
        await states.use_nonce(ticket, now())
        existed = await connections.disconnect(ticket.user_id)
        log.info("zoom_disconnect.done", user_id=ticket.user_id, existed=existed)
        return Response(status_code=204, headers=_NO_STORE)

    async def zoom_webhook(request: Request) -> Response:
        body = await _body(request, webhook.MAX_BODY_BYTES)
        if body is None:
            return JSONResponse({"error": "webhook_too_large"}, 413)
        event = webhook.verify(
            config.webhook_secret,
            request.headers.get("x-zm-request-timestamp"),
            request.headers.get("x-zm-signature"),
            body,
            now=clock(),
        )
        if event.event == "endpoint.url_validation":
            return JSONResponse(webhook.url_validation_answer(config.webhook_secret, event.payload))
        if event.event == "app_deauthorized":
            return await deauthorized(event, webhook.deauthorization(event.payload))
        if event.event in MEETING_EVENTS and meeting_changes is not None:
            return await meeting_changed(event, meeting_changes, meeting_events.read(event))
        log.info("zoom_webhook.ignored", event_type=event.event[:64])
        return JSONResponse({"status": "ignored"})

    async def meeting_changed(
        event: webhook.WebhookEvent, changes: MeetingChanges, meeting: ZoomMeetingEvent
    ) -> Response:
        if not await deliveries.claim(event, now()):
            log.info("zoom_webhook.duplicate", event_type=event.event, signed_at=event.signed_at)
            return JSONResponse({"status": "duplicate"})
        try:
            decision = await changes.handle(meeting)
        except ChangeDeferred:
            await deliveries.release(event)  # Zoom's retry of this delivery must act
            raise WebhookDeferred from None
        except BaseException:
            await deliveries.release(event)
            raise
        if isinstance(decision, Publish):
            return JSONResponse({"status": "published", "change": decision.message.change.value})
        return JSONResponse({"status": "ignored", "why": decision.why})

    async def deauthorized(
        event: webhook.WebhookEvent, deauth: webhook.Deauthorization
    ) -> Response:
        if not await deliveries.claim(event, now()):
            log.info("zoom_webhook.duplicate", event_type=event.event, signed_at=event.signed_at)
            return JSONResponse({"status": "duplicate"})
        try:
            done = await connections.deauthorize(deauth.zoom_user_id, deauth.at)
        except BaseException:
            await deliveries.release(event)  # Zoom retries a failed delivery: let it act then
            raise
        log.info(
            "zoom_webhook.deauthorized",
            zoom_user_id=deauth.zoom_user_id,
            deleted=done.deleted,
            kept=done.kept,
        )
        return JSONResponse({"status": "ok", "deleted": done.deleted, "kept": done.kept})

    async def openapi(_: Request) -> Response:
        return JSONResponse(document())

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WebError)
        log.info("zoom_web.refused", path=request.url.path, code=exc.code, status=exc.status)
        return error_response(request, exc)

    return Starlette(
        routes=[
            Route("/zoom/connect", connect, methods=["GET"]),
            Route("/zoom/callback", callback, methods=["GET"]),
            Route("/zoom/disconnect", disconnect, methods=["POST"]),
            Route("/zoom/webhook", zoom_webhook, methods=["POST"]),
            *health_routes(checks or {}),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        exception_handlers={WebError: refused},
    )


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*kept, *params.items()])))


async def _body(request: Request, limit: int) -> bytes | None:
    """The raw body, or ``None`` past ``limit`` bytes (read no further)."""
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        raise WebhookMalformed from None
    return b"".join(chunks)


async def _ticket_of(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    body = await _body(request, MAX_TICKET_CHARS + 64)
    if not body:
        return None
    fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return fields.get("ticket")
