"""Issue 19 tried as an attacker would, the records' side: who did what from where, what labels
may hold, what read-only stops, how far tables grow, where a webhook key may show, how writers
queue, and what the API says while SMH fails. Each test failed before its fix."""

import html
import logging
import re
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from markup import shown
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from test_auth import USERS, as_user

from smh_dashboard.storage import activity, database, listings, outbox, tasks
from smh_dashboard.storage.schema import tasks as tasks_table

CLIENT = "203.0.113.9"
DAY = 86400.0
WECOM_KEY = "5f1e0c7a-93d2-4b7e-a1c4-robotkey"
# Spins a core for the seconds given, then ends by itself, whatever happens to the test.
BURNER = (
    "import sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end: pass\n"
)


def csrf_of(client, path="/libraries/lib1", **kwargs):
    page = client.get(path, **kwargs).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def tracked(app, library_id="lib1"):
    with app.app_context():
        return {t.task_id: t for t in listings.list_tasks(library_id, None)}


def logged(app):
    with app.app_context():
        return list(reversed(activity.list_activity("lib1", 0, 100)))


# 5. The audit trail: every change is a row with who and from where.


def test_every_change_is_an_activity_row_with_who_and_the_client_address(
    make_app, settings, other_secret, tmp_path, sim, clock, next_window, caplog
):
    # Behind a proxy the real client is not on loopback, so only a signed-in operator changes.
    settings["SMH_LIBRARIES"] = [{"id": "lib2", "name": "Product photos", "secret": other_secret}]
    users = tmp_path / "users.toml"
    users.write_text(USERS)
    app = make_app(TRUSTED_PROXIES=1, SMH_USERS_FILE=str(users))
    client = app.test_client()
    forwarded = {"headers": {"X-Forwarded-For": CLIENT}, **as_user("ana")}
    token = csrf_of(client, **forwarded)

    def post(path, **data):
        return client.post(path, data={"csrf_token": token, **data}, **forwarded)

    with caplog.at_level(logging.INFO):
        answers = [
            # Ids SMH never heard of: after the grace period they may be checked again.
            post("/libraries/lib1/tasks", task_ids="6 7 8"),
            post("/libraries/lib1/tasks/6/untrack"),
            post("/libraries/lib1/tasks/untrack/undo"),
            post("/libraries/lib1/clear-history", confirm="lib2"),
            post("/libraries/lib1/clear-history", confirm="lib1"),
            post("/libraries/lib1/history-settings/disable", confirm="off"),
        ]
        client.get("/libraries/lib1", **forwarded)
        clock.advance(app.config["SMH_UNKNOWN_GRACE_SECONDS"] + 1)
        next_window()
        client.get("/libraries/lib1", **forwarded)
        answers.append(post("/libraries/lib1/tasks/8/recheck"))

    assert [a.status_code for a in answers] == [303, 303, 303, 400, 303, 303, 303]
    rows = [(e.action, e.outcome, e.address) for e in logged(app)]
    assert rows == [
        ("track", "done", CLIENT),
        ("untrack", "done", CLIENT),
        ("undo-untrack", "done", CLIENT),
        ("clear", "refused", CLIENT),
        ("clear", "requested", CLIENT),
        ("clear", "done", CLIENT),
        ("disable-history", "done", CLIENT),
        ("recheck", "done", CLIENT),
    ]
    assert {e.who for e in logged(app)} == {"ana"}
    assert logged(app)[0].message == "Now tracking 3 tasks: 6, 7, 8."
    assert "“lib2” is not this library's id" in logged(app)[3].message
    page = shown(client.get("/libraries/lib1/activity", **forwarded))
    assert page.count(f'<td data-label="From">{CLIENT}</td>') == 8
    assert f"ana from {CLIENT}: POST /libraries/lib1/tasks -> 303" in caplog.text


def test_a_clear_smh_started_leaves_a_trace_when_its_record_fails(client, app, sim, monkeypatch):
    token = csrf_of(client)

    def broken(*args, **kwargs):
        raise OperationalError("INSERT …", {}, Exception("disk I/O error"))

    monkeypatch.setattr(tasks, "track_tasks", broken)
    response = client.post(
        "/libraries/lib1/clear-history", data={"csrf_token": token, "confirm": "lib1"}
    )

    assert response.status_code == 503
    assert sim.calls["history.clear"] == 1
    (entry,) = logged(app)
    assert (entry.action, entry.outcome, entry.address) == ("clear", "requested", "127.0.0.1")


