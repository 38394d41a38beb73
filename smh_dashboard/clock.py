"""The dashboard's clock: every module reads the time here, so that tests move it in one place."""

from __future__ import annotations

import time


def now() -> float:
    """Return the current time in Unix seconds."""
    return time.time()
