"""The outbox: messages about tasks' ends, queued with the change that ended each task (by
tasks.record_statuses, in its transaction), claimed by whichever process delivers them, and kept
after delivery as the task page's record."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.engine import RowMapping

from smh_dashboard.storage import database
from smh_dashboard.storage.schema import outbox


class DeliveryOutcome(Enum):
    """Where a message about a task's end stands."""

    WAITING = "waiting"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    GAVE_UP = "gave up"


@dataclass(frozen=True)
class Delivery:
    """One message about a task's end to one webhook, and how sending it went."""

    id: int
    library_id: str
    task_id: int
    state: str
    smh_status: int | None
    delete_count: int | None
    label: str | None
    finished_at: float
    webhook: str
    destination: str
    format: str
    created_at: float
    attempts: int
    next_at: float | None
    delivered_at: float | None
    given_up_at: float | None
    last_error: str | None
    # The holder's claim while one process sends it, None otherwise.
    claim: str | None = field(default=None, repr=False)

    @property
    def outcome(self) -> DeliveryOutcome:
        """Say where the delivery stands."""
        if self.delivered_at is not None:
            return DeliveryOutcome.DELIVERED
        if self.given_up_at is not None:
            return DeliveryOutcome.GAVE_UP
        if self.last_error is not None:
            return DeliveryOutcome.RETRYING
        return DeliveryOutcome.WAITING


def claim_deliveries(
    now: float, lease_until: float, limit: int, skip: Iterable[int] = ()
) -> list[Delivery]:
    """Take up to `limit` due deliveries for this process until `lease_until`; count the try.

    One UPDATE takes rows nobody holds or whose holder's lease ran out (a process that died
    mid-send), so that two processes never take the same row at once.
    """
    claim = uuid.uuid4().hex
    due = (
        outbox.c.next_at <= now,
        or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now),
    )
    picked = select(outbox.c.id).where(*due).order_by(outbox.c.id).limit(limit)
    skipped = list(skip)
    if skipped:
        picked = picked.where(outbox.c.id.not_in(skipped))
    with database.begin() as conn:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(picked.scalar_subquery()), *due)
            .values(claim=claim, claimed_until=lease_until, attempts=outbox.c.attempts + 1)
        )
        rows = conn.execute(select(outbox).where(outbox.c.claim == claim).order_by(outbox.c.id))
        return [_delivery(row._mapping) for row in rows]


def extend_claim(delivery: Delivery, lease_until: float) -> bool:
    """Keep a claimed delivery claimed until `lease_until`; return False if the claim was lost."""
    with database.begin() as conn:
        result = conn.execute(
            update(outbox)
            .where(outbox.c.id == delivery.id, outbox.c.claim == delivery.claim)
            .values(claimed_until=lease_until)
        )
        return result.rowcount == 1


def finish_delivery(
    delivery: Delivery,
    now: float,
    error: str | None,
    next_at: float | None,
) -> bool:
    """Record how a claimed delivery went: sent (no error), to retry at `next_at`, or given up.

    Return False if the claim was lost meanwhile (its lease ran out and another took it).
    """
    values: dict[str, Any] = {"claim": None, "claimed_until": None, "last_error": error}
    if error is None:
        values |= {"delivered_at": now, "next_at": None}
    elif next_at is None:
        values |= {"given_up_at": now, "next_at": None}
    else:
        values |= {"next_at": next_at}
    with database.begin() as conn:
        result = conn.execute(
            update(outbox)
            .where(
                outbox.c.id == delivery.id,
                outbox.c.claim == delivery.claim,
                outbox.c.delivered_at.is_(None),
            )
            .values(values)
        )
        return result.rowcount == 1


def list_deliveries(library_id: str, task_id: int) -> list[Delivery]:
    """Return the messages about this task's ends, oldest first."""
    with database.connect() as conn:
        rows = conn.execute(
            select(outbox)
            .where(outbox.c.library_id == library_id, outbox.c.task_id == task_id)
            .order_by(outbox.c.id)
        )
        return [_delivery(row._mapping) for row in rows]


def prune_sent(before: float) -> int:
    """Delete the messages delivered (or given up) before `before`; return how many."""
    done_at = func.coalesce(outbox.c.delivered_at, outbox.c.given_up_at)
    with database.begin() as conn:
        return conn.execute(delete(outbox).where(done_at < before)).rowcount


def _delivery(row: RowMapping) -> Delivery:
    return Delivery(**{k: v for k, v in row.items() if k != "claimed_until"})
