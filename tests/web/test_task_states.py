"""How SMH's answers move a tracked task, as the library page shows it."""

import pytest
from markup import badge_text, is_polling, row

from smh_dashboard.storage import tasks

pytestmark = pytest.mark.backends


def track(app, clock, *task_ids, label=None, library_id="lib1"):
    with app.app_context():
        return tasks.track_tasks(library_id, task_ids, label, clock())


def stored(app, task_id, library_id="lib1"):
    with app.app_context():
        return tasks.get_task(library_id, task_id)


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
