"""The index: every library with its counts, refreshing itself while anything runs."""

import re

import pytest
from markup import is_polling

from smh_dashboard.storage import tasks

pytestmark = pytest.mark.backends


def track(app, clock, *task_ids, label=None, library_id="lib1"):
    with app.app_context():
        return tasks.track_tasks(library_id, task_ids, label, clock())


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


def test_index_without_libraries_explains_how_to_configure(settings, make_app):
    settings.pop("SMH_LIBRARY_ID")
    settings.pop("SMH_LIBRARY_SECRET")
    app = make_app()
    page = app.test_client().get("/").get_data(as_text=True)
    assert "No media library is configured" in page
    assert "SMH_LIBRARY_ID" in page
