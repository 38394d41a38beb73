"""Drive the dashboard in real Chromium, over real HTTP, and check what a person sees change."""

import os
import re
import shutil
from datetime import UTC, datetime

import pytest
from werkzeug.security import generate_password_hash

from smh_dashboard.storage import tasks

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    expect = sync_playwright = None

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
]
POLL_SECONDS = 2
# How long to wait for something that should happen: wide for a loaded machine, and free when the
# test passes, since each wait ends as soon as its event comes.
WAIT_MS = 30_000
if expect is not None:
    # Assertions wait as long: most check that a poll has brought something onto the screen.
    expect.set_options(timeout=WAIT_MS)
ROWS = "/libraries/lib1/rows"
OPERATOR = {"username": "ana", "password": "ana-s3cret"}
VIEWER = {"username": "vic", "password": "vic-s3cret"}


def _chromium_path():
    for candidate in (CHROMIUM, shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser(unavailable):
    if sync_playwright is None:
        unavailable("playwright is not installed")
    executable = _chromium_path()
    if executable is None:
        unavailable(f"Chromium is not installed ({CHROMIUM} or chromium on PATH)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def settings(settings, tmp_path):
    """Poll and expire cached answers quickly; people sign in as an operator or a viewer.

    Refreshes run in the background, as when people use the dashboard.
    """
    settings["SMH_POLL_SECONDS"] = POLL_SECONDS
    settings["SMH_CACHE_SECONDS"] = 1
    settings["SMH_REFRESH_IN_BACKGROUND"] = True
    users = tmp_path / "users.toml"
    users.write_text(
        "".join(
            f'[[user]]\nname = "{who["username"]}"\nrole = "{role}"\n'
            f'password_hash = "{generate_password_hash(who["password"])}"\n'
            for who, role in ((OPERATOR, "operator"), (VIEWER, "viewer"))
        )
    )
    settings["SMH_USERS_FILE"] = str(users)
    return settings


def _signed_in_page(browser, base_url, credentials):
    context = browser.new_context(base_url=base_url, http_credentials=credentials)
    context.set_default_timeout(WAIT_MS)
    return context.new_page()


@pytest.fixture
def page(browser, live_server):
    """Return a tab signed in as an operator (HTTP Basic, as a browser remembers it)."""
    page = _signed_in_page(browser, live_server, OPERATOR)
    yield page
    page.context.close()


@pytest.fixture
def track(app, clock):
    """Return a function that tracks task ids in lib1, as if typed into the form earlier."""

    def track_ids(*task_ids, label="nightly clean-up"):
        with app.app_context():
            tasks.track_tasks("lib1", list(task_ids), label, clock())

    return track_ids


def _is_poll(request):
    return request.url.split("?")[0].endswith(ROWS)


def test_running_task_turns_done_without_reload(page, sim, clock, track):
    task_id = sim.add_task("lib1", run_seconds=60, delete_count=1234)
    track(task_id)
    requests = []
    navigations = []
    page.on("request", lambda r: requests.append(r))
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    page.goto("/libraries/lib1")
    url = page.url
    page.evaluate("window.__marker = 1")
    badge = page.locator(f"#task-{task_id} .badge")
    deleted = page.locator(f"#task-{task_id} td.num")
    expect(badge).to_have_text("Running")
    expect(deleted).to_have_text("—")
    expect(page).to_have_title("(1 running) Marketing assets")

    clock.advance(61)
    seen_before_done = len(requests)
    expect(badge).to_have_text("Done", timeout=WAIT_MS)
    expect(deleted).to_have_text("1,234")
    expect(page).to_have_title("✓ Marketing assets")
    expect(
        page.get_by_text("Nothing running: this page no longer refreshes itself.")
    ).to_be_visible()
    polls = [r for r in requests[seen_before_done:] if _is_poll(r)]
    assert polls, "the row turned Done without a poll of /rows"

    requests.clear()
    page.wait_for_timeout(3.5 * POLL_SECONDS * 1000)
    assert [r.url for r in requests] == []
    assert page.url == url
    assert navigations == [url]
    assert page.evaluate("window.__marker") == 1


def _unchanged_poll(response):
    return _is_poll(response.request) and response.status == 204


def test_unchanged_polls_leave_the_page_and_times_move_in_the_browser(page, sim, clock, track):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(task_id)
    # The browser's clock agrees with the dashboard's, which the test holds still.
    page.clock.set_fixed_time(datetime.fromtimestamp(clock(), UTC))
    page.goto("/libraries/lib1")
    badge = page.locator(f"#task-{task_id} .badge")
    added = page.locator(f"#task-{task_id} td.added time")
    updated = page.locator("time[data-updated]")
    expect(badge).to_have_text("Running")
    expect(added).to_have_text(re.compile(r"^now · "))

    for _ in range(2):
        with page.expect_response(_unchanged_poll, timeout=WAIT_MS):
            pass
    expect(badge).to_have_text("Running")

    page.clock.set_fixed_time(datetime.fromtimestamp(clock() + 125, UTC))
    expect(added).to_have_text(re.compile(r"^2 minutes ago · "), timeout=WAIT_MS)
    with page.expect_response(_unchanged_poll, timeout=WAIT_MS):
        pass
    expect(updated).to_have_text("now")
    expect(page.locator("#tasks [data-poll]")).to_have_count(1)


def _set_hidden(page, hidden):
    page.evaluate(
        """(hidden) => {
            Object.defineProperty(document, "hidden", {value: hidden, configurable: true});
            Object.defineProperty(document, "visibilityState", {
                value: hidden ? "hidden" : "visible", configurable: true,
            });
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


def test_hidden_tab_does_not_poll(page, sim, track):
    track(sim.add_task("lib1", run_seconds=600))
    polls = []
    page.goto("/libraries/lib1")
    with page.expect_request(_is_poll, timeout=WAIT_MS):
        pass

    page.on("request", lambda r: polls.append(r.url) if _is_poll(r) else None)
    _set_hidden(page, True)
    page.wait_for_timeout(5_000)
    assert polls == []

    with page.expect_request(_is_poll, timeout=WAIT_MS):
        _set_hidden(page, False)
    expect(page.locator(".badge")).to_have_text("Running")


def test_track_form_rejects_bad_ids_then_tracks_good_ones(page, sim, track):
    sim.add_task("lib1", task_id=900, run_seconds=0)
    for task_id in (1000, 1001):
        sim.add_task("lib1", task_id=task_id, run_seconds=600)
    track(900)
    page.goto("/libraries/lib1")
    rows = page.locator("#tasks tbody tr")
    expect(rows).to_have_count(1)
    ids = page.get_by_label("Track task ids")
    track_button = page.get_by_role("button", name="Track", exact=True)

    ids.press_sequentially("12, abc")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        track_button.click()
    assert answer.value.status == 400
    expect(page.get_by_role("alert")).to_contain_text("“abc” is not a task id")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Marketing assets")
    expect(ids).to_have_value("12, abc")
    expect(rows).to_have_count(1)
    expect(page.locator("#task-12")).to_have_count(0)

    ids.fill("")
    ids.press_sequentially("1000 1001")
    track_button.click()
    expect(page.get_by_role("status")).to_have_text("Now tracking 2 tasks.")
    assert page.url.endswith("/libraries/lib1")
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(rows).to_have_count(3)
    for task_id in (1000, 1001):
        expect(page.locator(f"#task-{task_id} .badge")).to_have_text("Running")


def test_page_and_poll_hold_under_strict_csp(page, sim, track):
    track(sim.add_task("lib1", run_seconds=600))
    messages = []
    errors = []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Init scripts run outside the page's CSP, so this listener sees every violation.
    page.add_init_script(
        """window.__violations = [];
        document.addEventListener("securitypolicyviolation", (event) => {
            window.__violations.push(event.violatedDirective + " " + event.blockedURI);
        });"""
    )

    response = page.goto("/libraries/lib1")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    with page.expect_response(_is_poll, timeout=WAIT_MS) as poll:
        pass
    assert poll.value.status in (200, 204)  # 204: nothing changed since the page was drawn
    expect(page.locator(".badge")).to_have_text("Running")

    assert page.evaluate("window.__violations") == []
    assert errors == []
    assert [m for m in messages if m.startswith(("error", "warning"))] == []


def test_a_viewer_sees_their_name_and_no_forms(browser, live_server, page, sim, track):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(task_id)
    viewer = _signed_in_page(browser, live_server, VIEWER)
    try:
        viewer.goto("/libraries/lib1")
        expect(viewer.locator("header .who")).to_have_text("Signed in as vic · viewer")
        expect(viewer.locator(f"#task-{task_id} .badge")).to_have_text("Running")
        expect(viewer.get_by_label("Track task ids")).to_have_count(0)
        # Reading only: search, "Notify me", pause and refresh, but no form that changes a thing.
        expect(viewer.locator('form[method="post"]')).to_have_count(0)
        expect(viewer.get_by_role("button", name="Untrack")).to_have_count(0)
        with viewer.expect_response(_is_poll, timeout=WAIT_MS) as poll:
            pass
        assert poll.value.status in (200, 204)
    finally:
        viewer.context.close()

    page.goto("/libraries/lib1")
    expect(page.locator("header .who")).to_have_text("Signed in as ana · operator")
    expect(page.get_by_role("button", name=f"Untrack task {task_id}")).to_be_visible()


def test_a_clear_started_in_the_page_runs_and_finishes_without_reload(page, sim, clock):
    navigations = []
    page.goto("/libraries/lib1")
    expect(page.locator("[data-history]")).to_have_text("History off")

    page.get_by_label("Type the library id").fill("lib1")
    page.get_by_role("button", name="Clear all historical versions").click()

    expect(page.get_by_role("status")).to_contain_text("SMH started clearing all historical")
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("window.__marker = 1")
    row = page.locator("#tasks tbody tr").first
    expect(row).to_contain_text("History clear started by ana")
    expect(row.locator(".badge")).to_have_text("Running")
    expect(page.locator(".activity-table")).to_contain_text("ana")

    clock.advance(31)
    expect(row.locator(".badge")).to_have_text("Done", timeout=WAIT_MS)
    expect(
        page.get_by_text("Nothing running: this page no longer refreshes itself.")
    ).to_be_visible()
    assert navigations == []
    assert page.evaluate("window.__marker") == 1


def test_ticks_survive_polls_and_an_untrack_can_be_undone(page, sim, track):
    ids = [sim.add_task("lib1", run_seconds=600) for _ in range(3)]
    track(*ids)
    page.goto("/libraries/lib1")
    for task_id in ids[:2]:
        page.get_by_label(f"Select task {task_id}").check()

    with page.expect_response(_is_poll, timeout=WAIT_MS):
        pass
    page.wait_for_timeout(200)
    expect(page.get_by_label(f"Select task {ids[0]}")).to_be_checked()
    expect(page.get_by_label(f"Select task {ids[1]}")).to_be_checked()

    page.get_by_role("button", name="Untrack ticked tasks").click()
    expect(page.get_by_role("status")).to_have_text("2 tasks no longer tracked.")
    expect(page.locator("#tasks tbody tr")).to_have_count(1)
    page.get_by_role("button", name="Undo untrack").click()
    expect(page.get_by_role("status")).to_have_text("2 tasks tracked again.")
    expect(page.locator("#tasks tbody tr")).to_have_count(3)


def test_a_search_typed_while_polling_is_kept_and_then_polled(page, sim, track):
    for task_id in (1000, 2000):
        sim.add_task("lib1", task_id=task_id, run_seconds=600)
    track(1000, label="spring")
    track(2000, label="autumn")
    page.goto("/libraries/lib1")
    rows = page.locator("#tasks tbody tr")
    expect(rows).to_have_count(2)
    search = page.get_by_role("searchbox", name="Search tasks")

    search.press_sequentially("SPR")
    with page.expect_request(_is_poll, timeout=WAIT_MS):
        pass
    expect(search).to_be_focused()
    expect(search).to_have_value("SPR")

    search.press("Enter")
    expect(rows).to_have_count(1)
    expect(page.locator("#task-1000")).to_have_count(1)
    expect(page.get_by_role("link", name="All 1")).to_have_attribute("aria-current", "page")
    with page.expect_request(_is_poll, timeout=WAIT_MS) as poll:
        pass
    assert "q=SPR" in poll.value.url
    expect(page.locator("#task-2000")).to_have_count(0)


def test_a_chinese_browser_gets_chinese_and_the_switch_is_remembered(
    browser, live_server, sim, track
):
    task_id = sim.add_task("lib1", run_seconds=600)
    track(task_id)
    context = browser.new_context(base_url=live_server, http_credentials=OPERATOR, locale="zh-CN")
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        page.goto("/libraries/lib1")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(page.locator(f"#task-{task_id} .badge")).to_have_text("运行中")

        page.get_by_role("link", name="English").click()
        expect(page).to_have_url(f"{live_server}/libraries/lib1")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        page.reload()
        expect(page.locator(f"#task-{task_id} .badge")).to_have_text("Running")
    finally:
        context.close()


def _rows_only_poll(response):
    return _is_poll(response.request) and response.headers.get("hx-reswap") == "none"


def test_one_task_changing_is_swapped_in_alone(page, sim, clock, track):
    ending = sim.add_task("lib1", run_seconds=30, delete_count=77)
    staying = [sim.add_task("lib1", run_seconds=600) for _ in range(2)]
    track(ending, *staying)
    page.goto("/libraries/lib1")
    badge = page.locator(f"#task-{ending} .badge")
    expect(badge).to_have_text("Running")
    expect(page.locator(f"#task-{staying[0]} .badge")).to_have_text("Running")
    page.get_by_label(f"Select task {ending}").check()
    # Marks that a redraw of the section or of the other rows would wipe out.
    page.evaluate(
        f"""() => {{
            document.getElementById("tasks").dataset.mark = "kept";
            document.getElementById("task-{staying[0]}").dataset.mark = "kept";
        }}"""
    )

    with page.expect_response(_rows_only_poll, timeout=WAIT_MS) as answer:
        clock.advance(31)
    assert answer.value.status == 200

    expect(badge).to_have_text("Done")
    expect(page.locator(f"#task-{ending} td.num")).to_have_text("77")
    expect(page.locator("#tasks .filters")).to_contain_text("Done 1")
    expect(page.locator("#tasks .status-line")).to_contain_text("2 running")
    expect(page).to_have_title("(2 running) Marketing assets")
    expect(page.get_by_label(f"Select task {ending}")).to_be_checked()
    assert page.locator("#tasks").get_attribute("data-mark") == "kept"
    assert page.locator(f"#task-{staying[0]}").get_attribute("data-mark") == "kept"
    expect(page.locator("#tasks tbody tr")).to_have_count(3)
    # The poll moved on to the new version: the next one finds nothing new.
    with page.expect_response(_unchanged_poll, timeout=WAIT_MS):
        pass


@pytest.fixture
def guided_settings(settings):
    """A guided clear as the demo runs it: a short settle wait."""
    settings["SMH_HISTORY_SETTLE_SECONDS"] = 5
    return settings


GUIDED_WORDS = {
    "en-US": {"done": "Done: file history is on again.", "waiting": "Waiting for the clear's task"},
    "zh-CN": {"done": "历史版本功能已重新开启", "waiting": "正在等待清除任务结束。"},
}


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
@pytest.mark.parametrize("width", [1280, 390])
def test_a_guided_clear_runs_in_the_page_and_history_comes_back_on(
    browser, guided_settings, live_server, sim, clock, secret, width, locale
):
    # As in the demo: history on, and SMH applies a switch-off only a little after it is asked.
    sim.add_library("lib1", secret, history_enabled=True)
    sim.delay_history_off(8)
    context = browser.new_context(
        base_url=live_server,
        http_credentials=OPERATOR,
        locale=locale,
        viewport={"width": width, "height": 900},
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    words = GUIDED_WORDS[locale]
    try:
        page.goto("/libraries/lib1")
        expect(page.locator("[data-history=on]")).to_be_visible()
        expect(page.locator("input[name=restore_history]")).to_be_checked()
        page.locator("#confirm").fill("lib1")
        page.locator("form.clear-history button[type=submit]").click()

        step = page.locator("[data-job-step]")
        expect(step).to_have_attribute("data-job-step", "settle")
        expect(page.locator("#history-off-banner")).to_be_visible()
        # The first settle check finds history still on (SMH's delay); the second clears.
        clock.advance(5)
        expect(page.locator("#guided .banner.error")).to_be_visible()
        clock.advance(5)
        expect(step).to_have_attribute("data-job-step", "track")
        expect(step).to_contain_text(words["waiting"])
        expect(page.locator("#announcer")).to_contain_text(words["waiting"])

        clock.advance(31)  # the clear's task ends
        expect(step).to_have_attribute("data-job-outcome", "done")
        expect(step).to_contain_text(words["done"])
        expect(page.locator("#history-off-banner")).to_have_count(0)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert sim.calls["history.clear"] == 1
    finally:
        context.close()
