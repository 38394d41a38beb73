"""The configured libraries of the running app, each with the SMH client that speaks for it.

Above domain (which only reads the libraries from the settings) because it lives in the Flask
app; below actions, live and notify, which all look libraries and clients up here.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from smh_dashboard import instruments
from smh_dashboard.domain.libraries import Library
from smh_dashboard.smh.client import SMHClient


@dataclass(frozen=True)
class Configured:
    """A library with the SMH client that speaks for it."""

    library: Library
    client: SMHClient


def init_app(app: Flask, libraries: list[Library]) -> None:
    """Register the configured libraries, each with an SMH client built from the settings."""
    config = app.config
    app.extensions["libraries"] = {
        library.id: Configured(
            library=library,
            client=SMHClient(
                library.id,
                secret=library.secret,
                token=library.token,
                user_id=library.user_id,
                base_url=library.base_url,
                token_period=config["SMH_TOKEN_PERIOD"],
                read_timeout=config["SMH_TIMEOUT"],
                retries=config["SMH_RETRIES"],
                max_ids_per_call=config["SMH_MAX_IDS_PER_CALL"],
                on_call=instruments.count_smh_call,
                on_token=instruments.count_token_mint,
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


def client_for(library_id: str) -> SMHClient:
    """Return the SMH client of a configured library."""
    return _registry()[library_id].client


def _registry() -> dict[str, Configured]:
    registry: dict[str, Configured] = current_app.extensions["libraries"]
    return registry
