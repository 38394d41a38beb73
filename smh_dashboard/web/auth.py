"""Who is signed in for this request, and which libraries and changes are theirs."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis
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
from smh_dashboard.live import coordination
from smh_dashboard.settings import MetricsAccess
from smh_dashboard.web import metrics

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Load balancers probe /healthz, and the sign-in page needs its stylesheet.
OPEN_ENDPOINTS = frozenset({"health.healthz", "static"})
REALM = "SMH dashboard"
MAX_FAILURES = 10
FAILURE_WINDOW_SECONDS = 300.0
MAX_FAILING_ADDRESSES = 10_000

activity = logging.getLogger("activity")


class Failures:
    """Failed sign-ins per client address within a sliding window, in bounded memory.

    With Redis, every worker and instance counts them together (a sorted set per address that
    expires with the window); without it, or while it is out of reach, each process alone.
    """

    def __init__(
        self,
        limit: int = MAX_FAILURES,
        window: float = FAILURE_WINDOW_SECONDS,
        max_addresses: int = MAX_FAILING_ADDRESSES,
        shared: coordination.Shared | None = None,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self.shared = shared
        self._lock = threading.Lock()
        self._times: dict[str, list[float]] = {}

    def retry_after(self, address: str, now: float) -> float | None:
        """Return how long this address must wait before trying again, or None if it may."""
        times = self._shared_times(address, now)
        if times is None:
            with self._lock:
                times = self._recent(address, now)
        if len(times) < self.limit:
            return None
        return times[-self.limit] + self.window - now

    def record(self, address: str, now: float) -> None:
        """Count one failed sign-in from this address."""
        if self._record_shared(address, now):
            return
        with self._lock:
            times = [*self._recent(address, now), now][-self.limit :]
            self._times.pop(address, None)
            # Dict order is least recently failing first: those are the ones to forget.
            while len(self._times) >= self.max_addresses:
                del self._times[next(iter(self._times))]
            self._times[address] = times

    def _recent(self, address: str, now: float) -> list[float]:
        return [t for t in self._times.get(address, ()) if t > now - self.window]

    def _key(self, address: str) -> str:
        return f"{coordination.KEY_PREFIX}sign-in-failures/{address}"

    def _shared_times(self, address: str, now: float) -> list[float] | None:
        client = self.shared.reachable() if self.shared else None
        if client is None or self.shared is None:
            return None
        try:
            found: list[tuple[bytes, float]] = client.zrangebyscore(  # type: ignore[assignment]
                self._key(address), f"({now - self.window}", "+inf", withscores=True
            )
        except redis.RedisError as error:
            self.shared.failed(error)
            return None
        return sorted(score for _, score in found)

    def _record_shared(self, address: str, now: float) -> bool:
        client = self.shared.reachable() if self.shared else None
        if client is None or self.shared is None:
            return False
        key = self._key(address)
        try:
            with client.pipeline() as pipe:
                # A random tail keeps two failures at the same instant two members.
                pipe.zadd(key, {f"{now} {secrets.token_hex(4)}": now})
                pipe.zremrangebyscore(key, "-inf", now - self.window)
                pipe.zremrangebyrank(key, 0, -self.limit - 1)
                pipe.expire(key, math.ceil(self.window))
                pipe.execute()
        except redis.RedisError as error:
            self.shared.failed(error)
            return False
        return True


@dataclass
class Guard:
    """The sign-in settings of one app, with what it remembers between requests."""

    users: dict[str, User]
    proxy_header: str | None
    proxy_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    read_only: bool
    key: bytes = field(repr=False)
    failures: Failures = field(default_factory=Failures)
    # A digest of each user's last verified password, so polls skip the slow hash check.
    verified: dict[str, bytes] = field(default_factory=dict, repr=False)

    def check_password(self, name: str, password: str) -> User | None:
        """Return the user these credentials belong to, or None, in time that names no user."""
        user = self.users.get(name)
        digest = hmac.new(self.key, password.encode(), hashlib.sha256).digest()
        if user is not None and hmac.compare_digest(self.verified.get(name, b""), digest):
            return user
        stored = user.password_hash if user is not None else None
        # An unknown name costs a hash check too, so timing does not tell who exists.
        if not check_password_hash(stored or _dummy_hash(), password) or not stored:
            return None
        self.verified[name] = digest
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
        failures=Failures(shared=app.extensions["coordination"]),
    )
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
    return user.is_operator if user is not None else not sign_in_required()


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
    address = request.remote_addr or ""
    wait = guard.failures.retry_after(address, clock.now())
    if wait is not None:
        raise TooManyRequests(
            gettext(
                "Too many failed sign-ins from this address. Wait a few minutes, then try again."
            ),
            retry_after=max(1, math.ceil(wait)),
        )
    user = guard.check_password(credentials.username or "", credentials.password or "")
    if user is None:
        guard.failures.record(address, clock.now())
        raise Unauthorized(gettext("Wrong user name or password."), www_authenticate=_challenge())
    return user


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
    if source is None:
        return True
    here = urlsplit(request.host_url)
    there = urlsplit(source)
    return (there.scheme, there.netloc.lower()) == (here.scheme, here.netloc.lower())


def record_activity(response: Response) -> Response:
    """Log each change with who made it and from where; keep answers behind sign-in out of every
    cache."""
    if request.endpoint not in OPEN_ENDPOINTS and sign_in_required():
        response.headers["Cache-Control"] = "no-store"
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


def _template_context() -> dict:
    return {
        "signed_in": current_user(),
        "sign_in_required": sign_in_required(),
        "read_only": _guard().read_only,
        "may_change": may_change(),
    }


def _challenge() -> WWWAuthenticate:
    return WWWAuthenticate("basic", {"realm": REALM, "charset": "UTF-8"})


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16))
