"""Starting a history clear from the library page and the CLI, safely, and following it."""

import re
import socket
import threading

import pytest
from markup import shown
from werkzeug.security import generate_password_hash

from smh_dashboard import registry
from smh_dashboard.smh.answers import HistorySettings
from smh_dashboard.storage import activity, listings

pytestmark = pytest.mark.backends

CLEAR = "/libraries/lib1/clear-history"
SETTINGS = "/libraries/lib1/history-settings"
DISABLE = "/libraries/lib1/history-settings/disable"


def tracked(app):
    with app.app_context():
        return {t.task_id: t for t in listings.list_tasks("lib1", None)}


def logged(app, requested=False):
    """Return the activity log, newest first; without the lines saying a clear was asked for
    (written before SMH is called) unless `requested`."""
    with app.app_context():
        entries = activity.list_activity("lib1", 0, 100)
    return [e for e in entries if requested or e.outcome != "requested"]


def csrf_of(client, path="/libraries/lib1", **kwargs):
    page = client.get(path, **kwargs).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def clear(client, confirm="lib1", **kwargs):
    token = csrf_of(client, **kwargs)
    return client.post(CLEAR, data={"csrf_token": token, "confirm": confirm}, **kwargs)


@pytest.fixture
def second_app(app, make_app):
    """Return another dashboard process on the same database (a second worker, or a restart)."""
    return make_app()


def test_the_page_shows_the_history_settings_and_when_they_were_read(client, sim):
    sim.add_library("lib1", "lib1-very-secret-key", history_enabled=True)

    page = shown(client.get("/libraries/lib1"))
    assert sim.calls["history.get"] == 0
    assert f'hx-get="{SETTINGS}" hx-trigger="load"' in page
    page = shown(client.get(SETTINGS))

    assert "History on" in page
    assert "keeps 10 versions" in page
    assert "for 30 days" in page
    assert "as SMH reported it <time" in page
    assert "SMH refuses to clear historical versions while file history is on." in page
    assert "Switch file history off" in page
    assert "SMH cannot undo it" in shown(client.get("/libraries/lib1"))


def test_settings_are_read_once_per_cache_window(client, sim, next_window):
    for _ in range(3):
        client.get(SETTINGS)
    # Within the window the page shows the reading itself, without asking for it.
    assert "History off" in shown(client.get("/libraries/lib1"))
    assert sim.calls["history.get"] == 1
    next_window()
    client.get(SETTINGS)
    assert sim.calls["history.get"] == 2


def test_a_settings_failure_is_a_message_not_an_error_page(client, sim):
    sim.inject("error", endpoint="history.get", status=503, code="ServerOverloaded")

    response = client.get(SETTINGS)

    assert response.status_code == 200
    assert "SMH's history settings could not be read" in shown(response)
    assert "ServerOverloaded" in shown(response)


def test_the_button_tracks_a_running_task_that_then_finishes(client, app, sim, clock, next_window):
    response = clear(client)

    assert response.status_code == 303
    assert sim.calls["history.clear"] == 1
    (task,) = tracked(app).values()
    assert task.label == "History clear started by no sign-in (127.0.0.1)"
    page = shown(client.get("/libraries/lib1"))
    assert f"SMH started clearing all historical versions: task {task.task_id}." in page
    row = re.search(rf'<tr id="task-{task.task_id}"[ >].*?</tr>', page, re.S).group(0)
    assert 'data-state="running"' in row
    assert "hx-get=" in page

    clock.advance(31)
    next_window()
    page = shown(client.get("/libraries/lib1"))
    row = re.search(rf'<tr id="task-{task.task_id}"[ >].*?</tr>', page, re.S).group(0)
    assert 'data-state="done"' in row
    entry, asked = logged(app, requested=True)
    assert (entry.action, entry.outcome, entry.task_id) == ("clear", "done", task.task_id)
    assert (asked.action, asked.outcome, asked.task_id) == ("clear", "requested", None)
    assert entry.who == asked.who == "no sign-in (127.0.0.1)"


def test_history_on_refuses_then_switch_off_then_clear(client, app, sim, clock):
    sim.add_library("lib1", "lib1-very-secret-key", history_enabled=True)

    refused = clear(client)
    assert refused.status_code == 409
    assert "file history is still on; switch it off first" in shown(refused)
    assert tracked(app) == {}

    unconfirmed = client.post(DISABLE, data={"csrf_token": csrf_of(client)})
    assert unconfirmed.status_code == 400
    assert "tick the box" in shown(unconfirmed)
    assert sim.calls["history.set"] == 0

    switched = client.post(DISABLE, data={"csrf_token": csrf_of(client), "confirm": "off"})
    assert switched.status_code == 303
    page = shown(client.get("/libraries/lib1"))
    assert "File history is now off; the other settings are as they were." in page
    fragment = shown(client.get(SETTINGS))
    assert "History off" in fragment
    assert 'class="history-off"' not in fragment

    # SMH refused, so no minute is held: the clear goes through at once.
    assert clear(client).status_code == 303
    assert len(tracked(app)) == 1
    assert [(e.action, e.outcome) for e in logged(app)] == [
        ("clear", "done"),
        ("disable-history", "done"),
        ("clear", "refused"),
    ]


