import html
import re

import pytest

from smh_dashboard.storage import tasks

pytestmark = pytest.mark.backends

HTMX = {"HX-Request": "true"}


def track(app, clock, *task_ids, library_id="lib1"):
    with app.app_context():
        return tasks.track_tasks(library_id, task_ids, None, clock())


def untrack(app, *task_ids, library_id="lib1"):
    with app.app_context():
        return tasks.untrack_tasks(library_id, task_ids)


def poll_url(fragment):
    """Return the URL the fragment's element polls, as htmx reads it, or None if it stops."""
    # The polled element is the one whose trigger repeats (a settings panel loads just once).
    match = re.search(r'<[^>]*hx-get="([^"]+)"[^>]*hx-trigger="every ', fragment)
    return html.unescape(match.group(1)) if match else None


def poll(client, url):
    return client.get(url, headers=HTMX)


def wire_bytes(response):
    head = f"HTTP/1.1 {response.status}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in response.headers.items()
    )
    return len(head) + 2 + len(response.get_data())


@pytest.fixture
def running(app, sim, clock):
    """Track one task that runs for 30 s, and return its id."""
    task_id = sim.add_task("lib1", run_seconds=30)
    track(app, clock, task_id)
    return task_id


@pytest.fixture
def url(client, running):
    """Open the library page and return the URL its section polls."""
    return poll_url(client.get("/libraries/lib1").get_data(as_text=True))


def test_an_unchanged_poll_is_an_empty_204_that_keeps_polling(client, app, sim, url, next_window):
    calls = sim.calls["task.query"]
    next_window()
    # A client without the page's session cookie: the 204 must not start a session either.
    answer = poll(app.test_client(), url)

    assert answer.status_code == 204
    assert answer.get_data() == b""
    assert "Set-Cookie" not in answer.headers
    assert "Content-Type" not in answer.headers
    assert wire_bytes(answer) < 800
    # The poll still asked SMH (the task is still running), and htmx keeps the old element,
    # whose trigger polls the same URL again.
    assert sim.calls["task.query"] == calls + 1
    assert poll(client, url).status_code == 204


def test_a_poll_without_a_version_renders(client, url):
    fragment = poll(client, url.split("?")[0])
    assert fragment.status_code == 200
    assert poll_url(fragment.get_data(as_text=True)) == url


def test_a_task_ending_renders_the_section_without_its_trigger(
    client, clock, running, url, next_window
):
    clock.advance(31)
    next_window()
    answer = poll(client, url)

    assert answer.status_code == 200
    fragment = answer.get_data(as_text=True)
    assert 'data-state="done"' in fragment
    assert poll_url(fragment) is None


def test_a_state_change_from_smh_renders_and_polling_goes_on(
    client, app, sim, clock, running, next_window
):
    longer = sim.add_task("lib1", run_seconds=600)
    track(app, clock, longer)
    url = poll_url(client.get("/libraries/lib1").get_data(as_text=True))

    clock.advance(31)
    next_window()
    answer = poll(client, url)

    assert answer.status_code == 200
    fragment = answer.get_data(as_text=True)
    assert re.search(rf'id="task-{running}"[^>]*>.*?data-state="done"', fragment, re.S)
    assert poll(client, poll_url(fragment)).status_code == 204


@pytest.mark.parametrize("change", ["track", "untrack"])
def test_tracking_in_another_tab_renders(client, app, sim, clock, running, url, change):
    other = sim.add_task("lib1", run_seconds=600)
    if change == "track":
        track(app, clock, other)
    else:
        untrack(app, running)
    answer = poll(client, url)

    assert answer.status_code == 200
    fragment = answer.get_data(as_text=True)
    assert (f'id="task-{other}"' in fragment) == (change == "track")
    assert (f'id="task-{running}"' in fragment) == (change == "track")


def test_an_untrack_kept_for_undo_and_its_undo_render(client, app, clock, running, url):
    other = 777
    track(app, clock, other)
    url = poll_url(poll(client, url).get_data(as_text=True))

    with app.app_context():
        tasks.untrack_tasks_undoably("lib1", [other], "ana", clock())
    removed = poll(client, url)
    assert removed.status_code == 200
    assert 'id="task-777"' not in removed.get_data(as_text=True)

    with app.app_context():
        tasks.undo_untrack("lib1")
    restored = poll(client, poll_url(removed.get_data(as_text=True)))
    assert restored.status_code == 200
    assert 'id="task-777"' in restored.get_data(as_text=True)


