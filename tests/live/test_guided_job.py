"""A guided clear from start to end: settings kept, history off, one clear, history back on,
through the refresh every page, watcher and `flask refresh` runs, across restarts and processes."""

import threading

import pytest

from smh_dashboard import registry
from smh_dashboard.actions import clears, guided
from smh_dashboard.domain import guided as rules
from smh_dashboard.live import poller
from smh_dashboard.smh.answers import HistorySettings
from smh_dashboard.storage import activity, history_jobs, listings, tasks

pytestmark = pytest.mark.backends

SETTLE = 60
ORIGINAL = HistorySettings(True, 10, 30, 600)


@pytest.fixture
def settings(settings):
    return settings | {"SMH_HISTORY_SETTLE_SECONDS": SETTLE, "SMH_HISTORY_SETTLE_TRIES": 3}


def start(app, who="ana", restore=True):
    with app.app_context():
        return guided.start_guided_clear(registry.get_library("lib1"), who, "127.0.0.1", restore)


def refresh(app):
    """Run one refresh of lib1, as `flask refresh`, the watcher or an open page does."""
    with app.app_context():
        poller.refresh_library(registry.get_library("lib1"))


def job_of(app):
    with app.app_context():
        return history_jobs.latest_jobs(["lib1"])["lib1"]


def assert_cleared_once_and_restored(app, sim):
    """One clear, one switch-off and one restore: SMH is back on the settings it had."""
    assert sim.calls["history.clear"] == 1
    assert sim.calls["history.set"] == 2
    assert smh_settings(app) == ORIGINAL


def smh_settings(app):
    with app.app_context():
        return registry.client_for("lib1").get_history_settings()


def steps_logged(app):
    with app.app_context():
        entries = activity.list_activity("lib1", 0, 100)
    return [(e.action, e.outcome) for e in reversed(entries)]


def test_the_whole_sequence_keeps_clears_once_and_turns_history_back_on(app, history_on, clock):
    started = start(app)
    assert started.job is not None

    refresh(app)
    assert job_of(app).step == "settle"
    assert smh_settings(app).enabled is False
    assert history_on.calls["history.clear"] == 0

    clock.advance(SETTLE)
    refresh(app)
    job = job_of(app)
    assert job.step == "track" and job.task_id is not None
    assert history_on.calls["history.clear"] == 1
    with app.app_context():
        [task] = listings.list_tasks("lib1", None)
    assert task.task_id == job.task_id

    clock.advance(30)  # the clear's task ends
    refresh(app)
    job = job_of(app)
    assert (job.step, job.outcome) == ("ended", "done")
    assert job.restored_at is not None and job.task_ended_at is not None
    assert smh_settings(app) == ORIGINAL
    assert history_on.calls["history.clear"] == 1
    # One switch-off, one restore.
    assert history_on.calls["history.set"] == 2
    assert steps_logged(app) == [
        ("guided-clear", "requested"),
        ("guided-clear", "done"),  # settings kept
        ("guided-clear", "done"),  # switched off
        ("clear", "requested"),
        ("clear", "done"),
        ("guided-clear", "done"),  # the task ended
        ("guided-clear", "done"),  # history on again
    ]


def test_a_page_poll_advances_the_job(app, history_on, client, clock):
    start(app)

    client.get("/libraries/lib1")

    assert job_of(app).step == "settle"
    clock.advance(SETTLE)
    client.get("/libraries/lib1")
    assert job_of(app).step == "track"


def test_smh_still_saying_history_is_on_makes_the_job_wait_again(app, history_on, clock):
    history_on.delay_history_off(SETTLE * 1.5)
    start(app)
    refresh(app)

    clock.advance(SETTLE)
    refresh(app)
    job = job_of(app)
    assert (job.step, job.settle_tries) == ("settle", 1)
    assert history_on.calls["history.clear"] == 0

    clock.advance(SETTLE)
    refresh(app)
    assert job_of(app).step == "track"
    assert history_on.calls["history.clear"] == 1


