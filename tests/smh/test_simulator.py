import collections
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from werkzeug.test import Client

from smh_dashboard.smh.simulator import Simulator, TokenGrant, main

SECRET = "lib-secret-123"
OTHER_SECRET = "other-secret-456"
HISTORY = "/api/v1/directory-history/lib/library-history"
DAY = 86400


@pytest.fixture
def sim(clock):
    sim = Simulator(clock)
    sim.add_library("lib", SECRET)
    sim.add_library("other", OTHER_SECRET)
    return sim


@pytest.fixture
def client(sim):
    return Client(sim)


@pytest.fixture
def token(sim):
    return sim.issue_token("lib")


def create_token(client, **params):
    query = {"library_id": "lib", "library_secret": SECRET, "grant": "admin"} | params
    return client.get("/api/v1/token", query_string=query)


def query_tasks(client, token, ids, library="lib"):
    return client.get(f"/api/v1/task/{library}/{ids}", query_string={"access_token": token})


def history(client, method, token, body=None):
    return client.open(HISTORY, method=method, query_string={"access_token": token}, json=body)


def assert_error(response, status, code):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.json["code"] == code
    assert response.json["message"]
    assert int(response.json["requestId"], 16) >= 0


def test_create_token_returns_a_token_for_the_period(client):
    response = create_token(client, period="3600")
    assert response.status_code == 200
    assert response.json["expiresIn"] == 3600
    assert len(response.json["accessToken"]) > 20


def test_create_token_defaults_to_a_day(client):
    assert create_token(client).json["expiresIn"] == DAY


def test_token_lifetime_overrides_the_period(clock):
    sim = Simulator(clock, token_lifetime=60)
    sim.add_library("lib", SECRET)
    assert create_token(Client(sim), period="3600").json["expiresIn"] == 60


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"library_secret": "wrong"}, 404, "WrongLibraryIdOrSecret"),
        ({"library_id": "nope"}, 404, "WrongLibraryIdOrSecret"),
        ({"library_id": "other"}, 404, "WrongLibraryIdOrSecret"),
        ({"period": "1199"}, 400, "ParamInvalid"),
        ({"period": "soon"}, 400, "ParamInvalid"),
        ({"grant": "root"}, 400, "ParamInvalid"),
    ],
)
def test_create_token_rejects(client, params, status, code):
    assert_error(create_token(client, **params), status, code)


def test_token_without_grant_is_read_only(client):
    read_only = client.get(
        "/api/v1/token", query_string={"library_id": "lib", "library_secret": SECRET}
    ).json["accessToken"]
    assert query_tasks(client, read_only, "1000").status_code == 200
    assert history(client, "GET", read_only).status_code == 200
    assert_error(
        history(client, "POST", read_only, {"enableFileHistory": False}), 403, "NoPermission"
    )
    assert_error(history(client, "DELETE", read_only), 403, "NoPermission")


def test_every_call_slides_the_expiry(clock):
    sim = Simulator(clock, token_lifetime=100)
    sim.add_library("lib", SECRET)
    client = Client(sim)
    token = create_token(client).json["accessToken"]
    for _ in range(3):
        clock.advance(90)
        assert query_tasks(client, token, "1000").status_code == 200
    clock.advance(100)
    assert_error(query_tasks(client, token, "1000"), 403, "InvalidAccessToken")


def test_renew_keeps_the_token_and_moves_its_expiry(clock):
    sim = Simulator(clock, token_lifetime=100)
    sim.add_library("lib", SECRET)
    client = Client(sim)
    token = sim.issue_token("lib")
    clock.advance(90)
    response = client.post(f"/api/v1/token/lib/{token}")
    assert response.status_code == 200
    assert response.json == {"accessToken": token, "expiresIn": 100}
    clock.advance(90)
    assert query_tasks(client, token, "1000").status_code == 200


