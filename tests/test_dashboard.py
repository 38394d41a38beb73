import re
import threading

import pytest

from app import create_app
from smh_dashboard.storage import listings, schema, tasks

pytestmark = pytest.mark.backends


def track(app, clock, *task_ids, label=None, library_id="lib1"):
    with app.app_context():
        return tasks.track_tasks(library_id, task_ids, label, clock())


def stored(app, task_id, library_id="lib1"):
    with app.app_context():
        return tasks.get_task(library_id, task_id)


def row(html, task_id):
    match = re.search(rf'<tr id="task-{task_id}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, f"no row for task {task_id}"
    return match.group(1)


def badge_text(html, task_id):
    return re.search(r'<span class="badge[^"]*"[^>]*>([^<]*)</span>', row(html, task_id)).group(1)


def is_polling(html):
    return 'hx-trigger="every ' in html


def counts(html, library_id="lib1"):
    cells = re.search(rf'<tr id="library-{library_id}">(.*?)</tr>', html, re.S).group(1)
    return [int(n) for n in re.findall(r'<td class="num"[^>]*>(\d+)</td>', cells)]


def test_index_lists_each_library_with_counts_and_link(client, app, sim, clock):
    running = sim.add_task("lib1", run_seconds=600)
    done = sim.add_task("lib1", run_seconds=1)
    clock.advance(5)
    track(app, clock, running, done)

    page = client.get("/").get_data(as_text=True)

    assert 'href="/libraries/lib1">Marketing assets</a>' in page
    assert "<code>lib1</code>" in page
    assert counts(page) == [1, 0, 1, 0, 0, 2]  # running, not found yet, done, failed, unknown, all
    assert "<title>(1 running) SMH media libraries</title>" in page


def test_index_refreshes_itself_until_every_library_is_idle(client, app, sim, clock, next_window):
    task_id = sim.add_task("lib1", run_seconds=30)
    track(app, clock, task_id)
    page = client.get("/").get_data(as_text=True)
    assert 'hx-get="/summary?v=' in page
    assert is_polling(page)

    clock.advance(31)
    next_window()
    fragment = client.get("/summary").get_data(as_text=True)

    assert counts(fragment) == [0, 0, 1, 0, 0, 1]
    assert not is_polling(fragment)
    assert "<title>✓ SMH media libraries</title>" in fragment


def test_index_without_libraries_explains_how_to_configure(settings, clock, monkeypatch):
    settings.pop("SMH_LIBRARY_ID")
    settings.pop("SMH_LIBRARY_SECRET")
    app = create_app(settings)
    page = app.test_client().get("/").get_data(as_text=True)
    assert "No media library is configured" in page
    assert "SMH_LIBRARY_ID" in page
    app.extensions["store"].dispose()


@pytest.mark.parametrize(
    ("outcome", "badge"),
    [
        ("done", "Done"),
        ("empty", "Done, no result"),
        ("failed", "Failed"),
        (418, "Unknown status 418"),
    ],
)
def test_each_state_has_its_badge(client, app, sim, clock, next_window, outcome, badge):
    task_id = sim.add_task("lib1", run_seconds=30, outcome=outcome)
    track(app, clock, task_id)

    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert badge_text(page, task_id) == "Running"

    clock.advance(31)
    next_window()
    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert badge_text(page, task_id) == badge


def test_library_page_shows_tasks_newest_first_with_their_details(client, app, sim, clock):
    first = sim.add_task("lib1", run_seconds=10, delete_count=1234)
    track(app, clock, first, label="Spring cleanup")
    clock.advance(60)
    second = sim.add_task("lib1", run_seconds=600)
    track(app, clock, second)

    response = client.get("/libraries/lib1")
    page = response.get_data(as_text=True)

    assert response.status_code == 200
    assert page.index(f'id="task-{second}"') < page.index(f'id="task-{first}"')
    done_row = row(page, first)
    assert "Spring cleanup" in done_row
    assert "1,234" in done_row
    assert "1 min ago" in done_row  # added
    assert 'datetime="2027-01-15T08:00:00Z"' in done_row
    assert 'title="2027-01-15 08:00:00 UTC"' in done_row
    assert "<title>(1 running) Marketing assets</title>" in page


def test_page_renders_completely_without_javascript(client, app, sim, clock):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id)
    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert badge_text(page, task_id) == "Running"
    assert '<form class="track" method="post"' in page
    assert f'action="/libraries/lib1/tasks/{task_id}/untrack"' in page
    assert "<script>" not in page  # only external scripts: the CSP forbids inline ones


