"""The people who may sign in: read from the users file, each with a role and a library scope."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum

from smh_dashboard.i18n import gettext
from smh_dashboard.settings import ConfigError, read_tables

USER_KEYS = {"name", "password_hash", "role", "libraries"}
MAX_NAME_LENGTH = 64
# What werkzeug.security.generate_password_hash writes: method$salt$hex digest.
PASSWORD_HASH = re.compile(r"^(scrypt|pbkdf2)(:[A-Za-z0-9]+)*\$[^$\s]+\$[0-9a-f]+$")


class Role(Enum):
    """What a signed-in person may do: read, or also change what is tracked."""

    VIEWER = "viewer"
    OPERATOR = "operator"

    @property
    def text(self) -> str:
        """Name the role in the reader's language."""
        return gettext("viewer") if self is Role.VIEWER else gettext("operator")


@dataclass(frozen=True)
class User:
    """One person in the users file; `libraries` is None when they see every library."""

    name: str
    role: Role
    password_hash: str | None = field(default=None, repr=False)
    libraries: frozenset[str] | None = None

    @property
    def is_operator(self) -> bool:
        """Tell whether this person may track, untrack and re-check tasks."""
        return self.role is Role.OPERATOR

    def sees(self, library_id: str) -> bool:
        """Tell whether this library is in this person's scope."""
        return self.libraries is None or library_id in self.libraries


def load_users(config: Mapping, library_ids: Collection[str]) -> dict[str, User]:
    """Read SMH_USERS_FILE into users by name; none configured means nobody signs in."""
    path = config.get("SMH_USERS_FILE")
    if not path:
        if config.get("SMH_AUTH_PROXY_HEADER"):
            raise ConfigError(
                "SMH_AUTH_PROXY_HEADER needs SMH_USERS_FILE: the header must name a listed user"
            )
        return {}
    users: dict[str, User] = {}
    for where, entry in read_tables("SMH_USERS_FILE", path, "user"):
        user = _user(where, entry, library_ids)
        if user.name in users:
            raise ConfigError(f"{where}: user {user.name!r} is listed twice")
        users[user.name] = user
    return users


def _user(where: str, entry: Mapping, library_ids: Collection[str]) -> User:
    unknown = set(entry) - USER_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = entry.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH or not name.isprintable():
        raise ConfigError(f"{where}: name must be a string of 1 to {MAX_NAME_LENGTH} characters")
    if ":" in name or name != name.strip():
        raise ConfigError(f"{where} ({name}): name must not contain ':' or start or end in spaces")
    where = f"{where} ({name})"
    try:
        role = Role(entry.get("role"))
    except ValueError:
        raise ConfigError(
            f'{where}: role must be "viewer" or "operator", not {entry.get("role")!r}'
        ) from None
    password_hash = entry.get("password_hash")
    # Never echo the value: it may be a password someone pasted by mistake.
    if password_hash is not None and (
        not isinstance(password_hash, str) or not PASSWORD_HASH.match(password_hash)
    ):
        raise ConfigError(
            f"{where}: password_hash is not a password hash (plain text?); "
            "make one with `SMH_USERS_FILE= flask hash-password`"
        )
    return User(
        name=name,
        role=role,
        password_hash=password_hash,
        libraries=_scope(where, entry.get("libraries"), library_ids),
    )


def _scope(where: str, value: object, library_ids: Collection[str]) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"{where}: libraries must be a non-empty list of library ids (leave it out for all)"
        )
    unknown = [v for v in value if v not in library_ids]
    if unknown:
        raise ConfigError(f"{where}: libraries names {', '.join(unknown)}, not configured here")
    return frozenset(value)