def test_a_clear_refused_because_history_is_still_on_settles_again(app, history_on, clock):
    history_on.inject(
        "error", endpoint="history.clear", status=400, code="FileHistoryEnabled", times=1
    )
    start(app)
    refresh(app)
    clock.advance(SETTLE)
    refresh(app)

    job = job_of(app)
    assert (job.step, job.settle_tries) == ("settle", 1)
    assert "file history is still on" in job.last_error
    clock.advance(SETTLE)
    refresh(app)
    assert job_of(app).step == "track"
    assert history_on.calls["history.clear"] == 2  # one refused, one started


def test_a_switch_off_smh_never_applies_ends_the_job_with_history_back_on(app, history_on, clock):
    history_on.delay_history_off(10**6)
    start(app)
    refresh(app)
    for _ in range(3):
        clock.advance(SETTLE)
        refresh(app)

    job = job_of(app)
    assert (job.step, job.outcome, job.settle_tries) == ("ended", "failed", 3)
    assert history_on.calls["history.clear"] == 0
    assert smh_settings(app) == ORIGINAL


def restart(make_app, app):
    """Close a dashboard as a killed process leaves it (only its records stay) and start another."""
    make_app.close(app)
    return make_app()


def test_a_crash_after_switching_off_resumes_to_one_clear_and_one_restore(
    app, make_app, history_on, clock
):
    start(app)
    refresh(app)
    assert job_of(app).step == "settle"

    app = restart(make_app, app)
    clock.advance(SETTLE)
    refresh(app)
    clock.advance(30)
    refresh(app)

    assert job_of(app).outcome == "done"
    assert_cleared_once_and_restored(app, history_on)


def test_a_crash_after_the_task_ended_before_the_restore_restores_once(
    app, make_app, history_on, clock
):
    start(app)
    refresh(app)
    clock.advance(SETTLE)
    refresh(app)
    clock.advance(30)
    with app.app_context():
        # What a refresh records of the clear's task, then the job's step that follows it...
        task_id = job_of(app).task_id
        answers = registry.client_for("lib1").query_tasks([task_id])
        tasks.record_statuses("lib1", answers, clock(), 120, None)
        moved = guided.take_step(registry.get_library("lib1"))
    # ...and the process dies before the restore.
    assert (moved.step, moved.restored_at) == ("restore", None)
    assert history_on.calls["history.set"] == 1

    app = restart(make_app, app)
    refresh(app)
    refresh(app)

    job = job_of(app)
    assert (job.step, job.outcome) == ("ended", "done")
    assert_cleared_once_and_restored(app, history_on)


def test_a_crash_between_sending_the_clear_and_recording_it_adopts_the_task(
    app, make_app, history_on, clock
):
    start(app)
    refresh(app)
    clock.advance(SETTLE)
    with app.app_context():
        library = registry.get_library("lib1")
        job = history_jobs.current_job("lib1")
        # Checked by the settle step, then the clear's claim is written and the clear sent...
        job = guided.take_step(library)
        assert job.step == "clear"
        claimed = history_jobs.move_job(job, rules.clear_claim(job, clock(), guided.timing()))
        sent = clears.start_clear(library, job.created_by, job.address)
    # ...and the process dies before it writes what came of it.
    assert claimed.step == "clearing" and sent.task_id is not None

    app = restart(make_app, app)
    refresh(app)
    assert job_of(app).step == "clearing"  # its sender's lease has not run out
    with app.app_context():
        clock.advance(guided.timing().step_lease)  # longer than the clear's task runs
    refresh(app)

    job = job_of(app)
    assert (job.step, job.outcome, job.task_id) == ("ended", "done", sent.task_id)
    assert history_on.calls["history.clear"] == 1
    assert history_on.calls["history.set"] == 2


def test_a_clear_claimed_but_never_sent_is_sent_once_after_a_crash(
    app, make_app, history_on, clock
):
    start(app)
    refresh(app)
    clock.advance(SETTLE)
    with app.app_context():
        job = guided.take_step(registry.get_library("lib1"))
        history_jobs.move_job(job, rules.clear_claim(job, clock(), guided.timing()))
        lease = guided.timing().step_lease

    app = restart(make_app, app)
    clock.advance(lease)
    refresh(app)
    clock.advance(30)
    refresh(app)

    assert job_of(app).outcome == "done"
    assert history_on.calls["history.clear"] == 1