@pytest.mark.parametrize("how", ["unknown", "expired", "revoked", "deleted"])
def test_renew_refuses_dead_tokens(sim, client, clock, token, how):
    if how == "unknown":
        token = "not-a-token"
    elif how == "expired":
        clock.advance(DAY)
    elif how == "revoked":
        sim.revoke_token(token)
    else:
        assert client.delete(f"/api/v1/token/lib/{token}").status_code == 204
    assert_error(client.post(f"/api/v1/token/lib/{token}"), 403, "InvalidAccessToken")


def test_describe_token_tells_what_it_was_minted_for(sim, client):
    minted = create_token(client, period="3600", user_id="ops-bot").json["accessToken"]
    assert sim.describe_token(minted) == TokenGrant("lib", True, "ops-bot", 3600)
    read_only = sim.issue_token("other", grant="")
    assert sim.describe_token(read_only) == TokenGrant("other", False, None, DAY)
    sim.revoke_token(read_only)
    with pytest.raises(ValueError):
        sim.describe_token(read_only)


def test_delete_token_revokes_it(client, token):
    response = client.delete(f"/api/v1/token/lib/{token}")
    assert response.status_code == 204
    assert response.data == b""
    assert_error(query_tasks(client, token, "1000"), 403, "InvalidAccessToken")


def test_expire_tokens_kills_every_current_token(sim, client, token):
    second = sim.issue_token("lib", grant="")
    sim.expire_tokens()
    for dead in (token, second):
        assert_error(query_tasks(client, dead, "1000"), 403, "InvalidAccessToken")
    assert query_tasks(client, sim.issue_token("lib"), "1000").status_code == 200


AUTHENTICATED = [
    ("GET", "/api/v1/task/{library}/1000"),
    ("GET", "/api/v1/directory-history/{library}/library-history"),
    ("POST", "/api/v1/directory-history/{library}/library-history"),
    ("DELETE", "/api/v1/directory-history/{library}/library-history"),
]


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
@pytest.mark.parametrize(
    ("library", "which_token", "status", "code"),
    [
        ("lib", "missing", 400, "EmptyAccessToken"),
        ("lib", "bogus", 403, "InvalidAccessToken"),
        ("lib", "other", 403, "AccessTokenNotMatchLibrary"),
        ("nope", "own", 404, "LibraryNotFound"),
        ("nope", "missing", 404, "LibraryNotFound"),
    ],
)
def test_authentication_errors(
    sim, client, token, method, path, library, which_token, status, code
):
    tokens = {"missing": "", "bogus": "bogus", "other": sim.issue_token("other"), "own": token}
    query = {"access_token": tokens[which_token]} if which_token != "missing" else {}
    response = client.open(path.format(library=library), method=method, query_string=query)
    assert_error(response, status, code)


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_token_paths_check_the_library_first(client, token, method):
    response = client.open(f"/api/v1/token/nope/{token}", method=method)
    assert_error(response, 404, "LibraryNotFound")


def test_token_paths_refuse_another_librarys_token(sim, client):
    other = sim.issue_token("other")
    assert_error(client.post(f"/api/v1/token/lib/{other}"), 403, "AccessTokenNotMatchLibrary")


@pytest.mark.parametrize(
    ("outcome", "final"),
    [
        ("done", {"status": 200, "result": [{"err": "", "status": 0, "deleteCount": 7}]}),
        ("empty", {"status": 204}),
        (
            "failed",
            {
                "status": 500,
                "result": [
                    {
                        "err": "InternalError: history store unavailable",
                        "status": -1,
                        "deleteCount": 0,
                    }
                ],
            },
        ),
        (403, {"status": 403}),
    ],
)
def test_task_runs_then_ends_with_its_outcome(sim, client, clock, token, outcome, final):
    task_id = sim.add_task("lib", run_seconds=30, outcome=outcome, delete_count=7)
    assert query_tasks(client, token, task_id).json == [{"taskId": task_id, "status": 202}]
    clock.advance(29.9)
    assert query_tasks(client, token, task_id).json == [{"taskId": task_id, "status": 202}]
    clock.advance(0.1)
    response = query_tasks(client, token, task_id)
    assert response.status_code == 200
    assert response.json == [{"taskId": task_id} | final]