def test_the_command_line_records_its_changes_too(runner, app):
    runner.invoke(args=["track", "lib1", "5", "6"])
    runner.invoke(args=["untrack", "lib1", "5"])

    rows = [(e.action, e.who.startswith("command line"), e.address) for e in logged(app)]
    assert rows == [("track", True, None), ("untrack", True, None)]


# 6. Labels hold no control or format characters, and the CLI prints stored ones safely.


@pytest.mark.parametrize(
    "label",
    ["\u202eevil.exe", "\x1b[2J\x1b[31mred", "zero\u200bwidth", "bell\x07", "two\nlines"],
    ids=["bidi", "ansi", "zero-width", "bell", "newline"],
)
def test_labels_with_control_or_format_characters_are_refused(client, app, csrf, runner, label):
    form = client.post(
        "/libraries/lib1/tasks", data={"task_ids": "5", "label": label, "csrf_token": csrf}
    )
    cli = runner.invoke(args=["track", "lib1", "6", "--label", label])

    assert form.status_code == 400
    assert "A label is plain text: no control or formatting characters." in shown(form)
    assert cli.exit_code == 2
    assert "no control or formatting characters" in cli.output
    assert tracked(app) == {}


def test_the_cli_prints_stored_labels_without_their_escapes(runner, app, sim, clock):
    task_id = sim.add_task("lib1", run_seconds=5)
    with app.app_context():
        # Stored before labels were checked.
        tasks.track_tasks("lib1", [task_id], "\x1b[2J\u202ecleanup", clock())

    result = runner.invoke(args=["refresh"])

    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "\u202e" not in result.output
    assert "\\x1b[2J\\u202ecleanup" in result.output


# 7. Read-only means read-only, on the command line too.


@pytest.mark.parametrize(
    "args",
    [
        ["track", "lib1", "9"],
        ["untrack", "lib1", "5"],
        ["clear-history", "lib1", "--yes"],
        ["notify-test", "lib1"],
    ],
    ids=["track", "untrack", "clear-history", "notify-test"],
)
def test_read_only_refuses_every_changing_command(make_app, sim, clock, args):
    app = make_app(SMH_READ_ONLY="1")
    with app.app_context():
        tasks.track_tasks("lib1", [5], None, clock())

    result = app.test_cli_runner().invoke(args=args)

    assert result.exit_code == 1
    assert "read-only (SMH_READ_ONLY)" in result.output
    assert list(tracked(app)) == [5]
    assert sim.calls["history.clear"] == 0


# 10. Bounded growth: records pruned after their time, caps on tracking, exports and waits.


def test_finished_tasks_and_delivered_messages_are_pruned_after_their_days(
    make_app, sim, clock, receiver
):
    app = make_app(
        SMH_KEEP_FINISHED_DAYS=30,
        SMH_KEEP_DELIVERED_DAYS=7,
        SMH_WEBHOOK_URL=f"{receiver.url}/hook",
        SMH_DASHBOARD_URL="https://smh.example.com",
    )
    runner = app.test_cli_runner()
    old = sim.add_task("lib1", run_seconds=5)
    running = sim.add_task("lib1", run_seconds=100 * DAY)
    runner.invoke(args=["track", "lib1", str(old), str(running)])
    runner.invoke(args=["refresh"])  # seen running: its end is news
    clock.advance(10)
    runner.invoke(args=["refresh"])
    with app.app_context():
        assert [d.outcome.value for d in outbox.list_deliveries("lib1", old)] == ["delivered"]

    clock.advance(8 * DAY)
    runner.invoke(args=["refresh"])
    with app.app_context():
        delivered = outbox.list_deliveries("lib1", old)
    clock.advance(23 * DAY)
    pruned = runner.invoke(args=["prune"])

    assert delivered == []
    assert pruned.exit_code == 0, pruned.output
    assert "1 finished task" in pruned.output
    assert sorted(tracked(app)) == [running]
    # Activity is kept unless SMH_KEEP_ACTIVITY_DAYS says otherwise.
    assert [e.action for e in logged(app)] == ["track"]
    assert app.test_client().get(f"/libraries/lib1/tasks/{old}").status_code == 404