def test_polling_stops_once_everything_has_ended(client, app, sim, clock, next_window):
    task_id = sim.add_task("lib1", run_seconds=30)
    track(app, clock, task_id)
    fragment = client.get("/libraries/lib1/rows").get_data(as_text=True)
    assert is_polling(fragment)
    assert 'hx-get="/libraries/lib1/rows?v=' in fragment
    assert 'hx-sync="this:drop"' in fragment
    assert "<title>(1 running) Marketing assets</title>" in fragment

    clock.advance(31)
    next_window()
    fragment = client.get("/libraries/lib1/rows").get_data(as_text=True)

    assert badge_text(fragment, task_id) == "Done"
    assert not is_polling(fragment)
    assert "this page no longer refreshes itself" in fragment
    assert "<title>✓ Marketing assets</title>" in fragment


def test_poll_interval_follows_the_setting(settings, sim, clock):
    settings["SMH_POLL_SECONDS"] = 7
    app = create_app(settings)
    track(app, clock, sim.add_task("lib1"))
    fragment = app.test_client().get("/libraries/lib1/rows").get_data(as_text=True)
    assert 'hx-trigger="every 7.0s, ' in fragment
    app.extensions["store"].dispose()


def test_a_finished_task_is_never_asked_about_again(client, app, sim, clock, next_window):
    done = sim.add_task("lib1", run_seconds=5)
    running = sim.add_task("lib1", run_seconds=600)
    track(app, clock, done, running)
    clock.advance(6)
    client.get("/libraries/lib1")
    sim.reset_calls()

    for _ in range(3):
        next_window()
        client.get("/libraries/lib1/rows")

    assert sim.task_queries == [[running]] * 3
    assert stored(app, done).state == "done"


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


@pytest.mark.parametrize(
    ("state", "shown", "hidden"),
    [("running", "running", "done"), ("done", "done", "running"), ("failed", None, "running")],
)
def test_state_filter_stays_in_the_url(client, app, sim, clock, state, shown, hidden):
    tasks = {
        "running": sim.add_task("lib1", run_seconds=600),
        "done": sim.add_task("lib1", run_seconds=5),
    }
    track(app, clock, *tasks.values())
    clock.advance(6)

    page = client.get(f"/libraries/lib1?state={state}").get_data(as_text=True)

    if shown:
        assert f'id="task-{tasks[shown]}"' in page
    else:
        assert f"No tasks in “{state.capitalize()}”." in page
    assert f'id="task-{tasks[hidden]}"' not in page
    assert f'href="/libraries/lib1?state={state}"\n        aria-current="page"' in page
    assert f"/libraries/lib1/rows?state={state}" in page


def test_unknown_state_filter_is_a_clear_400(client):
    response = client.get("/libraries/lib1?state=sleeping")
    assert response.status_code == 400
    assert "Unknown state filter “sleeping”" in response.get_data(as_text=True)


def test_long_lists_are_paginated(client, app, clock):
    track(app, clock, *range(1, 121))
    with app.app_context(), app.extensions["store"].begin() as conn:
        conn.execute(schema.tasks.update().values(state="done", finished_at=clock()))

    first = client.get("/libraries/lib1").get_data(as_text=True)
    last = client.get("/libraries/lib1?page=3").get_data(as_text=True)

    assert first.count('<tr id="task-') == 50
    assert "Page 1 of 3" in first
    assert 'href="/libraries/lib1?page=2"' in first
    assert last.count('<tr id="task-') == 20
    assert client.get("/libraries/lib1?page=4").status_code == 404
    assert client.get("/libraries/lib1?page=zero").status_code == 400


