"""The dashboard's settings: defaults in code, then what the environment gives, checked."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping
from enum import Enum
from typing import TypeVar
from urllib.parse import urlsplit

from smh_dashboard.smh import codes

# The names the dashboard answers to out of the box: the machine it runs on.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
# How long a SQLite writer waits for its turn by default (the database code uses it too).
DATABASE_BUSY_SECONDS = 15.0

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
    "SMH_MAX_IDS_PER_CALL": codes.MAX_IDS_PER_CALL,
    "SMH_CACHE_SECONDS": 5,
    "SMH_POLL_SECONDS": 3.0,
    "SMH_MAX_BACKOFF_SECONDS": 60.0,
    "SMH_UNKNOWN_GRACE_SECONDS": 120.0,
    "DATABASE_URL": None,
    # Shared by every worker and instance: the answer cache and the refresh lease (see
    # coordination.py). Unset, each process keeps its own.
    "REDIS_URL": None,
    "FLASK_SECRET_KEY": None,
    # Proxies in front whose X-Forwarded-For and -Proto are believed; X-Forwarded-Host (and
    # -Port) and -Prefix are believed only from as many proxies as their own settings say.
    "TRUSTED_PROXIES": 0,
    "TRUSTED_PROXY_HOST_HOPS": 0,
    "TRUSTED_PROXY_PREFIX_HOPS": 0,
    # The host names the dashboard answers to; unset, loopback names and SMH_DASHBOARD_URL's.
    "SMH_ALLOWED_HOSTS": None,
    # Strict-Transport-Security's max-age on HTTPS answers; 0 sends none.
    "SMH_HSTS_SECONDS": 0,
    # Unset, the answer cache lives in Redis if REDIS_URL is set, else in this process.
    "CACHE_TYPE": None,
    # SimpleCache prunes past its threshold (500 by default); one entry is kept per polled task.
    "CACHE_THRESHOLD": 100_000,
    "TASKS_PER_PAGE": 50,
    # Pages answer from the store at once and a due refresh runs in a background thread; off,
    # the request runs it itself (one-shot tools, and tests that check what a refresh records).
    "SMH_REFRESH_IN_BACKGROUND": True,
    # Flask's request limits, far tighter than its own defaults: the largest form people send, a
    # hundred task ids and a label, is a few KB. A bigger request is refused with 413, unread.
    "MAX_CONTENT_LENGTH": 256 * 1024,
    # These two bound multipart forms only (a text field, the number of fields): Werkzeug reads
    # an urlencoded body whole, which MAX_CONTENT_LENGTH already bounds.
    "MAX_FORM_MEMORY_SIZE": 64 * 1024,
    "MAX_FORM_PARTS": 50,
    "SMH_USERS_FILE": None,
    "SMH_AUTH_PROXY_HEADER": None,
    "SMH_AUTH_PROXY_IPS": (),
    "SMH_READ_ONLY": False,
    # Who may read /metrics: off (404), signed-in (people in the users file), or open to anyone.
    "METRICS": "off",
    "LOG_FORMAT": "text",
    # Where people reach the dashboard (https://smh.example.com/dash): messages link to task
    # pages, and the watcher has no request to learn the address from.
    "SMH_DASHBOARD_URL": None,
    "SMH_WEBHOOK_URL": None,
    "SMH_WEBHOOK_FORMAT": None,
    "SMH_WEBHOOK_SECRET": None,
    "SMH_WEBHOOK_TIMEOUT": 10.0,
    # A failed delivery is tried again after this, doubling each time, until it is a day old.
    "SMH_WEBHOOK_RETRY_SECONDS": 30.0,
    "SMH_WEBHOOK_GIVE_UP_SECONDS": 86400.0,
    # How long a SQLite writer waits for the write lock (other writers) before the request fails.
    "SMH_DATABASE_BUSY_SECONDS": DATABASE_BUSY_SECONDS,
    # Days records are kept once they are done with; 0 keeps them for good (see pruning.py).
    "SMH_KEEP_FINISHED_DAYS": 365.0,
    "SMH_KEEP_DELIVERED_DAYS": 30.0,
    "SMH_KEEP_ACTIVITY_DAYS": 0.0,
    # Bounds on what one library or one person can make the dashboard hold.
    "SMH_MAX_TRACKED_PER_LIBRARY": 100_000,
    "SMH_MAX_EXPORTS_PER_USER": 2,
    "SMH_MAX_API_WAITS_PER_USER": 4,
    # How long the JSON API answers from the record while SMH fails, before it says SMH's error.
    "SMH_API_MAX_STALE_SECONDS": 60.0,
    # A guided clear waits this long after switching history off before it clears, and tries
    # that many times while SMH still says history is on.
    "SMH_HISTORY_SETTLE_SECONDS": 60.0,
    "SMH_HISTORY_SETTLE_TRIES": 5,
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
    "TRUSTED_PROXY_HOST_HOPS": (int, 0),
    "TRUSTED_PROXY_PREFIX_HOPS": (int, 0),
    "SMH_HSTS_SECONDS": (int, 0),
    "CACHE_THRESHOLD": (int, 1),
    "TASKS_PER_PAGE": (int, 1),
    "MAX_CONTENT_LENGTH": (int, 16 * 1024),
    "MAX_FORM_MEMORY_SIZE": (int, 4 * 1024),
    "MAX_FORM_PARTS": (int, 10),
    "SMH_WEBHOOK_TIMEOUT": (float, 0.1),
    "SMH_WEBHOOK_RETRY_SECONDS": (float, 0.0),
    "SMH_WEBHOOK_GIVE_UP_SECONDS": (float, 1.0),
    "SMH_DATABASE_BUSY_SECONDS": (float, 0.1),
    "SMH_KEEP_FINISHED_DAYS": (float, 0.0),
    "SMH_KEEP_DELIVERED_DAYS": (float, 0.0),
    "SMH_KEEP_ACTIVITY_DAYS": (float, 0.0),
    "SMH_MAX_TRACKED_PER_LIBRARY": (int, 1),
    "SMH_MAX_EXPORTS_PER_USER": (int, 1),
    "SMH_MAX_API_WAITS_PER_USER": (int, 1),
    "SMH_API_MAX_STALE_SECONDS": (float, 0.0),
    "SMH_HISTORY_SETTLE_SECONDS": (float, 0.0),
    "SMH_HISTORY_SETTLE_TRIES": (int, 1),
}

BOOLEANS = {"SMH_REFRESH_IN_BACKGROUND", "SMH_READ_ONLY"}

# Settings that only code can give: a list of libraries has no sensible one-string form.
CODE_ONLY = {"SMH_LIBRARIES"}


E = TypeVar("E", bound=Enum)


class MetricsAccess(Enum):
    """Who may read /metrics (METRICS): nobody (it is not there), signed-in people, or anyone."""

    OFF = "off"
    SIGNED_IN = "signed-in"
    OPEN = "open"


class LogFormat(Enum):
    """How log lines are written (LOG_FORMAT): for people, or for a log pipeline (JSON lines)."""

    TEXT = "text"
    JSON = "json"


class ConfigError(ValueError):
    """A configuration value that the dashboard cannot start with; the text names the setting."""


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
    """Turn settings into numbers, flags and networks in place, naming any setting that is wrong."""
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
    for name in BOOLEANS:
        config[name] = _flag(name, config.get(name))
    config["METRICS"] = _choice("METRICS", MetricsAccess, config.get("METRICS"))
    config["LOG_FORMAT"] = _choice("LOG_FORMAT", LogFormat, config.get("LOG_FORMAT"))
    if config["METRICS"] is MetricsAccess.SIGNED_IN and not config.get("SMH_USERS_FILE"):
        raise ConfigError(
            "METRICS=signed-in needs SMH_USERS_FILE: without users nobody can sign in "
            "(METRICS=open lets anyone who reaches the dashboard read them)"
        )
    dashboard_url = config.get("SMH_DASHBOARD_URL")
    if dashboard_url:
        parts = urlsplit(str(dashboard_url))
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ConfigError(
                "SMH_DASHBOARD_URL must be the dashboard's public http(s) address "
                f"(such as https://smh.example.com/dashboard), not {dashboard_url!r}"
            )
    config["SMH_ALLOWED_HOSTS"] = _hosts(config.get("SMH_ALLOWED_HOSTS"), dashboard_url)
    config["SMH_AUTH_PROXY_IPS"] = _networks("SMH_AUTH_PROXY_IPS", config.get("SMH_AUTH_PROXY_IPS"))
    if bool(config.get("SMH_AUTH_PROXY_HEADER")) != bool(config["SMH_AUTH_PROXY_IPS"]):
        raise ConfigError(
            "SMH_AUTH_PROXY_HEADER and SMH_AUTH_PROXY_IPS go together: the header is trusted "
            "only from those addresses"
        )


def _choice(name: str, kind: type[E], raw: object) -> E:
    if isinstance(raw, kind):
        return raw
    text = str(raw).strip().lower()
    for member in kind:
        if member.value == text:
            return member
    names = " or ".join(str(member.value) for member in kind)
    raise ConfigError(f"{name} must be {names}, not {raw!r}")


def _flag(name: str, raw: object) -> bool:
    if isinstance(raw, bool) or raw is None:
        return bool(raw)
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true or false), not {raw!r}")


def _hosts(raw: object, dashboard_url: object) -> tuple[str, ...]:
    if raw is None:
        names = list(LOOPBACK_HOSTS)
        host = urlsplit(str(dashboard_url)).hostname if dashboard_url else None
        if host and HOST_NAME.fullmatch(host) and host not in names:
            names.append(host)
        return tuple(names)
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple | set | frozenset):
        raise ConfigError("SMH_ALLOWED_HOSTS must be host names separated by commas")
    names = [str(item).strip().lower() for item in items if str(item).strip()]
    for name in names:
        if ":" in name:
            # Werkzeug compares a trusted name only up to its first colon: "[::1]" never matches.
            raise ConfigError(
                f"SMH_ALLOWED_HOSTS takes host names without a port, and no IPv6 address "
                f"(reach the dashboard by a name instead), not {name!r}"
            )
        if not HOST_NAME.fullmatch(name):
            raise ConfigError(
                f"SMH_ALLOWED_HOSTS must be host names such as smh.example.com or 10.0.0.8, "
                f"not {name!r}"
            )
    if not names:
        raise ConfigError("SMH_ALLOWED_HOSTS names no host: the dashboard would answer nobody")
    return tuple(names)


def _networks(name: str, raw: object) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    # The environment gives one string; code may give a list of strings or networks.
    items = raw.split(",") if isinstance(raw, str) else raw or ()
    if not isinstance(items, list | tuple | set | frozenset):
        raise ConfigError(f"{name} must be addresses or networks separated by commas")
    networks = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(
                f"{name} must be addresses or networks separated by commas "
                f"(such as 10.0.0.5,127.0.0.1/32), not {text!r}"
            ) from None
    return tuple(networks)


def read_tables(setting: str, path: str, name: str) -> list[tuple[str, Mapping]]:
    """Read a TOML file's [[name]] tables, each with where it stands, for SMH_*_FILE settings."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"{setting}: cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{setting}: {path} is not valid TOML: {error}") from None
    tables = data.get(name, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{setting}: {path} must hold its entries as [[{name}]] tables")
    if not tables:
        raise ConfigError(f"{setting}: {path} lists no [[{name}]]")
    return [(f"{setting} {path}, {name} #{i + 1}", t) for i, t in enumerate(tables)]
