"""What the pages cost SMH: one call per window, backing off, shared across processes."""

import re
import threading

import pytest
from markup import badge_text, row

from smh_dashboard.storage import tasks

pytestmark = pytest.mark.backends


def track(app, clock, *task_ids, label=None, library_id="lib1"):
    with app.app_context():
        return tasks.track_tasks(library_id, task_ids, label, clock())


def test_many_concurrent_polls_cost_one_upstream_call_per_window(app, sim, clock, next_window):
    ids = sim.add_tasks("lib1", 30, run_seconds=600)
    track(app, clock, *ids)
    sim.reset_calls()
    start = threading.Barrier(50)
    statuses = []

    def poll():
        client = app.test_client()
        start.wait()
        statuses.append(client.get("/libraries/lib1/rows").status_code)

    for _window in range(2):
        threads = [threading.Thread(target=poll) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        next_window()

    assert statuses == [200] * 100
    assert sim.calls["task.query"] == 2
    assert sim.calls["token.create"] == 1


def test_pages_and_proxy_share_one_upstream_call(client, app, sim, clock):
    ids = sim.add_tasks("lib1", 3, run_seconds=600)
    track(app, clock, *ids)
    sim.reset_calls()

    client.get("/libraries/lib1")
    client.get("/libraries/lib1/rows?state=running")
    proxied = client.get(f"/api/v1/task/lib1/{ids[0]},{ids[2]}")

    assert proxied.status_code == 200
    assert sim.calls["task.query"] == 1


def test_upstream_failure_keeps_last_known_state_and_backs_off(
    client, app, sim, clock, next_window
):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id)
    client.get("/libraries/lib1")
    sim.inject("error", endpoint="task.query", status=503, code="ServerOverloaded", times=None)
    sim.reset_calls()
    next_window()

    intervals = []
    for _ in range(6):
        clock.advance(intervals[-1] if intervals else 0)
        page = client.get("/libraries/lib1/rows").get_data(as_text=True)
        assert badge_text(page, task_id) == "Running"
        assert "SMH is failing" in page
        assert "ServerOverloaded" in page
        intervals.append(float(re.search(r'hx-trigger="every ([\d.]+)s', page).group(1)))

    assert intervals == [3.0, 6.0, 12.0, 24.0, 48.0, 60.0]
    assert sim.calls["task.query"] == 6

    # Polls inside the back-off window do not reach SMH.
    for _ in range(5):
        clock.advance(10)
        client.get("/libraries/lib1/rows")
    assert sim.calls["task.query"] == 6

    sim.clear_faults()
    clock.advance(61)
    next_window()
    page = client.get("/libraries/lib1/rows").get_data(as_text=True)
    assert "SMH is failing" not in page
    assert 'hx-trigger="every 3.0s' in page


@pytest.mark.parametrize(
    ("fault", "shown"),
    [
        ({"kind": "latency", "seconds": 3}, "did not answer"),
        ({"kind": "garbage"}, "not JSON"),
        (
            {"kind": "error", "status": 429, "code": "RateLimitExceeded", "retry_after": 30},
            "HTTP 429",
        ),
        ({"kind": "error", "status": 403, "code": "InvalidAccessToken"}, "InvalidAccessToken"),
    ],
)
def test_each_kind_of_upstream_trouble_is_shown(settings, make_app, sim, clock, fault, shown):
    if fault["kind"] == "latency":
        # Short enough to fire against the 3s fault, wide against every answer that should come.
        settings["SMH_TIMEOUT"] = 1
    app = make_app()
    client = app.test_client()
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id)
    client.get("/libraries/lib1")
    sim.inject(endpoint="task.query", times=3, **fault)
    clock.advance(5)

    response = client.get("/libraries/lib1/rows")

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "SMH is failing" in page
    assert shown in page
    assert badge_text(page, task_id) == "Running"


def test_restart_loses_nothing(make_app, sim, clock):
    task_id = sim.add_task("lib1", run_seconds=5, delete_count=99)
    first = make_app()
    track(first, clock, task_id, label="before restart")
    clock.advance(6)
    first.test_client().get("/libraries/lib1")
    make_app.close(first)
    sim.reset_calls()

    second = make_app()
    page = second.test_client().get("/libraries/lib1").get_data(as_text=True)

    assert badge_text(page, task_id) == "Done"
    assert "before restart" in page
    assert "99" in row(page, task_id)
    assert sim.calls["task.query"] == 0


def test_worker_processes_share_the_window_through_the_database(make_app, sim, clock):
    first, second = make_app(), make_app()  # two gunicorn workers, say
    track(first, clock, *sim.add_tasks("lib1", 5, run_seconds=600))

    first.test_client().get("/libraries/lib1/rows")
    second.test_client().get("/libraries/lib1/rows")
    assert sim.calls["task.query"] == 1

    clock.advance(5)
    second.test_client().get("/libraries/lib1/rows")
    first.test_client().get("/libraries/lib1/rows")
    assert sim.calls["task.query"] == 2
