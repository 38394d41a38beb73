"""Telling people a task ended: delivering the outbox with retries (messages.py writes them).

A task's end is queued in the database by the change that ends it (storage's
tasks.record_statuses), one row per webhook. Whichever process runs deliver_due (the watcher,
`flask refresh`, or a web worker's background thread) claims due rows with a lease, posts them,
and records the outcome: sent, tried again later with a doubling wait, or given up once a day
old. Webhook URLs carry the chat robot's key, so they are only ever shown masked, and no error
text repeats them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import requests
from flask import Flask, current_app

from smh_dashboard import background, clock, registry
from smh_dashboard.domain.libraries import Library
from smh_dashboard.domain.webhooks import Webhook, WebhookFormat
from smh_dashboard.notify import messages
from smh_dashboard.notify.messages import Message
from smh_dashboard.smh import redact
from smh_dashboard.storage import activity, outbox

log = logging.getLogger("notify")

# Deliveries one pass sends at most, so that a pass started by a request ends.
DELIVERY_PASS = 100
# The longest wait between two tries of one delivery.
MAX_RETRY_WAIT = 3600.0
# A claim outlives the send it covers by this much (a slow database, a paused process).
LEASE_MARGIN = 5.0
# While a message is sent, its claim is renewed this often (seconds, at most): a receiver slower
# than the lease keeps it claimed, where a process that died stops renewing and is taken over.
RENEW_EVERY = 1.0
# What of a chat's refusal is kept as the delivery's error.
MAX_ERROR_TEXT = 200
# A part of a webhook's address at least this long may be its key on its own (WeCom's and
# DingTalk's ?key= and ?access_token=, Slack's and Feishu's last path segment): hidden too.
MIN_SECRET_PART = 16


@dataclass
class _Deliverer:
    """A web worker's delivery pass: at most one at a time, started at most once a window."""

    lock: threading.Lock
    next_check: float = 0.0


def init_app(app: Flask) -> None:
    """Guard logs against webhook URLs and deliver due messages from requests."""
    hooks = [c.library.webhook for c in app.extensions["libraries"].values() if c.library.webhook]
    for webhook in hooks:
        redact.hide(_secrets(webhook))
    app.extensions["notify"] = _Deliverer(threading.Lock()) if hooks else None
    app.before_request(request_delivery)


def _secrets(webhook: Webhook) -> set[str]:
    """Return what of a webhook must never show: its URL, its path and query, each value in its
    query and each long part of its path (a receiver may echo the bare key), and its secret."""
    parts = urlsplit(webhook.url)
    found = {webhook.url, parts.path + (f"?{parts.query}" if parts.query else "")}
    found |= {parts.query} if parts.query else set()
    if webhook.secret:
        found.add(webhook.secret)
    # A bare "/" would hide every path in every log line.
    found = {s for s in found if len(s) > 1}
    values = [value for _, value in parse_qsl(parts.query)] + parts.path.split("/")
    # Short parts ("send", "hook", "v2") are words of the address, not keys.
    found |= {
        part for value in values for part in (value, unquote(value)) if len(part) >= MIN_SECRET_PART
    }
    return found


def request_delivery() -> None:
    """Deliver due messages from a web worker, at most once a window, off the request path.

    A team without a watcher is still told: pages that notice a task ending queue its message,
    and the next request sends it. With SMH_REFRESH_IN_BACKGROUND off, the request sends it.
    """
    deliverer: _Deliverer | None = current_app.extensions["notify"]
    if deliverer is None:
        return
    now = clock.now()
    if now < deliverer.next_check:
        return
    deliverer.next_check = now + max(1.0, float(current_app.config["SMH_CACHE_SECONDS"]))
    if not deliverer.lock.acquire(blocking=False):
        return
    if not current_app.config["SMH_REFRESH_IN_BACKGROUND"]:
        try:
            deliver_due()
        finally:
            deliverer.lock.release()
        return
    background.start(
        "webhook-delivery",
        deliver_due,
        done=deliverer.lock.release,
        log=log,
        failure="delivering task messages failed unexpectedly",
    )


@dataclass(frozen=True)
class Sent:
    """How one delivery went: the delivery, and the error (None: the chat took it)."""

    delivery: outbox.Delivery
    error: str | None
    gave_up: bool


def deliver_due() -> list[Sent]:
    """Send the messages that are due, each claimed first so that no other process sends it."""
    config = current_app.config
    lease = 2 * float(config["SMH_WEBHOOK_TIMEOUT"]) + LEASE_MARGIN
    tried: list[int] = []
    outcomes: list[Sent] = []
    while len(tried) < DELIVERY_PASS:
        now = clock.now()
        claimed = outbox.claim_deliveries(now, now + lease, 1, tried)
        if not claimed:
            break
        delivery = claimed[0]
        tried.append(delivery.id)
        with _claim_kept(delivery, lease):
            error, final = _send_delivery(delivery)
        after = clock.now()
        next_at = None if error is None or final else _retry_at(delivery, after)
        if not outbox.finish_delivery(delivery, after, error, next_at):
            continue
        sent = Sent(delivery, error, gave_up=error is not None and next_at is None)
        outcomes.append(sent)
        where = f"{delivery.destination} ({delivery.format})"
        if error is None:
            log.info("told %s that task %s ended", where, delivery.task_id)
        elif sent.gave_up:
            log.warning("gave up telling %s that task %s ended: %s", where, delivery.task_id, error)
        else:
            log.warning("telling %s that task %s ended failed: %s", where, delivery.task_id, error)
    return outcomes


