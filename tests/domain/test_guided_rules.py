"""The guided clear's rules, one table per step: what each answer makes of the job."""

import dataclasses

import pytest

from smh_dashboard.domain import guided
from smh_dashboard.domain.guided import ClearAnswer, Ending, Job, Step
from smh_dashboard.smh.answers import HistorySettings

TIMING = guided.Timing(settle_seconds=60.0, settle_tries=3, step_lease=100.0)
NOW = 1000.0
KEPT = {
    "enableFileHistory": True,
    "fileHistoryCount": 10,
    "fileHistoryExpireDay": 30,
    "mergeInterval": 600,
}


def job(**changes):
    base = Job(
        id=1,
        library_id="lib1",
        created_at=900.0,
        created_by="ana",
        address=None,
        restore=True,
        step=Step.READ.value,
        version=1,
        kept=None,
        read_at=None,
        off_at=None,
        clear_asked_at=None,
        cleared_at=None,
        task_id=None,
        task_ended_at=None,
        restored_at=None,
        cancelled_at=None,
        cancelled_by=None,
        ended_at=None,
        outcome=None,
        settle_tries=0,
        restore_attempts=0,
        next_at=None,
        last_error=None,
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("settings", "step", "kept"),
    [
        (HistorySettings(True, 10, 30, 600), Step.SWITCH_OFF, KEPT),
        (HistorySettings(False), Step.CLEAR, None),
    ],
)
def test_reading_keeps_the_settings_or_clears_at_once_when_history_is_off(settings, step, kept):
    changes = guided.after_read(job(), settings, NOW)

    assert changes["step"] == step.value
    assert changes["kept"] == kept
    assert changes["read_at"] == NOW


def test_a_failed_read_ends_the_job_before_anything_changed():
    changes = guided.after_read_failed(job(), "SMH answered HTTP 503", NOW)

    assert changes == {
        "step": Step.ENDED.value,
        "outcome": Ending.FAILED.value,
        "ended_at": NOW,
        "next_at": None,
        "last_error": "SMH answered HTTP 503",
    }


def test_switching_off_waits_the_settle_time_before_the_clear():
    changes = guided.after_switch_off(job(step="switch-off", kept=KEPT), NOW, TIMING)

    assert changes == {"step": "settle", "off_at": NOW, "next_at": NOW + 60.0}


@pytest.mark.parametrize(
    ("tries", "still_on", "expected"),
    [
        (0, False, {"step": "clear", "next_at": NOW}),
        (0, True, {"step": "settle", "settle_tries": 1, "next_at": NOW + 60.0}),
        (1, True, {"step": "settle", "settle_tries": 2, "next_at": NOW + 60.0}),
        # The last try: nothing was cleared, so history goes back on with the kept settings.
        (2, True, {"step": "restore", "settle_tries": 3, "outcome": "failed", "next_at": NOW}),
    ],
)
def test_the_settle_check_is_bounded(tries, still_on, expected):
    before = job(step="settle", kept=KEPT, settle_tries=tries)

    changes = guided.after_settle_check(before, still_on, NOW, TIMING, "still on")

    assert {k: v for k, v in changes.items() if k != "last_error"} == expected


