"""The attacks of issue 19, each tried as an attacker would: every one must fail now."""

import hashlib
import logging
import os
import pickle
import re
import threading
import time

import pytest
import redis
from test_auth import HASHES, USERS, as_user

from smh_dashboard.storage import listings
from smh_dashboard.web import throttle

REBOUND = "evil.example:5077"


def csrf_of(client, path="/libraries/lib1", **kwargs):
    page = client.get(path, **kwargs).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def tracked_ids(app):
    with app.app_context():
        return [t.task_id for t in listings.list_tasks("lib1", None)]


@pytest.fixture
def users_file(settings, tmp_path, other_secret):
    """A users file (an operator, a viewer, one scoped to lib2), with lib2 configured."""
    settings["SMH_LIBRARIES"] = [{"id": "lib2", "name": "Product photos", "secret": other_secret}]
    path = tmp_path / "users.toml"
    path.write_text(USERS)
    return str(path)


# 1. DNS rebinding: a hostile name rebound to the dashboard's address reads a page and clears.


def test_a_rebound_host_name_gets_400_and_starts_no_clear(client, sim):
    token = csrf_of(client)

    page = client.get("/libraries/lib1", headers={"Host": REBOUND})
    posted = client.post(
        "/libraries/lib1/clear-history",
        data={"csrf_token": token, "confirm": "lib1"},
        headers={"Host": REBOUND, "Origin": f"http://{REBOUND}"},
    )
    api = client.get("/api/v1/task/lib1/5", headers={"Host": REBOUND})

    assert page.status_code == posted.status_code == api.status_code == 400
    assert "does not answer to the host name" in page.get_data(as_text=True)
    assert "csrf_token" not in page.get_data(as_text=True)
    assert api.get_json()["code"] == "HostNotAllowed"
    assert sim.calls["history.clear"] == 0
    assert sim.calls["task.query"] == 0
    assert client.get("/healthz", headers={"Host": REBOUND}).status_code == 200


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:5000", "127.0.0.1:5000", "127.0.0.1", "smh.example.com"]
)
def test_the_dashboards_own_names_still_answer(make_app, host):
    app = make_app(SMH_DASHBOARD_URL="https://smh.example.com/")
    assert app.test_client().get("/", headers={"Host": host}).status_code == 200


def test_allowed_hosts_are_a_setting(make_app):
    client = make_app(SMH_ALLOWED_HOSTS="dash.internal, 10.0.0.8").test_client()
    assert client.get("/", headers={"Host": "dash.internal:8000"}).status_code == 200
    assert client.get("/", headers={"Host": "10.0.0.8"}).status_code == 200
    assert client.get("/", headers={"Host": "localhost"}).status_code == 400


def test_a_foreign_host_is_refused_before_sign_in(make_app, users_file):
    client = make_app(SMH_USERS_FILE=users_file).test_client()
    assert client.get("/", headers={"Host": REBOUND}).status_code == 400
    assert client.get("/", headers={"Host": REBOUND}, **as_user("ana")).status_code == 400


def test_the_origin_is_compared_with_the_allowed_hosts_not_the_request(client, app):
    token = csrf_of(client)
    form = {"task_ids": "6", "csrf_token": token}

    other_name = client.post(
        "/libraries/lib1/tasks", data=form, headers={"Origin": "http://127.0.0.1"}
    )
    other_port = client.post(
        "/libraries/lib1/tasks", data=form, headers={"Origin": "http://127.0.0.1:8080"}
    )

    assert other_name.status_code == 303
    assert other_port.status_code == 403
    assert tracked_ids(app) == [6]


# 2. Without a users file, every client on any address was an operator.


