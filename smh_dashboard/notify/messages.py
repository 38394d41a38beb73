"""What a message about a task's end says, in each chat's format, and DingTalk's signature.

Pure: no network, no app; delivery.py posts what these functions write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

from smh_dashboard import badges, formats
from smh_dashboard.domain.guided import HISTORY_ON
from smh_dashboard.domain.webhooks import WebhookFormat


@dataclass(frozen=True)
class Message:
    """What a message about a task's end says; `task_id` is None for `flask notify-test`."""

    library_id: str
    library_name: str
    task_id: int | None
    state: str
    status: int | None
    delete_count: int | None
    label: str | None
    started_by: str | None
    finished_at: float
    url: str

    @property
    def outcome(self) -> str:
        """Say the end in words, as the badge does."""
        if self.task_id is None:
            return "Test message"
        if self.state == HISTORY_ON:
            return "File history is on again with the settings it had before the clear"
        return badges.badge_for(self.state, self.status).text

    @property
    def headline(self) -> str:
        """Say in one line what happened, with no markup."""
        if self.task_id is None:
            return f"Test message from the SMH task dashboard for {self.library_name}"
        return f"SMH task {self.task_id} in {self.library_name}: {self.outcome}"


def one_line(text: str) -> str:
    """Return text on one line, every run of whitespace made one space."""
    return " ".join(text.split())


def sign_dingtalk(url: str, secret: str, timestamp_ms: int) -> str:
    """Add DingTalk's timestamp and signature (HMAC-SHA256 of "timestamp\\nsecret") to the URL."""
    signed = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    sign = quote_plus(base64.b64encode(signed.digest()))
    joiner = "&" if urlsplit(url).query else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={sign}"


def body(webhook_format: WebhookFormat, message: Message) -> dict[str, Any]:
    """Return the JSON body that format expects for the message."""
    if webhook_format is WebhookFormat.WECOM:
        return {"msgtype": "markdown", "markdown": {"content": _markdown(message, wecom=True)}}
    if webhook_format is WebhookFormat.DINGTALK:
        return {
            "msgtype": "markdown",
            "markdown": {"title": message.headline, "text": _markdown(message, wecom=False)},
        }
    if webhook_format is WebhookFormat.SLACK:
        return {"text": _slack(message.headline), "blocks": _slack_blocks(message)}
    return {
        "libraryId": message.library_id,
        "taskId": message.task_id,
        "state": message.state,
        "status": message.status,
        "deleteCount": message.delete_count,
        "label": message.label,
        "startedBy": message.started_by,
        "finishedAt": formats.iso(message.finished_at),
        "url": message.url,
    }


# WeCom colours a word with <font color>: green for done, red-ish for failed, grey otherwise.
WECOM_COLOURS = {"done": "info", "failed": "warning"}
# Escaped with a backslash wherever a label or name goes into markdown: emphasis, code, links,
# HTML and entities (&), strike-through (~) and headings would otherwise take effect.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#&~])")


def _details(message: Message) -> list[str]:
    lines = []
    if message.label:
        lines.append(f"Label: {message.label}")
    if message.delete_count is not None:
        lines.append(f"Versions deleted: {formats.number(message.delete_count)}")
    if message.started_by:
        lines.append(f"Started by: {message.started_by}")
    if message.task_id is not None:
        lines.append(f"Ended: {formats.utc(message.finished_at)}")
    else:
        lines.append("Messages about tasks that end will come here.")
    return lines


def _markdown(message: Message, wecom: bool) -> str:
    """Write the message in the markdown WeCom and DingTalk robots render."""
    outcome = _md(message.outcome)
    if wecom:
        tone = badges.badge_for(message.state, message.status).tone
        outcome = f'<font color="{WECOM_COLOURS.get(tone, "comment")}">{outcome}</font>'
    if message.task_id is None:
        title = f"**{_md(message.headline)}**"
    else:
        title = f"**SMH task {message.task_id} in {_md(message.library_name)}: {outcome}**"
    lines = [title, *(_md(line) for line in _details(message))]
    link = "Open the task page" if message.task_id is not None else "Open the library page"
    lines.append(f"[{link}]({message.url})")
    # Both robots need a blank line to break a line.
    return "\n\n".join(lines)


def _md(text: str) -> str:
    return MARKDOWN_SPECIAL.sub(r"\\\1", one_line(text))


def _slack_blocks(message: Message) -> list[dict[str, Any]]:
    """Write the message as Slack blocks: the title and link in mrkdwn (links as <url|text>),
    the details, which carry the label and who started the task, as plain text.

    Slack's mrkdwn has no way to escape * _ ~ `, so what people type never goes into it (the
    library's name comes from the dashboard's settings); & < > are escaped in every text
    object, as Slack asks.
    """
    if message.task_id is None:
        title = f"*{_slack(message.headline)}*"
    else:
        title = (
            f"*SMH task <{message.url}|{message.task_id}> in {_slack(message.library_name)}: "
            f"{_slack(message.outcome)}*"
        )
    link = "Open the task page" if message.task_id is not None else "Open the library page"
    details = "\n".join(_slack(line) for line in _details(message))
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": title}},
        {"type": "section", "text": {"type": "plain_text", "text": details, "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"<{message.url}|{link}>"}},
    ]


def _slack(text: str) -> str:
    return one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
