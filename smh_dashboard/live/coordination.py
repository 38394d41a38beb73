"""What every worker and instance must share: Redis when REDIS_URL names one, else this process.

Redis holds the answer cache (flask-caching's RedisCache, with the outage back-off and the API's
rate limit in it, kept as JSON data, never pickled) and one lease per library that makes a refresh
single-flight across processes. While Redis is out of reach, each process carries on alone (a local
cache, a local lock) and pages say so; Redis is tried again every few seconds, and used again as
soon as it answers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import threading
import time
from datetime import timedelta
from typing import Any

import redis
from cachelib.serializers import RedisSerializer
from flask import Flask, current_app
from flask_caching.backends.base import BaseCache
from flask_caching.backends.rediscache import RedisCache
from flask_caching.backends.simplecache import SimpleCache

log = logging.getLogger("coordination")

# A lease whose holder died (SIGKILL, a lost machine) frees itself this long after its last
# renewal; a live holder renews it every third of that.
LEASE_SECONDS = 15.0
# How long one Redis command may take before Redis counts as out of reach.
REDIS_TIMEOUT_SECONDS = 1.0
# After a failure, how long each process goes on alone before it tries Redis again: a page must
# not wait a connect timeout for every cache read while Redis is down.
RETRY_SECONDS = 5.0
# Between two tries of a lease another process holds.
LEASE_POLL_SECONDS = 0.05
KEY_PREFIX = "smh-dashboard/"
Timeout = int | timedelta | None

# Release and renew only while the key still holds our token: a lease that expired and was taken
# by another process is never deleted or extended by its former holder.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)


class DataSerializer(RedisSerializer):
    """Cache values as JSON, never pickle: Redis holds data, and data never runs code.

    Numbers, strings, booleans, None, lists, tuples, dicts with string keys and instances of the
    dataclasses allowed here are written; anything else read back (a planted pickle, JSON that
    names a class not allowed, a field that does not fit) is a miss.
    """

    def __init__(self) -> None:
        self.kinds: dict[str, type] = {}

    def allow(self, *kinds: type) -> None:
        """Let instances of these dataclasses be kept, each as a dict of its fields."""
        self.kinds.update({kind.__name__: kind for kind in kinds})

    def dumps(self, value: Any, protocol: int = 0) -> bytes:
        """Return the value as JSON bytes (an int as plain digits, which INCR understands)."""
        return json.dumps(self._data(value), separators=(",", ":")).encode()

    def loads(self, value: bytes | None) -> Any:
        """Return the value these bytes hold, or None if they hold no value of ours."""
        if value is None:
            return None
        try:
            return self._value(json.loads(value))
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            log.warning("a cached value in Redis is not the dashboard's data; read as a miss")
            return None

    def _data(self, value: Any) -> Any:
        # Every JSON object written is tagged, so nothing in a value (SMH's raw answer, say)
        # can pass itself off as another kind.
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            name = type(value).__name__
            if self.kinds.get(name) is not type(value):
                raise TypeError(f"{name} is not allowed in the shared cache")
            fields = {f.name: self._data(getattr(value, f.name)) for f in dataclasses.fields(value)}
            return {"kind": name, "fields": fields}
        if isinstance(value, tuple):
            return {"kind": "tuple", "items": [self._data(v) for v in value]}
        if isinstance(value, list):
            return [self._data(v) for v in value]
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError("only string keys can be kept in the shared cache")
            return {"kind": "dict", "items": {k: self._data(v) for k, v in value.items()}}
        if value is None or isinstance(value, str | int | float | bool):
            return value
        raise TypeError(f"{type(value).__name__} cannot be kept in the shared cache")

    def _value(self, data: Any) -> Any:
        if isinstance(data, list):
            return [self._value(v) for v in data]
        if not isinstance(data, dict):
            return data
        kind = data["kind"]
        if kind == "tuple":
            return tuple(self._value(v) for v in data["items"])
        if kind == "dict":
            return {str(k): self._value(v) for k, v in data["items"].items()}
        return self.kinds[kind](**{k: self._value(v) for k, v in data["fields"].items()})


class Shared:
    """The app's Redis client, if configured, and whether Redis answered lately."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        # What the answer cache may keep in Redis; the poller allows its dataclasses.
        self.serializer = DataSerializer()
        self.client = (
            redis.Redis.from_url(
                url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            if url
            else None
        )
        self.down_since: float | None = None
        self._lock = threading.Lock()

    def reachable(self) -> redis.Redis | None:
        """Return the client unless Redis is unconfigured or failed within RETRY_SECONDS."""
        if self.client is None:
            return None
        down_since = self.down_since
        if down_since is not None and time.monotonic() - down_since < RETRY_SECONDS:
            return None
        return self.client

    def failed(self, error: redis.RedisError) -> None:
        """Note that Redis did not answer: this process carries on alone for a while."""
        with self._lock:
            first = self.down_since is None
            self.down_since = time.monotonic()
        if first:
            log.warning("Redis is out of reach (%s): this process coordinates alone", error)

    def answered(self) -> None:
        """Note that Redis answered: pages stop saying it is missing."""
        if self.down_since is None:
            return
        with self._lock:
            self.down_since = None
        log.info("Redis answers again: coordination is shared again")

    @property
    def missing(self) -> bool:
        """Tell whether Redis is configured but was out of reach at the last try."""
        return self.client is not None and self.down_since is not None

    def ping(self) -> bool:
        """Ask Redis whether it is up now (for /healthz), noting the answer."""
        if self.client is None:
            return True
        try:
            self.client.ping()
        except redis.RedisError as error:
            self.failed(error)
            return False
        self.answered()
        return True

    def close(self) -> None:
        """Close the client's connections."""
        if self.client is not None:
            self.client.close()


def init_app(app: Flask) -> None:
    """Connect to REDIS_URL if set, and point the answer cache at it (else at this process)."""
    shared = Shared(app.config["REDIS_URL"] or None)
    app.extensions["coordination"] = shared
    if app.config.get("CACHE_TYPE") is None:
        app.config["CACHE_TYPE"] = (
            "smh_dashboard.live.coordination.SharedCache" if shared.client else "SimpleCache"
        )
    app.context_processor(lambda: {"redis_missing": shared.missing})


def close_app(app: Flask) -> None:
    """Close the app's Redis connections."""
    app.extensions["coordination"].close()


def shared() -> Shared:
    """Return the current app's coordination."""
    found: Shared = current_app.extensions["coordination"]
    return found


class SharedCache(BaseCache):
    """flask-caching's RedisCache, or this process's SimpleCache while Redis is out of reach."""

    def __init__(self, coordination: Shared, remote: BaseCache, local: BaseCache) -> None:
        super().__init__(default_timeout=local.default_timeout)
        self.coordination = coordination
        self.remote = remote
        self.local = local

    @classmethod
    def factory(
        cls, app: Flask, config: dict, args: list[Any], kwargs: dict[str, Any]
    ) -> SharedCache:
        """Build the cache from the app's Redis client (flask-caching's backend hook)."""
        coordination: Shared = app.extensions["coordination"]
        remote = RedisCache(
            host=coordination.client,
            default_timeout=kwargs["default_timeout"],
            key_prefix=config["CACHE_KEY_PREFIX"],
        )
        # Not flask-caching's default, which pickles: whoever can write to Redis would run code.
        remote.serializer = coordination.serializer
        local = SimpleCache(
            threshold=config.get("CACHE_THRESHOLD") or 500,
            default_timeout=kwargs["default_timeout"],
        )
        return cls(coordination, remote, local)

    def _either(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.coordination.reachable() is not None:
            try:
                result = getattr(self.remote, name)(*args, **kwargs)
            except redis.RedisError as error:
                self.coordination.failed(error)
            else:
                self.coordination.answered()
                return result
        return getattr(self.local, name)(*args, **kwargs)

    def get(self, key: str) -> Any:
        """Return a value, or None."""
        return self._either("get", key)

    def get_many(self, *keys: str) -> list[Any]:
        """Return the values of these keys, None for each one missing."""
        found: list[Any] = self._either("get_many", *keys)
        return found

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool | None:
        """Keep a value for `timeout` seconds."""
        done: bool | None = self._either("set", key, value, timeout)
        return done

    def set_many(self, mapping: dict[str, Any], timeout: Timeout = None) -> list[Any]:
        """Keep several values for `timeout` seconds."""
        done: list[Any] = self._either("set_many", mapping, timeout)
        return done

    def add(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Keep a value unless the key has one."""
        return bool(self._either("add", key, value, timeout))

    def delete(self, key: str) -> bool:
        """Forget a key."""
        return bool(self._either("delete", key))

    def delete_many(self, *keys: str) -> list[Any]:
        """Forget several keys."""
        done: list[Any] = self._either("delete_many", *keys)
        return done

    def has(self, key: str) -> bool:
        """Tell whether the key has a value."""
        return bool(self._either("has", key))

    def clear(self) -> bool:
        """Forget everything."""
        return bool(self._either("clear"))


class Lease:
    """One library's refresh: held by one thread of one process among all that share Redis.

    A local lock orders this process's threads; the Redis key (SET NX PX with a random token)
    orders the processes. While Redis is out of reach, the local lock alone holds.
    """

    def __init__(self, coordination: Shared, name: str, seconds: float = LEASE_SECONDS) -> None:
        self.coordination = coordination
        self.key = f"{KEY_PREFIX}lease/{name}"
        self.seconds = seconds
        self._local = threading.Lock()
        self._token: str | None = None
        self._stop: threading.Event | None = None
        self.started_at: float | None = None

    def acquire(self, timeout: float, started_at: float) -> bool:
        """Take the lease if it is free within `timeout` seconds (0: only if free now)."""
        deadline = time.monotonic() + timeout
        if not (
            self._local.acquire(timeout=timeout) if timeout > 0 else self._local.acquire(False)
        ):
            return False
        while True:
            taken = self._take_shared(started_at)
            if taken:
                self.started_at = started_at
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                self._local.release()
                return False
            time.sleep(min(LEASE_POLL_SECONDS, left))

    def _take_shared(self, started_at: float) -> bool:
        client = self.coordination.reachable()
        if client is None:
            return True
        token = secrets.token_hex(16)
        try:
            taken = client.set(self.key, f"{token} {started_at}", nx=True, px=_ms(self.seconds))
        except redis.RedisError as error:
            self.coordination.failed(error)
            return True
        self.coordination.answered()
        if taken:
            self._token = f"{token} {started_at}"
            self._stop = threading.Event()
            threading.Thread(
                target=self._renew,
                args=(client, self._token, self._stop),
                name=self.key,
                daemon=True,
            ).start()
        return bool(taken)

    def _renew(self, client: redis.Redis, token: str, stop: threading.Event) -> None:
        while not stop.wait(self.seconds / 3):
            try:
                if not client.eval(_RENEW, 1, self.key, token, _ms(self.seconds)):
                    log.warning(
                        "lease %s was lost while held; another process may refresh", self.key
                    )
                    return
            except redis.RedisError as error:
                self.coordination.failed(error)

    def release(self) -> None:
        """Give the lease up (from the thread that holds it, or one it handed it to)."""
        token, self._token = self._token, None
        self.started_at = None
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        client = self.coordination.reachable()
        if token is not None and client is not None:
            try:
                client.eval(_RELEASE, 1, self.key, token)
            except redis.RedisError as error:
                # It expires by itself within its seconds.
                self.coordination.failed(error)
        self._local.release()

    def held_since(self) -> float | None:
        """Return when the refresh under way in any process started, or None if none is."""
        if self.started_at is not None:
            return self.started_at
        client = self.coordination.reachable()
        if client is None:
            return None
        try:
            value = client.get(self.key)
        except redis.RedisError as error:
            self.coordination.failed(error)
            return None
        if value is None:
            return None
        return float(value.split()[1])


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