def test_activity_is_pruned_only_when_configured(make_app, clock):
    app = make_app(SMH_KEEP_ACTIVITY_DAYS=10)
    runner = app.test_cli_runner()
    runner.invoke(args=["track", "lib1", "5"])
    clock.advance(11 * DAY)
    runner.invoke(args=["track", "lib1", "6"])

    runner.invoke(args=["prune"])

    assert [e.message for e in logged(app)] == ["Now tracking 1 task: 6."]


def test_the_web_prunes_at_most_once_an_hour(make_app, clock):
    app = make_app(SMH_KEEP_FINISHED_DAYS=1)
    client = app.test_client()

    def finish_long_ago(task_id):
        with app.app_context():
            tasks.track_tasks("lib1", [task_id], None, clock())
        with database.get_engine(app).begin() as conn:
            conn.execute(
                update(tasks_table)
                .where(tasks_table.c.task_id == task_id)
                .values(state="done", finished_at=clock() - 2 * DAY)
            )

    finish_long_ago(5)
    client.get("/")
    first = sorted(tracked(app))
    finish_long_ago(6)
    client.get("/")
    within_the_hour = sorted(tracked(app))
    clock.advance(3601)
    client.get("/")

    assert first == []
    assert within_the_hour == [6]
    assert tracked(app) == {}


def test_a_library_tracks_at_most_its_cap(make_app, clock):
    app = make_app(SMH_MAX_TRACKED_PER_LIBRARY=3)
    client = app.test_client()
    token = csrf_of(client)
    first = client.post("/libraries/lib1/tasks", data={"task_ids": "1 2", "csrf_token": token})

    over = client.post("/libraries/lib1/tasks", data={"task_ids": "3 4", "csrf_token": token})
    cli = app.test_cli_runner().invoke(args=["track", "lib1", "3", "4"])
    again = client.post("/libraries/lib1/tasks", data={"task_ids": "2 3", "csrf_token": token})

    assert first.status_code == 303
    assert over.status_code == 400
    assert (
        "This library already tracks 2 tasks and takes at most 3: "
        "untrack finished tasks before tracking more." in shown(over)
    )
    assert cli.exit_code == 1
    assert "takes at most 3" in cli.output
    assert again.status_code == 303
    assert sorted(tracked(app)) == [1, 2, 3]


