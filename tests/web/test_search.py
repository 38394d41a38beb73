import csv
import io
import json
import re

import pytest

from smh_dashboard.storage import tasks
from smh_dashboard.web import exports

pytestmark = pytest.mark.backends


def track(app, clock, *task_ids, label=None):
    with app.app_context():
        return tasks.track_tasks("lib1", task_ids, label, clock())


def listed_ids(html):
    return [int(i) for i in re.findall(r'<tr id="task-(\d+)"[^>]*>', html)]


def filter_count(html, label):
    return int(re.search(rf'>{label} <span class="count">(\d+)</span>', html).group(1))


@pytest.fixture
def labelled(app, clock):
    """Tasks with ids and labels that searches tell apart, the newest first when listed."""
    track(app, clock, 1001, label="Spring cleanup")
    clock.advance(1)
    track(app, clock, 10015, label="100% done")
    clock.advance(1)
    track(app, clock, 2002, label="1000 done")
    clock.advance(1)
    track(app, clock, 3003, label="春季清理 assets")
    clock.advance(1)
    track(app, clock, 4004, label="snake_case")
    clock.advance(1)
    track(app, clock, 5005, label="snakeXcase")
    return app


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("2002", [2002]),  # an id, exactly
        ("1001", [10015, 1001]),  # an id and the ids it starts
        ("SPRING", [1001]),  # part of a label, whatever the case
        ("clean", [1001]),
        ("春季", [3003]),
        ("100%", [10015]),  # LIKE's wildcards match only themselves
        ("e_c", [4004]),
        ("  done ", [2002, 10015]),  # trimmed
        ("9999", []),
    ],
)
def test_search_finds_tasks_by_id_or_label(client, labelled, q, found):
    page = client.get("/libraries/lib1", query_string={"q": q}).get_data(as_text=True)
    assert listed_ids(page) == found
    assert filter_count(page, "All") == len(found)


def test_counts_filters_pager_and_poll_keep_the_search(client, app, clock, settings):
    app.config["TASKS_PER_PAGE"] = 2
    track(app, clock, *range(500, 505), label="batch A")
    track(app, clock, 600, label="batch B")

    page = client.get("/libraries/lib1?q=batch+a").get_data(as_text=True)

    assert filter_count(page, "All") == 5
    assert filter_count(page, "Not found yet") == 5  # SMH knows none of these ids
    assert 'href="/libraries/lib1?state=not_found&amp;q=batch+a"' in page
    assert 'href="/libraries/lib1?q=batch+a&amp;page=2"' in page
    assert re.search(r'hx-get="/libraries/lib1/rows\?q=batch\+a&amp;v=', page)
    assert 'role="search"' in page
    assert 'value="batch a"' in page
    assert "Clear search" in page
    older = client.get("/libraries/lib1?q=batch+a&page=3").get_data(as_text=True)
    assert listed_ids(older) == [500]
    rows = client.get("/libraries/lib1/rows?q=batch+b").get_data(as_text=True)
    assert listed_ids(rows) == [600]


def test_a_search_that_finds_nothing_says_so(client, labelled):
    page = client.get("/libraries/lib1?q=nothing-like-it").get_data(as_text=True)
    assert "No task matches “nothing-like-it”" in page
    assert 'href="/libraries/lib1">Show all tasks</a>' in page

    page = client.get("/libraries/lib1?q=spring&state=failed").get_data(as_text=True)
    assert "No task in “Failed” matches “spring”." in page


@pytest.mark.parametrize(
    "path",
    [
        "/libraries/lib1",
        "/libraries/lib1/rows",
        "/libraries/lib1/tasks.csv",
        "/libraries/lib1/tasks.json",
    ],
)
def test_a_search_too_long_is_a_clear_400(client, path):
    response = client.get(path, query_string={"q": "x" * 201})
    assert response.status_code == 400
    assert "A search is at most 200 characters" in response.get_data(as_text=True)