def test_a_clear_whose_answer_was_lost_is_never_sent_again(make_app, history_on, clock):
    app = make_app(SMH_TIMEOUT=0.5)
    history_on.inject("latency", endpoint="history.clear", seconds=2)
    start(app)
    refresh(app)
    clock.advance(SETTLE)
    refresh(app)

    job = job_of(app)
    assert (job.step, job.outcome) == ("ended", "unanswered")
    assert "may have started a clear" in job.last_error
    for _ in range(3):
        clock.advance(120)
        refresh(app)
    assert history_on.calls["history.clear"] == 1
    # Left off: SMH may be clearing; the page offers to turn it back on.
    assert job_of(app).history_off
    assert smh_settings(app).enabled is False


def test_a_failed_restore_is_named_and_tried_again(app, history_on, clock):
    start(app)
    refresh(app)
    clock.advance(SETTLE)
    refresh(app)
    history_on.inject("error", endpoint="history.set", status=503, code="ServerOverloaded")
    clock.advance(30)
    refresh(app)

    job = job_of(app)
    assert (job.step, job.restore_attempts) == ("restore", 1)
    assert "ServerOverloaded" in job.last_error
    assert smh_settings(app).enabled is False
    refresh(app)
    assert job_of(app).restore_attempts == 1  # not before its back-off

    clock.advance(15)
    refresh(app)
    job = job_of(app)
    assert (job.step, job.outcome, job.restore_attempts) == ("ended", "done", 2)
    assert smh_settings(app) == ORIGINAL


def test_cancel_before_the_clear_turns_history_back_on_at_once(app, history_on, clock):
    start(app)
    refresh(app)
    with app.app_context():
        cancelled = guided.cancel_job(registry.get_library("lib1"), "vic")

    assert not cancelled.refused
    job = job_of(app)
    assert (job.step, job.outcome, job.cancelled_by) == ("ended", "cancelled", "vic")
    assert smh_settings(app) == ORIGINAL
    clock.advance(SETTLE * 3)
    refresh(app)
    assert history_on.calls["history.clear"] == 0


def test_cancel_after_the_clear_was_sent_is_refused(app, history_on, clock):
    start(app)
    refresh(app)
    clock.advance(SETTLE)
    refresh(app)
    with app.app_context():
        refused = guided.cancel_job(registry.get_library("lib1"), "vic")

    assert refused.refused
    assert "the clear has been sent to SMH already" in refused.message
    assert job_of(app).step == "track"


def test_a_second_job_is_refused_while_one_is_under_way(app, history_on):
    start(app)

    second = start(app, who="vic")

    assert second.refused and second.job is None
    assert "already under way" in second.message


def test_two_processes_at_once_take_each_step_once(app, make_app, history_on, clock):
    other = make_app()
    start(app)

    def run(dashboard):
        for _ in range(5):
            refresh(dashboard)

    for advance in (0, SETTLE, 30):
        clock.advance(advance)
        threads = [threading.Thread(target=run, args=(a,)) for a in (app, other) * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert job_of(app).outcome == "done"
    assert_cleared_once_and_restored(app, history_on)


def test_the_webhook_says_when_the_clear_ended_and_when_history_is_on_again(
    make_app, history_on, clock, receiver
):
    from smh_dashboard.notify import delivery

    app = make_app(
        SMH_WEBHOOK_URL=f"{receiver.url}/hook?key=k", SMH_DASHBOARD_URL="https://smh.example.com"
    )
    start(app)
    refresh(app)
    clock.advance(SETTLE)
    refresh(app)
    clock.advance(30)
    refresh(app)
    with app.app_context():
        delivery.deliver_due()

    task_id = job_of(app).task_id
    said = sorted((b["taskId"], b["state"], b["startedBy"]) for b in receiver.successes())
    assert said == [(task_id, "done", "ana"), (task_id, "history-on", "ana")]
