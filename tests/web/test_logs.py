import json
import logging
import re

import pytest

from smh_dashboard.storage import tasks


def track(app, clock, *task_ids):
    with app.app_context():
        tasks.track_tasks("lib1", task_ids, None, clock())


@pytest.fixture
def json_logs(settings):
    settings["LOG_FORMAT"] = "json"
    return settings


@pytest.fixture
def logged(capsys):
    """Return a function giving what was written to standard error since it was last called."""
    capsys.readouterr()
    return lambda: capsys.readouterr().err


def test_a_sane_request_id_comes_back_and_names_the_failed_request_line(client, logged):
    response = client.get(
        "/libraries/nope?access_token=leak-me-123", headers={"X-Request-Id": "lb-7f3a.42:1"}
    )
    assert response.status_code == 404
    assert response.headers["X-Request-Id"] == "lb-7f3a.42:1"
    output = logged()
    assert re.search(
        r"^\S+ INFO logs \[lb-7f3a\.42:1\] request failed: GET /libraries/nope -> 404$",
        output,
        re.MULTILINE,
    )
    assert "leak-me-123" not in output


@pytest.mark.parametrize(
    "incoming", [None, "", "has space", "x" * 65, "tab\there", "<script>", "-leading-dash"]
)
def test_an_unusable_request_id_is_replaced_by_a_new_one(client, incoming):
    headers = {} if incoming is None else {"X-Request-Id": incoming}
    first = client.get("/healthz", headers=headers).headers["X-Request-Id"]
    second = client.get("/healthz", headers=headers).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_a_request_that_succeeds_logs_no_request_line(client, logged):
    assert client.get("/healthz").status_code == 200
    assert "request failed" not in logged()


def test_each_smh_call_is_one_line_with_the_request_that_caused_it(client, app, sim, clock, logged):
    track(app, clock, sim.add_task("lib1", run_seconds=600))
    client.get("/libraries/lib1/rows", headers={"X-Request-Id": "poll-1"})
    sim.inject("error", endpoint="task.query", status=503, code="ServerOverloaded")
    clock.advance(app.config["SMH_CACHE_SECONDS"])
    client.get("/libraries/lib1/rows", headers={"X-Request-Id": "poll-2"})
    output = logged()
    smh_lines = [line for line in output.splitlines() if re.search(r" smh \[\S+\] SMH ", line)]
    assert len(smh_lines) == 3
    assert "[poll-1] SMH token.create for library lib1: ok, HTTP 200, request id -," in smh_lines[0]
    assert "[poll-1] SMH task.query for library lib1: ok, HTTP 200, request id -," in smh_lines[1]
    assert re.search(
        r"\[poll-2\] SMH task.query for library lib1: http_5xx, HTTP 503, "
        r"request id [0-9a-f]{32}, \d+ ms$",
        smh_lines[2],
    )


def test_json_lines_carry_the_request_id_and_the_call_fields(
    json_logs, client, app, sim, clock, logged
):
    track(app, clock, sim.add_task("lib1", run_seconds=600))
    sim.inject("error", endpoint="task.query", status=503, code="ServerOverloaded")
    client.get("/libraries/lib1/rows", headers={"X-Request-Id": "poll-1"})
    missing = client.get("/libraries/lib1/tasks/999?x=1", headers={"X-Request-Id": "page-2"})
    records = [json.loads(line) for line in logged().splitlines()]

    assert missing.status_code == 404
    calls = [r for r in records if r["logger"] == "smh" and "smh_endpoint" in r]
    assert [(c["smh_endpoint"], c["outcome"], c["status"]) for c in calls] == [
        ("token.create", "ok", 200),
        ("task.query", "http_5xx", 503),
    ]
    assert all(c["request_id"] == "poll-1" and c["library"] == "lib1" for c in calls)
    assert calls[0]["smh_request_id"] is None
    assert re.fullmatch(r"[0-9a-f]{32}", calls[1]["smh_request_id"])
    assert all(isinstance(c["duration_ms"], float) for c in calls)
    failed = [r for r in records if r["logger"] == "logs"]
    assert failed == [
        {
            "time": failed[0]["time"],
            "level": "INFO",
            "logger": "logs",
            "request_id": "page-2",
            "message": "request failed: GET /libraries/lib1/tasks/999 -> 404",
            "method": "GET",
            "path": "/libraries/lib1/tasks/999",
            "status": 404,
        }
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", failed[0]["time"])


def test_a_control_character_in_a_path_cannot_forge_a_log_line(client, logged):
    client.get("/libraries/x%0A2026-01-01T00:00:00Z INFO activity [-] ana: POST")
    output = logged()
    assert len([line for line in output.splitlines() if line]) == 1
    assert "/libraries/x\\x0a2026-01-01T00:00:00Z" in output


@pytest.fixture(params=["text", "json"])
def either_format(request, settings):
    settings["LOG_FORMAT"] = request.param
    return request.param


def test_no_token_or_secret_reaches_any_log_line(
    either_format, client, app, sim, clock, secret, logged, caplog
):
    caplog.set_level(logging.DEBUG)
    track(app, clock, sim.add_task("lib1", run_seconds=600))
    client.get("/libraries/lib1/rows")
    sim.expire_tokens()
    clock.advance(app.config["SMH_CACHE_SECONDS"])
    client.get("/libraries/lib1/rows")  # SMH refuses the token: a new one is minted
    sim.inject("error", status=403, code="InvalidAccessToken", times=3)
    clock.advance(app.config["SMH_CACHE_SECONDS"])
    client.get("/libraries/lib1/rows")
    tokens = sim.issued_tokens("lib1")
    client.get(f"/api/v1/task/lib1/1?access_token={tokens[0]}")
    client.get(f"/nowhere?library_secret={secret}&access_token={tokens[-1]}")

    everything = logged() + caplog.text
    assert len(tokens) >= 2
    assert "SMH task.query for library lib1" in everything
    assert "request failed: GET /nowhere -> 404" in everything
    assert secret not in everything
    for token in tokens:
        assert token not in everything
