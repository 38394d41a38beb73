"""Bounds: concurrent writes, request sizes, what errors echo back, and the URLs accepted."""

import html
import io
import re
import sqlite3
import threading
from collections import Counter
from urllib.parse import quote

import pytest
import requests
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from smh_dashboard.domain import inputs
from smh_dashboard.storage import listings, tasks

IDS = (101, 102, 103)
TEN_MB = 10 * 1024 * 1024


def track(app, clock, *task_ids, label=None):
    with app.app_context():
        return tasks.track_tasks("lib1", task_ids, label, clock())


def longest_run(text, char):
    return max((len(run) for run in re.findall(f"{re.escape(char)}+", text)), default=0)


def tracked(app):
    with app.app_context():
        return sorted(t.task_id for t in listings.list_tasks("lib1", None))


@pytest.fixture
def foreign_host(settings):
    """Let evil.example in, so that what a redirect takes from the Host header shows."""
    settings["SMH_ALLOWED_HOSTS"] = "localhost,127.0.0.1,evil.example"


def test_concurrent_track_and_untrack_posts_never_fail(app, live_server):
    # One browser session, many tabs: the cookie and CSRF token come from a rendered page.
    first = requests.get(f"{live_server}/libraries/lib1", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', first.text).group(1)
    cookies = {"session": first.cookies["session"]}
    answers = []
    start = threading.Barrier(16)

    def post(path, data):
        response = requests.post(
            f"{live_server}{path}",
            data={**data, "csrf_token": token},
            cookies=cookies,
            allow_redirects=False,
            timeout=60,
        )
        answers.append(response)

    def tab(worker):
        start.wait()
        for n in range(25):
            if (worker + n) % 2:
                post("/libraries/lib1/tasks", {"task_ids": "101 102 103", "label": "storm"})
            else:
                post(f"/libraries/lib1/tasks/{IDS[n % 3]}/untrack", {})

    threads = [threading.Thread(target=tab, args=(worker,)) for worker in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == 400
    assert [r.status_code for r in answers if r.status_code >= 500 and r.status_code != 503] == []
    for response in answers:
        if response.status_code == 303:
            assert response.headers["Location"] == "/libraries/lib1"
        else:
            assert 'role="alert"' in response.text
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) >= 1
    with app.app_context():
        rows = listings.list_tasks("lib1", None)
    assert {t.task_id for t in rows} <= set(IDS)
    assert {(t.label, t.state) for t in rows} <= {("storm", "pending")}


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "row by row"])
def test_concurrent_track_and_untrack_count_each_change_once(app, engine, clock, returning):
    # Without RETURNING (SQLite before 3.35), the store counts inserted rows one at a time.
    engine.dialect.insert_executemany_returning = returning
    reported_new, removed, failures = Counter(), Counter(), []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def work(worker):
        with app.app_context():
            start.wait()
            for n in range(50):
                try:
                    if (worker + n) % 2:
                        new = tasks.track_tasks("lib1", IDS, "storm", clock())
                        with lock:
                            reported_new.update(new)
                    else:
                        task_id = IDS[n % 3]
                        gone = tasks.untrack_tasks("lib1", [task_id])
                        with lock:
                            removed[task_id] += gone
                except Exception as error:
                    failures.append(repr(error))

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    # Each id was reported new once more than it was removed if it is tracked now, else as often.
    now_tracked = set(tracked(app))
    for task_id in IDS:
        assert reported_new[task_id] - removed[task_id] == (task_id in now_tracked)


def test_a_locked_database_is_a_503_that_asks_to_retry(make_app, settings, caplog):
    app = make_app(SMH_DATABASE_BUSY_SECONDS=0.5)
    client = app.test_client()
    page = client.get("/libraries/lib1").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    holder = sqlite3.connect(settings["DATABASE_URL"].removeprefix("sqlite:///"))
    holder.isolation_level = None
    # Another process holds the write lock past the dashboard's busy timeout.
    holder.execute("BEGIN IMMEDIATE")
    try:
        response = client.post("/libraries/lib1/tasks", data={"task_ids": "5", "csrf_token": csrf})
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    page = response.get_data(as_text=True)
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert "The database (SQLite) is busy or out of reach; try again" in page
    assert int(response.headers["Retry-After"]) >= 1
    assert "INSERT" not in page
    assert "database is locked" in caplog.text
    retried = client.post("/libraries/lib1/tasks", data={"task_ids": "5", "csrf_token": csrf})
    assert retried.status_code == 303
    assert tracked(app) == [5]


