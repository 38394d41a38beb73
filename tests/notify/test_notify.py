import base64
import hashlib
import hmac
import html
import json
import logging
import re
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from sqlalchemy import select

from smh_dashboard import registry
from smh_dashboard.domain import states
from smh_dashboard.live import poller
from smh_dashboard.notify import delivery
from smh_dashboard.storage import database, outbox, schema, tasks

PROJECT = Path(__file__).resolve().parents[2]
KEY = "robot-key-5f1e0c7a"
DASHBOARD = "https://smh.example.com/dash"


@pytest.fixture
def hook_url(receiver):
    return f"{receiver.url}/cgi-bin/webhook/send?key={KEY}"


@pytest.fixture
def settings(settings, hook_url):
    return settings | {
        "SMH_WEBHOOK_URL": hook_url,
        "SMH_WEBHOOK_FORMAT": "json",
        "SMH_DASHBOARD_URL": DASHBOARD,
        "SMH_WEBHOOK_RETRY_SECONDS": 10,
        "SMH_WEBHOOK_TIMEOUT": 5,
    }


def deliveries(app, task_id):
    with app.app_context():
        return outbox.list_deliveries("lib1", task_id)


@pytest.mark.backends
def test_a_task_ending_with_no_page_open_is_told_once(runner, app, sim, clock, receiver):
    task = sim.add_task("lib1", run_seconds=5, delete_count=321)
    runner.invoke(args=["track", "lib1", str(task), "--label", "Spring cleanup"])
    runner.invoke(args=["refresh"])  # seen running: its end is news
    clock.advance(10)

    first = runner.invoke(args=["refresh"])
    clock.advance(60)
    again = runner.invoke(args=["refresh"])
    # Tracked again after an untrack: the same end is not told twice.
    runner.invoke(args=["untrack", "lib1", str(task)])
    runner.invoke(args=["track", "lib1", str(task)])
    clock.advance(60)
    third = runner.invoke(args=["refresh"])

    assert first.exit_code == 0, first.output
    assert "Told http://127.0.0.1/… (json) that task" in first.output
    assert "Told" not in again.output + third.output
    assert receiver.bodies() == [
        {
            "libraryId": "lib1",
            "taskId": task,
            "state": "done",
            "status": 200,
            "deleteCount": 321,
            "label": "Spring cleanup",
            "startedBy": None,
            "finishedAt": "2027-01-15T08:00:10Z",
            "url": f"{DASHBOARD}/libraries/lib1/tasks/{task}",
        }
    ]
    assert KEY not in first.output


@pytest.mark.backends
def test_failing_twice_then_succeeding_is_delivered_once(runner, app, sim, clock, receiver, client):
    receiver.plan = [500, 503]
    task = sim.add_task("lib1", run_seconds=5, outcome="failed")
    runner.invoke(args=["track", "lib1", str(task)])
    runner.invoke(args=["refresh"])  # seen running: its end is news
    clock.advance(10)

    failed = runner.invoke(args=["refresh"])
    early = runner.invoke(args=["refresh"])  # the back-off has not run out: nothing is sent
    retrying = client.get(f"/libraries/lib1/tasks/{task}").get_data(as_text=True)
    clock.advance(10)
    runner.invoke(args=["refresh"])
    clock.advance(20)
    told = runner.invoke(args=["refresh"])
    clock.advance(3600)
    runner.invoke(args=["refresh"])

    assert "Could not tell http://127.0.0.1/… (json)" in failed.output
    assert "HTTP 500" in failed.output
    assert "Told" not in early.output and "Could not" not in early.output
    assert "Failed: HTTP 500" in retrying
    assert "Told http://127.0.0.1/… (json)" in told.output
    assert [b["state"] for b in receiver.bodies()] == ["failed"] * 3
    assert len(receiver.successes()) == 1
    [delivery] = deliveries(app, task)
    assert (delivery.attempts, delivery.outcome.value) == (3, "delivered")
    page = client.get(f"/libraries/lib1/tasks/{task}").get_data(as_text=True)
    assert "Delivered" in page
    assert "http://127.0.0.1/…" in page
    assert KEY not in page and receiver.url not in page


