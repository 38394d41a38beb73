"""Which language a request is answered in: the reader's remembered choice, then their browser's."""

from __future__ import annotations

from gettext import NullTranslations
from typing import cast
from urllib.parse import urlsplit

import flask_babel
from babel import Locale
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    has_request_context,
    redirect,
    request,
    url_for,
)
from flask.globals import _cv_request
from flask.typing import ResponseReturnValue
from flask_babel import Babel, LazyString
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup

bp = Blueprint("i18n", __name__)
babel = Babel()

ENGLISH = "en"
CHINESE = "zh_CN"
# Locale id (as the catalogs are named) → the language's own name, shown by the switch.
LANGUAGES = {ENGLISH: "English", CHINESE: "简体中文"}
# How each language groups digits: by three, with this between (Babel's CLDR data says the same,
# and tests check it, but reading that data costs each process about 4 MB).
GROUP_SYMBOLS = {ENGLISH: ",", CHINESE: ","}
# Browser language tags read as Simplified Chinese. zh-TW, zh-HK and zh-Hant are Traditional:
# they are passed over for the reader's next choice, as any other language without a catalog.
SIMPLIFIED_CHINESE_TAGS = ("zh", "zh-cn", "zh-hans", "zh-sg", "zh-hans-cn", "zh-hans-sg")
COOKIE = "dashboard_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
# The longest address the switch comes back to; a longer one goes back to the index.
MAX_NEXT_LENGTH = 256


def init_app(app: Flask, english_under: str) -> None:
    """Choose each request's language (always English under `english_under`), serve the switch."""
    app.extensions["i18n.english_under"] = english_under
    babel.init_app(app, default_locale=ENGLISH, locale_selector=_babel_locale)
    # Flask-Babel finds the catalog again on every message; a table of 50 rows has about a
    # thousand, so templates (and the doors below) look it up once per request instead.
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        template_gettext, template_ngettext, newstyle=True
    )
    # Jinja's newstyle wrappers call these through two more layers (`_` resolves `gettext`, which
    # calls ours), about half of each message's cost, and a page has eighty: templates call the
    # same translation directly.
    app.jinja_env.globals.update(_=template_gettext, gettext=template_gettext)
    app.jinja_env.globals.update(ngettext=template_ngettext)
    # A {% trans %} block's line breaks and indentation are not part of its message (babel.cfg).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.register_blueprint(bp)
    app.jinja_env.globals.update(
        html_lang=html_lang,
        language_tag=language_tag,
        language_url=language_url,
        LANGUAGES=LANGUAGES,
    )
    app.after_request(_vary)


def select_locale() -> str:
    """Return the request's locale: English for the API, else the cookie, else Accept-Language."""
    # Scripts read the JSON API's messages, and a script's locale must not change what it parses;
    # the CLI, with no request, speaks English too.
    if not has_request_context() or _english_only():
        return ENGLISH
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return _from_accept_language()


def _babel_locale() -> Locale:
    # Flask-Babel parses the selector's answer on every request (8 us for English, 38 for
    # Chinese); a Locale it is given comes back as it is, so each is parsed once.
    chosen = select_locale()
    locale = _PARSED.get(chosen)
    if locale is None:
        locale = _PARSED[chosen] = Locale.parse(chosen)
    return locale


_PARSED: dict[str, Locale] = {}


def _from_accept_language() -> str:
    # Werkzeug lists the tags best first and leaves out those with q=0.
    for tag, _quality in request.accept_languages:
        tag = tag.lower().replace("_", "-")
        if tag in SIMPLIFIED_CHINESE_TAGS:
            return CHINESE
        if tag == "*" or tag == "en" or tag.startswith("en-"):
            return ENGLISH
    return ENGLISH


def html_lang() -> str:
    """Return the BCP 47 tag of the request's language, for `<html lang>`: 'en' or 'zh-CN'."""
    return language_tag(get_locale())


def language_tag(locale: str) -> str:
    """Return the BCP 47 tag of one of LANGUAGES' locale ids: 'zh_CN' → 'zh-CN'."""
    return locale.replace("_", "-")


