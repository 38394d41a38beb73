"""A task's own page: its results, timeline and polling."""

import pytest
from markup import is_polling

from smh_dashboard.storage import tasks

pytestmark = pytest.mark.backends


def track(app, clock, *task_ids, label=None, library_id="lib1"):
    with app.app_context():
        return tasks.track_tasks(library_id, task_ids, label, clock())


def stored(app, task_id, library_id="lib1"):
    with app.app_context():
        return tasks.get_task(library_id, task_id)


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


def test_a_task_untracked_elsewhere_stops_its_page_polling(client, app, sim, clock, csrf):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id)
    client.post(f"/libraries/lib1/tasks/{task_id}/untrack", data={"csrf_token": csrf})

    response = client.get(f"/libraries/lib1/tasks/{task_id}/detail")

    fragment = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"Task {task_id} is no longer tracked in Marketing assets." in fragment
    assert not is_polling(fragment)