def test_query_keeps_the_order_asked_and_folds_duplicates(sim, client, clock, token):
    first, second, third = sim.add_tasks("lib", 3)
    assert [first, second, third] == [1000, 1001, 1002]
    response = query_tasks(client, token, f"{third},{first},{third},{second},{first}")
    assert [item["taskId"] for item in response.json] == [third, first, second]


@pytest.mark.parametrize(
    ("mode", "status", "body"),
    [
        ("omit", 200, [{"taskId": 1000, "status": 202}]),
        ("400", 400, "ParamInvalid"),
        ("404", 404, "TaskNotFound"),
    ],
)
@pytest.mark.parametrize("unknown", ["4242", "1001"])
def test_unknown_ids_answer_as_configured(clock, mode, status, body, unknown):
    sim = Simulator(clock, unknown_ids=mode)
    sim.add_library("lib", SECRET)
    sim.add_library("other", OTHER_SECRET)
    sim.add_task("lib")
    sim.add_task("other")
    response = query_tasks(Client(sim), sim.issue_token("lib"), f"1000,{unknown}")
    if status == 200:
        assert response.status_code == 200
        assert response.json == body
    else:
        assert_error(response, status, body)


def test_tasks_are_forgotten_30_days_after_they_end(sim, client, clock):
    task_id = sim.add_task("lib", run_seconds=10)
    token = sim.issue_token("lib", period=40 * DAY)
    clock.advance(30 * DAY + 10)
    assert [item["taskId"] for item in query_tasks(client, token, task_id).json] == [task_id]
    clock.advance(1)
    assert query_tasks(client, token, task_id).json == []


def test_tasks_created_long_ago_are_already_forgotten(sim, client, clock, token):
    old = sim.add_task("lib", created_at=clock() - 31 * DAY, run_seconds=0)
    recent = sim.add_task("lib", created_at=clock() - 29 * DAY, run_seconds=0)
    assert [item["taskId"] for item in query_tasks(client, token, f"{old},{recent}").json] == [
        recent
    ]


def test_a_forgotten_task_is_left_out_until_remembered(sim, client, token):
    kept, lost = sim.add_tasks("lib", 2)
    sim.forget_task(lost)
    assert query_tasks(client, token, f"{kept},{lost}").json == [{"taskId": kept, "status": 202}]
    sim.remember_task(lost)
    assert [item["taskId"] for item in query_tasks(client, token, f"{kept},{lost}").json] == [
        kept,
        lost,
    ]
    with pytest.raises(ValueError):
        sim.forget_task(4242)


@pytest.mark.parametrize("ids", ["abc", "1,,2", "0", "-1", "1;2", "1, 2", "1.5", ",1", "1,"])
def test_task_id_list_must_be_positive_integers(client, token, ids):
    assert_error(query_tasks(client, token, ids), 400, "ParamInvalid")


@pytest.mark.parametrize(("count", "status"), [(100, 200), (101, 400)])
def test_task_id_list_holds_at_most_100(client, token, count, status):
    response = query_tasks(client, token, ",".join(str(n) for n in range(1, count + 1)))
    assert response.status_code == status
    if status == 400:
        assert_error(response, 400, "TooManyItems")


