"""The app's OpenAPI 3.0 document, served at ``/openapi.json`` (schemathesis tests against it)."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "Refused; `error` is a fixed code, `message` fixed text (HTML for browsers).",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            }
        },
        "text/html": {"schema": {"type": "string"}},
    },
}
_REDIRECT = {
    "description": "Redirect",
    "headers": {"Location": {"schema": {"type": "string"}, "required": True}},
}
_TICKET = {
    "type": "string",
    "description": "a JWT signed with HS256 (sub, aud, return_url, iat, exp, jti); see "
    "connect/tickets.py",
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Talivo Zoom worker: connect side",
            "version": "1.0.0",
            "description": "OAuth connect/disconnect for Talivo users and Zoom's webhooks.",
        },
        "paths": {
            "/zoom/connect": {
                "get": {
                    "summary": "Start connecting: check the ticket, redirect to Zoom",
                    "parameters": [
                        {"name": "ticket", "in": "query", "required": True, "schema": _TICKET}
                    ],
                    "responses": {"302": _REDIRECT, "400": _ERROR, "409": _ERROR},
                }
            },
            "/zoom/callback": {
                "get": {
                    "summary": "Zoom sends the browser back here",
                    "parameters": [
                        {
                            "name": "state",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {"name": "code", "in": "query", "schema": {"type": "string"}},
                        {"name": "error", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"302": _REDIRECT, "400": _ERROR},
                }
            },
            "/zoom/disconnect": {
                "post": {
                    "summary": "Disconnect the ticket's user (idempotent)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {
                                    "type": "object",
                                    "required": ["ticket"],
                                    "properties": {"ticket": _TICKET},
                                }
                            }
                        },
                    },
                    "responses": {
                        "204": {"description": "Disconnected (or was not connected)"},
                        "400": _ERROR,
                        "409": _ERROR,
                    },
                }
            },
            "/zoom/webhook": {
                "post": {
                    "summary": "Zoom webhooks (signed with the secret token)",
                    "parameters": [
                        {
                            "name": "x-zm-signature",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "x-zm-request-timestamp",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["event"],
                                    "properties": {
                                        "event": {"type": "string"},
                                        "event_ts": {"type": "integer"},
                                        "payload": {"type": "object"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Handled; for endpoint.url_validation the answer",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "400": _ERROR,
                        "401": _ERROR,
                        "413": {"description": "Body over 64 KiB"},
                        "503": {
                            **_ERROR,
                            "description": "A meeting webhook not acted on now "
                            "(`webhook_deferred`); Zoom retries it",
                        },
                    },
                }
            },
            "/healthz": {
                "get": {"summary": "Process up", "responses": {"200": {"description": "OK"}}}
            },
            "/readyz": {
                "get": {
                    "summary": "Database reachable",
                    "responses": {
                        "200": {"description": "Ready"},
                        "503": {"description": "Not ready"},
                    },
                }
            },
        },
    }
