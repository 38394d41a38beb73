import logging
import re

import pytest
from test_i18n import CHINESE, english_words
from werkzeug.security import generate_password_hash

from smh_dashboard.storage import activity, listings, tasks

PASSWORDS = {"ana": "ana-s3cret", "vic": "vic-s3cret", "sam": "sam-s3cret"}
# A quick hash keeps the suite fast; the format is the one `flask hash-password` writes.
HASHES = {name: generate_password_hash(pw, "pbkdf2:sha256:1000") for name, pw in PASSWORDS.items()}
USERS = f"""
[[user]]
name = "ana"
password_hash = "{HASHES["ana"]}"
role = "operator"

[[user]]
name = "vic"
password_hash = "{HASHES["vic"]}"
role = "viewer"

[[user]]
name = "sam"
password_hash = "{HASHES["sam"]}"
role = "operator"
libraries = ["lib2"]

[[user]]
name = "sso-only"
role = "viewer"
"""
PAGES = [
    "/",
    "/summary",
    "/libraries/lib1",
    "/libraries/lib1/rows",
    "/libraries/lib1/tasks/5",
    "/libraries/lib1/tasks/5/detail",
    "/libraries/lib1/tasks.csv",
    "/libraries/lib1/tasks.json",
    "/no/such/page",
]
SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy")


def as_user(name, password=None):
    return {"auth": (name, PASSWORDS.get(name, "") if password is None else password)}


def track(app, clock, *task_ids, library_id="lib1"):
    with app.app_context():
        tasks.track_tasks(library_id, task_ids, None, clock())


def tracked_ids(app, library_id="lib1"):
    with app.app_context():
        return [t.task_id for t in listings.list_tasks(library_id, None)]


def csrf_of(client, name="ana", path="/libraries/lib1"):
    page = client.get(path, **as_user(name)).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture
def settings(settings, tmp_path, other_secret):
    """Two libraries, and a users file with an operator, a viewer and a user scoped to lib2."""
    path = tmp_path / "users.toml"
    path.write_text(USERS)
    settings["SMH_USERS_FILE"] = str(path)
    settings["SMH_LIBRARIES"] = [{"id": "lib2", "name": "Product photos", "secret": other_secret}]
    return settings