@pytest.mark.parametrize(
    "trouble",
    [
        OperationalError("SELECT …", {}, sqlite3.OperationalError("database is locked")),
        PoolTimeout("QueuePool limit of size 5 overflow 10 reached, connection timed out"),
    ],
    ids=["locked", "no free connection"],
)
def test_database_trouble_on_the_api_is_an_smh_style_503(client, monkeypatch, trouble):
    def busy(*args, **kwargs):
        raise trouble

    monkeypatch.setattr(tasks, "known_answers", busy)

    response = client.get("/api/v1/task/lib1/5")

    assert response.status_code == 503
    assert response.get_json()["code"] == "ServiceUnavailable"
    assert response.get_json()["message"].startswith("The database (SQLite) is busy or out of")
    assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(
    ("form", "multipart"),
    [
        # Built when the test runs, so that collecting the tests does not hold 50 MB.
        (lambda: {"task_ids": "5 " * 5_000_000}, False),
        (lambda: {"task_ids": "5", "label": "x" * TEN_MB}, False),
        (lambda: {"task_ids": "5", "junk": "j" * TEN_MB}, False),
        (
            lambda: {"task_ids": "5", "upload": FileStorage(io.BytesIO(b"j" * TEN_MB), "j.bin")},
            True,
        ),
        (lambda: {"task_ids": "5", "junk": "j" * 100_000}, True),
        (lambda: {"task_ids": "5", **{f"junk{n}": "j" for n in range(60)}}, True),
    ],
    ids=["repeated id", "label", "junk field", "file", "multipart field", "many fields"],
)
def test_oversized_forms_are_refused_with_a_short_page(client, app, csrf, form, multipart):
    fields = {**form(), "csrf_token": csrf}
    if multipart:
        # Encoded in memory: the test client would spool a large one to a file it never closes.
        boundary, body = encode_multipart(fields)
        response = client.post(
            "/libraries/lib1/tasks",
            data=body,
            content_type=f'multipart/form-data; boundary="{boundary}"',
        )
    else:
        response = client.post("/libraries/lib1/tasks", data=fields)

    page = response.get_data(as_text=True)
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert "That form is too large" in page
    assert len(page) < 4096
    assert tracked(app) == []


def test_a_large_but_reasonable_form_is_still_taken(client, app, csrf):
    response = client.post(
        "/libraries/lib1/tasks", data={"task_ids": "5 " * 100_000, "csrf_token": csrf}
    )
    assert response.status_code == 303
    assert tracked(app) == [5]


