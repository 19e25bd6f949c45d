"""A Zoom emulator: OAuth, users and meetings, with Zoom's errors, limits and injectable faults.

Dev-only (tests and the demo import it; production code never does)::

    with ZoomEmulator(client_id="emu-client", client_secret="emu-secret") as zoom:
        user = zoom.add_user("ana@example.com")
        access, refresh = zoom.grant_tokens(user.id)
        zoom.faults = [Fault(kind="error", status=503, count=2)]

Point the worker at it with ``ZOOM_API_BASE_URL=zoom.api_base_url`` and
``ZOOM_OAUTH_BASE_URL=zoom.oauth_base_url``. Another process drives it through ``/_emulator``
(see :mod:`devservices.zoom_emulator.admin`). The Meetings schemas it answers with are
Zoom's OpenAPI, vendored in ``openapi/`` (source in ``openapi/SOURCE.md``).
"""

from devservices.zoom_emulator.faults import Fault, FaultPlan, parse_fault
from devservices.zoom_emulator.models import ApiCall, EmulatedUser, MeetingRecord
from devservices.zoom_emulator.server import ZoomEmulator

__all__ = [
    "ApiCall",
    "EmulatedUser",
    "Fault",
    "FaultPlan",
    "MeetingRecord",
    "ZoomEmulator",
    "parse_fault",
]