def test_switching_off_keeps_the_other_settings(client, app, sim):
    sim.add_library("lib1", "lib1-very-secret-key", history_enabled=True)
    custom = HistorySettings(enabled=True, count=7, expire_days=9, merge_interval=60)
    with app.app_context():
        registry.client_for("lib1").set_history_settings(custom)

    client.post(DISABLE, data={"csrf_token": csrf_of(client), "confirm": "off"})

    with app.app_context():
        smh_client = registry.client_for("lib1")
        assert smh_client.get_history_settings() == HistorySettings(enabled=False)
        smh_client.set_history_settings(HistorySettings(enabled=True))
        assert smh_client.get_history_settings() == custom


@pytest.mark.parametrize(
    ("confirm", "says"),
    [
        ("", "type the library id lib1 to confirm"),
        ("lib2", "“lib2” is not this library's id (lib1)"),
        ("LIB1", "“LIB1” is not this library's id (lib1)"),
    ],
)
def test_a_wrong_or_empty_confirmation_changes_nothing(client, app, sim, confirm, says):
    response = clear(client, confirm)

    assert response.status_code == 400
    assert says in shown(response)
    assert sim.calls["history.clear"] == 0
    assert tracked(app) == {}


def test_one_clear_a_minute_across_two_processes_sharing_a_database(
    client, app, second_app, sim, clock
):
    other = second_app.test_client()
    assert clear(client).status_code == 303

    clock.advance(20)
    refused = clear(other)

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "40"
    assert "SMH allows one a minute" in shown(refused)
    assert sim.calls["history.clear"] == 1
    # The log, kept in the database, is the same in both processes.
    assert [(e.outcome, e.who) for e in logged(second_app)] == [
        ("refused", "no sign-in (127.0.0.1)"),
        ("done", "no sign-in (127.0.0.1)"),
    ]

    clock.advance(41)
    assert clear(other).status_code == 303
    assert sim.calls["history.clear"] == 2
    assert len(tracked(app)) == 2