def test_a_delivery_failing_for_a_day_is_given_up_and_shown(
    runner, app, sim, clock, receiver, client
):
    receiver.plan = [500] * 100
    task = sim.add_task("lib1", run_seconds=5)
    runner.invoke(args=["track", "lib1", str(task)])
    runner.invoke(args=["refresh"])  # seen running: its end is news
    clock.advance(10)
    outputs = []
    for _ in range(40):
        outputs.append(runner.invoke(args=["refresh"]).output)
        clock.advance(3600)

    [delivery] = deliveries(app, task)
    assert delivery.outcome.value == "gave up"
    # Doubling from 10 s, at most an hour apart: 24 hours is about 30 tries, not 40.
    assert 20 < delivery.attempts < 40 == len(outputs)
    assert sum("Gave up telling http://127.0.0.1/… (json)" in o for o in outputs) == 1
    page = client.get(f"/libraries/lib1/tasks/{task}").get_data(as_text=True)
    assert "Gave up: HTTP 500" in page


def test_a_task_that_a_page_saw_end_is_told_by_the_web_app(client, app, sim, clock, receiver):
    task = sim.add_task("lib1", run_seconds=5)
    with app.app_context():
        tasks.track_tasks("lib1", [task], None, clock())
    client.get("/libraries/lib1")  # seen running: its end is news
    clock.advance(10)

    client.get("/libraries/lib1")  # the refresh this page runs sees the task end
    clock.advance(5)
    client.get("/libraries/lib1")  # a later request delivers what is due
    clock.advance(5)
    client.get("/libraries/lib1")

    assert [(b["taskId"], b["state"]) for b in receiver.successes()] == [(task, "done")]


@pytest.mark.backends
def test_a_claim_left_by_a_process_that_died_is_taken_over_after_its_lease(
    runner, app, sim, clock, receiver
):
    task = sim.add_task("lib1", run_seconds=5)
    runner.invoke(args=["track", "lib1", str(task)])
    runner.invoke(args=["refresh"])  # seen running: its end is news
    clock.advance(10)
    with app.app_context():
        # A refresh records the end, then a process claims its message and dies unsent.
        poller.refresh_library(registry.get_library("lib1"))
        [held] = outbox.claim_deliveries(clock(), clock() + 15, 1)
    held_on = runner.invoke(args=["refresh"])
    clock.advance(16)
    taken_over = runner.invoke(args=["refresh"])

    assert held.task_id == task
    assert "Told" not in held_on.output
    assert "Told" in taken_over.output
    assert [b["taskId"] for b in receiver.successes()] == [task]
    assert deliveries(app, task)[0].attempts == 2


@pytest.mark.backends
def test_tasks_already_ended_when_tracked_tell_nobody_but_a_running_one_does(
    runner, app, client, sim, clock, receiver
):
    old = [
        *sim.add_tasks("lib1", 3, run_seconds=0),
        sim.add_task("lib1", run_seconds=0, outcome="failed"),
        sim.add_task("lib1", run_seconds=0, outcome="empty"),
    ]
    running = sim.add_task("lib1", run_seconds=60)
    tracked = runner.invoke(args=["track", "lib1", *map(str, old), str(running)])
    first = runner.invoke(args=["refresh"])
    clock.advance(61)
    ended = runner.invoke(args=["refresh"])
    clock.advance(60)
    later = runner.invoke(args=["refresh"])

    assert "Tracking 6 new task(s)" in tracked.output
    assert "Told" not in first.output + later.output
    assert ended.output.count("Told") == 1
    assert [(b["taskId"], b["state"]) for b in receiver.bodies()] == [(running, "done")]
    for task in old:
        assert deliveries(app, task) == []
    page = client.get("/libraries/lib1").get_data(as_text=True)
    shown = dict(re.findall(r'<tr id="task-([0-9]+)"[^>]*data-state="([a-z_]+)"', page))
    assert [shown[str(task)] for task in [*old, running]] == [
        *["done"] * 3,
        "failed",
        states.DONE_EMPTY,
        "done",
    ]