@pytest.mark.parametrize("path", PAGES)
def test_signed_out_pages_ask_for_sign_in_as_html(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="SMH dashboard"')
    assert response.mimetype == "text/html"
    assert "Sign in required" in response.get_data(as_text=True)
    for name in SECURITY_HEADERS:
        assert name in response.headers
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/api/v1/task/lib1/5", "/api/openapi.json", "/api/v1/nothing"])
def test_signed_out_api_calls_get_a_json_401(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert response.get_json()["code"] == "SignInRequired"


def test_signed_out_forms_change_nothing(client, app, clock):
    track(app, clock, 5)
    assert client.post("/libraries/lib1/tasks", data={"task_ids": "6"}).status_code == 401
    assert client.post("/libraries/lib1/tasks/5/untrack").status_code == 401
    assert tracked_ids(app) == [5]


def test_healthz_needs_no_sign_in_and_names_no_library(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "lib1" not in response.get_data(as_text=True)
    assert "lib2" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("name", "password"),
    [("ana", "wrong"), ("ana", ""), ("nobody", "ana-s3cret"), ("sso-only", ""), ("", "")],
)
def test_wrong_credentials_answer_401(client, name, password):
    response = client.get("/libraries/lib1", **as_user(name, password))
    assert response.status_code == 401
    assert "Wrong user name or password." in response.get_data(as_text=True)
    assert "WWW-Authenticate" in response.headers


def test_the_header_names_who_is_signed_in(client):
    page = client.get("/", **as_user("vic")).get_data(as_text=True)
    assert "Signed in as <strong>vic</strong> · viewer" in page
    assert "No sign-in" not in page


def test_a_signed_in_chinese_reader_sees_their_role_in_chinese(make_app):
    app = make_app(SMH_READ_ONLY="1")
    page = app.test_client().get("/libraries/lib1", headers=CHINESE, **as_user("vic"))

    assert "已登录" in page.get_data(as_text=True)
    assert "<strong>vic</strong> · 只读用户" in page.get_data(as_text=True)
    assert "此处已关闭跟踪" in page.get_data(as_text=True)
    assert english_words(page) == ["vic"]


def test_repeated_failures_from_one_address_are_slowed_down(client, clock):
    attacker = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    for _ in range(10):
        assert client.get("/", **as_user("ana", "guess"), **attacker).status_code == 401

    refused = client.get("/", **as_user("ana"), **attacker)
    api = client.get("/api/v1/task/lib1/5", **as_user("ana", "guess"), **attacker)

    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 300
    assert "Too many failed sign-ins" in refused.get_data(as_text=True)
    assert api.status_code == 429
    assert api.get_json()["code"] == "TooManyRequests"
    assert client.get("/", **as_user("ana")).status_code == 200  # another address

    clock.advance(int(refused.headers["Retry-After"]))
    assert client.get("/", **as_user("ana"), **attacker).status_code == 200


def test_a_viewer_reads_everything_but_sees_no_forms(client, app, sim, clock, next_window):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id, 31337)
    viewer = as_user("vic")
    client.get("/libraries/lib1", **viewer)
    clock.advance(121)
    next_window()

    index = client.get("/", **viewer).get_data(as_text=True)
    page = client.get("/libraries/lib1", **viewer).get_data(as_text=True)
    rows = client.get("/libraries/lib1/rows", **viewer).get_data(as_text=True)
    detail = client.get("/libraries/lib1/tasks/31337", **viewer).get_data(as_text=True)

    assert "Marketing assets" in index
    assert "Product photos" in index
    assert f'id="task-{task_id}"' in page
    assert "Unknown upstream" in detail
    for html in (page, rows, detail):
        assert 'method="post"' not in html
        assert "Untrack" not in html
        assert "Check again" not in html
    operator = client.get("/libraries/lib1/tasks/31337", **as_user("ana")).get_data(as_text=True)
    assert "Check again" in operator


# Every change a form makes, with what its form sends.
CHANGES = [
    ("/libraries/{id}/tasks", {"task_ids": "6"}),
    ("/libraries/{id}/tasks/5/untrack", {}),
    ("/libraries/{id}/tasks/5/recheck", {}),
    ("/libraries/{id}/clear-history", {"confirm": "{id}"}),
    ("/libraries/{id}/history-settings/disable", {"confirm": "off"}),
    ("/libraries/{id}/clear-history", {"confirm": "{id}", "restore_history": "on"}),
    (
        "/libraries/{id}/history-settings",
        {
            "enableFileHistory": "on",
            "fileHistoryCount": "50",
            "fileHistoryExpireDay": "60",
            "mergeInterval": "0",
            "confirm": "{id}",
        },
    ),
    ("/libraries/{id}/history-settings/restore", {}),
    ("/libraries/{id}/history-job/cancel", {}),
]


def change(path, data, library_id="lib1"):
    """Return a change of CHANGES aimed at one library: its path and its form."""
    return path.format(id=library_id), {k: v.format(id=library_id) for k, v in data.items()}


def assert_smh_changed_nothing(sim):
    assert sim.calls["history.clear"] == 0
    assert sim.calls["history.set"] == 0


@pytest.mark.parametrize(("path", "data"), CHANGES)
def test_a_viewers_post_answers_403_and_changes_nothing(client, app, sim, clock, path, data):
    track(app, clock, 5)
    token = csrf_of(client, "ana")
    path, data = change(path, data)

    response = client.post(path, data=data | {"csrf_token": token}, **as_user("vic"))

    assert response.status_code == 403
    assert "vic is a viewer" in response.get_data(as_text=True)
    assert tracked_ids(app) == [5]
    assert_smh_changed_nothing(sim)


@pytest.mark.parametrize(("path", "data"), CHANGES)
def test_an_operator_of_another_library_changes_nothing_here(client, app, sim, clock, path, data):
    track(app, clock, 5)
    token = csrf_of(client, "sam", "/libraries/lib2")
    path, data = change(path, data)

    response = client.post(path, data=data | {"csrf_token": token}, **as_user("sam"))

    assert response.status_code == 404
    assert tracked_ids(app) == [5]
    assert_smh_changed_nothing(sim)
    with app.app_context():
        assert activity.list_activity("lib1") == []


def test_an_operator_tracks_and_untracks_and_the_log_names_them(client, app, clock, caplog):
    operator = as_user("ana")
    page = client.get("/libraries/lib1", **operator).get_data(as_text=True)
    assert '<form class="track"' in page
    token = csrf_of(client, "ana")

    with caplog.at_level(logging.INFO, logger="activity"):
        tracked = client.post(
            "/libraries/lib1/tasks", data={"task_ids": "6 7", "csrf_token": token}, **operator
        )
        untracked = client.post(
            "/libraries/lib1/tasks/6/untrack", data={"csrf_token": token}, **operator
        )

    assert (tracked.status_code, untracked.status_code) == (303, 303)
    assert tracked_ids(app) == [7]
    assert "ana from 127.0.0.1: POST /libraries/lib1/tasks -> 303" in caplog.text
    assert "ana from 127.0.0.1: POST /libraries/lib1/tasks/6/untrack -> 303" in caplog.text


@pytest.mark.parametrize(
    "path",
    [
        "/libraries/{id}",
        "/libraries/{id}/rows",
        "/libraries/{id}/tasks/5",
        "/libraries/{id}/tasks/5/detail",
        "/libraries/{id}/tasks.csv",
        "/libraries/{id}/tasks.json",
        "/api/v1/task/{id}/5",
    ],
)
def test_a_library_out_of_scope_answers_exactly_as_one_that_does_not_exist(
    client, app, clock, path
):
    track(app, clock, 5)
    scoped = as_user("sam")

    hidden = client.get(path.format(id="lib1"), **scoped)
    absent = client.get(path.format(id="nosuch"), **scoped)

    assert hidden.status_code == absent.status_code == 404
    assert hidden.get_data(as_text=True).replace("lib1", "X") == absent.get_data(
        as_text=True
    ).replace("nosuch", "X")
    assert client.get(path.format(id="lib1"), **as_user("ana")).status_code == 200


def test_a_scoped_user_sees_only_their_libraries_and_acts_only_there(client, app, clock):
    track(app, clock, 5)
    scoped = as_user("sam")
    token = csrf_of(client, "sam", "/libraries/lib2")

    index = client.get("/", **scoped).get_data(as_text=True)
    summary = client.get("/summary", **scoped).get_data(as_text=True)
    form = {"task_ids": "9", "csrf_token": token}
    elsewhere = client.post("/libraries/lib1/tasks/5/untrack", data=form, **scoped)
    own = client.post("/libraries/lib2/tasks", data=form, **scoped)

    for html in (index, summary):
        assert "Product photos" in html
        assert "Marketing assets" not in html
        assert "lib1" not in html
    assert elsewhere.status_code == 404
    assert tracked_ids(app) == [5]
    assert own.status_code == 303
    assert tracked_ids(app, "lib2") == [9]


@pytest.mark.parametrize(
    ("peer", "header", "status", "shown"),
    [
        ("10.0.0.5", "ana", 200, "Signed in as <strong>ana</strong>"),
        ("127.0.0.1", "sso-only", 200, "Signed in as <strong>sso-only</strong>"),
        ("::ffff:10.0.0.5", "vic", 200, "Signed in as <strong>vic</strong>"),
        ("10.0.0.5", "mallory", 403, "“mallory” is not a user of this dashboard."),
        ("10.0.0.6", "ana", 401, "Sign in to use this dashboard."),
        ("10.0.0.5", "", 401, "Sign in to use this dashboard."),
    ],
)
def test_the_proxy_header_signs_in_only_from_trusted_addresses(
    make_app, peer, header, status, shown
):
    app = make_app(
        SMH_AUTH_PROXY_HEADER="X-Remote-User", SMH_AUTH_PROXY_IPS="10.0.0.5,127.0.0.1/32"
    )

    response = app.test_client().get(
        "/", headers={"X-Remote-User": header}, environ_base={"REMOTE_ADDR": peer}
    )

    assert response.status_code == status
    assert shown in response.get_data(as_text=True)


def test_the_proxy_is_the_peer_even_behind_trusted_forwarding(make_app):
    app = make_app(
        SMH_AUTH_PROXY_HEADER="X-Remote-User", SMH_AUTH_PROXY_IPS="10.0.0.5", TRUSTED_PROXIES=1
    )
    client = app.test_client()

    from_proxy = client.get(
        "/",
        headers={"X-Remote-User": "ana", "X-Forwarded-For": "198.51.100.7"},
        environ_base={"REMOTE_ADDR": "10.0.0.5"},
    )
    spoofed = client.get(
        "/",
        headers={"X-Remote-User": "ana", "X-Forwarded-For": "10.0.0.5"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )

    assert from_proxy.status_code == 200
    assert spoofed.status_code == 401


def test_a_proxy_user_viewer_still_cannot_post(make_app):
    app = make_app(SMH_AUTH_PROXY_HEADER="X-Remote-User", SMH_AUTH_PROXY_IPS="127.0.0.1")
    response = app.test_client().post(
        "/libraries/lib1/tasks", data={"task_ids": "6"}, headers={"X-Remote-User": "vic"}
    )
    assert response.status_code == 403
    assert tracked_ids(app) == []


def test_without_users_every_page_says_there_is_no_sign_in(make_app, clock):
    app = make_app(SMH_USERS_FILE=None)
    track(app, clock, 5)
    client = app.test_client()

    for path in ("/", "/libraries/lib1", "/libraries/lib1/tasks/5", "/libraries/nosuch"):
        page = " ".join(client.get(path).get_data(as_text=True).split())
        assert "No sign-in:" in page
        assert "anyone who can reach this dashboard can read every library's tasks" in page
        assert "only people on the machine it runs on can track, untrack and re-check" in page
    assert '<form class="track"' in client.get("/libraries/lib1").get_data(as_text=True)
    response = client.post("/libraries/lib1/tasks/5/untrack", data={"csrf_token": csrf_of(client)})
    assert response.status_code == 303
    assert tracked_ids(app) == []


@pytest.mark.parametrize("users_file", [True, False], ids=["operator", "no-users"])
def test_read_only_turns_every_change_off(make_app, settings, sim, clock, users_file):
    users = settings["SMH_USERS_FILE"] if users_file else None
    app = make_app(SMH_READ_ONLY="1", SMH_USERS_FILE=users)
    track(app, clock, 5)
    client = app.test_client()
    who = as_user("ana") if users_file else {}

    page = client.get("/libraries/lib1", **who).get_data(as_text=True)
    task = client.get("/libraries/lib1/tasks/5", **who).get_data(as_text=True)
    posts = []
    for path, data in CHANGES:
        path, data = change(path, data)
        posts.append(client.post(path, data=data, **who))

    for html in (page, task):
        assert "Read-only:" in html
        assert 'method="post"' not in html
    assert [p.status_code for p in posts] == [403] * len(CHANGES)
    for post in posts:
        assert "read-only" in post.get_data(as_text=True)
    assert tracked_ids(app) == [5]
    assert_smh_changed_nothing(sim)
    assert ("No sign-in:" in page) is not users_file


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 303),
        ({"Origin": "http://localhost"}, 303),
        ({"Referer": "http://localhost/libraries/lib1"}, 303),
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Origin": "http://localhost:8080"}, 403),
        ({"Referer": "https://evil.example/libraries/lib1"}, 403),
    ],
)
def test_changes_from_another_origin_are_refused_even_with_a_token(client, app, headers, status):
    token = csrf_of(client)
    response = client.post(
        "/libraries/lib1/tasks",
        data={"task_ids": "6", "csrf_token": token},
        headers=headers,
        **as_user("ana"),
    )
    assert response.status_code == status
    assert tracked_ids(app) == ([6] if status == 303 else [])