def test_two_quick_submits_start_one_clear(app, sim):
    clients = [app.test_client() for _ in range(4)]
    tokens = [csrf_of(c) for c in clients]
    barrier = threading.Barrier(len(clients))
    statuses = []

    def submit(c, token):
        barrier.wait()
        statuses.append(c.post(CLEAR, data={"csrf_token": token, "confirm": "lib1"}).status_code)

    threads = [
        threading.Thread(target=submit, args=pair) for pair in zip(clients, tokens, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(statuses) == [303, 429, 429, 429]
    assert sim.calls["history.clear"] == 1
    assert len(tracked(app)) == 1


@pytest.mark.parametrize(
    ("method", "path", "data", "headers", "status"),
    [
        ("get", CLEAR, None, {}, 405),
        ("get", DISABLE, None, {}, 405),
        ("post", CLEAR, {"confirm": "lib1"}, {}, 400),
        ("post", DISABLE, {"confirm": "off"}, {}, 400),
        ("post", CLEAR, {"confirm": "lib1", "csrf": True}, {"Origin": "https://evil.example"}, 403),
    ],
)
def test_a_get_or_a_forged_post_changes_nothing(
    client, app, sim, method, path, data, headers, status
):
    sim.add_library("lib1", "lib1-very-secret-key", history_enabled=True)
    if data and data.pop("csrf", False):
        data["csrf_token"] = csrf_of(client)
    response = getattr(client, method)(path, data=data, headers=headers)

    assert response.status_code == status
    assert sim.calls["history.clear"] == 0
    assert sim.calls["history.set"] == 0
    assert tracked(app) == {}
    assert logged(app) == []


@pytest.mark.parametrize(
    ("status", "code", "retry_after", "answer", "says"),
    [
        (403, "NoPermission", None, 409, "the library's token is not an admin token"),
        (404, "LibraryNotFound", None, 409, "SMH does not know this library"),
        (403, "LibraryServiceExpired", None, 409, "the library's SMH service has expired"),
        (429, "RateLimitExceeded", 42, 429, "it allows one a minute"),
        (500, "InternalServerError", None, 502, "SMH failed to start the clear"),
        (503, "ServerOverloaded", None, 502, "SMH failed to start the clear"),
    ],
)
def test_each_smh_error_is_a_message_and_a_log_entry_and_nothing_tracked(
    client, app, sim, status, code, retry_after, answer, says
):
    sim.inject("error", endpoint="history.clear", status=status, code=code, retry_after=retry_after)

    response = clear(client)

    assert response.status_code == answer
    text = shown(response)
    assert says in text
    assert f"HTTP {status} · {code} · request id " in text
    assert tracked(app) == {}
    (entry,) = logged(app)
    assert (entry.outcome, entry.smh_status, entry.smh_code) == ("refused", status, code)
    assert re.fullmatch("[0-9a-f]{32}", entry.request_id)
    if retry_after:
        assert response.headers["Retry-After"] == "42"


def test_a_rejected_token_is_renewed_once_then_reported(client, app, sim):
    sim.inject("error", endpoint="history.clear", times=2, status=403, code="InvalidAccessToken")

    response = clear(client)

    assert response.status_code == 409
    assert "SMH rejected the library's access token" in shown(response)
    assert sim.calls["history.clear"] == 2
    assert tracked(app) == {}


def test_a_timeout_says_the_clear_may_have_started_and_is_not_retried(make_app, sim):
    # Short, so that the 1.5 s fault times out; only this test waits on SMH that little.
    app = make_app(SMH_TIMEOUT=0.5)
    client = app.test_client()
    sim.inject("latency", endpoint="history.clear", seconds=1.5)

    response = clear(client)

    assert response.status_code == 504
    text = shown(response)
    assert "It may have started a clear whose task id the dashboard never learnt" in text
    assert sim.calls["history.clear"] == 1
    assert tracked(app) == {}
    (entry,) = logged(app)
    assert (entry.outcome, entry.smh_code) == ("unknown", "Timeout")
    # The minute is held: a second click does not ask SMH again.
    assert clear(client).status_code == 429
    assert sim.calls["history.clear"] == 1


def test_a_failed_clear_keeps_the_minute_and_a_second_click_does_not_reach_smh(
    client, app, sim, clock
):
    sim.inject("error", endpoint="history.clear", status=503, code="ServerOverloaded")

    failed = clear(client)
    clock.advance(30)
    again = clear(client)

    assert failed.status_code == 502
    assert "SMH failed to start the clear" in shown(failed)
    assert again.status_code == 429
    assert again.headers["Retry-After"] == "30"
    assert (
        "Not started: a clear of this library was asked for 2027-01-15 08:00:00 UTC "
        "by no sign-in (127.0.0.1), and SMH allows one a minute. "
        "Try again after 2027-01-15 08:01:00 UTC."
    ) in shown(again)
    assert sim.calls["history.clear"] == 1
    assert tracked(app) == {}

    clock.advance(31)
    assert clear(client).status_code == 303
    assert sim.calls["history.clear"] == 2


def test_smh_asking_for_a_longer_wait_moves_the_guard_to_its_retry_after(client, app, sim, clock):
    sim.inject(
        "error", endpoint="history.clear", status=429, code="RateLimitExceeded", retry_after=150
    )

    refused = clear(client)
    clock.advance(90)
    early = clear(client)

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "150"
    assert "Try again after 2027-01-15 08:02:30 UTC." in shown(refused)
    # Past the dashboard's own minute, but not past SMH's wait: still refused, unasked, and
    # said as SMH's wait (no one asked for a clear at the moved guard's time).
    assert early.status_code == 429
    assert early.headers["Retry-After"] == "60"
    assert (
        "Not started: SMH asked for a wait before this library's next clear. "
        "Try again after 2027-01-15 08:02:30 UTC."
    ) in shown(early)
    assert sim.calls["history.clear"] == 1

    clock.advance(61)
    assert clear(client).status_code == 303
    assert sim.calls["history.clear"] == 2
    assert [e.outcome for e in logged(app)] == ["done", "refused", "refused"]


def closed_port():
    """Return a loopback port that nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("cause", ["refused", "timeout"])
def test_an_unanswered_clear_is_said_not_sent_again_and_holds_the_minute(
    make_app, sim, clock, cause
):
    if cause == "refused":
        app = make_app(SMH_BASE_URL=f"http://127.0.0.1:{closed_port()}", SMH_RETRIES=2)
    else:
        # Retries configured, as in production: a clear is still sent once. The short timeout
        # makes the 1.5 s fault time out.
        app = make_app(SMH_TIMEOUT=0.5, SMH_RETRIES=2)
        sim.inject("latency", endpoint="history.clear", seconds=1.5)
    client = app.test_client()

    response = clear(client)
    clock.advance(30)
    again = clear(client)

    assert response.status_code == 504
    text = shown(response)
    assert "SMH did not answer the clear" in text
    assert "the dashboard has not asked again" in text
    assert again.status_code == 429
    assert "SMH allows one a minute" in shown(again)
    assert sim.calls["history.clear"] == (0 if cause == "refused" else 1)
    assert tracked(app) == {}
    assert [(e.outcome, e.smh_code) for e in logged(app)] == [
        ("refused", None),
        ("unknown", "Unreachable" if cause == "refused" else "Timeout"),
    ]


def test_switching_off_history_already_off_says_so_and_changes_nothing(client, app, sim):
    switched = client.post(DISABLE, data={"csrf_token": csrf_of(client), "confirm": "off"})

    assert switched.status_code == 303
    assert "File history was already off." in shown(client.get("/libraries/lib1"))
    assert sim.calls["history.set"] == 0
    (entry,) = logged(app)
    assert (entry.action, entry.outcome) == ("disable-history", "done")


@pytest.mark.parametrize("endpoint", ["history.get", "history.set"])
def test_a_failed_switch_off_says_so_and_leaves_history_on(client, app, sim, endpoint):
    sim.add_library("lib1", "lib1-very-secret-key", history_enabled=True)
    sim.inject("error", endpoint=endpoint, status=503, code="ServerOverloaded")

    response = client.post(DISABLE, data={"csrf_token": csrf_of(client), "confirm": "off"})

    assert response.status_code == 502
    text = shown(response)
    assert "File history was not switched off" in text
    assert "HTTP 503 · ServerOverloaded" in text
    assert "File history is now off" not in text
    assert "History on" in shown(client.get(SETTINGS))
    assert sim.calls["history.set"] == (1 if endpoint == "history.set" else 0)
    (entry,) = logged(app)
    assert (entry.action, entry.outcome, entry.smh_status) == ("disable-history", "refused", 503)


def test_the_activity_page_lists_older_entries(client, app, clock):
    with app.app_context():
        for n in range(activity.PER_PAGE + 5):
            activity.record_activity(
                "lib1", "ana", activity.Action.CLEAR, activity.Outcome.REFUSED, f"entry {n}", n
            )
    first = shown(client.get("/libraries/lib1/activity"))
    second = shown(client.get("/libraries/lib1/activity?page=2"))
    library_page = shown(client.get("/libraries/lib1"))

    assert "entry 54" in first and "entry 5<" in first and "entry 4<" not in first
    assert "entry 4<" in second and "Page 2 of 2" in second
    assert "entry 54" in library_page and "entry 44<" not in library_page
    assert client.get("/libraries/lib1/activity?page=3").status_code == 404


def test_the_cli_asks_for_the_id_again_then_tracks_and_logs(runner, app, sim):
    wrong = runner.invoke(args=["clear-history", "lib1"], input="lib2\n")
    assert wrong.exit_code == 1
    assert "nothing was cleared" in wrong.output
    assert sim.calls["history.clear"] == 0

    done = runner.invoke(args=["clear-history", "lib1"], input="lib1\n")
    assert done.exit_code == 0, done.output
    (task_id,) = tracked(app)
    assert f"Tracking task {task_id} in lib1." in done.output
    entry, mistyped = logged(app)
    assert (mistyped.outcome, entry.outcome) == ("refused", "done")
    assert entry.who.startswith("command line (")

    again = runner.invoke(args=["clear-history", "lib1", "--yes"])
    assert again.exit_code == 1
    assert "SMH allows one a minute" in again.output
    assert sim.calls["history.clear"] == 1


USERS = """
[[user]]
name = "ana"
password_hash = "{ana}"
role = "operator"

[[user]]
name = "vic"
password_hash = "{vic}"
role = "viewer"
"""


@pytest.fixture
def signed_in(settings, tmp_path):
    """Turn sign-in on with an operator, ana, and a viewer, vic; return their credentials."""
    hashes = {
        name: generate_password_hash(f"{name}-pw", "pbkdf2:sha256:1000") for name in ["ana", "vic"]
    }
    path = tmp_path / "users.toml"
    path.write_text(USERS.format(**hashes))
    settings["SMH_USERS_FILE"] = str(path)
    return {name: {"auth": (name, f"{name}-pw")} for name in hashes}


def test_an_operator_is_named_and_a_viewer_sees_no_forms(signed_in, app, sim):
    client = app.test_client()
    viewer_page = shown(client.get("/libraries/lib1", **signed_in["vic"]))
    assert "History off" in shown(client.get(SETTINGS, **signed_in["vic"]))
    assert "Clear all historical versions" not in viewer_page
    # The token of the operator's page, as a viewer who saw it over a shoulder would send it.
    token = csrf_of(client, **signed_in["ana"])
    refused = client.post(CLEAR, data={"csrf_token": token, "confirm": "lib1"}, **signed_in["vic"])
    assert refused.status_code == 403
    assert sim.calls["history.clear"] == 0

    assert clear(client, **signed_in["ana"]).status_code == 303

    (task,) = tracked(app).values()
    assert task.label == "History clear started by ana"
    assert [e.who for e in logged(app)] == ["ana"]
