"""The Chinese UI: language choice, the switch, translated strings and up-to-date catalogs."""

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from markup import shown

from smh_dashboard import formats, i18n
from smh_dashboard.storage import tasks

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}


def html_lang(response):
    return re.search(r'<html lang="([^"]*)"', response.get_data(as_text=True)).group(1)


def track(app, clock, *task_ids):
    with app.app_context():
        tasks.track_tasks("lib1", task_ids, None, clock())


def csrf_of(client, **kwargs):
    page = client.get("/libraries/lib1", **kwargs).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_a_chinese_browser_gets_a_chinese_page(client, app, sim, clock):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(app, clock, task_id)

    page = client.get("/libraries/lib1", headers=CHINESE)

    assert html_lang(page) == "zh-CN"
    assert "运行中" in shown(page)
    assert "Running" not in shown(page)
    assert {"Accept-Language", "Cookie"} <= set(page.vary)


def test_flash_messages_and_error_pages_are_chinese(client, app, sim):
    token = csrf_of(client, headers=CHINESE)
    done = client.post(
        "/libraries/lib1/tasks",
        data={"task_ids": "1000 1001 1002", "csrf_token": token},
        headers=CHINESE,
    )
    assert done.status_code == 303
    assert "正在跟踪 3 个任务。" in shown(client.get("/libraries/lib1", headers=CHINESE))

    missing = client.get("/libraries/nope", headers=CHINESE)
    assert missing.status_code == 404
    assert html_lang(missing) == "zh-CN"
    assert "此处未配置媒体库“nope”。" in shown(missing)

    nowhere = client.get("/no/such/page", headers=CHINESE)
    assert nowhere.status_code == 404
    assert "控制台上没有此页面" in shown(nowhere)
    assert "There is no such page" in shown(client.get("/no/such/page"))

    refused = client.post(
        "/libraries/lib1/tasks", data={"task_ids": "12x", "csrf_token": token}, headers=CHINESE
    )
    assert refused.status_code == 400
    assert "“12x”不是任务 ID" in shown(refused)


def test_a_refused_search_is_explained_in_chinese(client):
    refused = client.get("/libraries/lib1", query_string={"q": "a\nb"}, headers=CHINESE)

    assert refused.status_code == 400
    assert "搜索内容只能是一行文字" in shown(refused)
    assert english_words(refused) == []


@pytest.mark.parametrize(
    ("accept", "lang"),
    [
        ("zh-CN", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-SG", "zh-CN"),
        ("zh-Hans", "zh-CN"),
        ("zh-hans-cn", "zh-CN"),
        ("fr-FR, zh-CN;q=0.5", "zh-CN"),
        ("en-GB, zh-CN;q=0.8", "en"),
        ("zh-CN;q=0.2, en;q=0.9", "en"),
        ("zh;q=0, en;q=0.1", "en"),
        # Traditional Chinese has no catalog here: the reader's next choice, or English.
        ("zh-TW", "en"),
        ("zh-Hant, zh-CN;q=0.5", "zh-CN"),
        ("de-DE, fr", "en"),
        ("", "en"),
        ("*", "en"),
    ],
)
def test_accept_language_picks_the_best_language_we_have(client, accept, lang):
    page = client.get("/", headers={"Accept-Language": accept} if accept else {})

    assert html_lang(page) == lang


def test_the_switch_is_remembered_over_the_browser_language(client):
    switched = client.get("/language?lang=zh_CN&next=/libraries/lib1?state=running")

    assert switched.status_code == 303
    assert switched.headers["Location"] == "/libraries/lib1?state=running"
    cookie = switched.headers["Set-Cookie"]
    assert cookie.startswith("dashboard_lang=zh_CN;")
    assert "SameSite=Lax" in cookie
    assert "Max-Age=31536000" in cookie
    assert "HttpOnly" in cookie

    page = client.get("/libraries/lib1", headers={"Accept-Language": "en-US"})
    assert html_lang(page) == "zh-CN"
    assert 'href="/language?lang=en&amp;next=/libraries/lib1"' in page.get_data(as_text=True)

    client.get("/language?lang=en&next=/")
    assert html_lang(client.get("/", headers=CHINESE)) == "en"


def test_a_switch_link_comes_back_to_the_page_it_is_on(client):
    page = client.get("/libraries/lib1?state=done", headers=CHINESE).get_data(as_text=True)

    link = re.search(r'<a href="([^"]+)"[^>]*hreflang="en"', page).group(1)
    assert html.unescape(link) == "/language?lang=en&next=/libraries/lib1?state%3Ddone"
    assert client.get(html.unescape(link)).headers["Location"] == "/libraries/lib1?state=done"


def test_a_long_address_is_not_quoted_back_in_the_switch(client):
    page = client.get("/libraries/" + "a" * 5000, headers=CHINESE).get_data(as_text=True)

    assert 'href="/language?lang=en&amp;next=/"' in page


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/%0a/evil.example",
        "\t//evil.example",
        "",
    ],
)
def test_the_switch_never_sends_a_reader_off_site(client, target):
    switched = client.get("/language", query_string={"lang": "zh_CN", "next": target})

    assert switched.status_code == 303
    location = switched.headers["Location"]
    assert location == "/" or (location.startswith("/") and not location.startswith(("//", "/\\")))


