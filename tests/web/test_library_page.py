"""A library's page: its task rows, badges, filters, pages and polling."""

import pytest
from markup import badge_text, is_polling, row

from smh_dashboard.storage import schema, tasks

pytestmark = pytest.mark.backends


def track(app, clock, *task_ids, label=None, library_id="lib1"):
    with app.app_context():
        return tasks.track_tasks(library_id, task_ids, label, clock())


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


def test_poll_interval_follows_the_setting(make_app, sim, clock):
    app = make_app(SMH_POLL_SECONDS=7)
    track(app, clock, sim.add_task("lib1"))
    fragment = app.test_client().get("/libraries/lib1/rows").get_data(as_text=True)
    assert 'hx-trigger="every 7.0s, ' in fragment


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


def test_long_lists_are_paginated(client, app, engine, clock):
    track(app, clock, *range(1, 121))
    with engine.begin() as conn:
        conn.execute(schema.tasks.update().values(state="done", finished_at=clock()))

    first = client.get("/libraries/lib1").get_data(as_text=True)
    last = client.get("/libraries/lib1?page=3").get_data(as_text=True)

    assert first.count('<tr id="task-') == 50
    assert "Page 1 of 3" in first
    assert 'href="/libraries/lib1?page=2"' in first
    assert last.count('<tr id="task-') == 20
    assert client.get("/libraries/lib1?page=4").status_code == 404
    assert client.get("/libraries/lib1?page=zero").status_code == 400


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


def test_pages_work_under_a_path_prefix(make_app, sim, clock):
    app = make_app(TRUSTED_PROXIES=1, TRUSTED_PROXY_PREFIX_HOPS=1)
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


def test_links_follow_the_root_of_each_request(make_app, sim, clock):
    # Links are built once per root and kept: a reader behind the prefix and one reaching the
    # dashboard directly, in turn, each get their own.
    app = make_app(TRUSTED_PROXIES=1, TRUSTED_PROXY_PREFIX_HOPS=1)
    track(app, clock, sim.add_task("lib1"))
    client = app.test_client()
    for prefix in ("/smh", "", "/smh", "/other", ""):
        page = client.get(
            "/libraries/lib1", headers={"X-Forwarded-Prefix": prefix} if prefix else {}
        ).get_data(as_text=True)
        assert f'href="{prefix}/static/dashboard.css"' in page
        assert f'action="{prefix}/libraries/lib1/tasks"' in page
        assert f'href="{prefix}/libraries/lib1/tasks.csv"' in page
        others = {"/smh", "/other"} - {prefix}
        assert not any(f'href="{other}/' in page for other in others)
        if not prefix:
            assert 'href="/smh' not in page and 'href="/other' not in page
