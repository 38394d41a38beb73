"""Signing out of HTTP Basic: the browser is told to forget the credentials it keeps sending."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import WWWAuthenticate

bp = Blueprint("sign_out", __name__)

# Another realm than sign-in's: the browser drops what it keeps for the dashboard's realm
# instead of sending it again, where Clear-Site-Data is not understood.
SIGNED_OUT_REALM = "SMH dashboard (signed out)"


@bp.get("/sign-out")
def sign_out() -> ResponseReturnValue:
    """Answer 401 with Clear-Site-Data, so that the browser forgets its Basic credentials."""
    challenge = WWWAuthenticate("basic", {"realm": SIGNED_OUT_REALM, "charset": "UTF-8"})
    headers = {
        # "cookies" also clears HTTP authentication credentials (and the session cookie).
        "Clear-Site-Data": '"cookies"',
        "WWW-Authenticate": challenge.to_header(),
        "Cache-Control": "no-store",
    }
    return render_template("signed_out.html"), 401, headers