def test_an_unknown_language_is_refused_or_ignored(client):
    refused = client.get("/language?lang=fr&next=/", headers=CHINESE)
    assert refused.status_code == 400
    assert "请选择语言" in shown(refused)
    assert "Set-Cookie" not in refused.headers

    client.set_cookie("dashboard_lang", "fr")
    assert html_lang(client.get("/")) == "en"
    assert html_lang(client.get("/", headers=CHINESE)) == "zh-CN"


def test_counted_messages_take_the_plural_form(client, app, sim, clock):
    track(app, clock, 1000, 1001, 1002)

    def untrack(*ids):
        token = csrf_of(client)
        client.post(
            "/libraries/lib1/tasks/untrack", data={"task_id": list(ids), "csrf_token": token}
        )
        return shown(client.get("/libraries/lib1"))

    assert "1 task no longer tracked." in untrack(1000)
    assert "2 tasks no longer tracked." in untrack(1001, 1002)

    track(app, clock, 1003)
    token = csrf_of(client)
    client.post(
        "/libraries/lib1/tasks/untrack",
        data={"task_id": ["1003"], "csrf_token": token},
        headers=CHINESE,
    )
    assert "已不再跟踪 1 个任务。" in shown(client.get("/libraries/lib1", headers=CHINESE))


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("en", ["3 days", "1 min 5 s", "2 h", "4 min ago", "just now", "12,077"]),
        ("zh-CN", ["3 天", "1 分 5 秒", "2 小时", "4 分钟前", "刚刚", "12,077"]),
    ],
)
def test_times_and_numbers_follow_the_language(app, accept, expected):
    with app.test_request_context("/", headers={"Accept-Language": accept}):
        assert [
            formats.duration(3 * 86400 + 7),
            formats.duration(65),
            formats.duration(7200),
            formats.ago(1000.0, 1000.0 + 245),
            formats.ago(1000.0, 1001.0),
            formats.number(12077),
        ] == expected


def test_the_json_api_speaks_english_to_every_script(client):
    answer = client.get("/api/v1/task/lib1/1,x", headers=CHINESE)

    assert answer.status_code == 400
    assert "TaskIdList must be task ids separated by commas" in answer.get_json()["message"]
    assert "Accept-Language" not in answer.vary


def test_the_cli_speaks_english(app):
    with app.app_context():
        assert i18n.get_locale() == "en"
        assert formats.ago(None, 0.0) == "never"


def _extracted_ids():
    with open(ROOT / "babel.cfg") as file:
        method_map, options_map = parse_mapping_cfg(file)
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None}
    return {
        message[2] if isinstance(message[2], str) else message[2][0]
        for message in extract_from_dir(str(ROOT), method_map, options_map, keywords=keywords)
    }


def _catalog_ids(catalog):
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


def test_every_message_in_the_code_is_translated():
    with open(PO, "rb") as file:
        catalog = read_po(file)
    extracted = _extracted_ids()

    assert len(extracted) > 50
    assert sorted(extracted - _catalog_ids(catalog)) == [], "run the pybabel update in README"
    untranslated = [m.id for m in catalog if m.id and not all(_strings(m))]
    assert untranslated == []
    assert [m.id for m in catalog if m.id and m.fuzzy] == []
    # Placeholders: a translation names exactly the placeholders its message does.
    assert [(m.id, errors) for m, errors in catalog.check()] == []


def _whole_id(message):
    return message.id if isinstance(message.id, str) else tuple(message.id)


def _strings(message):
    return (message.string,) if isinstance(message.string, str) else tuple(message.string)


def test_the_compiled_catalog_matches_its_source():
    with open(PO, "rb") as file:
        source = read_po(file)
    with open(MO, "rb") as file:
        compiled = read_mo(file)

    def pairs(catalog):
        return {(_whole_id(m), _strings(m)) for m in catalog if m.id and not m.fuzzy}

    assert pairs(compiled) == pairs(source), "run the pybabel compile in README"


