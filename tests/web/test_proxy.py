import json
import urllib.request

import pytest
from markup import badge_text

from smh_dashboard.storage import tasks

pytestmark = pytest.mark.backends


def track(app, clock, *task_ids):
    with app.app_context():
        tasks.track_tasks("lib1", task_ids, None, clock())


def smh_answer(upstream, sim, path):
    token = sim.issue_token("lib1")
    with urllib.request.urlopen(f"{upstream.base_url}{path}?access_token={token}") as response:
        return json.load(response)


def test_proxy_answers_exactly_what_smh_answers(client, sim, clock, upstream):
    running = sim.add_task("lib1", run_seconds=600)
    done = sim.add_task("lib1", run_seconds=5, delete_count=12)
    failed = sim.add_task("lib1", run_seconds=5, outcome="failed")
    empty = sim.add_task("lib1", run_seconds=5, outcome="empty")
    clock.advance(10)
    ids = f"{running},{done},{failed},{empty}"

    response = client.get(f"/api/v1/task/lib1/{ids}")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == smh_answer(upstream, sim, f"/api/v1/task/lib1/{ids}")


def test_proxy_leaves_out_ids_smh_does_not_know(client, sim):
    known = sim.add_task("lib1")
    assert client.get(f"/api/v1/task/lib1/{known},424242").get_json() == [
        {"taskId": known, "status": 202}
    ]


def test_proxy_reuses_answers_within_the_cache_window(client, sim, next_window):
    task_id = sim.add_task("lib1")
    for _ in range(5):
        client.get(f"/api/v1/task/lib1/{task_id}")
    assert sim.calls["task.query"] == 1
    next_window()
    client.get(f"/api/v1/task/lib1/{task_id}")
    assert sim.calls["task.query"] == 2


def test_proxy_fetch_also_refreshes_tracked_tasks(client, app, sim, clock):
    tracked = sim.add_task("lib1", run_seconds=5)
    asked = sim.add_task("lib1")
    track(app, clock, tracked)
    clock.advance(6)

    client.get(f"/api/v1/task/lib1/{asked}")
    page = client.get("/libraries/lib1").get_data(as_text=True)

    assert sim.task_queries == [[asked, tracked]]
    assert badge_text(page, tracked) == "Done"
    with app.app_context():
        assert tasks.get_task("lib1", tracked).state == "done"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/task/nosuch/1", 404, "LibraryNotFound"),
        ("/api/v1/task/lib1/abc", 400, "ParamInvalid"),
        ("/api/v1/task/lib1/1,,2", 400, "ParamInvalid"),
        ("/api/v1/task/lib1/0", 400, "ParamInvalid"),
        ("/api/v1/task/lib1/-1", 400, "ParamInvalid"),
        ("/api/v1/task/lib1/1%202", 400, "ParamInvalid"),
        ("/api/v1/task/lib1/99999999999999999999", 400, "ParamInvalid"),
        ("/api/v1/task/lib1/" + ",".join(str(i) for i in range(1, 102)), 400, "TooManyItems"),
        ("/api/v1/task/lib1", 404, "RouteNotFound"),
    ],
)
def test_bad_proxy_requests_get_smh_style_errors(client, sim, path, status, code):
    response = client.get(path)
    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == code
    assert body["message"]
    assert sim.calls["task.query"] == 0


def test_proxy_refuses_other_methods_in_smh_style(client):
    response = client.post("/api/v1/task/lib1/1")
    assert response.status_code == 405
    assert response.get_json()["code"] == "MethodNotAllowed"


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"kind": "error", "status": 500, "code": "InternalServerError"}, 502, "BadGateway"),
        ({"kind": "error", "status": 503, "code": "ServerOverloaded"}, 502, "BadGateway"),
        ({"kind": "garbage"}, 502, "BadGateway"),
        ({"kind": "truncated"}, 502, "BadGateway"),
        ({"kind": "oversize"}, 502, "BadGateway"),
        ({"kind": "latency", "seconds": 3}, 504, "GatewayTimeout"),
        ({"kind": "error", "status": 403, "code": "NoPermission"}, 403, "NoPermission"),
        (
            {"kind": "error", "status": 429, "code": "RateLimitExceeded", "retry_after": 20},
            429,
            "RateLimitExceeded",
        ),
    ],
)
def test_upstream_failures_map_to_gateway_errors_or_pass_through(
    settings, make_app, sim, clock, fault, status, code
):
    if fault["kind"] == "latency":
        # Short enough to fire against the 3s fault, wide against every answer that should come.
        settings["SMH_TIMEOUT"] = 1
    app = make_app()
    client = app.test_client()
    task_id = sim.add_task("lib1")
    client.get(f"/api/v1/task/lib1/{task_id}")  # mint the token first
    clock.advance(10)
    sim.inject(endpoint="task.query", **fault)

    response = client.get(f"/api/v1/task/lib1/{task_id}")

    assert response.status_code == status
    assert response.get_json()["code"] == code
    assert response.get_json()["message"].startswith("SMH failed")
    assert int(response.headers["Retry-After"]) >= 1
    # While backing off, callers get the same answer without another upstream call.
    calls = sim.calls["task.query"]
    again = client.get(f"/api/v1/task/lib1/{task_id}")
    assert again.status_code == status
    assert sim.calls["task.query"] == calls


def test_finished_tracked_tasks_are_answered_from_the_store(client, app, sim, clock, next_window):
    done = sim.add_task("lib1", run_seconds=5, delete_count=8)
    track(app, clock, done)
    clock.advance(6)
    client.get("/libraries/lib1")
    sim.reset_calls()

    for _ in range(3):
        next_window()
        response = client.get(f"/api/v1/task/lib1/{done}")
        assert response.get_json() == [
            {"taskId": done, "status": 200, "result": [{"err": "", "status": 0, "deleteCount": 8}]}
        ]

    assert sim.calls["task.query"] == 0