def test_history_settings_round_trip(clock, client, sim):
    sim.add_library("lib", SECRET, history_enabled=True)
    token = sim.issue_token("lib")
    assert history(client, "GET", token).json == {
        "enableFileHistory": True,
        "fileHistoryCount": 10,
        "fileHistoryExpireDay": 30,
        "mergeInterval": 600,
    }
    assert history(client, "POST", token, {"enableFileHistory": False}).status_code == 204
    assert history(client, "GET", token).json == {"enableFileHistory": False}
    body = {"enableFileHistory": True, "fileHistoryCount": 5}
    assert history(client, "POST", token, body).status_code == 204
    assert history(client, "GET", token).json["fileHistoryCount"] == 5


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        [],
        {},
        {"enableFileHistory": "yes"},
        {"enableFileHistory": True, "fileHistoryCount": "5"},
        {"enableFileHistory": True, "fileHistoryCount": True},
        {"enableFileHistory": True, "bogus": 1},
    ],
)
def test_history_set_rejects_bad_bodies(client, token, body):
    data = body if isinstance(body, str) else json.dumps(body)
    response = client.post(HISTORY, query_string={"access_token": token}, data=data)
    assert_error(response, 400, "ParamInvalid")


def test_clear_history_creates_a_task(client, clock, token):
    response = history(client, "DELETE", token)
    assert response.status_code == 202
    task_id = response.json["taskId"]
    assert query_tasks(client, token, task_id).json == [{"taskId": task_id, "status": 202}]
    clock.advance(30)
    [item] = query_tasks(client, token, task_id).json
    assert item["status"] == 200
    assert item["result"][0]["deleteCount"] == 100 + task_id % 900


def test_clear_history_uses_the_configured_run_time(clock):
    sim = Simulator(clock, clear_run_seconds=5)
    sim.add_library("lib", SECRET)
    client = Client(sim)
    token = sim.issue_token("lib")
    task_id = history(client, "DELETE", token).json["taskId"]
    clock.advance(5)
    assert query_tasks(client, token, task_id).json[0]["status"] == 200


def test_clear_history_allows_one_call_a_minute(client, clock, token):
    assert history(client, "DELETE", token).status_code == 202
    clock.advance(20.5)
    response = history(client, "DELETE", token)
    assert_error(response, 429, "RateLimitExceeded")
    assert response.headers["Retry-After"] == "40"
    clock.advance(39.4)
    assert history(client, "DELETE", token).headers["Retry-After"] == "1"
    clock.advance(0.1)
    assert history(client, "DELETE", token).status_code == 202


def test_clear_history_limits_each_library_separately(sim, client, token):
    assert history(client, "DELETE", token).status_code == 202
    other = sim.issue_token("other")
    response = client.delete(
        "/api/v1/directory-history/other/library-history", query_string={"access_token": other}
    )
    assert response.status_code == 202


def test_clear_history_refused_while_history_is_on(sim, client, token):
    sim.add_library("lib", SECRET, history_enabled=True)
    assert_error(history(client, "DELETE", token), 400, "FileHistoryEnabled")
    assert history(client, "POST", token, {"enableFileHistory": False}).status_code == 204
    assert history(client, "DELETE", token).status_code == 202


def test_unknown_route(client):
    assert_error(client.get("/api/v2/task/lib/1"), 404, "RouteNotFound")
    assert_error(client.get("/api/v1/task/lib/1/"), 404, "RouteNotFound")


def test_wrong_method(client, token):
    response = client.put("/api/v1/task/lib/1000", query_string={"access_token": token})
    assert_error(response, 405, "MethodNotAllowed")
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("status", "code", "retry_after", "header"),
    [
        (500, "InternalServerError", None, None),
        (503, "ServerOverloaded", None, None),
        (429, "RateLimitExceeded", 2, "2"),
        (429, "RateLimitExceeded", 0.5, "0.5"),
    ],
)
def test_error_fault(sim, client, token, status, code, retry_after, header):
    sim.inject("error", status=status, code=code, retry_after=retry_after)
    response = query_tasks(client, token, "1000")
    assert_error(response, status, code)
    assert response.headers.get("Retry-After") == header
    assert query_tasks(client, token, "1000").status_code == 200


