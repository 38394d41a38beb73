"""The headers every answer carries: no inline scripts, no framing, no MIME sniffing, HSTS."""

from __future__ import annotations

from flask import Flask, Response, current_app, request

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def init_app(app: Flask) -> None:
    """Add the security headers to every answer the app gives, pages and API alike."""
    app.after_request(add_security_headers)


def add_security_headers(response: Response) -> Response:
    """Forbid inline scripts, framing and MIME sniffing on every answer."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    seconds = current_app.config["SMH_HSTS_SECONDS"]
    # Browsers honour it only over HTTPS; sent over HTTP it would say nothing true.
    if seconds and request.is_secure:
        response.headers["Strict-Transport-Security"] = f"max-age={seconds}"
    if request.headers.get("HX-Request"):
        response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    return response
