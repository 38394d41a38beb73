"""The refresh runs off the request path: pages answer from the store while SMH is asked."""

import threading
import time

import pytest
from markup import badge_text

from smh_dashboard.live import poller
from smh_dashboard.storage import tasks

pytestmark = pytest.mark.backends

WAIT_SECONDS = 30


@pytest.fixture
def settings(settings):
    settings["SMH_REFRESH_IN_BACKGROUND"] = True
    settings["SMH_TIMEOUT"] = WAIT_SECONDS
    return settings


def track(app, clock, *task_ids):
    with app.app_context():
        tasks.track_tasks("lib1", task_ids, None, clock())


def refreshing(app):
    with app.app_context():
        return poller.refreshing_since("lib1") is not None


def wait_for_refresh(app):
    """Wait until no refresh of lib1 is under way (bounded; real time, with a wide margin)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while refreshing(app):
        assert time.monotonic() < deadline, "the refresh never ended"
        time.sleep(0.02)


def state(app, task_id):
    with app.app_context():
        return tasks.get_task("lib1", task_id).state


def test_a_page_answers_from_the_store_while_smh_is_slow(client, app, sim, clock):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id)
    # SMH takes seconds to answer: far longer than a page may take.
    sim.inject("latency", seconds=3, endpoint="task.query")

    page = client.get("/libraries/lib1")

    assert page.status_code == 200
    assert "Waiting for SMH" in page.get_data(as_text=True)
    assert refreshing(app), "the page came back only after SMH answered"
    wait_for_refresh(app)
    assert state(app, task_id) == "running"
    assert badge_text(client.get("/libraries/lib1").get_data(as_text=True), task_id) == "Running"


def test_a_page_says_when_smh_keeps_it_waiting(client, app, sim, clock):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id)
    sim.inject("latency", seconds=3, endpoint="task.query")
    client.get("/libraries/lib1")
    clock.advance(app.config["SMH_POLL_SECONDS"])

    page = client.get("/libraries/lib1/rows").get_data(as_text=True)

    assert "Waiting for SMH's answer since" in page
    wait_for_refresh(app)


def test_concurrent_pages_start_one_refresh(app, sim, clock):
    ids = sim.add_tasks("lib1", 5, run_seconds=600)
    track(app, clock, *ids)
    sim.inject("latency", seconds=1, endpoint="task.query")
    sim.reset_calls()
    start = threading.Barrier(20)
    statuses = []

    def poll():
        client = app.test_client()
        start.wait()
        statuses.append(client.get("/libraries/lib1/rows").status_code)

    threads = [threading.Thread(target=poll) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for_refresh(app)

    assert statuses == [200] * 20
    assert sim.calls["task.query"] == 1


def test_a_refresh_that_fails_unexpectedly_is_logged_and_tried_again(
    client, app, sim, clock, monkeypatch, caplog, next_window
):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tasks, "record_statuses", broken)
    assert client.get("/libraries/lib1").status_code == 200
    wait_for_refresh(app)
    assert "refreshing library lib1 failed unexpectedly" in caplog.text
    monkeypatch.undo()
    next_window()

    client.get("/libraries/lib1")
    wait_for_refresh(app)

    assert state(app, task_id) == "running"


def test_flask_refresh_runs_the_refresh_in_the_foreground(app, sim, clock, runner):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id)

    result = runner.invoke(args=["refresh"])

    assert result.exit_code == 0
    assert state(app, task_id) == "running"


def test_the_api_waits_for_ids_it_has_never_seen(client, sim, clock):
    task_id = sim.add_task("lib1", run_seconds=600)

    response = client.get(f"/api/v1/task/lib1/{task_id}")

    assert response.status_code == 200
    assert [item["taskId"] for item in response.get_json()] == [task_id]


def test_untracked_ids_cost_one_call_per_window_then_429(client, app, sim, clock, next_window):
    first, second = sim.add_tasks("lib1", 2, run_seconds=600)
    sim.reset_calls()

    assert client.get(f"/api/v1/task/lib1/{first}").status_code == 200
    again = client.get(f"/api/v1/task/lib1/{first}")
    refused = client.get(f"/api/v1/task/lib1/{second}")

    assert again.status_code == 200
    assert refused.status_code == 429
    assert refused.get_json()["code"] == "RateLimitExceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= app.config["SMH_CACHE_SECONDS"]
    assert sim.calls["task.query"] == 1
    next_window()
    assert client.get(f"/api/v1/task/lib1/{second}").status_code == 200
    assert sim.calls["task.query"] == 2


def test_concurrent_callers_of_untracked_ids_share_one_call(app, sim, clock):
    ids = sim.add_tasks("lib1", 10, run_seconds=600)
    sim.inject("latency", seconds=1, endpoint="task.query")
    sim.reset_calls()
    start = threading.Barrier(10)
    answers = {}

    def ask(task_id):
        client = app.test_client()
        start.wait()
        answers[task_id] = client.get(f"/api/v1/task/lib1/{task_id}")

    threads = [threading.Thread(target=ask, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(r.status_code for r in answers.values())
    assert set(statuses) <= {200, 429}
    # The one call went through for someone: callers are not all turned away.
    answered = {i: r.get_json() for i, r in answers.items() if r.status_code == 200}
    assert answered, "every caller was refused"
    for task_id, answer in answered.items():
        assert [item["taskId"] for item in answer] == [task_id]
    assert sim.calls["task.query"] == 1


def test_an_api_caller_joins_a_long_refresh_and_is_answered_first(
    client, app, sim, clock, monkeypatch
):
    monkeypatch.setattr(poller, "REFRESH_STEP", 100)
    ids = sim.add_tasks("lib1", 2000, run_seconds=600)
    track(app, clock, *ids)
    # Twenty steps of half a second each: the whole refresh takes ten seconds.
    sim.inject("latency", seconds=0.5, endpoint="task.query", times=None)
    client.get("/libraries/lib1")

    answer = client.get(f"/api/v1/task/lib1/{ids[-1]}")

    assert answer.status_code == 200
    assert [item["taskId"] for item in answer.get_json()] == [ids[-1]]
    assert refreshing(app), "the caller waited for the whole refresh"
    sim.clear_faults()
    wait_for_refresh(app)