def test_error_fault_carries_the_message_given(sim, client, token):
    sim.inject("error", status=403, code="NoPermission", message="Not for you.")
    response = query_tasks(client, token, "1000")
    assert_error(response, 403, "NoPermission")
    assert response.json["message"] == "Not for you."


def test_latency_fault_sleeps_without_blocking_others(sim, client, token):
    # Long beside the millisecond the other call takes, so the slow one is surely still asleep.
    sim.inject("latency", endpoint="task.query", seconds=1)
    slow = {}

    def slow_call():
        started = time.perf_counter()
        slow["response"] = query_tasks(Client(sim), token, "1000")
        slow["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=slow_call)
    thread.start()
    while not sim.task_queries:
        time.sleep(0.001)
    assert history(client, "GET", token).status_code == 200
    assert thread.is_alive()
    thread.join()
    assert slow["response"].status_code == 200
    assert slow["seconds"] >= 1


def test_garbage_fault(sim, client, token):
    sim.inject("garbage")
    response = query_tasks(client, token, "1000")
    assert response.status_code == 200
    assert response.text == "<html>oops</html>"


def test_truncated_fault(sim, client, token):
    sim.inject("truncated")
    response = query_tasks(client, token, "1000")
    assert response.status_code == 200
    assert response.text.startswith("[{")
    with pytest.raises(ValueError):
        json.loads(response.text)


def test_oversize_fault(sim, client, token):
    sim.inject("oversize")
    response = query_tasks(client, token, "1000")
    assert response.status_code == 200
    assert len(response.data) > 2 * 1024 * 1024
    assert isinstance(json.loads(response.data), list)


def test_trickle_fault_sends_the_real_answer_one_byte_at_a_time(sim, client, token):
    task_id = sim.add_task("lib")
    expected = query_tasks(client, token, task_id).data
    sim.inject("trickle", endpoint="task.query", seconds=0.001)

    response = client.get(
        f"/api/v1/task/lib/{task_id}", query_string={"access_token": token}, buffered=False
    )

    pieces = list(response.iter_encoded())
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(expected))
    assert b"".join(pieces) == expected
    assert {len(piece) for piece in pieces} == {1}


def test_trickle_fault_trickles_error_answers_too(sim, client):
    sim.inject("trickle", seconds=0)
    response = query_tasks(client, "bogus", "1000")
    assert_error(response, 403, "InvalidAccessToken")


@pytest.mark.parametrize("body", [b"\xff\xfe[", "[1, 2", ""])
def test_answer_fault_sends_exactly_the_body_given(sim, client, token, body):
    sim.inject("answer", status=503, body=body, retry_after=7)
    response = query_tasks(client, token, "1000")
    assert response.status_code == 503
    assert response.data == (body.encode() if isinstance(body, str) else body)
    assert response.headers["Retry-After"] == "7"
    assert query_tasks(client, token, "1000").status_code == 200


def test_fault_hits_only_its_endpoint_for_its_count(sim, client, token):
    sim.inject("error", endpoint="history.get", times=2)
    assert query_tasks(client, token, "1000").status_code == 200
    assert history(client, "GET", token).status_code == 500
    assert history(client, "GET", token).status_code == 500
    assert history(client, "GET", token).status_code == 200


def test_fault_without_count_lasts_until_cleared(sim, client, token):
    sim.inject("error", times=None, status=503, code="ServerOverloaded")
    for _ in range(5):
        assert_error(query_tasks(client, token, "1000"), 503, "ServerOverloaded")
    sim.clear_faults()
    assert query_tasks(client, token, "1000").status_code == 200


def test_faults_apply_in_order_one_per_call(sim, client, token):
    sim.inject("error", status=503, code="ServerOverloaded")
    sim.inject("garbage")
    assert query_tasks(client, token, "1000").status_code == 503
    assert query_tasks(client, token, "1000").text == "<html>oops</html>"
    assert query_tasks(client, token, "1000").json == []
    assert sim.calls["task.query"] == 3


