"""The library page's opt-in "Notify me", in real Chromium: a notification when a task ends."""

import os
import shutil

import pytest

from smh_dashboard.storage import tasks

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    expect = sync_playwright = None

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 30_000
# Notifications are recorded, not shown: headless Chromium has no screen to show them on. The
# permission is the browser's own (granted to the test's context).
SPY = """
window.__shown = [];
const Real = window.Notification;
function Spy(title, options) { window.__shown.push([title, options.body]); }
Object.defineProperty(Spy, "permission", { get: () => Real.permission });
Spy.requestPermission = () => Real.requestPermission();
window.Notification = Spy;
"""


@pytest.fixture
def browser(unavailable):
    if sync_playwright is None:
        unavailable("playwright is not installed")
    executable = next(
        (c for c in (CHROMIUM, shutil.which("chromium")) if c and os.access(c, os.X_OK)), None
    )
    if executable is None:
        unavailable("Chromium is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def settings(settings):
    return settings | {
        "SMH_POLL_SECONDS": 2,
        "SMH_CACHE_SECONDS": 1,
        "SMH_REFRESH_IN_BACKGROUND": True,
    }


def test_notify_me_tells_the_reader_when_a_task_in_the_tab_ends(
    browser, live_server, app, sim, clock
):
    expect.set_options(timeout=WAIT_MS)
    running = sim.add_task("lib1", run_seconds=60)
    later = sim.add_task("lib1", run_seconds=600)
    with app.app_context():
        tasks.track_tasks("lib1", [running, later], None, clock())
    context = browser.new_context(base_url=live_server)
    context.grant_permissions(["notifications"], origin=live_server)
    context.add_init_script(SPY)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto("/libraries/lib1")
    button = page.get_by_role("button", name="Notify me when a task ends")
    expect(button).to_be_visible()
    button.click()
    expect(page.get_by_role("button", name="Notifications on (press to stop)")).to_have_attribute(
        "aria-pressed", "true"
    )
    clock.advance(61)
    expect(page.locator(f"#task-{running} .badge")).to_have_text("Done")
    page.wait_for_function("window.__shown.length > 0")

    assert page.evaluate("window.__shown") == [["Marketing assets", f"Task {running}: Done"]]
    # The choice outlives a reload; pressing again turns it off.
    page.reload()
    expect(page.get_by_role("button", name="Notifications on (press to stop)")).to_be_visible()
    page.get_by_role("button", name="Notifications on (press to stop)").click()
    expect(button).to_have_attribute("aria-pressed", "false")
    assert errors == []
    context.close()


def test_notify_me_stays_quiet_about_states_first_learnt(browser, live_server, app, sim, clock):
    expect.set_options(timeout=WAIT_MS)
    old = sim.add_tasks("lib1", 4, run_seconds=0, delete_count=5)
    running = sim.add_task("lib1", run_seconds=60)
    with app.app_context():
        tasks.track_tasks("lib1", [*old, running], None, clock())
    # SMH answers the page's first refresh slowly: the reader opts in before any state is known.
    sim.inject("latency", endpoint="task.query", seconds=3)
    context = browser.new_context(base_url=live_server)
    context.grant_permissions(["notifications"], origin=live_server)
    context.add_init_script(SPY)
    page = context.new_page()

    page.goto("/libraries/lib1")
    page.get_by_role("button", name="Notify me when a task ends").click()
    expect(page.locator(f"#task-{old[0]} .badge")).to_have_text("Waiting for SMH")
    for task_id in old:
        expect(page.locator(f"#task-{task_id} .badge")).to_have_text("Done")
    expect(page.locator(f"#task-{running} .badge")).to_have_text("Running")
    clock.advance(61)
    expect(page.locator(f"#task-{running} .badge")).to_have_text("Done")
    page.wait_for_function("window.__shown.length > 0")

    assert page.evaluate("window.__shown") == [["Marketing assets", f"Task {running}: Done"]]
    context.close()