@pytest.mark.parametrize(("scheme", "secure"), [("http", False), ("https", True)])
def test_session_cookie_is_httponly_lax_and_secure_over_https(client, scheme, secure):
    response = client.get(f"{scheme}://localhost/libraries/lib1", **as_user("ana"))
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert ("Secure" in cookie) is secure


@pytest.mark.parametrize("path", ["/", "/summary", "/libraries/lib1/rows", "/api/v1/task/lib1/5"])
def test_answers_behind_sign_in_are_never_stored(client, sim, path):
    sim.add_task("lib1", task_id=5)
    response = client.get(path, **as_user("vic"))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "who", "status"),
    [
        ("/libraries/lib1", {}, 401),
        ("/libraries/lib1", as_user("sam"), 404),
        ("/libraries/lib1/tasks", as_user("vic"), 403),
    ],
)
def test_security_headers_stay_on_refusals(client, path, who, status):
    method = client.post if path.endswith("/tasks") else client.get
    response = method(path, **who)
    assert response.status_code == status
    for name in SECURITY_HEADERS:
        assert name in response.headers


def test_no_answer_shows_a_password_hash(client, app, clock):
    track(app, clock, 5)
    for path in ("/", "/libraries/lib1", "/libraries/lib1/tasks/5", "/api/openapi.json"):
        text = client.get(path, **as_user("ana")).get_data(as_text=True)
        assert not [h for h in HASHES.values() if h in text]
        assert "pbkdf2" not in text
