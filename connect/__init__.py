"""The connect side: ``zoom-worker serve``, an ASGI app Talivo's users and Zoom talk to.

- ``GET /zoom/connect?ticket=..``  -> Zoom's authorize page (state + PKCE S256)
- ``GET /zoom/callback``           -> the ticket's return URL with ``zoom=connected`` or
  ``zoom=error&reason=..``
- ``POST /zoom/disconnect``        -> 204, tokens deleted and revoked (token store)
- ``POST /zoom/webhook``           -> Zoom's signed webhooks (URL validation, app_deauthorized,
  and the meeting events: meeting.changed published to Kafka)
- ``/healthz``, ``/readyz``, ``/openapi.json``

Modules: ``tickets`` (the ticket format: HS256 JWTs), ``return_urls`` (the allow list),
``state`` (single-use OAuth states and ticket ids in Postgres), ``webhook`` (signature checks),
``deliveries`` (webhook deliveries already acted on, in Postgres), ``pages`` (error answers),
``openapi`` (the document), ``app`` (routes and wiring), ``errors``,
``revoker`` (the loop retrying revokes Zoom is owed, ``token_store.revokes``), ``server``;
for Zoom's meeting webhooks ``meeting_events`` (reading them), ``meeting_changes`` (what they
mean: the pure rules), ``meeting_links`` (the links, under the worker's lease),
``meeting_sync`` (carrying one out) and ``publisher`` (the Kafka producer).
This package imports nothing heavy at import time: ``worker.runtime.config`` uses ``return_urls``.
"""
