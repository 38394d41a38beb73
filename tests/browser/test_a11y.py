"""Keyboard, screen-reader, phone and clock behaviour of the live pages, in real Chromium.

axe-core (vendored unedited under tests/vendor) is injected into each page and must find no
serious or critical violation, at desktop and phone widths, in light and dark.
"""

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_browser import (
    OPERATOR,
    POLL_SECONDS,
    WAIT_MS,
    browser,  # noqa: F401 (a fixture)
    expect,
    settings,  # noqa: F401 (a fixture)
    track,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.browser

AXE = Path(__file__).parents[1] / "vendor" / "axe-core-4.14.1.min.js"
ROWS = "/libraries/lib1/rows"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def _is_poll(request):
    return request.url.split("?")[0].endswith(ROWS)


def _new_page(browser, base_url, viewport=DESKTOP, **options):  # noqa: F811
    context = browser.new_context(
        base_url=base_url, http_credentials=OPERATOR, viewport=viewport, **options
    )
    context.set_default_timeout(WAIT_MS)
    return context.new_page()


@pytest.fixture
def page(browser, live_server):  # noqa: F811
    page = _new_page(browser, live_server)
    yield page
    page.context.close()


def _swapped_poll(response):
    return _is_poll(response.request) and response.status == 200


def test_focus_stays_on_a_focused_link_across_two_polls(page, sim, clock, track):  # noqa: F811
    task_id = sim.add_task("lib1", run_seconds=6000)
    track(task_id)
    page.goto("/libraries/lib1")
    link = page.locator(f"#task-{task_id} a")
    expect(page.locator(f"#task-{task_id} .badge")).to_have_text("Running")
    link.focus()
    page.evaluate("document.activeElement.__marked = true")

    for _ in range(2):
        # Each poll must redraw the section: a minute on, "last checked" has moved.
        clock.advance(61)
        with page.expect_response(_swapped_poll, timeout=WAIT_MS):
            pass
        page.wait_for_timeout(300)
        expect(link).to_be_focused()
    assert page.evaluate("document.activeElement.__marked === true")


def test_the_announcer_stays_and_names_the_task_that_changed(page, sim, clock, track):  # noqa: F811
    task_id = sim.add_task("lib1", run_seconds=60, delete_count=12077)
    track(task_id)
    page.goto("/libraries/lib1")
    expect(page.locator(f"#task-{task_id} .badge")).to_have_text("Running")
    page.evaluate("window.__announcer = document.getElementById('announcer')")
    announcer = page.locator("#announcer")

    clock.advance(61)
    expect(page.locator(f"#task-{task_id} .badge")).to_have_text("Done")
    expect(announcer).to_have_text(f"Task {task_id}: Done, 12,077 versions deleted")
    assert page.evaluate("window.__announcer === document.getElementById('announcer')")
    assert page.evaluate("document.querySelectorAll('[aria-live]').length") == 1


# Records every sentence the announcer says, and the states the rows were first drawn in.
LISTEN = """
window.__said = [];
document.addEventListener("DOMContentLoaded", () => {
    const announcer = document.getElementById("announcer");
    window.__first = [...document.querySelectorAll("tr[id^='task-']")].map((r) => r.dataset.state);
    new MutationObserver(() => {
        if (announcer.textContent) window.__said.push(announcer.textContent);
    }).observe(announcer, {childList: true, subtree: true, characterData: true});
});
"""


def test_states_first_learnt_are_not_read_out_but_an_end_is(page, sim, clock, track):  # noqa: F811
    old = sim.add_tasks("lib1", 8, run_seconds=0, delete_count=5)
    running = sim.add_task("lib1", run_seconds=60, delete_count=12077)
    track(*old, running)
    # SMH answers the page's first refresh slowly, so the page is drawn before it knows a state.
    sim.inject("latency", endpoint="task.query", seconds=2)
    page.add_init_script(LISTEN)

    page.goto("/libraries/lib1")
    for task_id in old:
        expect(page.locator(f"#task-{task_id} .badge")).to_have_text("Done")
    expect(page.locator(f"#task-{running} .badge")).to_have_text("Running")
    clock.advance(61)
    expect(page.locator(f"#task-{running} .badge")).to_have_text("Done")
    expect(page.locator("#announcer")).to_have_text(
        f"Task {running}: Done, 12,077 versions deleted"
    )

    assert page.evaluate("window.__first") == ["pending"] * 9
    assert page.evaluate("window.__said") == [f"Task {running}: Done, 12,077 versions deleted"]


def test_an_outage_is_announced_once_however_many_polls_show_it(page, sim, clock, track):  # noqa: F811
    track(sim.add_task("lib1", run_seconds=6000))
    page.goto("/libraries/lib1")
    expect(page.locator(".badge")).to_have_text("Running")
    page.evaluate(
        """() => {
            window.__said = [];
            new MutationObserver(() => {
                const text = document.getElementById("announcer").textContent;
                if (text) window.__said.push(text);
            }).observe(document.getElementById("announcer"), {childList: true, subtree: true});
        }"""
    )

    sim.inject("error", endpoint="task.query", times=None, message="Backend on fire.")
    clock.advance(61)
    expect(page.locator("#outage")).to_contain_text("SMH is failing")
    expect(page.locator("#announcer")).to_have_text("SMH is failing: Backend on fire.")
    for _ in range(2):
        clock.advance(61)
        with page.expect_response(_swapped_poll, timeout=WAIT_MS):
            pass
    page.wait_for_timeout(300)
    expect(page.locator("#outage")).to_contain_text("SMH is failing")
    said = page.evaluate("window.__said")
    assert [s for s in said if "SMH" in s] == ["SMH is failing: Backend on fire."]


def test_a_time_moves_with_no_request_and_shows_the_readers_clock(
    browser,  # noqa: F811
    live_server,
    sim,
    clock,
    track,  # noqa: F811
):
    track(sim.add_task("lib1", run_seconds=0, delete_count=5))
    page = _new_page(browser, live_server, timezone_id="Asia/Shanghai", locale="en-US")
    try:
        page.clock.set_fixed_time(datetime.fromtimestamp(clock(), UTC))
        page.goto("/libraries/lib1")
        expect(page.get_by_text("Nothing running: this page no longer refreshes")).to_be_visible()
        added = page.locator("td.added time")
        # 2027-01-15 08:00:00 UTC is 4 PM in Shanghai.
        expect(added).to_have_text("now · 4:00 PM")
        requests = []
        page.on("request", lambda r: requests.append(r.url))

        page.clock.set_fixed_time(datetime.fromtimestamp(clock() + 125, UTC))
        expect(added).to_have_text("2 minutes ago · 4:00 PM")
        assert requests == []
    finally:
        page.context.close()


def test_pause_stops_this_tabs_polling_and_refresh_now_polls_at_once(page, sim, track):  # noqa: F811
    track(sim.add_task("lib1", run_seconds=6000))
    page.goto("/libraries/lib1")
    pause = page.get_by_role("button", name="Pause updates")
    with page.expect_request(_is_poll, timeout=WAIT_MS):
        pass

    pause.click()
    expect(pause).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_text("Paused: this tab checks for changes only")).to_be_visible()
    polls = []
    page.on("request", lambda r: polls.append(r.url) if _is_poll(r) else None)
    page.wait_for_timeout(2.5 * POLL_SECONDS * 1000)
    assert polls == []

    with page.expect_request(_is_poll, timeout=WAIT_MS):
        page.get_by_role("button", name="Refresh now").click()
    polls.clear()
    page.wait_for_timeout(2.5 * POLL_SECONDS * 1000)
    assert polls == []

    page.reload()
    expect(pause).to_have_attribute("aria-pressed", "true")
    with page.expect_request(_is_poll, timeout=WAIT_MS):
        pause.click()
    expect(pause).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_text("Paused: this tab checks for changes only")).to_be_hidden()


