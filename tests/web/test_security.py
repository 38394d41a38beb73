"""What no page may contain or omit: tokens, secrets, security headers."""

import pytest

from smh_dashboard.storage import tasks

pytestmark = pytest.mark.backends


def track(app, clock, *task_ids, label=None, library_id="lib1"):
    with app.app_context():
        return tasks.track_tasks(library_id, task_ids, label, clock())


def test_no_page_ever_contains_the_token_or_secret(client, app, sim, clock, next_window):
    task_id = sim.add_task("lib1", run_seconds=5)
    track(app, clock, task_id, 555)
    pages = [client.get(p) for p in ("/", "/libraries/lib1", "/libraries/lib1/rows")]
    clock.advance(200)
    next_window()
    pages += [client.get(f"/libraries/lib1/tasks/{task_id}"), client.get("/api/v1/task/lib1/1000")]
    sim.inject("error", status=403, code="InvalidAccessToken", times=None)
    next_window()
    track(app, clock, 556)
    pages += [client.get("/libraries/lib1"), client.get("/api/v1/task/lib1/556")]

    tokens = sim.issued_tokens("lib1")
    assert tokens
    for response in pages:
        text = response.get_data(as_text=True) + str(response.headers)
        assert not [token for token in tokens if token in text]
        assert "lib1-very-secret-key" not in text


def test_security_headers(client):
    response = client.get("/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