@contextmanager
def _claim_kept(delivery: outbox.Delivery, lease: float) -> Iterator[None]:
    """Renew the delivery's claim from a thread while the block sends it.

    Without it, a receiver slower than the lease would have the message sent twice: another
    process would take the claim over and send it again while the first still waits.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    sent = threading.Event()

    def renew() -> None:
        with app.app_context():
            while not sent.wait(min(RENEW_EVERY, lease / 3)):
                try:
                    if not outbox.extend_claim(delivery, clock.now() + lease):
                        return
                except Exception:
                    # The next renewal may get through; the lease covers until then.
                    log.warning("renewing the claim on a delivery failed", exc_info=True)

    renewer = threading.Thread(target=renew, name="webhook-claim", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        sent.set()
        renewer.join()


def _retry_at(delivery: outbox.Delivery, now: float) -> float | None:
    config = current_app.config
    if now - delivery.created_at >= float(config["SMH_WEBHOOK_GIVE_UP_SECONDS"]):
        return None
    doubling = float(2 ** max(0, delivery.attempts - 1))
    wait = float(config["SMH_WEBHOOK_RETRY_SECONDS"]) * doubling
    return now + min(MAX_RETRY_WAIT, wait)


def _send_delivery(delivery: outbox.Delivery) -> tuple[str | None, bool]:
    """Post a delivery; return the error, if any, and whether trying again cannot help."""
    library = registry.get_library(delivery.library_id)
    webhook = library.webhook if library else None
    if library is None or webhook is None or webhook.key != delivery.webhook:
        return "this webhook is no longer configured for the library", True
    message = Message(
        library_id=library.id,
        library_name=library.name,
        task_id=delivery.task_id,
        state=delivery.state,
        status=delivery.smh_status,
        delete_count=delivery.delete_count,
        label=delivery.label,
        started_by=activity.started_by(library.id, delivery.task_id),
        finished_at=delivery.finished_at,
        url=dashboard_url("tasks.task", library_id=library.id, task_id=delivery.task_id),
    )
    return send(webhook, message), False


def send_test(library: Library) -> str | None:
    """Send a test message to the library's webhook; return the error, or None if it was taken."""
    if library.webhook is None:
        return "no webhook is configured for this library"
    message = Message(
        library_id=library.id,
        library_name=library.name,
        task_id=None,
        state="test",
        status=None,
        delete_count=None,
        label=None,
        started_by=None,
        finished_at=clock.now(),
        url=dashboard_url("libraries.library", library_id=library.id),
    )
    return send(library.webhook, message)


def dashboard_url(endpoint: str, **values: Any) -> str:
    """Build an absolute URL to a page from SMH_DASHBOARD_URL, with no request to go by."""
    base = urlsplit(current_app.config["SMH_DASHBOARD_URL"])
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme
    )
    return adapter.build(endpoint, values, force_external=True)


def send(webhook: Webhook, message: Message) -> str | None:
    """Post the message in the webhook's format; return what went wrong, never the URL."""
    url = webhook.url
    if webhook.format is WebhookFormat.DINGTALK and webhook.secret:
        url = messages.sign_dingtalk(url, webhook.secret, int(time.time() * 1000))
    secrets = _secrets(webhook) | {url}
    try:
        response = requests.post(
            url,
            data=json.dumps(messages.body(webhook.format, message), ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
            timeout=float(current_app.config["SMH_WEBHOOK_TIMEOUT"]),
            allow_redirects=False,
        )
    except requests.Timeout:
        return "no answer in time"
    except requests.ConnectionError:
        return "could not connect"
    except (requests.RequestException, ValueError, OSError) as error:
        # Their text may name the URL: only the kind is kept.
        return f"the request failed ({type(error).__name__})"
    with response:
        # Scrubbed before it is cut, so that no key is left half hidden at the cut.
        text = redact.scrub(response.text[: 4 * MAX_ERROR_TEXT], secrets)[:MAX_ERROR_TEXT].strip()
        if not 200 <= response.status_code < 300:
            return f"HTTP {response.status_code}" + (f": {messages.one_line(text)}" if text else "")
        if webhook.format.answers_with_errcode:
            return _robot_error(response.text, secrets)
    return None


def _robot_error(text: str, secrets: set[str]) -> str | None:
    try:
        answer = json.loads(text)
    except ValueError:
        return "the robot's answer is not JSON"
    if not isinstance(answer, dict):
        return "the robot's answer is not a JSON object"
    if answer.get("errcode") == 0:
        return None
    said = redact.scrub(str(answer.get("errmsg", "")), secrets)[:MAX_ERROR_TEXT]
    return messages.one_line(f"errcode {answer.get('errcode')}: {said}")