def language_url(locale: str) -> str:
    """Return the switch's URL that picks a language and comes back to this page."""
    # After a form's POST, coming back means a GET of the page the form belongs to; a page's
    # own address is short, and a long one (an error page's) is not quoted back in every link.
    here = request.full_path.rstrip("?") if request.method == "GET" else "/"
    if len(here) > MAX_NEXT_LENGTH:
        here = "/"
    return url_for("i18n.set_language", lang=locale, next=here)


@bp.get("/language")
def set_language() -> ResponseReturnValue:
    """Remember the language picked in the switch for a year, then go back to the page."""
    chosen = request.args.get("lang", "")
    if chosen not in LANGUAGES:
        names = ", ".join(LANGUAGES)
        abort(400, description=gettext("Pick a language: one of %(names)s.", names=names))
    response = redirect(request.script_root + local_path(request.args.get("next", "")), 303)
    response.set_cookie(
        COOKIE,
        chosen,
        max_age=COOKIE_MAX_AGE,
        samesite="Lax",
        httponly=True,
        secure=request.is_secure,
        path=request.script_root or "/",
    )
    return response


def local_path(target: str) -> str:
    """Return target if it is a path on this dashboard, else '/': never a way off the site."""
    parts = urlsplit(target)
    local = (
        target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not parts.scheme
        and not parts.netloc
        and target.isprintable()
    )
    return target if local else "/"


def _vary(response: Response) -> Response:
    # A page's language comes from these two headers; a shared cache must key on them.
    if request.endpoint != "static" and not _english_only():
        response.vary.update(("Cookie", "Accept-Language"))
    return response


def _english_only() -> bool:
    return request.path.startswith(current_app.extensions["i18n.english_under"])


# Typed doors to Flask-Babel (which ships no type information); pybabel extracts these names.


def catalog() -> NullTranslations:
    """Return the request's message catalog, looked up once per request (English outside one)."""
    # Read about seventy times a page: the request context itself, not two proxies' lookups.
    context = _cv_request.get(None)
    if context is None:
        return cast(NullTranslations, flask_babel.get_translations())
    # The request's own environ: an app context (flask.g) may outlive one request in tests.
    environ = context.request.environ
    catalog = environ.get(_CATALOG_KEY)
    if catalog is None:
        catalog = environ[_CATALOG_KEY] = flask_babel.get_translations()
    return cast(NullTranslations, catalog)


_CATALOG_KEY = "dashboard.catalog"


@pass_eval_context
def template_gettext(eval_ctx: EvalContext, message: str, /, **variables: object) -> str:
    """Translate a template's message, then fill in its placeholders, escaped where the template
    escapes (Jinja's newstyle gettext, which formats even without placeholders)."""
    translated = catalog().gettext(message)
    if not variables and "%" not in translated:
        # Nothing to fill in or unescape ("%%"): formatting would return the same text.
        return Markup(translated) if eval_ctx.autoescape else translated
    if eval_ctx.autoescape:
        return Markup(translated) % variables
    return translated % variables


@pass_eval_context
def template_ngettext(
    eval_ctx: EvalContext, singular: str, plural: str, num: int, /, **variables: object
) -> str:
    """Translate a template's message whose form depends on num, as template_gettext does."""
    variables.setdefault("num", num)
    translated = catalog().ngettext(singular, plural, num)
    if eval_ctx.autoescape:
        return Markup(translated) % variables
    return translated % variables


def gettext(message: str, **variables: object) -> str:
    """Translate a message into the request's language, then fill in its named placeholders."""
    translated = catalog().gettext(message)
    return translated % variables if variables else translated


def ngettext(singular: str, plural: str, num: int, **variables: object) -> str:
    """Translate a message whose form depends on num (%(num)d in it), then fill it in."""
    variables.setdefault("num", num)
    return catalog().ngettext(singular, plural, num) % variables


def lazy_gettext(message: str, **variables: object) -> LazyString:
    """Return a message translated each time it is shown, in that request's language."""
    return LazyString(gettext, message, **variables)


def get_locale() -> str:
    """Return the request's locale id ('en' or 'zh_CN'); English outside a request."""
    # Babel reads "zh_CN" as zh_Hans_CN; the dashboard names its languages as its catalogs do.
    locale = flask_babel.get_locale()
    return CHINESE if locale is not None and locale.language == "zh" else ENGLISH
