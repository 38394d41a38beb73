"""Task rows are kept drawn between renders: what a row shows is never stale, its moments move
with the clock, and the row's actions need no CSRF token in a poll's answer."""

import dataclasses
import gzip
import re

import pytest
from markup import row

from smh_dashboard.domain import states
from smh_dashboard.domain.tasks import Task
from smh_dashboard.storage import tasks

HTMX = {"HX-Request": "true"}

TASK = Task(
    library_id="lib1",
    task_id=4100,
    label="Spring",
    state=states.DONE,
    smh_status=3,
    delete_count=12,
    results=None,
    last_answer=None,
    added_at=1_800_000_000.0,
    missing_since=None,
    first_running_at=1_800_000_010.0,
    finished_at=1_800_000_100.0,
    checked_at=1_800_000_100.0,
)
# Another value for each field of a task; a kept row must show it as a fresh drawing would.
CHANGED = {
    "library_id": "lib2",
    "task_id": 4101,
    "label": "Autumn",
    "state": states.FAILED,
    "smh_status": 418,
    "delete_count": 13,
    "results": [{"err": "Disk on fire"}],
    "last_answer": {"code": "x"},
    "added_at": 1_799_999_000.0,
    "missing_since": 1_800_000_050.0,
    "first_running_at": None,
    "finished_at": None,
    "checked_at": 1_800_000_200.0,
    "version": 7,
}
ROWS = "{% set library_url = '/libraries/lib1' %}{{ task_rows(tasks) }}"


def draw(app, task, now=1_800_000_300.0):
    with app.test_request_context("/libraries/lib1"):
        return app.jinja_env.from_string(ROWS).render(tasks=[task], now=now)


def test_every_field_of_a_task_is_covered():
    assert set(CHANGED) == {field.name for field in dataclasses.fields(Task)}


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_a_kept_row_shows_a_change_to_any_field(make_app, field):
    kept, fresh = make_app(), make_app()
    changed = dataclasses.replace(TASK, **{field: CHANGED[field]})
    draw(kept, TASK)
    assert draw(kept, changed) == draw(fresh, changed)


def test_a_kept_row_tells_its_moments_from_each_render_s_now(app):
    first = draw(app, TASK, now=TASK.checked_at + 30)
    later = draw(app, TASK, now=TASK.checked_at + 3 * 3600)
    assert ">30 s ago</time>" in first
    assert ">3 h ago</time>" in later
    assert "\x00" not in first + later


def test_rows_come_out_the_same_kept_or_drawn_afresh(make_app, client, sim, clock, next_window):
    app = make_app()
    ids = [sim.add_task("lib1", run_seconds=s, outcome=o) for s, o in ((30, "done"), (600, "done"))]
    ids.append(sim.add_task("lib1", run_seconds=30, outcome="failed"))
    with app.app_context():
        tasks.track_tasks("lib1", ids, "Spring", clock())
    client.get("/libraries/lib1")
    clock.advance(31)
    next_window()

    kept = client.get("/libraries/lib1/rows", headers=HTMX).get_data(as_text=True)
    fresh = make_app().test_client().get("/libraries/lib1/rows", headers=HTMX)

    for task_id in ids:
        assert row(kept, task_id) == row(fresh.get_data(as_text=True), task_id)
    assert "Task {task}: {state}, {n} versions deleted" in kept


def test_row_buttons_submit_one_form_that_polls_never_carry(client, sim, app, clock, csrf):
    task_id = sim.add_task("lib1", run_seconds=600)
    with app.app_context():
        tasks.track_tasks("lib1", [task_id], None, clock())
    page = client.get("/libraries/lib1").get_data(as_text=True)
    fragment = client.get("/libraries/lib1/rows", headers=HTMX).get_data(as_text=True)

    form = re.search(r'<form id="row-actions" method="post" hidden>(.*?)</form>', page, re.S)
    assert form and 'name="csrf_token"' in form.group(1)
    assert f'form="row-actions" formaction="/libraries/lib1/tasks/{task_id}/untrack"' in page
    assert "csrf_token" not in fragment

    untracked = client.post(f"/libraries/lib1/tasks/{task_id}/untrack", data={"csrf_token": csrf})
    assert untracked.status_code == 303


def test_a_whole_section_is_gzipped_for_browsers_that_take_it_and_a_page_never(
    client, sim, app, clock
):
    task_ids = sim.add_tasks("lib1", 30, run_seconds=600)
    with app.app_context():
        tasks.track_tasks("lib1", task_ids, "A label long enough to make the rows add up", clock())
    gzip_headers = HTMX | {"Accept-Encoding": "gzip"}

    plain = client.get("/libraries/lib1/rows", headers=HTMX)
    packed = client.get("/libraries/lib1/rows", headers=gzip_headers)
    page = client.get("/libraries/lib1", headers={"Accept-Encoding": "gzip"})

    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert len(packed.get_data()) * 5 < len(plain.get_data())
    assert gzip.decompress(packed.get_data()) == plain.get_data()
    assert "Content-Encoding" not in page.headers
