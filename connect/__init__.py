"""The connect side: ``zoom-worker serve``, an ASGI app Talivo's users and Zoom talk to.

- ``GET /zoom/connect?ticket=..``  -> Zoom's authorize page (state + PKCE S256)
- ``GET /zoom/callback``           -> the ticket's return URL with ``zoom=connected`` or
  ``zoom=error&reason=..``
- ``POST /zoom/disconnect``        -> 204, tokens deleted and revoked (token store)
- ``POST /zoom/webhook``           -> Zoom's signed webhooks (URL validation, app_deauthorized)
- ``/healthz``, ``/readyz``, ``/openapi.json``

Modules: ``tickets`` (the signed ticket format), ``return_urls`` (the allow list), ``state``
(single-use OAuth states and ticket nonces in Postgres), ``webhook`` (signature checks),
``pages`` (error answers), ``openapi`` (the document), ``app`` (routes and wiring), ``errors``.
This package imports nothing heavy at import time: ``worker.runtime.config`` uses ``return_urls``.
"""