def test_each_user_runs_at_most_so_many_downloads_at_once(settings, request, clock):
    settings["SMH_MAX_EXPORTS_PER_USER"] = 1
    app, base = request.getfixturevalue("app"), request.getfixturevalue("live_server")
    with app.app_context():
        # Megabytes of CSV: more than a socket holds, so the download waits for its reader.
        tasks.track_tasks("lib1", range(1, 20_001), "a label to make the rows longer", clock())
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
    reader.sendall(b"GET /libraries/lib1/tasks.csv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    started = reader.recv(12)

    second = requests.get(f"{base}/libraries/lib1/tasks.json", timeout=30)
    elsewhere = app.test_client().get(
        "/libraries/lib1/tasks.json", environ_base={"REMOTE_ADDR": "10.0.0.8"}
    )
    reader.close()
    for _ in range(200):
        # The server notices the reader gone at its next write.
        after = requests.get(f"{base}/libraries/lib1/tasks.json", timeout=30)
        if after.status_code != 429:
            break
        time.sleep(0.05)

    assert started == b"HTTP/1.1 200"
    assert second.status_code == 429
    assert "You are already downloading 1 file; wait for it to finish." in html.unescape(
        second.text
    )
    assert int(second.headers["Retry-After"]) >= 1
    assert elsewhere.status_code == 200
    assert after.status_code == 200


def test_each_user_waits_on_the_api_at_most_so_many_times_at_once(make_app, sim, clock):
    app = make_app(SMH_MAX_API_WAITS_PER_USER=1)
    slow = sim.add_task("lib1")
    with app.app_context():
        # Tracked, never answered for: an API caller waits for the refresh that asks SMH.
        tasks.track_tasks("lib1", [slow], None, clock())
    sim.inject("latency", endpoint="task.query", seconds=2)
    waiting = threading.Thread(target=app.test_client().get, args=(f"/api/v1/task/lib1/{slow}",))
    waiting.start()
    for _ in range(500):
        if sim.calls["task.query"]:
            break
        time.sleep(0.01)

    second = app.test_client().get(f"/api/v1/task/lib1/{slow}")
    waiting.join()
    after = app.test_client().get(f"/api/v1/task/lib1/{slow}")

    assert second.status_code == 429
    assert second.get_json()["code"] == "TooManyRequests"
    assert "already waiting for 1 answer" in second.get_json()["message"]
    assert int(second.headers["Retry-After"]) >= 1
    assert after.status_code == 200


# 11. A webhook key never shows, even bare, even echoed back by the chat.


def test_a_webhook_key_echoed_by_the_chat_shows_nowhere(make_app, sim, clock, receiver, capsys):
    receiver.answer = {
        "errcode": 93000,
        "errmsg": f"invalid webhook url, key={WECOM_KEY} "
        f"(bare {WECOM_KEY}) " + "x" * 180 + WECOM_KEY,
    }
    app = make_app(
        SMH_WEBHOOK_URL=f"{receiver.url}/cgi-bin/webhook/send?key={WECOM_KEY}",
        SMH_WEBHOOK_FORMAT="wecom",
        SMH_DASHBOARD_URL="https://smh.example.com",
    )
    task_id = sim.add_task("lib1", run_seconds=5)
    runner = app.test_cli_runner()
    runner.invoke(args=["track", "lib1", str(task_id)])
    runner.invoke(args=["refresh"])  # seen running: its end is news
    clock.advance(10)

    result = runner.invoke(args=["refresh"])
    logging.getLogger("notify").warning("the chat said %s", WECOM_KEY)
    page = shown(app.test_client().get(f"/libraries/lib1/tasks/{task_id}"))

    with app.app_context():
        (delivery,) = outbox.list_deliveries("lib1", task_id)
    assert delivery.last_error.startswith("errcode 93000: invalid webhook url")
    assert "invalid webhook url" in page
    for seen in (delivery.last_error, page, result.output, capsys.readouterr().err):
        assert WECOM_KEY not in seen
        assert WECOM_KEY[:12] not in seen


# 12. Writers wait their turn: a busy moment slows a write, never fails it.


def test_writers_under_load_wait_instead_of_failing(app, clock):
    burners = [subprocess.Popen([sys.executable, "-c", BURNER, "90"]) for _ in range(2)]
    failures = []
    start = threading.Barrier(16)

    def work():
        with app.app_context():
            start.wait()
            for _ in range(100):
                try:
                    tasks.track_tasks("lib1", [1, 2, 3, 4, 5], None, clock())
                    tasks.untrack_tasks_undoably("lib1", [1, 2, 3, 4, 5], "storm", clock())
                    tasks.undo_untrack("lib1")
                    tasks.untrack_tasks("lib1", [1, 2, 3])
                except OperationalError as error:
                    failures.append(str(error).splitlines()[0])

    try:
        threads = [threading.Thread(target=work) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()

    assert failures == []
    assert set(tracked(app)) <= {1, 2, 3, 4, 5}


# 13. The API never hides an outage: stale answers say so, and an old outage is an error.


def test_the_api_marks_stale_answers_then_answers_smhs_error(make_app, sim, clock):
    token = sim.issue_token("lib1")
    app = make_app(SMH_LIBRARY_SECRET=None, SMH_ACCESS_TOKEN=token)
    client = app.test_client()
    task_id = sim.add_task("lib1", run_seconds=3600)
    app.test_cli_runner().invoke(args=["track", "lib1", str(task_id)])
    fresh = client.get(f"/api/v1/task/lib1/{task_id}")

    sim.revoke_token(token)
    clock.advance(10)
    stale = client.get(f"/api/v1/task/lib1/{task_id}")
    clock.advance(45)
    still = client.get(f"/api/v1/task/lib1/{task_id}")
    clock.advance(20)
    late = client.get(f"/api/v1/task/lib1/{task_id}")

    assert fresh.status_code == 200
    assert "X-SMH-Outage" not in fresh.headers
    assert stale.status_code == still.status_code == 200
    assert stale.get_json() == fresh.get_json()
    assert stale.headers["X-SMH-Outage"] == "InvalidAccessToken"
    assert int(stale.headers["X-SMH-Stale-Seconds"]) == 0
    assert int(still.headers["X-SMH-Stale-Seconds"]) == 45
    assert late.status_code == 403
    assert late.get_json()["code"] == "InvalidAccessToken"
    assert late.get_json()["message"].startswith("SMH failed")
