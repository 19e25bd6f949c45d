"""Everything the connect side refuses with. Each leaf carries its HTTP status and a fixed
public ``code``; messages are fixed text too, so nothing from the request (a ticket, a state,
a code, a signature) is ever echoed back or logged.

    WebError                      .status, .code
    ├── TicketError               400 unless noted: a connect/disconnect ticket is unusable
    │   ├── TicketMissing         ticket_missing
    │   ├── TicketMalformed       ticket_malformed: not a JWT, a claim missing or misshapen,
    │   │                         longer than an hour, or issued in the future
    │   ├── TicketBadSignature    ticket_invalid: not HS256, or the HMAC does not match
    │   │                         (tampered, other secret)
    │   ├── TicketExpired         ticket_expired
    │   ├── TicketWrongPurpose    ticket_wrong_purpose: its aud is not this route's purpose
    │   ├── TicketReplayed        409 ticket_used: its jti was presented before
    │   └── ReturnUrlRefused      ticket_return_url_refused: off CONNECT_RETURN_URL_ALLOWLIST
    ├── StateUnknown              400 state_invalid: a callback whose state we never issued
    ├── WebhookRefused            401 unless noted
    │   ├── SignatureInvalid      webhook_signature_invalid
    │   ├── TimestampStale        webhook_timestamp_stale: more than 5 minutes off
    │   └── WebhookMalformed      400 webhook_malformed: signed, but not a Zoom event
    └── WebhookDeferred           503 webhook_deferred: good, but not acted on now (the event
                                  was busy, or the broker did not take the message); Zoom
                                  retries it
"""

from __future__ import annotations

from typing import ClassVar


class WebError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    message: ClassVar[str] = "The request could not be used."


class TicketError(WebError):
    code = "ticket_invalid"
    message = "This link is not valid. Go back to Talivo and try again."


class TicketMissing(TicketError):
    code = "ticket_missing"
    message = "This link has no ticket. Start again from Talivo's settings page."


class TicketMalformed(TicketError):
    code = "ticket_malformed"


class TicketBadSignature(TicketError):
    code = "ticket_invalid"


class TicketExpired(TicketError):
    code = "ticket_expired"
    message = "This link has expired. Go back to Talivo and try again."


class TicketWrongPurpose(TicketError):
    code = "ticket_wrong_purpose"


class TicketReplayed(TicketError):
    status = 409
    code = "ticket_used"
    message = "This link was already used. Go back to Talivo and try again."


class ReturnUrlRefused(TicketError):
    code = "ticket_return_url_refused"
    message = "This link points to a page we may not send you to."


class StateUnknown(WebError):
    code = "state_invalid"
    message = "This sign-in attempt is not known. Start again from Talivo's settings page."


class WebhookRefused(WebError):
    status = 401
    code = "webhook_refused"
    message = "Webhook refused."


class SignatureInvalid(WebhookRefused):
    code = "webhook_signature_invalid"
    message = "The webhook signature does not match."


class TimestampStale(WebhookRefused):
    code = "webhook_timestamp_stale"
    message = "The webhook timestamp is missing or more than 5 minutes off."


class WebhookMalformed(WebhookRefused):
    status = 400
    code = "webhook_malformed"
    message = "The webhook body is not a Zoom event."


class WebhookDeferred(WebError):
    status = 503
    code = "webhook_deferred"
    message = "The webhook could not be acted on now; send it again later."