def test_the_clear_is_claimed_before_it_is_sent_for_a_steps_lease():
    changes = guided.clear_claim(job(step="clear", kept=KEPT), NOW, TIMING)

    assert changes == {"step": "clearing", "clear_asked_at": NOW, "next_at": NOW + 100.0}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (ClearAnswer(task_id=77), {"step": "track", "task_id": 77, "cleared_at": NOW}),
        # SMH's minute or the dashboard's guard: the same clear is asked for when it ends.
        (ClearAnswer(retry_at=NOW + 42, error="wait"), {"step": "clear", "next_at": NOW + 42}),
        (ClearAnswer(history_on=True, error="on"), {"step": "settle", "settle_tries": 1}),
        # No answer: never sent again, and history stays off while SMH may be clearing.
        (
            ClearAnswer(unanswered=True, error="lost"),
            {"step": "ended", "outcome": "unanswered", "ended_at": NOW},
        ),
        (ClearAnswer(error="NoPermission"), {"step": "restore", "outcome": "failed"}),
    ],
)
def test_what_comes_of_the_clear(answer, expected):
    claimed = job(step="clearing", kept=KEPT, clear_asked_at=NOW)

    changes = guided.after_clear(claimed, answer, NOW, TIMING)

    assert {k: changes[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("state", "restore", "kept", "step"),
    [
        ("running", True, KEPT, None),
        ("pending", True, KEPT, None),
        ("not_found", True, KEPT, None),
        ("done", True, KEPT, Step.RESTORE),
        ("failed", True, KEPT, Step.RESTORE),
        ("done_empty", True, KEPT, Step.RESTORE),
        ("missing", True, KEPT, Step.RESTORE),
        ("unknown", True, KEPT, Step.RESTORE),
        (None, True, KEPT, Step.RESTORE),
        ("done", False, KEPT, Step.ENDED),
        # History was off before the job: nothing to turn back on.
        ("done", True, None, Step.ENDED),
    ],
)
def test_the_task_ending_done_or_failed_leads_to_the_restore(state, restore, kept, step):
    tracking = job(step="track", task_id=77, restore=restore, kept=kept)

    changes = guided.after_task(tracking, state, NOW)

    assert (changes and Step(changes["step"])) == step
    assert tracking.due(NOW)


@pytest.mark.parametrize(
    ("attempts", "delay"), [(1, 15.0), (2, 30.0), (3, 60.0), (6, 480.0), (7, 600.0), (30, 600.0)]
)
def test_a_failed_restore_is_tried_again_with_a_growing_back_off(attempts, delay):
    restoring = job(step="restore", kept=KEPT, restore_attempts=attempts)

    changes = guided.after_restore(restoring, "SMH failed", NOW)

    assert changes == {"next_at": NOW + delay, "last_error": "SMH failed"}
    assert not guided.after_restore(restoring, None, NOW).get("last_error")


def test_a_confirmed_restore_ends_the_job():
    changes = guided.after_restore(job(step="restore", kept=KEPT), None, NOW)

    assert changes["step"] == "ended" and changes["restored_at"] == NOW


@pytest.mark.parametrize(
    ("step", "kept", "expected"),
    [
        (Step.READ, None, Step.ENDED),
        (Step.SWITCH_OFF, KEPT, Step.RESTORE),
        (Step.SETTLE, KEPT, Step.RESTORE),
        (Step.CLEAR, KEPT, Step.RESTORE),
        (Step.CLEARING, KEPT, None),
        (Step.TRACK, KEPT, None),
        (Step.RESTORE, KEPT, None),
    ],
)
def test_a_job_is_cancelled_only_before_its_clear_is_sent(step, kept, expected):
    changes = guided.cancel(job(step=step.value, kept=kept), "vic", NOW)

    if expected is None:
        assert changes is None
        return
    assert Step(changes["step"]) is expected
    assert changes["outcome"] == Ending.CANCELLED.value
    assert changes["cancelled_by"] == "vic"


def test_restoring_writes_back_exactly_what_was_kept_with_history_on():
    kept = guided.settings_from(KEPT)

    assert guided.restoring(kept) == HistorySettings(True, 10, 30, 600)
    assert guided.settings_data(guided.restoring(kept)) == KEPT


@pytest.mark.parametrize(
    ("changes", "due"),
    [
        ({"next_at": NOW}, True),
        ({"next_at": NOW + 1}, False),
        ({"next_at": None}, True),
        ({"next_at": NOW + 1, "step": "track"}, True),
        ({"next_at": None, "ended_at": NOW}, False),
    ],
)
def test_when_a_step_is_due(changes, due):
    assert job(**changes).due(NOW) is due