class _ShownText(HTMLParser):
    """Collect what a reader sees or hears: text, and the attributes browsers show or speak."""

    SPOKEN = frozenset({"title", "aria-label", "placeholder", "data-label", "data-announce", "alt"})
    # Code, the raw SMH answer and scripts are not UI wording.
    SKIPPED = frozenset({"code", "pre", "script", "style"})

    def __init__(self):
        super().__init__()
        self.parts = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIPPED:
            self.skipping += 1
        self.parts += [
            v for k, v in attrs if v and (k in self.SPOKEN or k.startswith("data-text-"))
        ]

    def handle_endtag(self, tag):
        if tag in self.SKIPPED:
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


# Words that stay as they are in a Chinese page: product, protocol and format names, the
# language switch's own "English", and SMH's error code.
ALLOWED_WORDS = {"SMH", "CSV", "JSON", "json", "HTTP", "UTC", "TOML", "English", "ServerOverloaded"}
# Data, not wording: the library's name, what SMH and the webhook said (stored as they came),
# request ids, and the {placeholders} static/notify.js fills in.
DATA = re.compile(
    r"Marketing assets|Backend on fire\.|InternalError: history store unavailable"
    r"|could not connect|\b[0-9a-f]{32}\b|\{task\}|\{state\}"
)


def english_words(response):
    """Return the English words a page shows or speaks, outside data and the allowed words."""
    parser = _ShownText()
    parser.feed(response.get_data(as_text=True))
    words = re.findall(r"[A-Za-z]{3,}", DATA.sub(" ", " ".join(parser.parts)))
    return sorted(set(words) - ALLOWED_WORDS)


@pytest.fixture
def webhook_app(make_app):
    """The app with a webhook on loopback that nobody answers (deliveries keep retrying)."""
    return make_app(
        SMH_WEBHOOK_URL="http://127.0.0.1:9/hook?key=k", SMH_DASHBOARD_URL="https://smh.example.com"
    )


def test_chinese_pages_have_no_english_left(webhook_app, sim, clock, next_window):
    app, client = webhook_app, webhook_app.test_client()
    running = sim.add_task("lib1", run_seconds=6000)
    forgotten = sim.add_task("lib1", run_seconds=5)
    done = sim.add_task("lib1", run_seconds=5, delete_count=12077)
    failed = sim.add_task("lib1", run_seconds=5, outcome="failed")
    track(app, clock, running, done, failed, forgotten, 987654)
    client.get("/libraries/lib1", headers=CHINESE)
    clock.advance(10)
    next_window()
    client.get("/libraries/lib1", headers=CHINESE)
    token = csrf_of(client, headers=CHINESE)
    # Something in the activity log (said in the language of whoever acted), and an undo.
    client.post(
        "/libraries/lib1/clear-history",
        data={"confirm": "lib1", "csrf_token": token},
        headers=CHINESE,
    )
    client.post(
        f"/libraries/lib1/tasks/{forgotten}/untrack", data={"csrf_token": token}, headers=CHINESE
    )
    # The task's end is told to the webhook, which does not answer: a delivery is retrying.
    app.test_cli_runner().invoke(args=["refresh"])
    sim.inject(
        "error", endpoint="task.query", status=503, code="ServerOverloaded",
        message="Backend on fire.", times=None,
    )  # fmt: skip
    next_window()

    pages = {
        "library": client.get("/libraries/lib1", headers=CHINESE),
        "search": client.get("/libraries/lib1?q=zz&state=done", headers=CHINESE),
        "history": client.get("/libraries/lib1/history-settings", headers=CHINESE),
        "index": client.get("/", headers=CHINESE),
        "task": client.get(f"/libraries/lib1/tasks/{failed}", headers=CHINESE),
        "delivered": client.get(f"/libraries/lib1/tasks/{done}", headers=CHINESE),
        "activity": client.get("/libraries/lib1/activity", headers=CHINESE),
        "missing": client.get("/no/such/page", headers=CHINESE),
    }

    library = shown(pages["library"])
    for seen in ("运行中", "已完成", "失败", "暂未找到", "SMH 请求失败", "历史版本"):
        assert seen in library
    assert "撤销取消跟踪" in library
    assert "失败" in shown(pages["delivered"]) and "重试" in shown(pages["delivered"])
    assert 'id="activity-' in shown(pages["activity"])
    assert {name: english_words(page) for name, page in pages.items()} == {
        name: [] for name in pages
    }
    # The same check finds the English in an English page.
    assert "Running" in english_words(client.get("/libraries/lib1"))


def test_an_export_keeps_its_columns_and_states_and_shows_the_badge_in_chinese(
    client, app, sim, clock
):
    track(app, clock, sim.add_task("lib1", run_seconds=600))

    lines = client.get("/libraries/lib1/tasks.csv", headers=CHINESE).get_data(as_text=True)
    header, row = lines.lstrip("\ufeff").splitlines()[:2]

    assert header.startswith("task_id,label,state,status,")
    assert ",pending,等待 SMH 响应," in row
