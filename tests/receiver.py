"""A webhook receiver on loopback for the notification tests: records each POST, answers as told."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    """One POST as the receiver saw it, and the HTTP status it answered (None: none sent)."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict | None
    status: int | None = None
    method: str = "POST"


@dataclass
class Receiver:
    """Answers each POST with the next status of `plan` (200 once it runs out)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    plan: list[int] = field(default_factory=list)
    answer: dict = field(default_factory=lambda: {"errcode": 0, "errmsg": "ok"})
    # While `hold` is set, a POST waits for `release` and is then answered `held_status`.
    hold: threading.Event = field(default_factory=threading.Event)
    held_status: int = 500
    # Sent as the Location of a 3xx answer.
    location: str = ""
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def successes(self) -> list[dict]:
        """Return the bodies that were answered 2xx, in order."""
        with self.lock:
            return [r.body for r in self.received if r.status is not None and r.status < 300]

    def bodies(self) -> list[dict]:
        """Return every body received, in order."""
        with self.lock:
            return [r.body for r in self.received]


def serve(receiver: Receiver) -> ThreadingHTTPServer:
    """Serve the receiver on 127.0.0.1 from a daemon thread; set its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            parts = urlsplit(self.path)
            seen = Received(
                parts.path, parse_qs(parts.query), dict(self.headers), json.loads(raw or b"null")
            )
            with receiver.lock:
                receiver.received.append(seen)
                held = receiver.hold.is_set()
                if held:
                    status = receiver.held_status
                else:
                    status = receiver.plan.pop(0) if receiver.plan else 200
            if held:
                receiver.arrived.set()
                receiver.release.wait(60)
            self.answer(seen, status)

        def do_GET(self) -> None:
            # Only a client following a redirect would ask: recorded, so a test can see it did.
            parts = urlsplit(self.path)
            query, headers = parse_qs(parts.query), dict(self.headers)
            seen = Received(parts.path, query, headers, None, method="GET")
            with receiver.lock:
                receiver.received.append(seen)
            self.answer(seen, 200)

        def answer(self, seen: Received, status: int) -> None:
            payload = json.dumps(receiver.answer if status == 200 else {"error": "no"}).encode()
            try:
                self.send_response(status)
                if 300 <= status < 400 and receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                return
            with receiver.lock:
                seen.status = status

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server
