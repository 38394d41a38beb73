"""`flask watch` as operators run it: separate processes, stopped by signals, killed, doubled."""

import signal

import pytest
from processes import PATIENCE, FlaskProcess, wait_until

from smh_dashboard.storage import outbox, tasks

KEY = "robot-key-5f1e0c7a"


@pytest.fixture
def settings(settings, receiver):
    return settings | {
        "SMH_WEBHOOK_URL": f"{receiver.url}/hook?key={KEY}",
        "SMH_WEBHOOK_FORMAT": "json",
        "SMH_DASHBOARD_URL": "https://smh.example.com",
    }


# What the watcher is run with beyond the test's settings: quick cache windows and retries.
WATCH_ENV = {
    "SMH_CACHE_SECONDS": "1",
    "SMH_WEBHOOK_RETRY_SECONDS": "0.5",
    "SMH_WEBHOOK_TIMEOUT": "3",
}


@pytest.fixture
def watchers(settings, flask_processes):
    """Start a `flask watch` process, once it says it is watching."""

    def start() -> FlaskProcess:
        # The watcher refreshes in the foreground, as it runs outside the dashboard's requests.
        watcher = flask_processes(
            settings, "watch", drop=("SMH_REFRESH_IN_BACKGROUND",), **WATCH_ENV
        )
        wait_until(lambda: any(line.startswith("Watching") for line in watcher.lines), watcher)
        return watcher

    return start


def track(app, clock, *task_ids):
    with app.app_context():
        tasks.track_tasks("lib1", task_ids, None, clock())


def seen_running(app, *task_ids):
    """Tell whether the watcher has recorded each task running (its end is then news)."""
    with app.app_context():
        return all(tasks.get_task("lib1", t).state == "running" for t in task_ids)


def deliveries(app, task_id):
    with app.app_context():
        return outbox.list_deliveries("lib1", task_id)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_ctrl_c_or_sigterm_stops_the_watcher_cleanly(app, watchers, signum):
    watcher = watchers()

    code = watcher.stop(signum)

    assert code == 0, watcher.output
    assert watcher.output.splitlines()[-1] == "Watcher stopped."
    assert "Traceback" not in watcher.output
    assert KEY not in watcher.output


def test_a_watcher_killed_and_restarted_sends_what_was_not_sent_and_nothing_twice(
    app, sim, clock, receiver, watchers
):
    first_task = sim.add_task("lib1", run_seconds=5)
    second_task = sim.add_task("lib1", run_seconds=100)
    track(app, clock, first_task, second_task)
    first = watchers()
    wait_until(lambda: seen_running(app, first_task, second_task), first)

    clock.advance(10)  # the first task ends, with no page open
    wait_until(lambda: len(receiver.successes()) == 1, first)
    receiver.hold.set()
    clock.advance(100)  # the second ends; its message is held by the receiver mid-send
    wait_until(receiver.arrived.is_set, first)
    first.process.kill()
    first.process.wait(timeout=PATIENCE)
    receiver.hold.clear()
    receiver.release.set()
    second = watchers()
    # Its claim outlives the killed watcher by its lease; then the new one sends it.
    wait_until(lambda: len(receiver.successes()) == 2, second)
    code = second.stop()

    assert code == 0, second.output
    assert [b["taskId"] for b in receiver.successes()] == [first_task, second_task]
    assert [b["taskId"] for b in receiver.bodies()].count(first_task) == 1
    assert [d.outcome.value for d in deliveries(app, first_task)] == ["delivered"]
    [resent] = deliveries(app, second_task)
    assert resent.outcome.value == "delivered" and resent.attempts >= 2
    assert f"that task {second_task} in lib1 ended (done)" in second.output
    assert f"task {first_task} " not in second.output


def test_two_watchers_at_once_send_each_message_once(app, sim, clock, receiver, watchers):
    tasks = sim.add_tasks("lib1", 5, run_seconds=5)
    track(app, clock, *tasks)
    one, two = watchers(), watchers()
    wait_until(lambda: seen_running(app, *tasks), one, two)

    clock.advance(10)
    wait_until(
        lambda: all([d.outcome.value for d in deliveries(app, t)] == ["delivered"] for t in tasks),
        one,
        two,
    )
    codes = one.stop(), two.stop()

    assert codes == (0, 0), one.output + two.output
    assert sorted(b["taskId"] for b in receiver.bodies()) == sorted(tasks)
    assert sorted(b["taskId"] for b in receiver.successes()) == sorted(tasks)
    told = one.output.count("Told") + two.output.count("Told")
    assert told == len(tasks)


def test_a_watcher_says_once_per_try_that_smh_fails_and_when_it_answers_again(
    app, sim, clock, receiver, watchers
):
    task = sim.add_task("lib1", run_seconds=5)
    track(app, clock, task)
    watcher = watchers()
    wait_until(lambda: seen_running(app, task), watcher)
    sim.reset_calls()
    sim.inject("error", status=503, code="ServerOverloaded", times=None)

    wait_until(lambda: "lib1: SMH failed" in watcher.output, watcher)
    sim.clear_faults()
    # Every call to SMH since the fault failed, bar perhaps one since the clear.
    tries = sum(sim.calls.values())
    clock.advance(10)
    wait_until(lambda: len(receiver.successes()) == 1, watcher)
    code = watcher.stop()

    assert code == 0, watcher.output
    lines = watcher.output.splitlines()
    failures = [line for line in lines if line.startswith("lib1: SMH failed")]
    # Said once per failed try, not at each pass of the watcher while the back-off runs.
    assert 1 <= len(failures) <= tries
    assert lines.index("lib1: SMH answers again.") > lines.index(failures[-1])
    assert [b["taskId"] for b in receiver.successes()] == [task]
