"""The dashboard's configuration: defaults, the environment, and the media libraries it watches."""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULTS = {
    "SMH_LIBRARY_ID": None,
    "SMH_LIBRARY_NAME": None,
    "SMH_LIBRARY_SECRET": None,
    "SMH_ACCESS_TOKEN": None,
    "SMH_USER_ID": None,
    "SMH_BASE_URL": None,
    "SMH_LIBRARIES_FILE": None,
    "SMH_LIBRARIES": (),
    "SMH_TOKEN_PERIOD": 86400,
    "SMH_TIMEOUT": 10.0,
    "SMH_RETRIES": 1,
    "SMH_MAX_IDS_PER_CALL": 100,
    "SMH_CACHE_SECONDS": 5,
    "SMH_POLL_SECONDS": 3.0,
    "SMH_MAX_BACKOFF_SECONDS": 60.0,
    "SMH_UNKNOWN_GRACE_SECONDS": 120.0,
    "DATABASE_URL": None,
    "FLASK_SECRET_KEY": None,
    "TRUSTED_PROXIES": 0,
    "CACHE_TYPE": "SimpleCache",
    # SimpleCache prunes past its threshold (500 by default); one entry is kept per polled task.
    "CACHE_THRESHOLD": 100_000,
    "TASKS_PER_PAGE": 50,
}

NUMBERS = {
    "SMH_TOKEN_PERIOD": (int, 1200),
    "SMH_TIMEOUT": (float, 0.1),
    "SMH_RETRIES": (int, 0),
    "SMH_MAX_IDS_PER_CALL": (int, 1),
    "SMH_CACHE_SECONDS": (int, 0),
    "SMH_POLL_SECONDS": (float, 2.0),
    "SMH_MAX_BACKOFF_SECONDS": (float, 2.0),
    "SMH_UNKNOWN_GRACE_SECONDS": (float, 0.0),
    "TRUSTED_PROXIES": (int, 0),
    "CACHE_THRESHOLD": (int, 1),
    "TASKS_PER_PAGE": (int, 1),
}

# Settings that only code can give: a list of libraries has no sensible one-string form.
CODE_ONLY = {"SMH_LIBRARIES"}
LIBRARY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
LIBRARY_KEYS = {"id", "name", "secret", "secret_env", "token", "token_env", "user_id", "base_url"}


class ConfigError(ValueError):
    """A configuration value that the dashboard cannot start with; the text names the setting."""


@dataclass(frozen=True)
class Library:
    """One SMH media library the dashboard watches, with the credential to reach it."""

    id: str
    name: str
    secret: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    user_id: str | None = None
    base_url: str | None = None


def from_environ(environ: Mapping[str, str] = os.environ) -> dict:
    """Return the settings the environment gives, as raw strings (any CACHE_* passes through)."""
    return {
        name: value
        for name, value in environ.items()
        if (name in DEFAULTS or name.startswith("CACHE_"))
        and name not in CODE_ONLY
        and value.strip() != ""
    }


def check_settings(config: dict) -> None:
    """Turn numeric settings into numbers in place, naming any setting that is wrong."""
    for name, (kind, least) in NUMBERS.items():
        raw = config.get(name)
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            noun = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{name} must be {noun}, not {raw!r}") from None
        if not math.isfinite(value) or value < least:
            raise ConfigError(f"{name} must be at least {least:g}, not {raw!r}")
        config[name] = value


def load_libraries(config: Mapping, environ: Mapping[str, str] = os.environ) -> list[Library]:
    """Read the libraries from SMH_LIBRARY_* settings, SMH_LIBRARIES and SMH_LIBRARIES_FILE."""
    default_base_url = _base_url(config.get("SMH_BASE_URL"), "SMH_BASE_URL")
    entries: list[tuple[str, Mapping]] = []
    if config.get("SMH_LIBRARY_ID"):
        single = {
            "id": config["SMH_LIBRARY_ID"],
            "name": config.get("SMH_LIBRARY_NAME"),
            "secret": config.get("SMH_LIBRARY_SECRET"),
            "token": config.get("SMH_ACCESS_TOKEN"),
            "user_id": config.get("SMH_USER_ID"),
        }
        entries.append(("SMH_LIBRARY_ID", single))
    elif config.get("SMH_LIBRARY_SECRET") or config.get("SMH_ACCESS_TOKEN"):
        raise ConfigError("SMH_LIBRARY_ID is not set, but a secret or access token is")
    entries += [(f"SMH_LIBRARIES[{i}]", e) for i, e in enumerate(config.get("SMH_LIBRARIES") or ())]
    if config.get("SMH_LIBRARIES_FILE"):
        entries += _read_libraries_file(config["SMH_LIBRARIES_FILE"])

    libraries: dict[str, Library] = {}
    for where, entry in entries:
        library = _library(where, entry, environ, default_base_url)
        if library.id in libraries:
            raise ConfigError(f"{where}: library {library.id} is configured twice")
        libraries[library.id] = library
    return list(libraries.values())


def _read_libraries_file(path: str) -> list[tuple[str, Mapping]]:
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"SMH_LIBRARIES_FILE: cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"SMH_LIBRARIES_FILE: {path} is not valid TOML: {error}") from None
    tables = data.get("library", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"SMH_LIBRARIES_FILE: {path} must list libraries as [[library]] tables")
    if not tables:
        raise ConfigError(f"SMH_LIBRARIES_FILE: {path} lists no [[library]]")
    return [(f"SMH_LIBRARIES_FILE {path}, library #{i + 1}", t) for i, t in enumerate(tables)]


def _library(
    where: str, entry: Mapping, environ: Mapping[str, str], base_url: str | None
) -> Library:
    unknown = set(entry) - LIBRARY_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    library_id = entry.get("id")
    if not isinstance(library_id, str) or not LIBRARY_ID.match(library_id):
        raise ConfigError(
            f"{where}: library id {library_id!r} must be letters, digits, '-' or '_' (max 64)"
        )
    secret = _credential(where, entry, "secret", environ)
    token = _credential(where, entry, "token", environ)
    if bool(secret) == bool(token):
        raise ConfigError(
            f"{where}: library {library_id} needs exactly one of a secret "
            "(SMH_LIBRARY_SECRET / secret / secret_env) or an access token "
            "(SMH_ACCESS_TOKEN / token / token_env)"
        )
    for key in ("name", "user_id"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise ConfigError(f"{where}: {key} must be a string")
    return Library(
        id=library_id,
        name=entry.get("name") or library_id,
        secret=secret,
        token=token,
        user_id=entry.get("user_id") or None,
        base_url=_base_url(entry.get("base_url"), f"{where}: base_url") or base_url,
    )


def _credential(where: str, entry: Mapping, key: str, environ: Mapping[str, str]) -> str | None:
    value, variable = entry.get(key), entry.get(f"{key}_env")
    if value is not None and variable is not None:
        raise ConfigError(f"{where}: give {key} or {key}_env, not both")
    if variable is not None:
        if not isinstance(variable, str) or not environ.get(variable):
            raise ConfigError(f"{where}: {key}_env names {variable!r}, which is not set")
        return environ[variable]
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string")
    return value or None


def _base_url(value: object, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        raise ConfigError(f"{name} must be an http(s) URL, not {value!r}")
    return value.rstrip("/")