def test_a_clear_the_dashboard_started_is_told_even_if_first_checked_done(
    runner, app, sim, clock, receiver
):
    started = runner.invoke(args=["clear-history", "lib1", "--yes"])
    # The simulator's clear runs 30 s; the first check comes after it ended.
    clock.advance(31)
    runner.invoke(args=["refresh"])

    assert started.exit_code == 0, started.output
    [body] = receiver.bodies()
    assert body["state"] == "done"
    assert body["label"] == "History clear started by " + body["startedBy"]


def test_a_task_seen_running_that_smh_forgets_is_an_end_too(runner, app, sim, clock, receiver):
    task = sim.add_task("lib1", run_seconds=10_000)
    runner.invoke(args=["track", "lib1", str(task)])
    runner.invoke(args=["refresh"])  # seen running
    sim.forget_task(task)
    clock.advance(10)
    runner.invoke(args=["refresh"])  # not listed: missing from now, within the grace
    clock.advance(200)
    runner.invoke(args=["refresh"])

    assert [(b["taskId"], b["state"]) for b in receiver.successes()] == [(task, "missing")]


def test_ids_smh_never_knew_going_missing_tell_nobody(runner, app, clock, receiver):
    # Pasting a hundred ids older than SMH's 30 days must not flood the team's chat.
    runner.invoke(args=["track", "lib1", "424242", "424243", "424244"])
    runner.invoke(args=["refresh"])
    clock.advance(200)
    result = runner.invoke(args=["refresh"])

    assert result.exit_code == 0, result.output
    assert receiver.received == []


@pytest.mark.parametrize("webhook_format", ["wecom", "dingtalk", "slack"])
def test_each_chat_gets_its_own_message_format(make_app, webhook_format, sim, clock, receiver):
    app = make_app(SMH_WEBHOOK_FORMAT=webhook_format)
    runner = app.test_cli_runner()
    task = sim.add_task("lib1", run_seconds=5, delete_count=1834)
    runner.invoke(args=["track", "lib1", str(task), "--label", "Old shots"])
    runner.invoke(args=["refresh"])  # seen running: its end is news
    clock.advance(10)
    result = runner.invoke(args=["refresh"])

    assert result.exit_code == 0, result.output
    [received] = receiver.received
    body = received.body
    url = f"{DASHBOARD}/libraries/lib1/tasks/{task}"
    if webhook_format == "wecom":
        assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
        content = body["markdown"]["content"]
        assert content.startswith(f'**SMH task {task} in Marketing assets: <font color="info">Done')
        assert "Versions deleted: 1,834" in content and "Label: Old shots" in content
        assert f"[Open the task page]({url})" in content
    elif webhook_format == "dingtalk":
        assert body["msgtype"] == "markdown"
        assert body["markdown"]["title"] == f"SMH task {task} in Marketing assets: Done"
        text = body["markdown"]["text"]
        assert "Versions deleted: 1,834" in text and f"[Open the task page]({url})" in text
    else:
        assert body["text"] == f"SMH task {task} in Marketing assets: Done"
        title, details, link = body["blocks"]
        assert {title["type"], details["type"], link["type"]} == {"section"}
        assert title["text"] == {
            "type": "mrkdwn",
            "text": f"*SMH task <{url}|{task}> in Marketing assets: Done*",
        }
        assert details["text"]["type"] == "plain_text"
        assert "Versions deleted: 1,834" in details["text"]["text"]
        assert "Label: Old shots" in details["text"]["text"]
        assert link["text"] == {"type": "mrkdwn", "text": f"<{url}|Open the task page>"}