@pytest.mark.parametrize(
    ("environ", "size", "status"),
    [({"MAX_CONTENT_LENGTH": "1048576"}, 600_000, 303), ({}, 600_000, 413)],
    ids=["raised to 1 MiB", "default"],
)
def test_the_body_cap_follows_the_setting(make_app, monkeypatch, environ, size, status):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    app = make_app()
    client = app.test_client()
    page = client.get("/libraries/lib1").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    response = client.post(
        "/libraries/lib1/tasks", data={"task_ids": "7 " * (size // 2), "csrf_token": token}
    )

    assert response.status_code == status


def test_a_body_cap_that_is_not_a_number_stops_start_up(make_app, monkeypatch):
    monkeypatch.setenv("MAX_CONTENT_LENGTH", "lots")
    with pytest.raises(SystemExit, match="MAX_CONTENT_LENGTH must be a whole number"):
        make_app()


@pytest.mark.parametrize(
    ("task_ids", "label", "message"),
    [
        ("abc " * 50_000, "", "“abc” is not a task id"),
        ("9" * 200_000, "", "is not a task id"),
        ("5", "x" * 200_000, "Keep the label under 200 characters."),
    ],
    ids=["many bad tokens", "one huge token", "huge label"],
)
def test_a_refused_form_shows_back_only_an_excerpt(client, csrf, task_ids, label, message):
    response = client.post(
        "/libraries/lib1/tasks", data={"task_ids": task_ids, "label": label, "csrf_token": csrf}
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in page
    shown_ids = html.unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S).group(1))
    shown_label = html.unescape(re.search(r'<input id="label"[^>]*value="([^"]*)"', page).group(1))
    assert task_ids.startswith(shown_ids)
    assert len(shown_ids) <= inputs.MAX_SHOWN_TASK_IDS
    assert label.startswith(shown_label)
    assert len(shown_label) <= inputs.MAX_LABEL_LENGTH
    assert len(page) < 16_384


def test_a_refused_form_of_ordinary_size_is_shown_back_whole(client, csrf):
    typed = " ".join(str(i) for i in range(9_000_000_000_000_000_000, 9_000_000_000_000_000_101))
    response = client.post(
        "/libraries/lib1/tasks", data={"task_ids": typed, "label": "Spring", "csrf_token": csrf}
    )
    page = response.get_data(as_text=True)
    assert "That is 101 task ids" in page
    assert f">{typed}</textarea>" in page
    assert 'value="Spring"' in page


@pytest.mark.parametrize(
    ("path", "char"),
    [("/libraries/" + "a" * 5000, "a"), ("/libraries/lib1?state=" + "s" * 5000, "s")],
    ids=["library id", "state filter"],
)
def test_error_pages_quote_only_an_excerpt_of_the_url(client, path, char):
    response = client.get(path)
    assert 400 <= response.status_code < 500
    assert 'role="alert"' in response.get_data(as_text=True)
    assert longest_run(response.get_data(as_text=True), char) < 300


@pytest.mark.parametrize(
    "digits",
    ["\u0667\u0660\u0661", "\uff17\uff10\uff11", "\U0001d7d5\U0001d7ce\U0001d7cf"],
    ids=["arabic-indic", "full-width", "mathematical"],
)
def test_task_urls_take_ascii_digits_only(client, app, clock, csrf, digits):
    track(app, clock, 701)
    base = f"/libraries/lib1/tasks/{quote(digits)}"

    assert client.get(base).status_code == 404
    assert client.get(f"{base}/detail").status_code == 404
    assert client.post(f"{base}/untrack", data={"csrf_token": csrf}).status_code == 404
    assert client.post(f"{base}/recheck", data={"csrf_token": csrf}).status_code == 404
    assert "Not found" in client.get(base).get_data(as_text=True)
    assert client.get("/libraries/lib1/tasks/701").status_code == 200
    assert tracked(app) == [701]


@pytest.mark.parametrize(
    "task_id", ["1", "701", str(inputs.MAX_TASK_ID)], ids=["one", "701", "largest"]
)
def test_task_urls_take_every_valid_id(client, app, clock, task_id):
    track(app, clock, int(task_id))
    assert client.get(f"/libraries/lib1/tasks/{task_id}").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/libraries//lib1",
        "//libraries/lib1",
        "/libraries/lib1//rows",
        "/libraries/lib1/tasks//5",
        "/static//dashboard.css",
        "/libraries/lib1/",
    ],
)
def test_redirects_never_take_their_host_from_the_request(foreign_host, client, app, clock, path):
    track(app, clock, 5)
    response = client.get(path, headers={"Host": "evil.example"})
    assert "evil.example" not in response.headers.get("Location", "")


@pytest.mark.parametrize(
    ("path", "data", "location"),
    [
        ("/libraries/lib1/tasks", {"task_ids": "6"}, "/libraries/lib1"),
        ("/libraries/lib1/tasks/5/untrack", {}, "/libraries/lib1"),
        ("/libraries/lib1/tasks/5/recheck", {}, "/libraries/lib1"),
        ("/libraries/lib1/tasks/5/recheck", {"back": "task"}, "/libraries/lib1/tasks/5"),
    ],
    ids=["track", "untrack", "recheck", "recheck from task page"],
)
def test_redirects_after_a_form_are_paths(
    foreign_host, app, clock, live_server, path, data, location
):
    track(app, clock, 5)
    first = requests.get(f"{live_server}/libraries/lib1", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', first.text).group(1)

    response = requests.post(
        f"{live_server}{path}",
        data={**data, "csrf_token": token},
        cookies={"session": first.cookies["session"]},
        headers={"Host": "evil.example"},
        allow_redirects=False,
        timeout=30,
    )

    assert response.status_code == 303
    assert response.headers["Location"] == location
