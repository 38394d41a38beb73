"""The configured media libraries: read from the settings, each with its SMH client."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import Flask, current_app

import smh
from config import ConfigError, read_tables

MAX_LIBRARY_ID_LENGTH = 64
LIBRARY_ID = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_LIBRARY_ID_LENGTH - 1}}}$")
LIBRARY_KEYS = {"id", "name", "secret", "secret_env", "token", "token_env", "user_id", "base_url"}


@dataclass(frozen=True)
class Library:
    """One SMH media library the dashboard watches, with the credential to reach it."""

    id: str
    name: str
    secret: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    user_id: str | None = None
    base_url: str | None = None


@dataclass(frozen=True)
class Configured:
    """A library with the SMH client that speaks for it."""

    library: Library
    client: smh.SMHClient


def init_app(app: Flask, libraries: list[Library]) -> None:
    """Register the configured libraries, each with an SMH client built from the settings."""
    config = app.config
    app.extensions["libraries"] = {
        library.id: Configured(
            library=library,
            client=smh.SMHClient(
                library.id,
                secret=library.secret,
                token=library.token,
                user_id=library.user_id,
                base_url=library.base_url,
                token_period=config["SMH_TOKEN_PERIOD"],
                read_timeout=config["SMH_TIMEOUT"],
                retries=config["SMH_RETRIES"],
                max_ids_per_call=config["SMH_MAX_IDS_PER_CALL"],
            ),
        )
        for library in libraries
    }


def close_app(app: Flask) -> None:
    """Release every SMH client's pooled connections."""
    for configured in app.extensions["libraries"].values():
        configured.client.close()


def all_libraries() -> list[Library]:
    """Return the configured libraries in configuration order."""
    return [c.library for c in _registry().values()]


def get_library(library_id: str) -> Library | None:
    """Return the configured library with this id, or None."""
    configured = _registry().get(library_id)
    return configured.library if configured else None


def client_for(library_id: str) -> smh.SMHClient:
    """Return the SMH client of a configured library."""
    return _registry()[library_id].client


def _registry() -> dict[str, Configured]:
    registry: dict[str, Configured] = current_app.extensions["libraries"]
    return registry


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
        entries += read_tables("SMH_LIBRARIES_FILE", config["SMH_LIBRARIES_FILE"], "library")

    libraries: dict[str, Library] = {}
    for where, entry in entries:
        library = _library(where, entry, environ, default_base_url)
        if library.id in libraries:
            raise ConfigError(f"{where}: library {library.id} is configured twice")
        libraries[library.id] = library
    return list(libraries.values())


def _library(
    where: str, entry: Mapping, environ: Mapping[str, str], base_url: str | None
) -> Library:
    unknown = set(entry) - LIBRARY_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    library_id = entry.get("id")
    if not isinstance(library_id, str) or not LIBRARY_ID.match(library_id):
        raise ConfigError(
            f"{where}: library id {library_id!r} must be letters, digits, '-' or '_' "
            f"(max {MAX_LIBRARY_ID_LENGTH})"
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
