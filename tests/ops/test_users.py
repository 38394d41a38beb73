import os
import pty
import select
import subprocess
import sys

import pytest
from werkzeug.security import check_password_hash, generate_password_hash

from smh_dashboard import settings as config
from smh_dashboard.domain import users

HASH = generate_password_hash("pw", "pbkdf2:sha256:1000")


def load(tmp_path, toml, library_ids=("lib1", "lib2")):
    path = tmp_path / "users.toml"
    path.write_text(toml)
    return users.load_users({"SMH_USERS_FILE": str(path)}, library_ids)


def test_users_file_gives_names_roles_and_scopes(tmp_path):
    loaded = load(
        tmp_path,
        f"""
[[user]]
name = "ana"
password_hash = "{HASH}"
role = "operator"

[[user]]
name = "vic"
password_hash = "{HASH}"
role = "viewer"
libraries = ["lib2"]
""",
    )
    assert list(loaded) == ["ana", "vic"]
    assert (loaded["ana"].role, loaded["ana"].libraries) == (users.Role.OPERATOR, None)
    assert (loaded["vic"].role, loaded["vic"].libraries) == (users.Role.VIEWER, {"lib2"})
    assert HASH not in repr(loaded)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ('name = "ana"\nrole = "admin"', 'user #1 (ana): role must be "viewer" or "operator"'),
        ('name = "ana"\nrole = "operator"\npassword_hash = "hunter2"', "plain text?"),
        ('name = "ana"\nrole = "operator"\npassword_hash = "scrypt:hunter2"', "plain text?"),
        ('name = "ana"\nrole = "viewer"\nlibraries = ["lib9"]', "names lib9, not configured"),
        ('name = "ana"\nrole = "viewer"\nlibraries = []', "non-empty list of library ids"),
        ('name = "ana"\nrole = "viewer"\nlibraries = "lib1"', "non-empty list of library ids"),
        ('name = "ana"\nrole = "viewer"\npassword = "x"', "user #1: unknown key(s) password"),
        ('name = "a:b"\nrole = "viewer"', "name must not contain ':'"),
        ('name = ""\nrole = "viewer"', "name must be a string"),
        ('role = "viewer"', "user #1: name must be a string"),
    ],
)
def test_a_bad_user_stops_start_up_naming_the_file_and_entry(tmp_path, entries, message):
    with pytest.raises(config.ConfigError) as caught:
        load(tmp_path, f"[[user]]\n{entries}\n")
    assert f"SMH_USERS_FILE {tmp_path / 'users.toml'}, user #1" in str(caught.value)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_duplicate_name_stops_start_up(tmp_path):
    entry = f'[[user]]\nname = "ana"\nrole = "viewer"\npassword_hash = "{HASH}"\n'
    with pytest.raises(config.ConfigError, match="user #2: user 'ana' is listed twice"):
        load(tmp_path, entry + entry)


@pytest.mark.parametrize(
    ("toml", "message"),
    [("[[user]\n", "is not valid TOML"), ('title = "x"\n', "lists no [[user]]")],
)
def test_an_unreadable_users_file_names_the_setting(tmp_path, toml, message):
    with pytest.raises(config.ConfigError, match="SMH_USERS_FILE") as caught:
        load(tmp_path, toml)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SMH_USERS_FILE": "/nonexistent/users.toml"}, "SMH_USERS_FILE: cannot read"),
        ({"SMH_READ_ONLY": "maybe"}, "SMH_READ_ONLY must be 1 or 0"),
        ({"SMH_AUTH_PROXY_HEADER": "X-Remote-User"}, "go together"),
        ({"SMH_AUTH_PROXY_IPS": "10.0.0.5"}, "go together"),
        (
            {"SMH_AUTH_PROXY_HEADER": "X-Remote-User", "SMH_AUTH_PROXY_IPS": "10.0.0.300"},
            "SMH_AUTH_PROXY_IPS must be addresses or networks",
        ),
        (
            {"SMH_AUTH_PROXY_HEADER": "X-Remote-User", "SMH_AUTH_PROXY_IPS": "10.0.0.5"},
            "SMH_AUTH_PROXY_HEADER needs SMH_USERS_FILE",
        ),
    ],
)
def test_bad_sign_in_settings_stop_start_up(
    settings, make_app, monkeypatch, tmp_path, environ, message
):
    settings.clear()  # the environment alone configures this start
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as caught:
        make_app(FLASK_SECRET_KEY="k")
    assert str(caught.value).startswith("Configuration error:")
    assert message in str(caught.value)


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("true", True), ("0", False)])
def test_read_only_is_a_flag(make_app, raw, expected):
    app = make_app(SMH_READ_ONLY=raw)
    assert app.config["SMH_READ_ONLY"] is expected


def test_hash_password_reads_standard_input_and_prints_only_the_hash(runner):
    result = runner.invoke(args=["hash-password"], input="correct horse\n")

    assert result.exit_code == 0, result.output
    assert "correct horse" not in result.output
    last = result.output.splitlines()[-1]
    assert last.startswith("scrypt:")
    assert check_password_hash(last, "correct horse")


def test_hash_password_refuses_an_empty_password(runner):
    result = runner.invoke(args=["hash-password"], input="\n")
    assert result.exit_code == 2
    assert "The password is empty." in result.output


def test_hash_password_on_a_terminal_asks_twice_without_echo(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SMH_", "FLASK_"))}
    environ |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "FLASK_APP": "app"}
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "hash-password"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        env=environ,
    )
    os.close(secondary)
    seen = read_until(primary, b"Password: ")
    os.write(primary, b"open sesame\n")
    seen += read_until(primary, b"confirmation: ")
    os.write(primary, b"open sesame\n")
    seen += read_until(primary, None)
    process.wait(timeout=30)
    os.close(primary)

    output = seen.decode()
    assert process.returncode == 0, output
    assert "open sesame" not in output
    assert check_password_hash(output.split()[-1], "open sesame")


def read_until(descriptor, marker):
    seen = b""
    while marker is None or marker not in seen:
        ready, _, _ = select.select([descriptor], [], [], 30)
        assert ready, f"no prompt after {seen!r}"
        try:
            chunk = os.read(descriptor, 1024)
        except OSError:  # the other side closed: the command has ended
            break
        if not chunk:
            break
        seen += chunk
    return seen