def test_an_outage_starting_and_ending_renders(client, sim, url, next_window):
    sim.inject("error", endpoint="task.query", status=503, code="ServerOverloaded", times=1)
    next_window()
    failing = poll(client, url)
    assert failing.status_code == 200
    assert "SMH is failing" in failing.get_data(as_text=True)
    during = poll_url(failing.get_data(as_text=True))

    next_window()
    recovered = poll(client, during)
    assert recovered.status_code == 200
    assert "SMH is failing" not in recovered.get_data(as_text=True)


def test_each_filter_and_page_has_its_own_version(client, url):
    assert poll(client, url).status_code == 204
    filtered = url.replace("/rows?", "/rows?state=running&")
    answer = poll(client, filtered)
    assert answer.status_code == 200
    assert poll(client, poll_url(answer.get_data(as_text=True))).status_code == 204


def test_check_times_are_redrawn_once_a_minute_at_most(client, app, sim, clock, next_window):
    track(app, clock, sim.add_task("lib1", run_seconds=600))
    url = poll_url(client.get("/libraries/lib1").get_data(as_text=True))
    assert app.config["SMH_CACHE_SECONDS"] == 5
    for _ in range(11):
        next_window()
        assert poll(client, url).status_code == 204
    next_window()
    assert poll(client, url).status_code == 200


def test_a_relative_time_is_left_to_the_browser(client, url):
    fragment = poll(client, url.split("?")[0]).get_data(as_text=True)
    # The server's text is the fallback; dashboard.js keeps it current from the datetime.
    assert re.search(r'<time datetime="[\dT:-]+Z"[^>]*>just now</time>', fragment)
    assert re.search(
        r'<time datetime="[\dT:-]+Z"[^>]*data-format="elapsed">0 s</time> so far', fragment
    )


def test_the_index_answers_204_until_something_changes(client, app, sim, clock, running):
    url = poll_url(client.get("/").get_data(as_text=True))
    assert poll(client, url).status_code == 204

    track(app, clock, sim.add_task("lib1", run_seconds=600))
    answer = poll(client, url)
    assert answer.status_code == 200
    assert poll(client, poll_url(answer.get_data(as_text=True))).status_code == 204


def test_the_task_page_answers_204_until_its_task_ends(client, clock, running, next_window):
    url = poll_url(client.get(f"/libraries/lib1/tasks/{running}").get_data(as_text=True))
    next_window()
    assert poll(client, url).status_code == 204

    clock.advance(31)
    next_window()
    answer = poll(client, url)
    assert answer.status_code == 200
    assert poll_url(answer.get_data(as_text=True)) is None


def is_rows_only(answer):
    """Tell whether a poll's answer swaps parts in by id and leaves the section in place."""
    return answer.headers.get("HX-Reswap") == "none" and 'id="tasks"' not in answer.get_data(
        as_text=True
    )


@pytest.fixture
def three(app, sim, clock):
    """Track three tasks: one ending in 30 s, two running for 10 minutes; return their ids."""
    ids = [
        sim.add_task("lib1", run_seconds=30),
        sim.add_task("lib1", run_seconds=600),
        sim.add_task("lib1", run_seconds=600),
    ]
    track(app, clock, *ids)
    return ids


def test_one_task_changing_sends_only_its_row(client, clock, three, next_window):
    ending, *others = three
    url = poll_url(client.get("/libraries/lib1").get_data(as_text=True))

    clock.advance(31)
    next_window()
    answer = poll(client, url)

    assert answer.status_code == 200
    assert is_rows_only(answer)
    fragment = answer.get_data(as_text=True)
    row = re.search(rf'<tr id="task-{ending}" hx-swap-oob="morph"[^>]*>.*?</tr>', fragment, re.S)
    assert row and 'data-state="done"' in row.group(0)
    assert all(f'id="task-{i}"' not in fragment for i in others)
    # The counts, status line and title change with it; the next poll goes to a new version.
    assert re.search(r'Done <span class="count">1</span>', fragment)
    assert "2 running · checking every" in fragment
    assert "<title>(2 running) Marketing assets</title>" in fragment
    assert 'id="tasks-poll" hx-swap-oob="morph"' in fragment
    assert poll(client, poll_url(fragment)).status_code == 204


