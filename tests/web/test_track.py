"""Tracking and untracking tasks from the forms, and what the forms refuse."""

import pytest

from smh_dashboard.storage import listings, tasks

pytestmark = pytest.mark.backends


def track(app, clock, *task_ids, label=None, library_id="lib1"):
    with app.app_context():
        return tasks.track_tasks(library_id, task_ids, label, clock())


def stored(app, task_id, library_id="lib1"):
    with app.app_context():
        return tasks.get_task(library_id, task_id)


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


def test_posting_to_an_unknown_library_is_404(client, csrf):
    response = client.post("/libraries/nosuch/tasks", data={"task_ids": "1", "csrf_token": csrf})
    assert response.status_code == 404
    assert "No media library “nosuch”" in response.get_data(as_text=True)
