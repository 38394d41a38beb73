"""Work a request starts and does not wait for: a daemon thread in the app's context."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flask import current_app


def start(
    name: str,
    work: Callable[[], object],
    *,
    done: Callable[[], None],
    log: logging.Logger,
    failure: str,
) -> None:
    """Run work in a daemon thread inside this app's context, then `done`; log a failure on `log`.

    `done` runs in every case (a lock or a lease to give back).
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> None:
        try:
            with app.app_context():
                work()
        except Exception:
            # A thread's exception would go nowhere: log it; the next request may try again.
            log.exception(failure)
        finally:
            done()

    threading.Thread(target=run, name=name, daemon=True).start()
