import re

from smh_dashboard import registry
from smh_dashboard.domain import states
from smh_dashboard.smh.answers import ResultEntry, TaskStatus
from smh_dashboard.storage import tasks


def track(app, clock, *task_ids, label=None):
    with app.app_context():
        return tasks.track_tasks("lib1", task_ids, label, clock())


def row(html, task_id):
    match = re.search(rf'<tr id="task-{task_id}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, f"no row for task {task_id}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def text(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_a_failed_row_says_what_smh_said(client, app, sim, clock, next_window):
    task_id = sim.add_task("lib1", run_seconds=30, outcome="failed")
    track(app, clock, task_id)
    client.get("/libraries/lib1")
    clock.advance(31)
    next_window()

    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert "Failed SMH said: InternalError: history store unavailable" in row(page, task_id)

    detail = text(client.get(f"/libraries/lib1/tasks/{task_id}").get_data(as_text=True))
    assert "SMH said why it failed: InternalError: history store unavailable" in detail
    assert "Part Error from SMH Result code Versions deleted" in detail
    assert "1 InternalError: history store unavailable -1 0" in detail


def test_a_long_error_is_cut_in_the_list_and_whole_on_the_task_page(client, app, clock):
    track(app, clock, 9)
    error = "QuotaError: " + "the history store refused the deletion " * 5 + "END"
    answer = {"taskId": 9, "status": 500, "result": [{"err": error, "status": -1}]}
    failed = TaskStatus(9, states.FAILED, 500, (ResultEntry(error, -1, 0),), 0, raw=answer)
    with app.app_context():
        tasks.record_statuses("lib1", [failed], clock(), 120, registry.get_library("lib1").webhook)

    listed = row(client.get("/libraries/lib1").get_data(as_text=True), 9)
    assert "SMH said: QuotaError: the history store" in listed
    assert "END" not in listed
    assert "…" in listed
    detail = client.get("/libraries/lib1/tasks/9").get_data(as_text=True)
    assert f"SMH said why it failed: {error}" in detail


def test_finished_times_say_they_are_when_the_dashboard_noticed(
    client, app, sim, clock, next_window
):
    quick = sim.add_task("lib1", run_seconds=1)
    clock.advance(2)
    track(app, clock, quick)

    page = client.get("/libraries/lib1").get_data(as_text=True)

    assert '<th scope="col">Seen finished</th>' in page
    assert "unknown: already finished when first checked" in row(page, quick)
    assert "before first check" not in page
    assert "is when the dashboard noticed a task had ended" in page
    detail = text(client.get(f"/libraries/lib1/tasks/{quick}").get_data(as_text=True))
    assert "Seen finished" in detail
    assert "it had already finished when the dashboard first asked SMH" in detail


def test_a_mistyped_id_is_not_found_yet_and_not_counted_as_running(
    client, app, sim, clock, next_window
):
    running = sim.add_task("lib1", run_seconds=600)
    track(app, clock, running, 424242)

    page = client.get("/libraries/lib1").get_data(as_text=True)

    assert "<title>(1 running) Marketing assets</title>" in page
    assert "1 running, 1 not found yet · checking every" in text(page)
    assert "Not found yet" in row(page, 424242)
    assert "it may be mistyped" in row(page, 424242)
    only_running = client.get("/libraries/lib1?state=running").get_data(as_text=True)
    assert 'id="task-424242"' not in only_running
    not_found = client.get("/libraries/lib1?state=not_found").get_data(as_text=True)
    assert 'id="task-424242"' in not_found
    assert f'id="task-{running}"' not in not_found
    index = client.get("/").get_data(as_text=True)
    assert "<title>(1 running) SMH media libraries</title>" in index
    detail = text(client.get("/libraries/lib1/tasks/424242").get_data(as_text=True))
    assert "SMH has answered without this id" in detail
    assert "If the id is wrong, Untrack it." in detail

    # Still asked about: once SMH lists it, it runs.
    sim.add_task("lib1", task_id=424242, run_seconds=600)
    next_window()
    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert "<title>(2 running) Marketing assets</title>" in page
    assert "Running" in row(page, 424242)


def test_unknown_upstream_is_explained_with_what_to_do(client, app, clock, next_window):
    track(app, clock, 31337)
    client.get("/libraries/lib1")
    clock.advance(121)
    next_window()

    page = client.get("/libraries/lib1").get_data(as_text=True)
    assert "it keeps tasks 30 days, or the id was never a task" in row(page, 31337)
    detail = text(client.get("/libraries/lib1/tasks/31337").get_data(as_text=True))
    assert "SMH answers only about tasks from the last 30 days" in detail
    assert "Check again to ask SMH once more, or Untrack it to stop following it." in detail


def test_titles_mark_everything_ended_with_a_cross_when_some_failed(
    client, app, sim, clock, next_window
):
    done = sim.add_task("lib1", run_seconds=10)
    failed = sim.add_task("lib1", run_seconds=20, outcome="failed")
    track(app, clock, done, failed)
    assert "<title>(2 running) Marketing assets</title>" in client.get("/libraries/lib1").text

    clock.advance(11)
    next_window()
    assert "<title>(1 running) Marketing assets</title>" in client.get("/libraries/lib1").text

    clock.advance(10)
    next_window()
    assert "<title>✕ Marketing assets</title>" in client.get("/libraries/lib1/rows").text
    assert "<title>✕ SMH media libraries</title>" in client.get("/summary").text


def test_an_empty_library_has_a_plain_title(client):
    assert "<title>Marketing assets</title>" in client.get("/libraries/lib1").text