def test_tracking_from_the_form(client, app, sim, clock, csrf):
    response = client.post(
        "/libraries/lib1/tasks",
        data={"task_ids": "1000, 1001\n1002 1001", "label": " Cleanup ", "csrf_token": csrf},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/libraries/lib1"

    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert "Now tracking 3 tasks." in page
    assert [stored(app, i).label for i in (1000, 1001, 1002)] == ["Cleanup"] * 3

    client.post("/libraries/lib1/tasks", data={"task_ids": "1000 1003", "csrf_token": csrf})
    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert "Now tracking 1 task. 1 was already tracked." in page
    assert stored(app, 1000).label == "Cleanup"


@pytest.mark.parametrize(
    ("task_ids", "label", "message"),
    [
        ("", "", "Enter at least one task id."),
        ("  \n ", "", "Enter at least one task id."),
        ("12, abc", "", "“abc” is not a task id"),
        ("-5", "", "“-5” is not a task id"),
        ("0", "", "“0” is not a task id"),
        ("1.5", "", "“1.5” is not a task id"),
        ("9223372036854775808", "", "“9223372036854775808” is not a task id"),
        ("9" * 5000, "", "is not a task id"),
        ("\uff19", "", "“\uff19” is not a task id"),  # a full-width digit nine
        (" ".join(str(i) for i in range(1, 102)), "", "That is 101 task ids; give at most 100"),
        ("5", "x" * 201, "Keep the label under 200 characters."),
    ],
)
def test_bad_form_input_is_explained_and_nothing_is_stored(
    client, app, clock, csrf, task_ids, label, message
):
    track(app, clock, 77, label="keep me")

    response = client.post(
        "/libraries/lib1/tasks", data={"task_ids": task_ids, "label": label, "csrf_token": csrf}
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in page
    assert 'role="alert"' in page
    with app.app_context():
        assert [t.task_id for t in listings.list_tasks("lib1", None)] == [77]
    assert stored(app, 77).label == "keep me"


def test_a_hundred_ids_with_duplicates_are_accepted(client, app, csrf):
    ids = " ".join(str(i) for i in list(range(1, 101)) * 2)
    response = client.post("/libraries/lib1/tasks", data={"task_ids": ids, "csrf_token": csrf})
    assert response.status_code == 303
    with app.app_context():
        assert len(listings.list_tasks("lib1", None)) == 100


def test_forms_without_csrf_token_are_refused(client, app, clock):
    track(app, clock, 5)
    refused = [
        client.post("/libraries/lib1/tasks", data={"task_ids": "6"}),
        client.post("/libraries/lib1/tasks/5/untrack"),
        client.post("/libraries/lib1/tasks", data={"task_ids": "6", "csrf_token": "forged"}),
    ]
    for response in refused:
        assert response.status_code == 400
        assert "This form has expired" in response.get_data(as_text=True)
    assert stored(app, 5) is not None
    assert stored(app, 6) is None


def test_htmx_requests_may_send_the_token_in_a_header(client, app, csrf):
    response = client.post(
        "/libraries/lib1/tasks",
        data={"task_ids": "8"},
        headers={"X-CSRFToken": csrf, "HX-Request": "true"},
    )
    assert response.status_code == 303
    assert stored(app, 8) is not None


def test_gets_never_change_anything(client, app, clock):
    track(app, clock, 5)
    assert client.get("/libraries/lib1/tasks?task_ids=6").status_code == 405
    assert client.get("/libraries/lib1/tasks/5/untrack").status_code == 405
    assert stored(app, 5) is not None
    assert stored(app, 6) is None


def test_untracking_a_task(client, app, clock, csrf):
    track(app, clock, 5, 6)
    response = client.post("/libraries/lib1/tasks/5/untrack", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert stored(app, 5) is None
    assert stored(app, 6) is not None
    assert "Task 5 is no longer tracked." in client.get("/libraries/lib1").get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/libraries/nosuch",
        "/libraries/nosuch/rows",
        "/libraries/lib1/tasks/abc",
        "/libraries/lib1/tasks/0",
        "/libraries/lib1/tasks/-3",
        "/libraries/lib1/tasks/9223372036854775808",
        "/libraries/lib1/tasks/12345",
        "/no/such/page",
    ],
)
def test_bad_paths_are_404_pages(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Not found" in response.get_data(as_text=True)


def test_posting_to_an_unknown_library_is_404(client, csrf):
    response = client.post("/libraries/nosuch/tasks", data={"task_ids": "1", "csrf_token": csrf})
    assert response.status_code == 404
    assert "No media library “nosuch”" in response.get_data(as_text=True)


def test_unknown_upstream_after_grace_period_then_check_again(
    client, app, sim, clock, csrf, next_window
):
    track(app, clock, 31337)
    page = client.get("/libraries/lib1").get_data(as_text=True)
    # SMH has answered once without it: not found yet, still asked about, not running.
    assert badge_text(page, 31337) == "Not found yet"
    assert "it may be mistyped" in row(page, 31337)
    assert is_polling(page)
    assert "<title>Marketing assets</title>" in page
    assert "0 running, 1 not found yet · checking every" in page

    clock.advance(121)
    next_window()
    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert badge_text(page, 31337) == "Unknown upstream"
    assert "it keeps tasks 30 days, or the id was never a task" in row(page, 31337)
    assert not is_polling(page)
    assert "<title>✕ Marketing assets</title>" in page
    assert "Check again" in row(page, 31337)

    sim.add_task("lib1", task_id=31337, run_seconds=600)
    response = client.post("/libraries/lib1/tasks/31337/recheck", data={"csrf_token": csrf})
    assert response.status_code == 303
    next_window()
    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert badge_text(page, 31337) == "Running"
    assert is_polling(page)


def test_a_task_smh_forgets_keeps_its_last_known_state(client, app, sim, clock, next_window):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id)
    client.get("/libraries/lib1")
    clock.advance(200)
    next_window()
    sim.forget_task(task_id)  # SMH loses it, e.g. past its 30-day memory

    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert badge_text(page, task_id) == "Running"  # one answer without it is not enough
    assert is_polling(page)

    clock.advance(121)
    next_window()
    page = client.get("/libraries/lib1").get_data(as_text=True)

    assert badge_text(page, task_id) == "Unknown upstream"
    assert "last seen: Running" in row(page, task_id)
    assert not is_polling(page)


def test_a_task_smh_skips_once_is_still_followed(client, app, sim, clock, next_window):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id)
    client.get("/libraries/lib1")
    clock.advance(200)
    next_window()
    sim.forget_task(task_id)
    client.get("/libraries/lib1")
    sim.remember_task(task_id)
    clock.advance(100)
    next_window()
    client.get("/libraries/lib1")
    clock.advance(100)
    next_window()

    page = client.get("/libraries/lib1").get_data(as_text=True)

    assert badge_text(page, task_id) == "Running"
    assert stored(app, task_id).missing_since is None


