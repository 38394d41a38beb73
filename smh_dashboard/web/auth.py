"""Who is signed in for this request, and which libraries and changes are theirs."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
from dataclasses import dataclass, field
from typing import NoReturn

from flask import Flask, Response, abort, current_app, g, has_request_context, request
from flask.logging import default_handler, has_level_handler
from flask.sessions import SecureCookieSessionInterface
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import TooManyRequests, Unauthorized
from werkzeug.security import check_password_hash, generate_password_hash

from smh_dashboard import clock, registry
from smh_dashboard.domain import inputs
from smh_dashboard.domain.libraries import Library
from smh_dashboard.domain.users import User
from smh_dashboard.i18n import gettext
from smh_dashboard.settings import MetricsAccess
from smh_dashboard.web import metrics, origins, throttle

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIGN_OUT_ENDPOINT = "sign_out.sign_out"
# Load balancers probe /healthz, the sign-in page needs its stylesheet, and signing out must
# work whoever the browser still says it is.
OPEN_ENDPOINTS = frozenset({"health.healthz", "static", SIGN_OUT_ENDPOINT})
REALM = "SMH dashboard"
# Sent to JSON callers too, since they never see the pages' banner.
ACCESS_HEADER = "X-Dashboard-Access"

activity = logging.getLogger("activity")
log = logging.getLogger("auth")


@dataclass
class Guard:
    """The sign-in settings of one app, with what it remembers between requests."""

    users: dict[str, User]
    proxy_header: str | None
    proxy_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    read_only: bool
    key: bytes = field(repr=False)
    failures: throttle.Throttle = field(default_factory=throttle.Throttle)
    # Checked for a name nobody has: made like the users file's hashes, so that it costs the same.
    dummy_hash: str = field(default="", repr=False)
    # A digest of each user's last verified password, so polls skip the slow hash check.
    verified: dict[str, bytes] = field(default_factory=dict, repr=False)

    def verified_user(self, name: str, password: str) -> User | None:
        """Return the user if this is the password last verified for them (no hash check)."""
        user = self.users.get(name)
        digest = hmac.new(self.key, password.encode(), hashlib.sha256).digest()
        if user is not None and hmac.compare_digest(self.verified.get(name, b""), digest):
            return user
        return None

    def check_password(self, name: str, password: str) -> User | None:
        """Return the user these credentials belong to, or None, in time that names no user."""
        user = self.users.get(name)
        stored = user.password_hash if user is not None else None
        # An unknown name costs a hash check too, so timing does not tell who exists.
        if not check_password_hash(stored or self.dummy_hash, password) or not stored:
            return None
        self.verified[name] = hmac.new(self.key, password.encode(), hashlib.sha256).digest()
        return user


class SessionInterface(SecureCookieSessionInterface):
    """Signed cookie sessions whose cookie is Secure whenever the page came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Mark the cookie Secure on HTTPS requests, or always when the setting says so."""
        return request.is_secure or super().get_cookie_secure(app)


def init_app(app: Flask, users: dict[str, User]) -> None:
    """Guard every request with sign-in (when users are configured), roles and scope."""
    config = app.config
    app.extensions["auth"] = Guard(
        users=users,
        proxy_header=config["SMH_AUTH_PROXY_HEADER"] or None,
        proxy_networks=config["SMH_AUTH_PROXY_IPS"],
        read_only=config["SMH_READ_ONLY"],
        key=config["SECRET_KEY"].encode(),
        failures=throttle.Throttle(shared=app.extensions["coordination"]),
        dummy_hash=_dummy_hash(users),
    )
    if not users:
        _warn_who_may_change(app)
    config["SESSION_COOKIE_SAMESITE"] = config["SESSION_COOKIE_SAMESITE"] or "Lax"
    config["SESSION_COOKIE_HTTPONLY"] = True
    app.session_interface = SessionInterface()
    if not has_level_handler(activity):
        # One line per change in the server's error log (wsgi.errors), however logging is set up.
        activity.addHandler(default_handler)
        activity.setLevel(logging.INFO)
    app.before_request(guard_request)
    app.after_request(record_activity)
    app.context_processor(_template_context)


def _warn_who_may_change(app: Flask) -> None:
    if app.config["SMH_READ_ONLY"]:
        log.warning(
            "No SMH_USERS_FILE: anyone who reaches the dashboard reads every library; "
            "SMH_READ_ONLY turns every change off"
        )
        return
    behind = (
        "the client that TRUSTED_PROXIES names counts"
        if app.config["TRUSTED_PROXIES"]
        else "behind a reverse proxy on this machine every client looks local: set "
        "TRUSTED_PROXIES or SMH_USERS_FILE"
    )
    log.warning(
        "No SMH_USERS_FILE: anyone who reaches the dashboard reads every library, and only "
        "clients on this machine (loopback) may change anything (track, untrack, re-check, "
        "clear history); %s",
        behind,
    )


def _guard() -> Guard:
    guard: Guard = current_app.extensions["auth"]
    return guard


def sign_in_required() -> bool:
    """Tell whether people must sign in here (a users file is configured)."""
    return bool(_guard().users)


def current_user() -> User | None:
    """Return who is signed in for this request, or None when nobody signs in here."""
    user: User | None = g.get("user")
    return user


def current_who() -> str:
    """Name who is acting: the signed-in user, or the client's address where nobody signs in."""
    user = current_user() if has_request_context() else None
    if user is not None:
        return user.name
    address = current_address()
    # Stored as said at the time, in the language of whoever acted, as the entry's message is.
    if address is None:
        return gettext("no sign-in (unknown address)")
    return gettext("no sign-in (%(address)s)", address=address)