def ended_and_queued(runner, sim, clock, label=None):
    """Track a task and see it running, then let it end: the next refresh queues its message."""
    task = sim.add_task("lib1", run_seconds=5, delete_count=9)
    runner.invoke(args=["track", "lib1", str(task), *(["--label", label] if label else [])])
    runner.invoke(args=["refresh"])
    clock.advance(10)
    return task


@pytest.mark.parametrize("webhook_format", ["wecom", "dingtalk"])
def test_a_robot_refusing_with_an_errcode_in_a_200_is_retried(
    make_app, webhook_format, sim, clock, receiver
):
    receiver.answer = {"errcode": 45009, "errmsg": "api freq out of limit"}
    app = make_app(SMH_WEBHOOK_FORMAT=webhook_format)
    runner = app.test_cli_runner()
    task = ended_and_queued(runner, sim, clock)

    refused = runner.invoke(args=["refresh"])
    page = app.test_client().get(f"/libraries/lib1/tasks/{task}").get_data(as_text=True)
    receiver.answer = {"errcode": 0, "errmsg": "ok"}
    clock.advance(10)
    told = runner.invoke(args=["refresh"])

    assert "errcode 45009: api freq out of limit; will try again." in refused.output
    assert "Failed: errcode 45009: api freq out of limit" in page
    assert f"Told http://127.0.0.1/… ({webhook_format}) that task {task}" in told.output
    assert len(receiver.bodies()) == 2
    [delivery] = deliveries(app, task)
    assert (delivery.outcome.value, delivery.attempts) == ("delivered", 2)


# Every character markdown or Slack could read as formatting, and an entity.
ODD_LABEL = "*bold* _it_ [x](http://evil.example) <b>hi</b> &amp; ~~gone~~ `code` # 5 > 3 :fire:"


@pytest.mark.parametrize("webhook_format", ["wecom", "dingtalk"])
def test_a_label_shows_literally_in_a_robots_markdown(
    make_app, webhook_format, sim, clock, receiver
):
    app = make_app(SMH_WEBHOOK_FORMAT=webhook_format)
    runner = app.test_cli_runner()
    ended_and_queued(runner, sim, clock, label=ODD_LABEL)
    runner.invoke(args=["refresh"])

    [body] = receiver.bodies()
    text = body["markdown"]["content" if webhook_format == "wecom" else "text"]
    [line] = [part for part in text.split("\n\n") if part.startswith("Label:")]
    # Rendered as CommonMark (with strike-through) renders it: the label, as typed, as text.
    markdown = MarkdownIt("commonmark").enable("strikethrough")
    assert markdown.render(line) == f"<p>Label: {html.escape(ODD_LABEL, quote=False)}</p>\n"
    # One link only: the task page's.
    assert len(re.findall(r"<a ", markdown.render(text))) == 1


def test_a_label_shows_literally_in_slack(make_app, sim, clock, receiver):
    app = make_app(SMH_WEBHOOK_FORMAT="slack")
    runner = app.test_cli_runner()
    ended_and_queued(runner, sim, clock, label=ODD_LABEL)
    runner.invoke(args=["refresh"])

    [body] = receiver.bodies()
    mrkdwn = [b["text"]["text"] for b in body["blocks"] if b["text"]["type"] == "mrkdwn"]
    [details] = [b["text"] for b in body["blocks"] if b["text"]["type"] == "plain_text"]
    escaped = ODD_LABEL.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert f"Label: {escaped}\n" in details["text"]
    assert details["emoji"] is False
    # Slack's mrkdwn cannot escape * _ ~ `: the label never goes into it.
    assert not any("bold" in text or "gone" in text for text in mrkdwn)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    runner, app, sim, clock, receiver, status
):
    receiver.plan = [status]
    receiver.location = f"{receiver.url}/elsewhere?key={KEY}"
    task = ended_and_queued(runner, sim, clock)

    failed = runner.invoke(args=["refresh"])
    clock.advance(10)
    told = runner.invoke(args=["refresh"])

    assert f"HTTP {status}" in failed.output and "will try again" in failed.output
    assert "Told" in told.output
    assert [(r.method, r.path) for r in receiver.received] == [
        ("POST", "/cgi-bin/webhook/send"),
        ("POST", "/cgi-bin/webhook/send"),
    ]
    [delivery] = deliveries(app, task)
    assert (delivery.outcome.value, delivery.attempts) == ("delivered", 2)
    assert KEY not in failed.output