def test_without_users_only_loopback_clients_change_anything(make_app, caplog):
    with caplog.at_level(logging.WARNING):
        app = make_app()
    assert "only clients on this machine (loopback) may change anything" in caplog.text
    client = app.test_client()
    neighbour = {"environ_base": {"REMOTE_ADDR": "192.0.2.10"}}
    token = csrf_of(client)

    page = client.get("/libraries/lib1", **neighbour).get_data(as_text=True)
    refused = client.post(
        "/libraries/lib1/tasks", data={"task_ids": "6", "csrf_token": token}, **neighbour
    )
    api = client.get("/api/v1/task/lib1/5", **neighbour)
    local = client.post("/libraries/lib1/tasks", data={"task_ids": "7", "csrf_token": token})

    assert '<form class="track"' not in page
    assert refused.status_code == 403
    assert "only from the machine it runs on" in refused.get_data(as_text=True)
    assert api.headers["X-Dashboard-Access"] == "read-only; no sign-in, changes from loopback only"
    assert local.status_code == 303
    assert tracked_ids(app) == [7]


def test_behind_a_local_proxy_the_forwarded_client_is_the_one_that_counts(make_app):
    client = make_app(TRUSTED_PROXIES=1).test_client()
    token = csrf_of(client)

    response = client.post(
        "/libraries/lib1/tasks",
        data={"task_ids": "6", "csrf_token": token},
        headers={"X-Forwarded-For": "198.51.100.7"},
    )

    assert response.status_code == 403


# 3. Throttling locked out everyone behind one address, and could be raced.


def test_one_users_typos_do_not_lock_out_another_user(make_app, users_file, caplog):
    client = make_app(SMH_USERS_FILE=users_file).test_client()
    address = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}

    with caplog.at_level(logging.INFO):
        failed = [client.get("/", **as_user("ana", "typo"), **address) for _ in range(10)]
        ana = client.get("/", **as_user("ana"), **address)
    vic = client.get("/", **as_user("vic"), **address)

    assert {r.status_code for r in failed} == {401}
    assert ana.status_code == 429
    assert vic.status_code == 200
    assert "sign-in failed: user 'ana' from 203.0.113.9" in caplog.text
    assert "sign-in refused, too many failures: user 'ana' from 203.0.113.9" in caplog.text


@pytest.mark.backends
def test_parallel_wrong_passwords_are_checked_at_most_the_limit(make_app, users_file, monkeypatch):
    client = make_app(SMH_USERS_FILE=users_file).test_client()
    gate = threading.Event()
    lock = threading.Lock()
    seen = {"checks": 0, "now": 0, "most": 0, "answered": 0}
    real = hashlib.pbkdf2_hmac

    def slow_hash(*args, **kwargs):
        with lock:
            seen["checks"] += 1
            seen["now"] += 1
            seen["most"] = max(seen["most"], seen["now"])
        gate.wait(timeout=30)
        with lock:
            seen["now"] -= 1
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", slow_hash)
    answers = []

    def guess():
        response = client.get("/", **as_user("ana", "guess"))
        with lock:
            answers.append(response.status_code)
            seen["answered"] += 1

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for thread in threads:
        thread.start()
    # Bounded: once every guess is either being hashed or answered, let the hashes finish.
    for _ in range(600):
        with lock:
            if seen["now"] + seen["answered"] >= 20:
                break
        time.sleep(0.05)
    gate.set()
    for thread in threads:
        thread.join(timeout=60)

    assert len(answers) == 20
    assert answers.count(401) <= throttle.MAX_FAILURES
    assert answers.count(401) + answers.count(429) == 20
    assert seen["checks"] <= throttle.MAX_FAILURES
    assert seen["most"] <= throttle.MAX_CONCURRENT_CHECKS


# 4. Redis values were pickled: whoever can write to Redis ran code in the dashboard.


