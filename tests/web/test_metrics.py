import re

import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.security import generate_password_hash

from smh_dashboard import instruments
from smh_dashboard.smh.client import SMHClient
from smh_dashboard.storage import tasks

PASSWORDS = {"ana": "ana-s3cret", "sam": "sam-s3cret"}
HASHES = {name: generate_password_hash(pw, "pbkdf2:sha256:1000") for name, pw in PASSWORDS.items()}
USERS = f"""
[[user]]
name = "ana"
password_hash = "{HASHES["ana"]}"
role = "viewer"

[[user]]
name = "sam"
password_hash = "{HASHES["sam"]}"
role = "operator"
libraries = ["lib1"]
"""


def samples(client, **options):
    """Scrape /metrics as Prometheus would: {(sample name, sorted labels): value}."""
    response = client.get("/metrics", **options)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(scraped, name, **labels):
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def grown(before, after, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


def track(app, clock, *task_ids):
    with app.app_context():
        tasks.track_tasks("lib1", task_ids, None, clock())


@pytest.fixture
def open_metrics(settings):
    settings["METRICS"] = "open"
    return settings


def test_metrics_are_off_by_default(client):
    assert client.get("/metrics").status_code == 404


def test_metrics_count_smh_calls_polls_cache_and_tasks(
    open_metrics, client, app, sim, clock, next_window
):
    running, done = sim.add_task("lib1", run_seconds=600), sim.add_task("lib1", run_seconds=1)
    track(app, clock, running, done)
    clock.advance(5)
    before = samples(client)
    calls_before = dict(sim.calls)

    first = client.get("/libraries/lib1/rows")
    version = re.search(r"[?&;]v=([0-9a-f.]+)", first.get_data(as_text=True)).group(1)
    unchanged = client.get(f"/libraries/lib1/rows?v={version}")
    answered = client.get(f"/api/v1/task/lib1/{running},{done}")
    next_window()
    sim.inject("error", endpoint="task.query", status=503, code="ServerOverloaded")
    client.get("/libraries/lib1/rows")
    after = samples(client)

    assert (first.status_code, unchanged.status_code, answered.status_code) == (200, 204, 200)
    calls = "dashboard_smh_calls_total"
    assert grown(before, after, calls, endpoint="token.create", outcome="ok") == 1
    assert grown(before, after, calls, endpoint="task.query", outcome="ok") == 1
    assert grown(before, after, calls, endpoint="task.query", outcome="http_5xx") == 1
    assert sim.calls["task.query"] - calls_before.get("task.query", 0) == 2
    assert grown(before, after, "dashboard_smh_token_mints_total", kind="new") == 1
    polls = "dashboard_polls_total"
    assert grown(before, after, polls, endpoint="libraries.library_rows", answer="changed") == 2
    assert grown(before, after, polls, endpoint="libraries.library_rows", answer="unchanged") == 1
    assert grown(before, after, polls, endpoint="api.tasks", answer="changed") == 1
    latency = "dashboard_poll_seconds_count"
    assert grown(before, after, latency, endpoint="libraries.library_rows") == 3
    assert grown(before, after, "dashboard_poll_seconds_bucket", endpoint="api.tasks", le="+Inf")
    # The API found both answers in the cache the page's refresh had just filled.
    assert grown(before, after, "dashboard_cache_hits_total") >= 2
    assert grown(before, after, "dashboard_cache_misses_total") == 0
    assert value(after, "dashboard_tracked_tasks", state="running") == 1
    assert value(after, "dashboard_tracked_tasks", state="done") == 1
    assert value(after, "dashboard_tracked_tasks", state="failed") == 0


def test_a_page_that_is_not_a_poll_is_not_counted_as_one(open_metrics, client):
    before = samples(client)
    client.get("/libraries/lib1")
    client.get("/")
    after = samples(client)
    polled = [key for key in after if key[0] == "dashboard_polls_total"]
    assert all(grown(before, after, key[0], **dict(key[1])) == 0 for key in polled)


def test_token_renewals_are_counted_apart_from_mints(
    open_metrics, client, sim, clock, upstream, secret
):
    smh_client = SMHClient(
        "lib1",
        secret=secret,
        base_url=upstream.base_url,
        clock=clock,
        on_call=instruments.count_smh_call,
        on_token=instruments.count_token_mint,
    )
    task_id = sim.add_task("lib1", run_seconds=10**6)
    try:
        smh_client.query_tasks([task_id])
        before = samples(client)
        clock.advance(86400 - 100)
        smh_client.query_tasks([task_id])
        after = samples(client)
    finally:
        smh_client.close()
    assert grown(before, after, "dashboard_smh_token_mints_total", kind="renewed") == 1
    assert grown(before, after, "dashboard_smh_token_mints_total", kind="new") == 0
    calls = "dashboard_smh_calls_total"
    assert grown(before, after, calls, endpoint="token.renew", outcome="ok") == 1


@pytest.fixture
def users_file(settings, tmp_path):
    path = tmp_path / "users.toml"
    path.write_text(USERS)
    settings["SMH_USERS_FILE"] = str(path)
    return path


@pytest.fixture
def signed_in_metrics(users_file, settings):
    settings["METRICS"] = "signed-in"
    return settings


def test_signed_in_metrics_need_a_user_who_sees_every_library(signed_in_metrics, client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", auth=("ana", "wrong")).status_code == 401
    scoped = client.get("/metrics", auth=("sam", PASSWORDS["sam"]))
    assert scoped.status_code == 403
    assert "sees only some libraries" in scoped.get_data(as_text=True)
    answer = client.get("/metrics", auth=("ana", PASSWORDS["ana"]))
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert "dashboard_tracked_tasks" in answer.get_data(as_text=True)


def test_open_metrics_need_no_sign_in_even_where_pages_do(users_file, open_metrics, client):
    assert client.get("/libraries/lib1").status_code == 401
    assert "dashboard_polls_total" in client.get("/metrics").get_data(as_text=True)


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ("signed-in", "METRICS=signed-in needs SMH_USERS_FILE"),
        ("yes", "METRICS must be off or signed-in or open, not 'yes'"),
    ],
)
def test_a_metrics_setting_that_cannot_work_stops_start_up(make_app, metrics, message):
    with pytest.raises(SystemExit) as stopped:
        make_app(METRICS=metrics)
    assert message in str(stopped.value)


def test_metrics_come_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("METRICS", "open")
    app = make_app()
    assert app.test_client().get("/metrics").status_code == 200
