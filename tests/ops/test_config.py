import stat

import pytest
from flask import Flask

from smh_dashboard import settings as config
from smh_dashboard.domain import libraries


def libraries_from(values, environ=None):
    merged = dict(config.DEFAULTS) | values
    return libraries.load_libraries(merged, environ or {})


def test_one_library_from_the_environment_with_a_secret():
    environ = {"SMH_LIBRARY_ID": "smh1", "SMH_LIBRARY_SECRET": "s3", "SMH_USER_ID": "ops"}
    (library,) = libraries_from(config.from_environ(environ))
    assert (library.id, library.name, library.secret, library.user_id) == (
        "smh1",
        "smh1",
        "s3",
        "ops",
    )
    assert library.token is None
    assert "s3" not in repr(library)


def test_one_library_with_a_fixed_token_and_base_url():
    (library,) = libraries_from(
        {"SMH_LIBRARY_ID": "smh1", "SMH_ACCESS_TOKEN": "tok", "SMH_BASE_URL": "http://127.0.0.1:9/"}
    )
    assert library.token == "tok"
    assert library.base_url == "http://127.0.0.1:9"


def test_no_library_configured_is_allowed():
    assert libraries_from({}) == []


def test_libraries_file_with_secrets_from_named_variables(tmp_path):
    path = tmp_path / "libraries.toml"
    path.write_text(
        """
[[library]]
id = "smh-marketing"
name = "Marketing assets"
secret_env = "MARKETING_SECRET"
user_id = "ops"

[[library]]
id = "smh-photos"
name = "Product photos"
token = "fixed-token"
base_url = "https://smh-photos.example.test"
"""
    )
    marketing, photos = libraries_from(
        {"SMH_LIBRARIES_FILE": str(path), "SMH_BASE_URL": "http://127.0.0.1:1"},
        {"MARKETING_SECRET": "m-secret"},
    )
    assert (marketing.name, marketing.secret, marketing.user_id) == (
        "Marketing assets",
        "m-secret",
        "ops",
    )
    assert marketing.base_url == "http://127.0.0.1:1"
    assert (photos.token, photos.base_url) == ("fixed-token", "https://smh-photos.example.test")


@pytest.mark.parametrize(
    ("toml", "environ", "message"),
    [
        (
            '[[library]]\nid = "a"\nsecret_env = "NOPE"\n',
            {},
            "secret_env names 'NOPE', which is not set",
        ),
        ('[[library]]\nid = "a"\n', {}, "needs exactly one of a secret"),
        ('[[library]]\nid = "a"\nsecret = "s"\ntoken = "t"\n', {}, "needs exactly one of a secret"),
        ('[[library]]\nid = "a b"\nsecret = "s"\n', {}, "library id 'a b'"),
        ('[[library]]\nid = "a"\nsecret = "s"\ncolour = "red"\n', {}, "unknown key(s) colour"),
        ('[[library]]\nid = "a"\nsecret = "s"\n[[library]]\nid = "a"\nsecret = "t"\n', {}, "twice"),
        (
            '[[library]]\nid = "a"\nsecret = "s"\nbase_url = "ftp://x"\n',
            {},
            "must be an http(s) URL",
        ),
        ("[[library]\nid = ", {}, "is not valid TOML"),
        ('title = "nothing"\n', {}, "lists no [[library]]"),
    ],
)
def test_bad_libraries_file_names_the_setting(tmp_path, toml, environ, message):
    path = tmp_path / "libraries.toml"
    path.write_text(toml)
    with pytest.raises(config.ConfigError) as caught:
        libraries_from({"SMH_LIBRARIES_FILE": str(path)}, environ)
    assert "SMH_LIBRARIES_FILE" in str(caught.value)
    assert message in str(caught.value)


def test_missing_libraries_file_names_the_setting(tmp_path):
    with pytest.raises(config.ConfigError, match="SMH_LIBRARIES_FILE: cannot read"):
        libraries_from({"SMH_LIBRARIES_FILE": str(tmp_path / "absent.toml")})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SMH_POLL_SECONDS": "1"}, "SMH_POLL_SECONDS must be at least 2"),
        ({"SMH_POLL_SECONDS": "soon"}, "SMH_POLL_SECONDS must be a number"),
        ({"SMH_POLL_SECONDS": "nan"}, "SMH_POLL_SECONDS must be at least 2"),
        ({"SMH_TIMEOUT": "inf"}, "SMH_TIMEOUT must be at least 0.1"),
        ({"SMH_CACHE_SECONDS": "-1"}, "SMH_CACHE_SECONDS must be at least 0"),
        ({"SMH_CACHE_SECONDS": "2.5"}, "SMH_CACHE_SECONDS must be a whole number"),
        ({"SMH_TOKEN_PERIOD": "60"}, "SMH_TOKEN_PERIOD must be at least 1200"),
        ({"SMH_LIBRARY_SECRET": "s"}, "SMH_LIBRARY_ID is not set"),
        (
            {"SMH_LIBRARY_ID": "x", "SMH_BASE_URL": "localhost"},
            "SMH_BASE_URL must be an http(s) URL",
        ),
        ({"SMH_LIBRARY_ID": "x"}, "needs exactly one of a secret"),
    ],
)
def test_bad_environment_stops_start_up_with_a_message(
    settings, make_app, monkeypatch, tmp_path, environ, message
):
    settings.clear()  # the environment alone configures this start
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as caught:
        make_app(FLASK_SECRET_KEY="k")
    assert message in str(caught.value)
    assert str(caught.value).startswith("Configuration error:")


def test_environment_then_overrides(make_app, monkeypatch):
    monkeypatch.setenv("SMH_CACHE_SECONDS", "9")
    monkeypatch.setenv("SMH_POLL_SECONDS", "4")
    app = make_app(SMH_POLL_SECONDS=7)
    assert app.config["SMH_CACHE_SECONDS"] == 9
    assert app.config["SMH_POLL_SECONDS"] == 7


def test_secret_key_is_kept_in_the_instance_folder(settings, make_app, tmp_path, monkeypatch):
    # Flask asks auto_find_instance_path for the folder when none is given: here, one of the
    # test's own, so that the test never writes into the checkout.
    instance = tmp_path / "instance"
    monkeypatch.setattr(Flask, "auto_find_instance_path", lambda self: str(instance))
    settings.pop("FLASK_SECRET_KEY")
    first = make_app()
    second = make_app()
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) == 64
    assert first.instance_path == str(instance)
    key = instance / "secret_key"
    assert key.read_text() == first.config["SECRET_KEY"]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_cache_settings_pass_through_and_library_lists_stay_in_code():
    environ = {"CACHE_KEY_PREFIX": "smh-", "SMH_LIBRARIES": "[oops]", "HOME": "/root"}
    assert config.from_environ(environ) == {"CACHE_KEY_PREFIX": "smh-"}
