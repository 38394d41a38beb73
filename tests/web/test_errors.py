"""Plain answers when something is missing or broken, and the health check."""

import pytest

from smh_dashboard.storage import listings, tasks

pytestmark = pytest.mark.backends


@pytest.mark.parametrize(
    "path",
    [
        "/libraries/nosuch",
        "/libraries/nosuch/rows",
        "/libraries/lib1/tasks/abc",
        "/libraries/lib1/tasks/0",
        "/libraries/lib1/tasks/-3",
        "/libraries/lib1/tasks/9223372036854775808",
        "/libraries/lib1/tasks/12345",
        "/no/such/page",
    ],
)
def test_bad_paths_are_404_pages(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Not found" in response.get_data(as_text=True)


def test_an_unexpected_failure_is_a_plain_page_that_leaks_nothing(client, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("database on fire: lib1-very-secret-key")

    monkeypatch.setattr(listings, "count_states", broken)
    monkeypatch.setattr(tasks, "known_answers", broken)

    page = client.get("/libraries/lib1")
    api = client.get("/api/v1/task/lib1/5")

    assert page.status_code == 500
    assert "Something went wrong on the dashboard" in page.get_data(as_text=True)
    assert api.status_code == 500
    assert api.get_json()["code"] == "InternalServerError"
    for response in (page, api):
        assert "on fire" not in response.get_data(as_text=True)
        assert "Traceback" not in response.get_data(as_text=True)
    assert "database on fire" in caplog.text  # but the operator's log has it


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