def test_a_rows_only_answer_is_small(client, clock, three, next_window):
    url = poll_url(client.get("/libraries/lib1").get_data(as_text=True))
    clock.advance(31)
    next_window()
    whole = poll(client, url.split("?")[0])
    changed = poll(client, url)
    assert is_rows_only(changed)
    assert wire_bytes(changed) < wire_bytes(whole) * 0.8


def test_a_poll_two_changes_behind_gets_both_changed_rows(client, app, sim, clock, next_window):
    soon, later = sim.add_task("lib1", run_seconds=10), sim.add_task("lib1", run_seconds=20)
    running = [sim.add_task("lib1", run_seconds=600) for _ in range(2)]
    track(app, clock, soon, later, *running)
    url = poll_url(client.get("/libraries/lib1").get_data(as_text=True))
    # Within the minute at which check times are redrawn (that draws the whole section).
    clock.advance(11)
    next_window()
    assert is_rows_only(poll(client, url))
    clock.advance(10)
    next_window()

    answer = poll(client, url)

    assert is_rows_only(answer)
    fragment = answer.get_data(as_text=True)
    assert len(re.findall(r'<tr id="task-\d+" hx-swap-oob="morph"', fragment)) == 2
    assert f'id="task-{soon}"' in fragment and f'id="task-{later}"' in fragment


def whole_section(answer):
    fragment = answer.get_data(as_text=True)
    return (
        answer.status_code == 200
        and "HX-Reswap" not in answer.headers
        and ('<section id="tasks"' in fragment)
    )


@pytest.mark.parametrize(
    "change",
    ["track", "untrack", "outage", "most rows change", "leaves the filter", "polling ends"],
)
def test_a_change_of_which_rows_show_draws_the_whole_section(
    client, app, sim, clock, three, next_window, change
):
    _, *others = three
    filtered = "?state=running" if change == "leaves the filter" else ""
    url = poll_url(client.get(f"/libraries/lib1{filtered}").get_data(as_text=True))
    if change == "track":
        track(app, clock, sim.add_task("lib1", run_seconds=600))
    elif change == "untrack":
        untrack(app, others[0])
    elif change == "outage":
        sim.inject("error", endpoint="task.query", status=503, code="ServerOverloaded", times=1)
        next_window()
    elif change == "most rows change":
        track(app, clock, sim.add_task("lib1", run_seconds=6000))
        url = poll_url(poll(client, url).get_data(as_text=True))
        clock.advance(601)
        next_window()
    else:
        if change == "polling ends":
            untrack(app, *others)
            url = poll_url(poll(client, url).get_data(as_text=True))
        clock.advance(31)
        next_window()
    answer = poll(client, url)

    assert whole_section(answer)
    fragment = answer.get_data(as_text=True)
    assert (poll_url(fragment) is None) == (change == "polling ends")


@pytest.mark.parametrize(
    "v", ["", "garbage", "1.2", "x.y.z", "99999999.abc.def", "-1.a.b", "9" * 5000 + ".a.b"]
)
def test_a_poll_with_a_foreign_version_draws_the_whole_section(client, three, v):
    answer = poll(client, f"/libraries/lib1/rows?v={v}")
    assert whole_section(answer)


def test_a_recheck_sends_the_rechecked_row(client, app, sim, clock, next_window, csrf):
    kept = sim.add_task("lib1", run_seconds=600)
    unknown = 424242
    track(app, clock, kept, unknown, sim.add_task("lib1", run_seconds=600))
    client.get("/libraries/lib1")
    # SMH never lists it: once the grace period is over, it is shown as unknown.
    clock.advance(app.config["SMH_UNKNOWN_GRACE_SECONDS"])
    next_window()
    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert f"/tasks/{unknown}/recheck" in page
    url = poll_url(page)

    client.post(f"/libraries/lib1/tasks/{unknown}/recheck", data={"csrf_token": csrf})
    answer = poll(client, url)

    assert is_rows_only(answer)
    fragment = answer.get_data(as_text=True)
    assert f'id="task-{unknown}" hx-swap-oob="morph"' in fragment
    assert f'id="task-{kept}"' not in fragment