def test_faults_skip_control_endpoints_and_unknown_routes(sim, client):
    sim.inject("error", times=None)
    assert client.get("/_sim/calls").status_code == 200
    assert_error(client.get("/nowhere"), 404, "RouteNotFound")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "meteor"},
        {"kind": "error", "endpoint": "task.list"},
        {"kind": "error", "times": 0},
        {"kind": "error", "status": 99},
        {"kind": "latency", "seconds": -1},
        {"kind": "error", "message": None},
        {"kind": "answer", "body": 42},
    ],
)
def test_inject_rejects_bad_faults(sim, kwargs):
    with pytest.raises(ValueError):
        sim.inject(**kwargs)


def test_calls_and_task_queries_are_recorded(sim, client, token):
    query_tasks(client, token, "1000,1001")
    query_tasks(client, "bogus", "1000")
    query_tasks(client, token, "nope")
    history(client, "GET", token)
    create_token(client)
    client.get("/_sim/calls")
    assert sim.calls == collections.Counter({"task.query": 3, "history.get": 1, "token.create": 1})
    assert sim.task_queries == [[1000, 1001], [1000]]
    sim.reset_calls()
    assert sim.calls == collections.Counter()
    assert sim.task_queries == []


def test_counts_stay_exact_under_threads(sim, token):
    def hammer():
        client = Client(sim)
        for _ in range(10):
            assert query_tasks(client, token, "1000").status_code == 200

    threads = [threading.Thread(target=hammer) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sim.calls["task.query"] == 200
    assert len(sim.task_queries) == 200


def test_control_calls_endpoint(client, token):
    query_tasks(client, token, "1000")
    assert client.get("/_sim/calls").json == {"calls": {"task.query": 1}, "taskQueries": 1}
    assert client.post("/_sim/reset-calls").status_code == 204
    assert client.get("/_sim/calls").json == {"calls": {}, "taskQueries": 0}


def test_control_tasks_endpoint(client, clock, token):
    body = {"libraryId": "lib", "count": 2, "runSeconds": 5, "outcome": "empty"}
    response = client.post("/_sim/tasks", json=body)
    assert response.status_code == 200
    assert response.json == {"taskIds": [1000, 1001]}
    clock.advance(5)
    assert query_tasks(client, token, "1000,1001").json == [
        {"taskId": 1000, "status": 204},
        {"taskId": 1001, "status": 204},
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"libraryId": "nope"},
        {"libraryId": "lib", "count": 0},
        {"libraryId": "lib", "outcome": "exploded"},
        {"libraryId": "lib", "runSeconds": "5"},
        {"libraryId": "lib", "colour": "red"},
        [],
    ],
)
def test_control_tasks_endpoint_rejects_bad_bodies(client, body):
    assert_error(client.post("/_sim/tasks", json=body), 400, "ParamInvalid")


def test_control_faults_endpoint(client, token):
    body = {"kind": "error", "endpoint": "task.query", "times": None, "status": 429}
    extra = {"code": "RateLimitExceeded", "retryAfter": 3, "message": "Slow down."}
    response = client.post("/_sim/faults", json=body | extra)
    assert response.status_code == 204
    for _ in range(2):
        response = query_tasks(client, token, "1000")
        assert_error(response, 429, "RateLimitExceeded")
        assert response.headers["Retry-After"] == "3"
        assert response.json["message"] == "Slow down."
    assert client.delete("/_sim/faults").status_code == 204
    assert query_tasks(client, token, "1000").status_code == 200


def test_control_faults_endpoint_takes_an_answer_body(client, token):
    body = {"kind": "answer", "status": 200, "body": '[{"taskId": "x"}]'}
    assert client.post("/_sim/faults", json=body).status_code == 204
    assert query_tasks(client, token, "1000").json == [{"taskId": "x"}]


