"""How SMH's answer moves a tracked task: the lifecycle's rules, table by table."""

import pytest

from smh_dashboard.domain import lifecycle, states
from smh_dashboard.smh.answers import ResultEntry, TaskStatus

NOW = 1000.0
GRACE = 120.0
CODES = {states.RUNNING: 202, states.DONE: 200, states.DONE_EMPTY: 204, states.FAILED: 500}


def answer(state, code=None):
    """Return SMH's answer that a task is in `state` (MISSING: it left the task out)."""
    if state == states.MISSING:
        return TaskStatus(1, states.MISSING)
    code = code or CODES[state]
    return TaskStatus(1, state, code, raw={"taskId": 1, "status": code})


def before(state, missing_since=None, first_running_at=None, finished_at=None, answered=None):
    """Return a task's record as stored, SMH's last answer being `answered`'s, if any."""
    return {
        "state": state,
        "missing_since": missing_since,
        "first_running_at": first_running_at,
        "finished_at": finished_at,
        "last_answer": answer(answered).raw if answered else None,
    }


@pytest.mark.parametrize(
    ("record", "status", "after", "shown"),
    [
        # SMH lists the task: its state is SMH's, whatever the dashboard had.
        (before(states.PENDING), answer(states.RUNNING), states.RUNNING, True),
        (before(states.PENDING), answer(states.DONE), states.DONE, True),
        (before(states.PENDING), answer(states.DONE_EMPTY), states.DONE_EMPTY, True),
        (before(states.PENDING), answer(states.FAILED), states.FAILED, True),
        (before(states.PENDING), answer(states.UNKNOWN, 201), states.UNKNOWN, True),
        (
            before(states.NOT_FOUND, missing_since=NOW - 5),
            answer(states.RUNNING),
            states.RUNNING,
            True,
        ),
        (
            before(states.RUNNING, first_running_at=NOW - 9, answered=states.RUNNING),
            answer(states.RUNNING),
            states.RUNNING,
            False,
        ),
        (
            before(states.RUNNING, first_running_at=NOW - 9, answered=states.RUNNING),
            answer(states.DONE),
            states.DONE,
            True,
        ),
        # SMH leaves it out within the grace period: only a never-listed task changes.
        (before(states.PENDING), answer(states.MISSING), states.NOT_FOUND, True),
        (
            before(states.NOT_FOUND, missing_since=NOW - 5),
            answer(states.MISSING),
            states.NOT_FOUND,
            False,
        ),
        (
            before(states.RUNNING, first_running_at=NOW - 9, answered=states.RUNNING),
            answer(states.MISSING),
            states.RUNNING,
            False,
        ),
        # Left out past the grace period: missing, whatever it was.
        (
            before(states.NOT_FOUND, missing_since=NOW - GRACE),
            answer(states.MISSING),
            states.MISSING,
            True,
        ),
        (
            before(states.RUNNING, missing_since=NOW - GRACE - 1, answered=states.RUNNING),
            answer(states.MISSING),
            states.MISSING,
            True,
        ),
    ],
)
def test_an_answer_moves_a_task(record, status, after, shown):
    change = lifecycle.observe(record, status, NOW, GRACE)

    assert change["state"] == after
    assert change["checked_at"] == NOW
    assert lifecycle.shows_change(record, change) is shown
    assert lifecycle.ends(change) is (after not in states.POLLED)


@pytest.mark.parametrize(
    ("record", "status", "first_running_at", "finished_at"),
    [
        (before(states.PENDING), answer(states.RUNNING), NOW, None),
        (before(states.PENDING), answer(states.DONE), None, NOW),
        (before(states.RUNNING, first_running_at=NOW - 9), answer(states.RUNNING), NOW - 9, None),
        (before(states.RUNNING, first_running_at=NOW - 9), answer(states.FAILED), NOW - 9, NOW),
        (before(states.PENDING), answer(states.UNKNOWN, 201), None, None),
    ],
)
def test_the_first_running_and_finished_times_are_set_once(
    record, status, first_running_at, finished_at
):
    change = lifecycle.observe(record, status, NOW, GRACE)

    assert (change["first_running_at"], change["finished_at"]) == (first_running_at, finished_at)


@pytest.mark.parametrize(
    ("missing_since", "after"),
    [(None, NOW), (NOW - 5, NOW - 5)],
)
def test_a_left_out_task_keeps_when_it_was_first_left_out(missing_since, after):
    record = before(states.NOT_FOUND, missing_since=missing_since)

    change = lifecycle.observe(record, answer(states.MISSING), NOW, GRACE)

    assert change == {"state": states.NOT_FOUND, "missing_since": after, "checked_at": NOW}


def test_a_listed_task_records_what_smh_said_and_is_no_longer_left_out():
    record = before(states.NOT_FOUND, missing_since=NOW - 5)
    raw = {"taskId": 1, "status": 500, "result": [{"err": "disk", "status": -1, "deleteCount": 3}]}
    status = TaskStatus(1, states.FAILED, 500, (ResultEntry("disk", -1, 3),), 3, raw=raw)

    change = lifecycle.observe(record, status, NOW, GRACE)

    assert change["missing_since"] is None
    assert (change["smh_status"], change["delete_count"], change["last_answer"]) == (500, 3, raw)
    assert change["results"] == [{"err": "disk", "status": -1, "deleteCount": 3}]


def test_only_what_pages_show_counts_as_a_change():
    record = before(states.RUNNING, first_running_at=NOW - 9, answered=states.RUNNING)

    assert not lifecycle.shows_change(record, {"state": states.RUNNING, "checked_at": NOW})
    assert lifecycle.shows_change(record, {"last_answer": {"taskId": 1, "status": 200}})


@pytest.mark.parametrize(
    ("record", "status", "now", "told"),
    [
        # Seen not ended, then ended: news.
        (before(states.RUNNING), answer(states.DONE), NOW, True),
        (before(states.RUNNING), answer(states.FAILED), NOW, True),
        (before(states.RUNNING), answer(states.UNKNOWN, 201), NOW, True),
        (before(states.NOT_FOUND, missing_since=NOW), answer(states.DONE_EMPTY), NOW, True),
        (
            before(states.NOT_FOUND, missing_since=NOW, first_running_at=NOW - 60),
            answer(states.MISSING),
            NOW + GRACE,
            True,
        ),
        (before(states.RUNNING, missing_since=NOW), answer(states.MISSING), NOW + GRACE, True),
        # The first state learnt is an end (an old id pasted in): no news.
        (before(states.PENDING), answer(states.DONE), NOW, False),
        (before(states.PENDING), answer(states.FAILED), NOW, False),
        (before(states.PENDING), answer(states.UNKNOWN, 201), NOW, False),
        # An id SMH never knew (too old, or a typo) going missing: no news either.
        (before(states.NOT_FOUND, missing_since=NOW), answer(states.MISSING), NOW + GRACE, False),
        # Not ended: nothing to tell.
        (before(states.PENDING), answer(states.RUNNING), NOW, False),
        (before(states.RUNNING), answer(states.RUNNING), NOW, False),
        (before(states.PENDING), answer(states.MISSING), NOW, False),
        (before(states.RUNNING, missing_since=NOW), answer(states.MISSING), NOW + 1, False),
    ],
)
def test_only_an_end_after_a_state_not_ended_is_told(record, status, now, told):
    change = lifecycle.observe(record, status, now, GRACE)

    assert lifecycle.tells_end(record, change) is told
