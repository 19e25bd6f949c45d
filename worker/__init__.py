"""The Zoom worker: consumes calendar events, keeps their Zoom meetings, publishes results."""

from worker import pool_cancellation

pool_cancellation.mend()
