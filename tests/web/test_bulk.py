"""Untracking several tasks at once with an undo, and re-checking several at once."""

import re

import pytest
from markup import shown

from smh_dashboard.storage import listings, tasks

pytestmark = pytest.mark.backends


def tracked(app):
    with app.app_context():
        return {t.task_id: t for t in listings.list_tasks("lib1", None)}


@pytest.fixture
def settings(settings):
    settings["SMH_UNKNOWN_GRACE_SECONDS"] = 0
    return settings


@pytest.fixture
def token(client):
    page = client.get("/libraries/lib1").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_untrack_several_then_undo_puts_them_back_as_they_were(client, app, sim, clock):
    done = sim.add_task("lib1", run_seconds=0, delete_count=77)
    running = sim.add_task("lib1", run_seconds=600)
    kept = sim.add_task("lib1", run_seconds=600)
    with app.app_context():
        tasks.track_tasks("lib1", [done, running, kept], "nightly", clock())
    page = shown(client.get("/libraries/lib1"))
    assert f'name="task_id" value="{done}"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    response = client.post(
        "/libraries/lib1/tasks/untrack", data={"csrf_token": token, "task_id": [done, running]}
    )

    assert response.status_code == 303
    assert list(tracked(app)) == [kept]
    page = shown(client.get("/libraries/lib1"))
    assert "2 tasks no longer tracked." in page
    assert f"2 tasks ({done}, {running}) untracked by no sign-in (127.0.0.1)" in page

    undo = client.post("/libraries/lib1/tasks/untrack/undo", data={"csrf_token": token})

    assert undo.status_code == 303
    assert sorted(tracked(app)) == sorted([done, running, kept])
    with app.app_context():
        restored = tasks.get_task("lib1", done)
    assert (restored.state, restored.delete_count, restored.label) == ("done", 77, "nightly")
    assert restored.results == [{"err": "", "status": 0, "deleteCount": 77}]
    page = shown(client.get("/libraries/lib1"))
    assert "2 tasks tracked again." in page
    assert "Undo untrack" not in page
    again = client.post("/libraries/lib1/tasks/untrack/undo", data={"csrf_token": token})
    assert "Nothing to undo." in shown(client.get(again.headers["Location"]))


def test_only_the_last_untrack_can_be_undone(client, app, clock, token):
    with app.app_context():
        tasks.track_tasks("lib1", [5, 6], None, clock())
    client.post("/libraries/lib1/tasks/5/untrack", data={"csrf_token": token})
    client.post("/libraries/lib1/tasks/untrack", data={"csrf_token": token, "task_id": 6})

    client.post("/libraries/lib1/tasks/untrack/undo", data={"csrf_token": token})

    assert list(tracked(app)) == [6]


def test_recheck_several_unknown_tasks_at_once(client, app, sim, clock, token):
    running = sim.add_task("lib1", run_seconds=600)
    with app.app_context():
        tasks.track_tasks("lib1", [5, 6, running], None, clock())
    client.get("/libraries/lib1")
    assert {i: t.state for i, t in tracked(app).items()} == {
        5: "missing",
        6: "missing",
        running: "running",
    }

    response = client.post(
        "/libraries/lib1/tasks/recheck", data={"csrf_token": token, "task_id": [5, 6, running]}
    )

    assert response.status_code == 303
    assert {i: t.state for i, t in tracked(app).items()} == {
        5: "pending",
        6: "pending",
        running: "running",
    }
    assert "Checking 2 tasks with SMH again." in shown(client.get("/libraries/lib1"))


@pytest.mark.parametrize("path", ["/libraries/lib1/tasks/untrack", "/libraries/lib1/tasks/recheck"])
@pytest.mark.parametrize(
    ("picked", "says"), [([], "Tick at least one task first."), (["x"], "is not a task id")]
)
def test_nothing_or_nonsense_ticked_is_refused(client, app, clock, token, path, picked, says):
    with app.app_context():
        tasks.track_tasks("lib1", [5], None, clock())

    response = client.post(path, data={"csrf_token": token, "task_id": picked})

    assert response.status_code == 400
    assert says in shown(response)
    assert list(tracked(app)) == [5]