class Planted:
    """A pickle that writes a file when it is loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.servers
def test_a_pickle_planted_in_redis_is_never_run(client, sim, redis_url, tmp_path):
    task_id = sim.add_task("lib1")
    marker = tmp_path / "pwned"
    with redis.Redis.from_url(redis_url) as planter:
        planter.set(
            f"flask_cache_smh-task/lib1/{task_id}", b"!" + pickle.dumps((0.0, Planted(marker)))
        )
        planter.set("flask_cache_smh-outage/lib1", b"!" + pickle.dumps(Planted(marker)))

    response = client.get(f"/api/v1/task/lib1/{task_id}")
    page = client.get("/libraries/lib1")

    assert not os.path.exists(marker)
    assert response.status_code == page.status_code == 200
    assert response.get_json() == [{"taskId": task_id, "status": 202}]
    assert sim.calls["task.query"] == 1
    with redis.Redis.from_url(redis_url) as reader:
        kept = reader.get(f"flask_cache_smh-task/lib1/{task_id}")
    assert b"pickle" not in kept and not kept.startswith(b"!")


# 8. TRUSTED_PROXIES trusted every X-Forwarded-* header with one count.


def test_forwarded_host_and_prefix_need_their_own_settings(make_app):
    client = make_app(TRUSTED_PROXIES=1).test_client()
    token = csrf_of(client)
    forwarded = {
        "X-Forwarded-For": "127.0.0.1",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Prefix": "/evil",
    }

    page = client.get("/libraries/lib1", headers=forwarded).get_data(as_text=True)
    posted = client.post(
        "/libraries/lib1/tasks",
        data={"task_ids": "6", "csrf_token": token},
        headers=forwarded | {"Origin": "http://evil.example"},
    )

    assert "/evil/" not in page
    assert posted.status_code == 403


def test_forwarded_host_and_prefix_are_taken_when_configured(make_app):
    app = make_app(
        TRUSTED_PROXIES=1,
        TRUSTED_PROXY_HOST_HOPS=1,
        TRUSTED_PROXY_PREFIX_HOPS=1,
        SMH_ALLOWED_HOSTS="smh.example.com",
    )
    forwarded = {"X-Forwarded-Host": "smh.example.com", "X-Forwarded-Prefix": "/smh"}

    page = app.test_client().get("/libraries/lib1", headers=forwarded).get_data(as_text=True)

    assert 'href="/smh/static/dashboard.css' in page


# 9. No sign-out, no HSTS, and a dummy hash that told which user names exist.


def test_signing_out_makes_the_browser_forget_basic_credentials(make_app, users_file):
    client = make_app(SMH_USERS_FILE=users_file).test_client()
    page = client.get("/", **as_user("vic")).get_data(as_text=True)

    response = client.get("/sign-out", **as_user("vic"))

    assert 'href="/sign-out"' in page
    assert response.status_code == 401
    assert response.headers["Clear-Site-Data"] == '"cookies"'
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert 'realm="SMH dashboard"' not in response.headers["WWW-Authenticate"]
    assert "You are signed out" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("seconds", "scheme", "sent"), [(0, "https", False), (600, "http", False), (600, "https", True)]
)
def test_strict_transport_security_is_opt_in(make_app, seconds, scheme, sent):
    client = make_app(SMH_HSTS_SECONDS=seconds).test_client()
    response = client.get(f"{scheme}://localhost/")
    assert ("Strict-Transport-Security" in response.headers) is sent
    if sent:
        assert response.headers["Strict-Transport-Security"] == "max-age=600"


def test_an_unknown_name_costs_the_same_hash_as_a_known_one(make_app, users_file, monkeypatch):
    client = make_app(SMH_USERS_FILE=users_file).test_client()
    calls = []
    real_pbkdf2, real_scrypt = hashlib.pbkdf2_hmac, hashlib.scrypt

    def pbkdf2(name, password, salt, iterations, *args):
        calls.append(("pbkdf2", name, iterations))
        return real_pbkdf2(name, password, salt, iterations, *args)

    def scrypt(password, **kwargs):
        calls.append(("scrypt", kwargs.get("n")))
        return real_scrypt(password, **kwargs)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", pbkdf2)
    monkeypatch.setattr(hashlib, "scrypt", scrypt)

    assert client.get("/", **as_user("ana", "wrong")).status_code == 401
    assert client.get("/", **as_user("nobody", "wrong")).status_code == 401

    assert HASHES["ana"].startswith("pbkdf2:sha256:1000$")
    assert calls == [("pbkdf2", "sha256", 1000)] * 2