def test_an_undocumented_status_is_shown_and_not_asked_again(
    client, app, sim, clock, csrf, next_window
):
    task_id = sim.add_task("lib1", run_seconds=5, outcome=418)
    track(app, clock, task_id)
    clock.advance(6)
    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert badge_text(page, task_id) == "Unknown status 418"
    assert not is_polling(page)
    assert "Check again" in row(page, task_id)

    client.post(f"/libraries/lib1/tasks/{task_id}/recheck", data={"csrf_token": csrf})
    assert stored(app, task_id).state == "pending"


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
def test_each_kind_of_upstream_trouble_is_shown(settings, sim, clock, fault, shown):
    if fault["kind"] == "latency":
        # Short enough to fire against the 3s fault, wide against every answer that should come.
        settings["SMH_TIMEOUT"] = 1
    app = create_app(settings)
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
    app.extensions["store"].dispose()


def test_restart_loses_nothing(settings, sim, clock):
    task_id = sim.add_task("lib1", run_seconds=5, delete_count=99)
    first = create_app(settings)
    track(first, clock, task_id, label="before restart")
    clock.advance(6)
    first.test_client().get("/libraries/lib1")
    first.extensions["store"].dispose()
    sim.reset_calls()

    second = create_app(settings)
    page = second.test_client().get("/libraries/lib1").get_data(as_text=True)

    assert badge_text(page, task_id) == "Done"
    assert "before restart" in page
    assert "99" in row(page, task_id)
    assert sim.calls["task.query"] == 0
    second.extensions["store"].dispose()