@pytest.mark.parametrize("body", [{"kind": "meteor"}, {"times": 1}, {"kind": "error", "x": 1}])
def test_control_faults_endpoint_rejects_bad_faults(client, body):
    assert_error(client.post("/_sim/faults", json=body), 400, "ParamInvalid")


def test_control_advance_moves_a_fake_clock(sim, client, clock, token):
    task_id = sim.add_task("lib", run_seconds=60)
    assert client.post("/_sim/advance", json={"seconds": 60}).status_code == 204
    assert query_tasks(client, token, task_id).json[0]["status"] == 200
    assert_error(client.post("/_sim/advance", json={"seconds": "60"}), 400, "ParamInvalid")


def test_control_advance_refuses_a_real_clock():
    client = Client(Simulator())
    assert_error(client.post("/_sim/advance", json={"seconds": 1}), 409, "ClockNotAdjustable")


def test_add_task_numbers_and_validates(sim):
    assert sim.add_task("lib", task_id=5) == 5
    assert sim.add_task("lib") == 1000
    assert sim.add_task("lib", task_id=1001) == 1001
    assert sim.add_task("lib") == 1002
    for kwargs in ({"task_id": 5}, {"outcome": "exploded"}, {"delete_count": -1}):
        with pytest.raises(ValueError):
            sim.add_task("lib", **kwargs)
    with pytest.raises(ValueError):
        sim.add_task("nope")


def test_unknown_ids_mode_is_checked():
    with pytest.raises(ValueError):
        Simulator(unknown_ids="ignore")


def test_no_body_leaks_a_token_or_secret(sim, client, clock, token):
    other = sim.issue_token("other")
    calls = [
        ("GET", "/api/v1/token", {"library_id": "lib", "library_secret": OTHER_SECRET}),
        ("GET", "/api/v1/token", {"library_id": "lib", "library_secret": SECRET, "period": "1"}),
        ("GET", "/api/v1/task/lib/1000", {"access_token": other}),
        ("GET", "/api/v1/task/lib/x", {"access_token": token}),
        ("GET", "/api/v1/task/nope/1000", {"access_token": token}),
        ("GET", HISTORY, {"access_token": other}),
        ("DELETE", HISTORY, {"access_token": token}),
        ("DELETE", HISTORY, {"access_token": token}),
        ("PUT", HISTORY, {"access_token": token}),
        ("POST", f"/api/v1/token/other/{token}", {}),
        ("POST", f"/api/v1/token/lib/{other}", {}),
        ("GET", f"/api/v1/token/lib/{token}", {}),
        ("GET", "/_sim/calls", {}),
    ]
    bodies = [client.open(path, method=m, query_string=q).text for m, path, q in calls]
    sim.inject("error", times=None)
    bodies.append(query_tasks(client, token, "1000").text)
    clock.advance(DAY + 1)
    bodies.append(client.post(f"/api/v1/token/lib/{token}").text)
    for body in bodies:
        for secret in (token, other, SECRET, OTHER_SECRET):
            assert secret not in body


def test_serves_over_loopback_http(sim):
    with sim.serve() as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        url = f"{server.base_url}/api/v1/token?library_id=lib&library_secret={SECRET}&grant=admin"
        with urllib.request.urlopen(url, timeout=5) as response:
            token = json.load(response)["accessToken"]
        sim.add_task("lib", run_seconds=0)
        url = f"{server.base_url}/api/v1/task/lib/1000?access_token={token}"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            assert json.load(response)[0]["status"] == 200
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{server.base_url}/api/v1/task/lib/1000", timeout=5)
        with info.value as error:
            assert error.code == 400
            assert json.load(error)["code"] == "EmptyAccessToken"
    assert sim.calls == collections.Counter({"token.create": 1, "task.query": 2})


def test_main_never_echoes_a_malformed_library_secret(capsys):
    with pytest.raises(SystemExit):
        main(["--library", ":topsecret"])
    assert "topsecret" not in capsys.readouterr().err
