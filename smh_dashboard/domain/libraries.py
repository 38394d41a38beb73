"""The configured media libraries and their webhooks, as read from the settings."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from smh_dashboard.domain import inputs
from smh_dashboard.domain.webhooks import Webhook, WebhookFormat
from smh_dashboard.settings import ConfigError, read_tables

LIBRARY_ID = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_-]{{0,{inputs.MAX_LIBRARY_ID_LENGTH - 1}}}$")
LIBRARY_KEYS = {"id", "name", "secret", "secret_env", "token", "token_env", "user_id", "base_url"}
WEBHOOK_KEYS = {
    "webhook_url",
    "webhook_url_env",
    "webhook_format",
    "webhook_secret",
    "webhook_secret_env",
}
# The single-library setup names its webhook in the environment instead of a libraries file.
SINGLE_WEBHOOK_SETTINGS = {
    "webhook_url": "SMH_WEBHOOK_URL",
    "webhook_format": "SMH_WEBHOOK_FORMAT",
    "webhook_secret": "SMH_WEBHOOK_SECRET",
}


@dataclass(frozen=True)
class Library:
    """One SMH media library the dashboard watches, with the credential to reach it."""

    id: str
    name: str
    secret: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    user_id: str | None = None
    base_url: str | None = None
    webhook: Webhook | None = field(default=None, repr=False)


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
        single |= {
            key: config[name] for key, name in SINGLE_WEBHOOK_SETTINGS.items() if config.get(name)
        }
        entries.append(("SMH_LIBRARY_ID", single))
    elif config.get("SMH_LIBRARY_SECRET") or config.get("SMH_ACCESS_TOKEN"):
        raise ConfigError("SMH_LIBRARY_ID is not set, but a secret or access token is")
    else:
        for name in SINGLE_WEBHOOK_SETTINGS.values():
            if config.get(name):
                raise ConfigError(
                    f"{name} is set but SMH_LIBRARY_ID is not: with a libraries file, give "
                    "each library its own webhook_url"
                )
    entries += [(f"SMH_LIBRARIES[{i}]", e) for i, e in enumerate(config.get("SMH_LIBRARIES") or ())]
    if config.get("SMH_LIBRARIES_FILE"):
        entries += read_tables("SMH_LIBRARIES_FILE", config["SMH_LIBRARIES_FILE"], "library")

    libraries: dict[str, Library] = {}
    for where, entry in entries:
        library = _library(where, entry, environ, default_base_url)
        if library.id in libraries:
            raise ConfigError(f"{where}: library {library.id} is configured twice")
        libraries[library.id] = library
    hooked = [library.id for library in libraries.values() if library.webhook]
    if hooked and not config.get("SMH_DASHBOARD_URL"):
        raise ConfigError(
            f"SMH_DASHBOARD_URL must be set when a webhook is configured (library {hooked[0]}): "
            "messages link to the task page, and a watcher has no request to build the link from"
        )
    return list(libraries.values())


def _library(
    where: str, entry: Mapping, environ: Mapping[str, str], base_url: str | None
) -> Library:
    unknown = set(entry) - LIBRARY_KEYS - WEBHOOK_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    library_id = entry.get("id")
    if not isinstance(library_id, str) or not LIBRARY_ID.match(library_id):
        raise ConfigError(
            f"{where}: library id {library_id!r} must be letters, digits, '-' or '_' "
            f"(max {inputs.MAX_LIBRARY_ID_LENGTH})"
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
        webhook=_webhook(where, library_id, entry, environ),
    )


def _webhook(
    where: str, library_id: str, entry: Mapping, environ: Mapping[str, str]
) -> Webhook | None:
    # The single-library setup's keys come from SMH_WEBHOOK_*: messages name those instead.
    single = where == "SMH_LIBRARY_ID"

    def name(key: str) -> str:
        return SINGLE_WEBHOOK_SETTINGS[key] if single else f"{where}: library {library_id}'s {key}"

    url = _credential(where, entry, "webhook_url", environ)
    secret = _credential(where, entry, "webhook_secret", environ)
    raw_format = entry.get("webhook_format")
    if url is None:
        if raw_format is not None or secret is not None:
            raise ConfigError(f"{name('webhook_format')} is set, but no webhook URL is")
        return None
    parts = urlsplit(url)
    # The URL carries the robot's key: a message about it never repeats it.
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name('webhook_url')} must be an http(s) URL (value not shown)")
    choices = ", ".join(f.value for f in WebhookFormat)
    try:
        webhook_format = WebhookFormat(raw_format or WebhookFormat.JSON.value)
    except ValueError:
        raise ConfigError(
            f"{name('webhook_format')} must be one of {choices}, not {raw_format!r}"
        ) from None
    if secret is not None and webhook_format is not WebhookFormat.DINGTALK:
        raise ConfigError(
            f"{name('webhook_secret')} is for DingTalk's signed robots; "
            f"this webhook's format is {webhook_format.value}"
        )
    return Webhook(url=url, format=webhook_format, secret=secret)


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