@pytest.mark.backends
def test_a_receiver_slower_than_the_lease_gets_the_message_once(make_app, sim, clock, receiver):
    # A timeout no loaded machine reaches: the receiver answers when the test lets it.
    app = make_app(SMH_WEBHOOK_TIMEOUT=120)
    engine = database.get_engine(app)
    task = ended_and_queued(app.test_cli_runner(), sim, clock)
    with app.app_context():
        poller.refresh_library(registry.get_library("lib1"))  # records the end, queues its message
    receiver.hold.set()
    receiver.held_status = 200
    lease = 2 * app.config["SMH_WEBHOOK_TIMEOUT"] + 5
    first = []

    def deliver():
        with app.app_context():
            first.extend(delivery.deliver_due())

    sender = threading.Thread(target=deliver)
    sender.start()
    try:
        assert receiver.arrived.wait(60), "the message never reached the receiver"
        # The receiver takes its time: twice the lease passes while the first sender waits.
        for _ in range(4):
            clock.advance(lease / 2)
            # Renewed at the new time: before it, the claim ran out at most half a lease on.
            wait_for(lambda: claimed_until(engine) > clock() + lease / 2)
        # Another process (a second worker, `flask watch`) finds nothing to send.
        other = make_app(SMH_WEBHOOK_TIMEOUT=120)
        with other.app_context():
            second = delivery.deliver_due()
    finally:
        receiver.release.set()
        sender.join(60)

    assert second == []
    assert [(sent.delivery.task_id, sent.error) for sent in first] == [(task, None)]
    assert [b["taskId"] for b in receiver.bodies()] == [task]
    [done] = deliveries(app, task)
    assert (done.outcome.value, done.attempts) == ("delivered", 1)


def claimed_until(engine):
    with engine.connect() as conn:
        return conn.execute(select(schema.outbox.c.claimed_until)).scalar_one() or 0.0