def current_address() -> str | None:
    """Return the client's address as this request has it (after TRUSTED_PROXIES), fit to keep.

    An address a proxy forwarded is whatever the client sent it: anything but an IP address is
    cut short and stripped of control characters before a log line or the activity log keeps it.
    """
    if not has_request_context() or not request.remote_addr:
        return None
    address = request.remote_addr
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return inputs.printable(inputs.excerpt(address))


def may_change() -> bool:
    """Tell whether this request's user may track, untrack, re-check and clear history."""
    user = current_user()
    if _guard().read_only:
        return False
    if user is not None:
        return user.is_operator
    return not sign_in_required() and from_loopback()


def from_loopback() -> bool:
    """Tell whether this request's client is on this machine (after the proxy settings)."""
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def visible_libraries() -> list[Library]:
    """Return the configured libraries this request's user may see, in configuration order."""
    return [library for library in registry.all_libraries() if _sees(library.id)]


def visible_library(library_id: str) -> Library | None:
    """Return this library if it is configured and in the user's scope, else None."""
    return registry.get_library(library_id) if _sees(library_id) else None


def _sees(library_id: str) -> bool:
    user = current_user()
    # Nobody signed in sees nothing where sign-in is required, should a view ever be left open.
    return user.sees(library_id) if user is not None else not sign_in_required()


def guard_request() -> None:
    """Sign the request in, then refuse a change that the mode, the role or its origin forbids."""
    scraping = request.endpoint == metrics.ENDPOINT
    if request.endpoint in OPEN_ENDPOINTS or (
        scraping and current_app.config["METRICS"] is MetricsAccess.OPEN
    ):
        return
    guard = _guard()
    if guard.users:
        g.user = _signed_in_user(guard)
    user = current_user()
    if scraping and user is not None and user.libraries is not None:
        abort(
            403,
            description=gettext(
                "%(user)s sees only some libraries; metrics count them all.", user=user.name
            ),
        )
    # A path or method that does not exist answers as such, once the caller has signed in.
    if request.method in SAFE_METHODS or request.routing_exception is not None:
        return
    if guard.read_only:
        abort(403, description=gettext("This dashboard is read-only: nothing can be changed here."))
    if not guard.users and not from_loopback():
        abort(
            403,
            description=gettext(
                "Without sign-in, this dashboard takes changes only from the machine it runs "
                "on. Everyone else may read it; list who may sign in with SMH_USERS_FILE."
            ),
        )
    if user is not None and not user.is_operator:
        abort(
            403,
            description=gettext(
                "%(user)s is a viewer: only operators can track, untrack or re-check tasks "
                "and clear history.",
                user=user.name,
            ),
        )
    if not _same_origin():
        abort(
            403,
            description=gettext(
                "This request came from another site; changes are only taken from "
                "the dashboard's own pages."
            ),
        )