def test_a_search_of_several_lines_is_a_clear_400(client):
    response = client.get("/libraries/lib1", query_string={"q": "a\nb"})
    assert response.status_code == 400
    assert "A search is one line of text" in response.get_data(as_text=True)


def test_the_page_links_to_exports_of_what_it_lists(client, labelled):
    page = client.get("/libraries/lib1?state=running&q=done").get_data(as_text=True)
    assert 'href="/libraries/lib1/tasks.csv?state=running&amp;q=done"' in page
    assert 'href="/libraries/lib1/tasks.json?state=running&amp;q=done"' in page
    assert "Download the tasks listed" in page


def test_csv_export_opens_in_a_spreadsheet_safely(client, app, clock):
    track(app, clock, 7001, label='=HYPERLINK("http://evil")')
    track(app, clock, 7002, label="春季清理")
    track(app, clock, 7003, label="-2+3")
    track(app, clock, 7004, label="plain, with comma")

    response = client.get("/libraries/lib1/tasks.csv")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=lib1-tasks-2027-01-15.csv"
    )
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    labels = {int(r["task_id"]): r["label"] for r in rows}
    assert labels == {
        7001: '\'=HYPERLINK("http://evil")',
        7002: "春季清理",
        7003: "'-2+3",
        7004: "plain, with comma",
    }
    assert rows[0]["status"] == "Waiting for SMH"
    assert rows[0]["added_at"] == "2027-01-15T08:00:00Z"


def test_exports_follow_the_page_filter_and_search(client, app, sim, clock, next_window):
    failed = sim.add_task("lib1", run_seconds=1, outcome="failed")
    done = sim.add_task("lib1", run_seconds=1, delete_count=12077)
    track(app, clock, failed, done, label="nightly")
    track(app, clock, 8001, label="other")
    clock.advance(2)
    client.get("/libraries/lib1")

    response = client.get("/libraries/lib1/tasks.json?state=failed&q=night")

    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].endswith("filename=lib1-tasks-2027-01-15.json")
    data = json.loads(response.get_data(as_text=True))
    assert data["library_id"] == "lib1"
    assert (data["state"], data["q"]) == ("failed", "night")
    assert [t["task_id"] for t in data["tasks"]] == [failed]
    assert data["tasks"][0]["status"] == "Failed"
    assert data["tasks"][0]["error"] == "InternalError: history store unavailable"

    every = json.loads(client.get("/libraries/lib1/tasks.json").get_data(as_text=True))
    by_id = {t["task_id"]: t for t in every["tasks"]}
    assert set(by_id) == {failed, done, 8001}
    assert by_id[done]["versions_deleted"] == 12077
    assert by_id[done]["seen_finished_at"] == "2027-01-15T08:00:02Z"
    assert by_id[8001]["seen_finished_at"] is None


def test_an_export_holds_every_task_however_many(client, app, clock):
    track(app, clock, *range(1, 1201))
    clock.advance(1)
    track(app, clock, *range(1201, 1301))

    response = client.get("/libraries/lib1/tasks.csv")
    ids = [
        int(r["task_id"])
        for r in csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff")))
    ]

    assert len(ids) == len(set(ids)) == 1300
    assert ids[:2] == [1300, 1299]


def test_an_unknown_filter_on_an_export_is_a_clear_400(client):
    response = client.get("/libraries/lib1/tasks.csv?state=everything")
    assert response.status_code == 400
    assert "Unknown state filter" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("label", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("a=1", "a=1"),
        ("春季", "春季"),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_start_with_an_apostrophe(
    client, app, clock, label, cell
):
    track(app, clock, 1, label=label)
    body = client.get("/libraries/lib1/tasks.csv").get_data(as_text=True).lstrip("\ufeff")
    assert next(csv.DictReader(io.StringIO(body)))["label"] == cell


@pytest.mark.parametrize("start", ["\t", "\r"])
def test_csv_cells_starting_with_tab_or_cr_start_with_an_apostrophe(start):
    assert exports.csv_cell(start + "=cmd") == "'" + start + "=cmd"