def test_task_page_shows_results_timeline_and_last_answer(client, app, sim, clock, next_window):
    task_id = sim.add_task("lib1", run_seconds=90, delete_count=4321)
    track(app, clock, task_id, label="Big one")
    client.get("/libraries/lib1")
    clock.advance(30)
    next_window()
    page = client.get(f"/libraries/lib1/tasks/{task_id}").get_data(as_text=True)
    assert "Running" in page
    assert f'hx-get="/libraries/lib1/tasks/{task_id}/detail?v=' in page

    clock.advance(100)
    next_window()
    page = client.get(f"/libraries/lib1/tasks/{task_id}").get_data(as_text=True)

    assert f"<title>Task {task_id} · Marketing assets</title>" in page
    assert "Big one" in page
    assert "4,321 versions deleted" in page
    assert "First seen running" in page
    assert "Seen finished" in page
    assert "2 min 20 s after it was tracked" in page
    assert "When the dashboard noticed" in page
    assert "&#34;deleteCount&#34;: 4321" in page
    assert "hx-trigger" not in page


def test_no_page_ever_contains_the_token_or_secret(client, app, sim, clock, next_window):
    task_id = sim.add_task("lib1", run_seconds=5)
    track(app, clock, task_id, 555)
    pages = [client.get(p) for p in ("/", "/libraries/lib1", "/libraries/lib1/rows")]
    clock.advance(200)
    next_window()
    pages += [client.get(f"/libraries/lib1/tasks/{task_id}"), client.get("/api/v1/task/lib1/1000")]
    sim.inject("error", status=403, code="InvalidAccessToken", times=None)
    next_window()
    track(app, clock, 556)
    pages += [client.get("/libraries/lib1"), client.get("/api/v1/task/lib1/556")]

    tokens = sim.issued_tokens("lib1")
    assert tokens
    for response in pages:
        text = response.get_data(as_text=True) + str(response.headers)
        assert not [token for token in tokens if token in text]
        assert "lib1-very-secret-key" not in text