def _signed_in_user(guard: Guard) -> User:
    name = _proxy_user_name(guard)
    if name is not None:
        user = guard.users.get(name)
        if user is None:
            abort(
                403, description=gettext("“%(name)s” is not a user of this dashboard.", name=name)
            )
        return user
    credentials = request.authorization
    if credentials is None or credentials.type != "basic":
        raise Unauthorized(gettext("Sign in to use this dashboard."), www_authenticate=_challenge())
    name, password = credentials.username or "", credentials.password or ""
    address = request.remote_addr or ""
    # Checked before the shortcut below too, or a locked name could still test guesses.
    wait = guard.failures.retry_after(address, name, clock.now())
    if wait is not None:
        _too_many(name, address, wait)
    user = guard.verified_user(name, password)
    if user is None:
        user = _check_password(guard, name, password, address)
    g.basic = True
    return user


def _check_password(guard: Guard, name: str, password: str, address: str) -> User:
    slot = guard.failures.reserve(address, name, clock.now())
    if slot.retry_after is not None:
        _too_many(name, address, slot.retry_after)
    with guard.failures.turn() as turn:
        if not turn:
            guard.failures.release(slot)
            log.warning("sign-in refused, too many at once: user %r from %s", name, address)
            raise TooManyRequests(
                gettext("The dashboard is busy checking other sign-ins. Try again in a moment."),
                retry_after=1,
            )
        user = guard.check_password(name, password)
    if user is None:
        log.warning("sign-in failed: user %r from %s", name, address)
        raise Unauthorized(gettext("Wrong user name or password."), www_authenticate=_challenge())
    guard.failures.release(slot)
    return user


def _too_many(name: str, address: str, wait: float) -> NoReturn:
    log.warning("sign-in refused, too many failures: user %r from %s", name, address)
    raise TooManyRequests(
        gettext(
            "Too many failed sign-ins for this user from this address. Wait a few minutes, "
            "then try again."
        ),
        retry_after=max(1, math.ceil(wait)),
    )


def _proxy_user_name(guard: Guard) -> str | None:
    if not guard.proxy_header:
        return None
    # The proxy is whoever connected to us, not the client it forwards for (see ProxyFix).
    original = request.environ.get("werkzeug.proxy_fix.orig", {})
    try:
        peer = ipaddress.ip_address(original.get("REMOTE_ADDR", request.remote_addr or ""))
    except ValueError:
        return None
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped:
        peer = peer.ipv4_mapped
    if not any(peer in network for network in guard.proxy_networks):
        return None
    return request.headers.get(guard.proxy_header, "").strip() or None


def _same_origin() -> bool:
    # Browsers send Origin on every form POST; scripts that send neither header still need
    # the CSRF token, and the token needs a page of this site.
    source = request.headers.get("Origin") or request.headers.get("Referer")
    return source is None or origins.is_allowed_origin(source)


def record_activity(response: Response) -> Response:
    """Log each change with who made it and from where; keep answers behind sign-in out of every
    cache."""
    if request.endpoint not in OPEN_ENDPOINTS and sign_in_required():
        response.headers["Cache-Control"] = "no-store"
    if not sign_in_required():
        response.headers[ACCESS_HEADER] = _open_access()
    if request.method not in SAFE_METHODS and response.status_code < 400:
        user = current_user()
        activity.info(
            "%s from %s: %s %s -> %s",
            user.name if user is not None else "(no sign-in)",
            current_address() or "an unknown address",
            request.method,
            request.path,
            response.status_code,
        )
    return response


def _open_access() -> str:
    if _guard().read_only:
        return "read-only; no sign-in, SMH_READ_ONLY"
    role = "operator" if from_loopback() else "read-only"
    return f"{role}; no sign-in, changes from loopback only"


def _template_context() -> dict:
    return {
        "signed_in": current_user(),
        "signed_in_with_basic": g.get("basic", False),
        "sign_in_required": sign_in_required(),
        "read_only": _guard().read_only,
        "may_change": may_change(),
    }


def _challenge() -> WWWAuthenticate:
    return WWWAuthenticate("basic", {"realm": REALM, "charset": "UTF-8"})


def _dummy_hash(users: dict[str, User]) -> str:
    """Hash a random password the way the users file's first hash was made (method, cost)."""
    stored = next((u.password_hash for u in users.values() if u.password_hash), None)
    if stored is None:
        return generate_password_hash(secrets.token_hex(16))
    return generate_password_hash(secrets.token_hex(16), method=stored.split("$", 1)[0])
