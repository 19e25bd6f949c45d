"""Answers for refused requests: a small HTML page for browsers, JSON for everyone else.

Only the error's fixed ``code`` and ``message`` are rendered; nothing from the request.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from connect.errors import WebError

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Zoom connection</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 4em auto">
<h1>Zoom connection</h1><p>{message}</p><p><small>Error code: {code}</small></p>
</body></html>
"""

_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def error_response(request: Request, error: WebError) -> Response:
    if wants_html(request):
        body = _PAGE.format(message=html.escape(error.message), code=html.escape(error.code))
        return HTMLResponse(body, error.status, headers=_HEADERS)
    return JSONResponse(
        {"error": error.code, "message": error.message}, error.status, headers=_HEADERS
    )