def wait_for(condition):
    """Wait until `condition` holds, failing after a minute (a bound, not a timing target)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "waited a minute in vain"
        time.sleep(0.05)


def test_dingtalk_requests_are_signed(make_app, receiver):
    secret = "SECa1b2c3d4e5f6"
    app = make_app(SMH_WEBHOOK_FORMAT="dingtalk", SMH_WEBHOOK_SECRET=secret)
    result = app.test_cli_runner().invoke(args=["notify-test", "lib1"])

    assert result.exit_code == 0, result.output
    assert result.output == "Sent a test message to http://127.0.0.1/… (dingtalk).\n"
    [received] = receiver.received
    # Parsed back from the query: a "+" or "/" of the base64 left unescaped would not verify.
    timestamp = received.query["timestamp"][0]
    expected = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    assert base64.b64decode(received.query["sign"][0]) == expected.digest()
    assert received.query["key"] == [KEY]
    assert received.body["markdown"]["title"].startswith("Test message")


def test_notify_test_says_how_it_went_without_the_url(runner, receiver):
    receiver.plan = [404]
    failed = runner.invoke(args=["notify-test", "lib1"])
    ok = runner.invoke(args=["notify-test", "lib1"])
    unknown = runner.invoke(args=["notify-test", "nosuch"])

    assert failed.exit_code == 1
    assert "Sending a test message to http://127.0.0.1/… (json) failed: HTTP 404" in failed.output
    assert ok.exit_code == 0 and "Sent a test message to http://127.0.0.1/… (json)." in ok.output
    assert unknown.exit_code == 2
    assert receiver.bodies()[1]["state"] == "test"
    assert receiver.bodies()[1]["url"] == f"{DASHBOARD}/libraries/lib1"
    assert all(KEY not in r.output for r in (failed, ok, unknown))


def test_an_unreachable_webhook_is_named_masked_in_logs_and_pages(make_app, sim, clock, caplog):
    caplog.set_level(logging.DEBUG)
    app = make_app(SMH_WEBHOOK_URL=f"http://127.0.0.1:9/hook?key={KEY}")
    task = sim.add_task("lib1", run_seconds=5)
    runner = app.test_cli_runner()
    runner.invoke(args=["track", "lib1", str(task)])
    runner.invoke(args=["refresh"])  # seen running: its end is news
    clock.advance(10)
    result = runner.invoke(args=["refresh"])
    page = app.test_client().get(f"/libraries/lib1/tasks/{task}").get_data(as_text=True)

    assert "Could not tell http://127.0.0.1/… (json)" in result.output
    assert "could not connect" in result.output
    assert "Failed: could not connect" in page
    assert KEY not in result.output + page + caplog.text
    assert "127.0.0.1:9" not in page


def test_a_library_without_a_webhook_queues_nothing(settings, make_app, sim, clock):
    for name in [k for k in settings if k.startswith("SMH_WEBHOOK_")]:
        del settings[name]
    app = make_app()
    task = sim.add_task("lib1", run_seconds=5)
    runner = app.test_cli_runner()
    runner.invoke(args=["track", "lib1", str(task)])
    clock.advance(10)
    runner.invoke(args=["refresh"])
    page = app.test_client().get(f"/libraries/lib1/tasks/{task}").get_data(as_text=True)

    with app.app_context():
        assert outbox.list_deliveries("lib1", task) == []
    assert "No webhook is configured for Marketing assets" in page
    assert 'data-state="done"' in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SMH_WEBHOOK_FORMAT": "teams"}, "SMH_WEBHOOK_FORMAT must be one of json, wecom"),
        ({"SMH_WEBHOOK_URL": f"ftp://host/{KEY}"}, "SMH_WEBHOOK_URL must be an http(s) URL"),
        ({"SMH_WEBHOOK_SECRET": "SECx"}, "SMH_WEBHOOK_SECRET is for DingTalk's signed robots"),
        ({"SMH_DASHBOARD_URL": None}, "SMH_DASHBOARD_URL must be set when a webhook is"),
        ({"SMH_DASHBOARD_URL": "smh.example.com"}, "SMH_DASHBOARD_URL must be the dashboard's"),
        ({"SMH_WEBHOOK_URL": None}, "SMH_WEBHOOK_FORMAT is set, but no webhook URL is"),
        ({"SMH_LIBRARY_ID": None, "SMH_LIBRARY_SECRET": None}, "SMH_WEBHOOK_URL is set but"),
        ({"SMH_WEBHOOK_RETRY_SECONDS": "soon"}, "SMH_WEBHOOK_RETRY_SECONDS must be a number"),
    ],
)
def test_bad_webhook_settings_stop_start_up_naming_them(make_app, change, message):
    with pytest.raises(SystemExit) as stopped:
        make_app(**change)
    assert message in str(stopped.value)
    assert KEY not in str(stopped.value)


def test_a_libraries_file_names_the_library_whose_webhook_is_wrong(
    settings, make_app, tmp_path, monkeypatch, secret
):
    monkeypatch.setenv("LIB1_SECRET", secret)
    path = tmp_path / "libraries.toml"
    path.write_text(
        '[[library]]\nid = "lib1"\nsecret_env = "LIB1_SECRET"\n'
        'webhook_url_env = "LIB1_HOOK"\nwebhook_format = "slack"\n'
    )
    for name in [k for k in settings if k.startswith(("SMH_WEBHOOK_", "SMH_LIB"))]:
        del settings[name]
    with pytest.raises(SystemExit) as unset:
        make_app(SMH_LIBRARIES_FILE=str(path))
    monkeypatch.setenv("LIB1_HOOK", f"https://hooks.slack.com/services/T0/B0/{KEY}")
    app = make_app(SMH_LIBRARIES_FILE=str(path))

    assert "SMH_LIBRARIES_FILE" in str(unset.value) and "library #1" in str(unset.value)
    assert "webhook_url_env names 'LIB1_HOOK', which is not set" in str(unset.value)
    with app.app_context():
        library = registry.get_library("lib1")
    assert (library.webhook.masked, library.webhook.format.value) == (
        "https://hooks.slack.com/…",
        "slack",
    )
    assert KEY not in repr(library)


def test_pages_alone_get_the_message_sent_from_a_background_thread(make_app, sim, clock, receiver):
    app = make_app(SMH_REFRESH_IN_BACKGROUND=True)
    client = app.test_client()
    task = sim.add_task("lib1", run_seconds=5)
    with app.app_context():
        tasks.track_tasks("lib1", [task], None, clock())
        poller.refresh_library(registry.get_library("lib1"))  # seen running
    clock.advance(10)

    # An open page polls: its refreshes and deliveries run off the request, in threads.
    deadline = time.monotonic() + 60
    while not receiver.successes() and time.monotonic() < deadline:
        assert client.get("/libraries/lib1/rows").status_code in (200, 204)
        clock.advance(1)
        time.sleep(0.05)

    assert [(b["taskId"], b["state"]) for b in receiver.successes()] == [(task, "done")]
    page = client.get(f"/libraries/lib1/tasks/{task}").get_data(as_text=True)
    assert "Delivered" in page


# Each process builds the dashboard from the same settings, waits for the go, then delivers
# until nothing is due. The app's clock is set to the test's, since the outbox rows carry it.
DELIVERER = """
import json, sys
from app import create_app
from smh_dashboard import clock
from smh_dashboard.notify import delivery
app = create_app(json.loads(sys.argv[1]))
clock.now = lambda: float(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
sent = []
with app.app_context():
    while outcomes := delivery.deliver_due():
        sent += [o.delivery.task_id for o in outcomes if o.error is None]
print(json.dumps(sent), flush=True)
"""


@pytest.mark.backends
def test_two_processes_delivering_at_once_tell_each_end_once(settings, app, sim, clock, receiver):
    ids = sim.add_tasks("lib1", 30, run_seconds=5)
    with app.app_context():
        tasks.track_tasks("lib1", ids, None, clock())
        poller.refresh_library(registry.get_library("lib1"))  # seen running
        clock.advance(10)
        poller.refresh_library(registry.get_library("lib1"))
        queued = [d for task in ids for d in outbox.list_deliveries("lib1", task)]
    assert [d.outcome.value for d in queued] == ["waiting"] * len(ids)

    command = [sys.executable, "-W", "error", "-c", DELIVERER, json.dumps(settings), str(clock())]
    with ExitStack() as stack:
        deliverers = [
            stack.enter_context(
                subprocess.Popen(
                    command,
                    cwd=PROJECT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for _ in range(2)
        ]
        # A barrier across processes: both have started before either claims anything.
        for deliverer in deliverers:
            assert deliverer.stdout.readline() == "ready\n", deliverer.communicate()[1]
        for deliverer in deliverers:
            deliverer.stdin.write("go\n")
            deliverer.stdin.flush()
        finished = [deliverer.communicate(timeout=60) for deliverer in deliverers]

    for deliverer, (_, err) in zip(deliverers, finished, strict=True):
        assert deliverer.returncode == 0, err
    first, second = (json.loads(out) for out, _ in finished)
    assert sorted(first + second) == sorted(ids)  # every row sent, by one process only
    assert sorted(body["taskId"] for body in receiver.successes()) == sorted(ids)
    with app.app_context():
        delivered = [d for task in ids for d in outbox.list_deliveries("lib1", task)]
    assert [(d.outcome.value, d.attempts) for d in delivered] == [("delivered", 1)] * len(ids)