def _seed_every_state(sim, clock, track, runner):  # noqa: F811
    """Track a task in each state, with a history clear and a long SMH answer recorded."""
    running = sim.add_task("lib1", run_seconds=6000)
    done = sim.add_task("lib1", run_seconds=0, delete_count=12077)
    failed = sim.add_task("lib1", run_seconds=0, outcome="failed")
    track(running, done, failed, label="nightly clean-up of the marketing assets")
    track(999_999, label="mistyped")
    # Asked about twice, a grace period apart: the mistyped id turns "Unknown upstream".
    for _ in range(2):
        assert runner.invoke(args=["refresh"]).exit_code == 0
        clock.advance(121)
    return done


def _axe_problems(page):
    violations = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            if (!result.passes.length) return ["axe checked nothing"];
            return result.violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => v.id + ": " + v.nodes.map((n) => n.target.join(" ")).join(", "));
        }"""
    )
    return violations


def _luminance(rgb):
    channels = [int(c) / 255 for c in re.findall(r"\d+", rgb)[:3]]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _border_contrast(page, selector):
    """Return the contrast ratio of an element's border against the page's background."""
    border, background = page.evaluate(
        """(selector) => [
            getComputedStyle(document.querySelector(selector)).borderTopColor,
            getComputedStyle(document.body).backgroundColor,
        ]""",
        selector,
    )
    lighter, darker = sorted((_luminance(border), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _page_width(page):
    return page.evaluate("document.documentElement.scrollWidth")


@pytest.mark.parametrize(
    ("viewport", "scheme", "language"),
    [
        (DESKTOP, "light", "en"),
        (DESKTOP, "dark", "en"),
        (PHONE, "light", "en"),
        (PHONE, "dark", "en"),
        # Chinese wording wraps differently: the phone width holds in it too.
        (PHONE, "dark", "zh-CN"),
    ],
    ids=["1280-light", "1280-dark", "390-light", "390-dark", "390-dark-zh"],
)
def test_every_page_passes_axe_and_fits_a_phone(
    browser,  # noqa: F811
    live_server,
    sim,
    clock,
    track,  # noqa: F811
    runner,
    viewport,
    scheme,
    language,
):
    done = _seed_every_state(sim, clock, track, runner)
    page = _new_page(
        browser,
        live_server,
        viewport=viewport,
        color_scheme=scheme,
        locale=language,
        extra_http_headers={"Accept-Language": language},
    )
    # An init script runs outside the page's Content-Security-Policy, which forbids inline ones.
    page.context.add_init_script(path=str(AXE))
    problems = {}
    widths = {}

    def check(url, wait_for=None):
        page.goto(url)
        expect(page.locator("main")).to_be_visible()
        if wait_for:
            expect(page.locator(wait_for).first).to_be_visible()
        problems[url] = _axe_problems(page)
        widths[url] = _page_width(page)

    try:
        check("/", "#libraries")
        check("/libraries/lib1", "#tasks")
        assert page.locator("html").get_attribute("lang") == ("en" if language == "en" else "zh-CN")
        # On a phone too, a row's status, count and actions are on screen, not off to the right.
        row = page.locator(f"#task-{done}")
        for part in (row.locator(".badge"), row.locator("td.num"), row.get_by_role("button")):
            box = part.bounding_box()
            assert box is not None
            assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
        # WCAG 1.4.11: a field's or an outlined button's edge stands out 3:1 from the page.
        for control in ("#label", "#confirm", "[data-pause]", "#filter-done"):
            assert _border_contrast(page, control) >= 3, control
        for state in ("running", "done", "failed", "unknown"):
            check(f"/libraries/lib1?state={state}", "#tasks")
        check(f"/libraries/lib1/tasks/{done}", "#answer")
        check("/libraries/lib1/activity")
        check("/no-such-page")
        check("/libraries/lib1/tasks/123456")

        sim.inject("error", endpoint="task.query", times=None, message="Backend on fire.")
        clock.advance(61)
        page.goto("/libraries/lib1")
        expect(page.locator("#outage")).to_be_visible()
        problems["failing library"] = _axe_problems(page)
        widths["failing library"] = _page_width(page)
        check("/", "#libraries .badge.failed")
    finally:
        page.context.close()

    assert {url: found for url, found in problems.items() if found} == {}
    if viewport is PHONE:
        assert {url: w for url, w in widths.items() if w > PHONE["width"]} == {}
