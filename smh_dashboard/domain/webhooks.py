"""Webhooks: where a library's task ends are posted, in which chat's format, never shown whole."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit


class WebhookFormat(Enum):
    """The body a webhook expects: plain JSON, or a chat robot's own markdown message."""

    JSON = "json"
    WECOM = "wecom"
    DINGTALK = "dingtalk"
    SLACK = "slack"

    @property
    def answers_with_errcode(self) -> bool:
        """Tell whether its robot answers with HTTP 200 and an errcode, 0 being the only success."""
        return self in (WebhookFormat.WECOM, WebhookFormat.DINGTALK)


@dataclass(frozen=True)
class Webhook:
    """Where a library's task ends are posted; the URL and secret carry keys, so never shown."""

    url: str = field(repr=False)
    format: WebhookFormat
    # DingTalk's signing secret ("SEC…"), when its robot has signing switched on.
    secret: str | None = field(default=None, repr=False)

    @property
    def masked(self) -> str:
        """Return the URL as it may be shown: scheme and host, the rest hidden."""
        return mask_url(self.url)

    @property
    def key(self) -> str:
        """Return a short digest that tells this webhook from another without revealing it."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]


def mask_url(url: str) -> str:
    """Return a URL's scheme and host followed by an ellipsis: the path and query carry keys."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"