def test_security_headers(client):
    response = client.get("/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_work_under_a_path_prefix(settings, sim, clock):
    settings["TRUSTED_PROXIES"] = 1
    app = create_app(settings)
    track(app, clock, sim.add_task("lib1"))
    page = (
        app.test_client()
        .get("/libraries/lib1", headers={"X-Forwarded-Prefix": "/smh"})
        .get_data(as_text=True)
    )
    assert 'hx-get="/smh/libraries/lib1/rows?v=' in page
    assert 'href="/smh/static/dashboard.css"' in page
    assert 'action="/smh/libraries/lib1/tasks"' in page
    assert 'href="/smh/libraries/lib1?state=running"' in page
    app.extensions["store"].dispose()


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_task_fragment_polls_until_the_task_ends(client, app, sim, clock, next_window):
    task_id = sim.add_task("lib1", run_seconds=30)
    track(app, clock, task_id)
    fragment = client.get(f"/libraries/lib1/tasks/{task_id}/detail").get_data(as_text=True)
    assert fragment.startswith(f"<title>Task {task_id} · Marketing assets</title>")
    assert 'id="task"' in fragment
    assert is_polling(fragment)

    clock.advance(31)
    next_window()
    fragment = client.get(f"/libraries/lib1/tasks/{task_id}/detail").get_data(as_text=True)

    assert 'data-state="done"' in fragment
    assert not is_polling(fragment)


def test_check_again_from_the_task_page_returns_there(client, app, clock, csrf, next_window):
    track(app, clock, 4040)
    client.get("/libraries/lib1")
    clock.advance(121)
    next_window()
    page = client.get("/libraries/lib1/tasks/4040").get_data(as_text=True)
    assert "Unknown upstream" in page

    response = client.post(
        "/libraries/lib1/tasks/4040/recheck", data={"csrf_token": csrf, "back": "task"}
    )

    assert response.headers["Location"] == "/libraries/lib1/tasks/4040"
    assert stored(app, 4040).state == "pending"


@pytest.mark.parametrize(
    "page", ["%C2%B2", "9" * 5000, "1e3", "-1", "0", "%00"], ids=lambda p: p[:10]
)
def test_odd_page_numbers_are_a_clear_400(client, page):
    for path in ("/libraries/lib1", "/libraries/lib1/rows"):
        response = client.get(f"{path}?page={page}")
        assert response.status_code == 400
        assert "is not a page number" in response.get_data(as_text=True)
    assert client.get("/libraries/lib1?page=").status_code == 200


def test_a_poll_of_a_page_that_emptied_shows_the_last_page(client, app, sim, clock, next_window):
    ids = sim.add_tasks("lib1", 60, run_seconds=30)
    track(app, clock, *ids)
    assert client.get("/libraries/lib1?state=running&page=2").status_code == 200

    clock.advance(31)
    next_window()
    response = client.get("/libraries/lib1/rows?state=running&page=2")

    assert response.status_code == 200
    assert "No tasks in “Running”." in response.get_data(as_text=True)
    assert not is_polling(response.get_data(as_text=True))


def test_a_task_untracked_elsewhere_stops_its_page_polling(client, app, sim, clock, csrf):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id)
    client.post(f"/libraries/lib1/tasks/{task_id}/untrack", data={"csrf_token": csrf})

    response = client.get(f"/libraries/lib1/tasks/{task_id}/detail")

    fragment = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"Task {task_id} is no longer tracked in Marketing assets." in fragment
    assert not is_polling(fragment)


def test_worker_processes_share_the_window_through_the_database(settings, sim, clock):
    first, second = create_app(settings), create_app(settings)  # two gunicorn workers, say
    track(first, clock, *sim.add_tasks("lib1", 5, run_seconds=600))

    first.test_client().get("/libraries/lib1/rows")
    second.test_client().get("/libraries/lib1/rows")
    assert sim.calls["task.query"] == 1

    clock.advance(5)
    second.test_client().get("/libraries/lib1/rows")
    first.test_client().get("/libraries/lib1/rows")
    assert sim.calls["task.query"] == 2
    for app in (first, second):
        app.extensions["store"].dispose()


def test_an_unexpected_failure_is_a_plain_page_that_leaks_nothing(client, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("database on fire: lib1-very-secret-key")

    monkeypatch.setattr(listings, "count_states", broken)
    monkeypatch.setattr(tasks, "known_answers", broken)

    page = client.get("/libraries/lib1")
    api = client.get("/api/v1/task/lib1/5")

    assert page.status_code == 500
    assert "Something went wrong on the dashboard" in page.get_data(as_text=True)
    assert api.status_code == 500
    assert api.get_json()["code"] == "InternalServerError"
    for response in (page, api):
        assert "on fire" not in response.get_data(as_text=True)
        assert "Traceback" not in response.get_data(as_text=True)
    assert "database on fire" in caplog.text  # but the operator's log has it
