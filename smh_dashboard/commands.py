"""Command-line verbs: flask demo, track, untrack, refresh, watch, notify-test, clear-history,
prune, db, hash-password."""

from __future__ import annotations

import getpass
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.security import generate_password_hash
from werkzeug.serving import run_simple

from smh_dashboard import clock, formats, pruning, registry
from smh_dashboard.actions import clears, guided, tracking
from smh_dashboard.domain import inputs
from smh_dashboard.domain.guided import Ending
from smh_dashboard.domain.libraries import Library
from smh_dashboard.domain.tasks import Task
from smh_dashboard.live import poller
from smh_dashboard.notify import delivery as notify
from smh_dashboard.smh.simulator import Simulator
from smh_dashboard.storage import activity, database, history_jobs, listings, tasks

log = logging.getLogger("commands")

DEMO_LIBRARIES = [
    {"id": "demo-marketing", "name": "Marketing assets", "secret": "demo-marketing-secret"},
    {"id": "demo-photos", "name": "Product photos", "secret": "demo-photos-secret"},
]
# One demo library is ready to clear; the other shows the "switch file history off" step first.
DEMO_HISTORY_ON = {"demo-photos"}
# Seconds the demo's SMH takes to apply a switch-off, and a guided clear's settle wait there.
DEMO_HISTORY_OFF_DELAY = 8.0
DEMO_SETTLE_SECONDS = 5


def init_app(app: Flask, factory: Callable[[Mapping], Flask]) -> None:
    """Add the dashboard's commands to `flask`; `demo` builds its own app with the factory."""
    app.extensions["app_factory"] = factory
    commands = (
        demo,
        track,
        untrack,
        refresh,
        watch,
        notify_test,
        clear_history,
        prune,
        db,
        hash_password,
    )
    for command in commands:
        app.cli.add_command(command)


def _library_or_fail(library_id: str) -> Library:
    library = registry.get_library(library_id)
    if library is None:
        known = ", ".join(lib.id for lib in registry.all_libraries()) or "none"
        raise click.BadParameter(f"{library_id!r} is not configured (configured: {known})")
    return library


def _refuse_if_read_only() -> None:
    if current_app.config["SMH_READ_ONLY"]:
        raise click.ClickException(
            "This dashboard is read-only (SMH_READ_ONLY): nothing can be changed here."
        )


def _who() -> str:
    """Name who acts from the command line, as the activity log keeps it."""
    return f"command line ({getpass.getuser()})"


def _ids_or_fail(task_ids: tuple[str, ...]) -> list[int]:
    try:
        return inputs.parse_task_ids(" ".join(task_ids))
    except inputs.InputError as error:
        raise click.BadParameter(str(error), param_hint="TASK_ID") from None


@click.command()
@with_appcontext
@click.argument("library_id")
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--label", default="", help="A note shown beside the tasks.")
def track(library_id: str, task_ids: tuple[str, ...], label: str) -> None:
    """Track SMH tasks of a library (ids separated by spaces or commas)."""
    _refuse_if_read_only()
    library = _library_or_fail(library_id)
    ids = _ids_or_fail(task_ids)
    try:
        label = inputs.parse_label(label)
    except inputs.InputError as error:
        raise click.BadParameter(str(error), param_hint="--label") from None
    try:
        new = tracking.track(library, ids, label, _who())
    except inputs.InputError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"Tracking {len(new)} new task(s) in {library.id}; {len(ids) - len(new)} already tracked."
    )


@click.command()
@with_appcontext
@click.argument("library_id")
@click.argument("task_ids", nargs=-1, required=True)
def untrack(library_id: str, task_ids: tuple[str, ...]) -> None:
    """Stop tracking SMH tasks of a library (undoable from its page, as the last untrack)."""
    _refuse_if_read_only()
    library = _library_or_fail(library_id)
    removed = tracking.untrack(library, _ids_or_fail(task_ids), _who())
    click.echo(f"Stopped tracking {len(removed)} task(s) in {library.id}.")


@click.command()
@with_appcontext
def refresh() -> None:
    """Ask SMH once about every running task and print where each tracked task stands."""
    failed = False
    click.echo(f"{'LIBRARY':<24} {'TASK':>20}  {'STATE':<11} {'DELETED':>9}  LABEL")
    for library in registry.all_libraries():
        outage = poller.refresh_library(library)
        if outage:
            failed = True
            click.echo(f"{library.id}: SMH failed: {outage.message}", err=True)
        for task in listings.list_tasks(library.id, None, 0, None):
            _echo_row(library.id, task)
    for sent in notify.deliver_due():
        _echo_sent(sent)
    pruning.prune_due()
    if failed:
        raise SystemExit(1)


def _echo_sent(sent: notify.Sent) -> None:
    delivery = sent.delivery
    where = f"{delivery.destination} ({delivery.format})"
    what = f"task {delivery.task_id} in {delivery.library_id} ended ({delivery.state})"
    if sent.error is None:
        click.echo(f"Told {where} that {what}.")
    elif sent.gave_up:
        click.echo(f"Gave up telling {where} that {what}: {sent.error}", err=True)
    else:
        click.echo(f"Could not tell {where} that {what}: {sent.error}; will try again.", err=True)


@click.command()
@with_appcontext
def watch() -> None:
    """Keep every running task current and send its end's messages, until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        click.echo(f"{signal.Signals(signum).name}: stopping after the current step.", err=True)
        stop.set()

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, on_signal) for signum in handled}
    window = current_app.config["SMH_CACHE_SECONDS"]
    # With no reuse configured (SMH_CACHE_SECONDS=0), a pass a second at most.
    pause = max(float(window), 1.0)
    names = ", ".join(library.id for library in registry.all_libraries()) or "no library"
    click.echo(f"Watching {names} every {pause:g} s (Ctrl-C or SIGTERM stops).")
    told: dict[str, tuple[float, int]] = {}
    try:
        while not stop.is_set():
            _watch_once(stop, told)
            stop.wait(pause)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    click.echo("Watcher stopped.")


def _watch_once(stop: threading.Event, told: dict[str, tuple[float, int]]) -> None:
    """Refresh each library that has a due task, then deliver what is due; never raise.

    An SMH failure is printed once per failed try, not at every pass of its back-off (`told`).
    """
    for library in registry.all_libraries():
        if stop.is_set():
            return
        try:
            # The same refresh pages run: only tasks not asked about this window, in batches,
            # single-flight, and no call at all while SMH's back-off runs.
            outage = poller.refresh_library(library)
        except Exception:
            log.exception("refreshing library %s failed unexpectedly", library.id)
            continue
        if outage and told.get(library.id) != (outage.since, outage.failures):
            told[library.id] = (outage.since, outage.failures)
            click.echo(f"{library.id}: SMH failed: {outage.message}", err=True)
        elif outage is None and library.id in told:
            del told[library.id]
            click.echo(f"{library.id}: SMH answers again.", err=True)
    try:
        for sent in notify.deliver_due():
            _echo_sent(sent)
    except Exception:
        log.exception("delivering task messages failed unexpectedly")
    try:
        pruning.prune_due()
    except Exception:
        log.exception("pruning old records failed unexpectedly")


@click.command("notify-test")
@with_appcontext
@click.argument("library_id")
def notify_test(library_id: str) -> None:
    """Send a test message to the library's webhook and say how it went."""
    _refuse_if_read_only()
    library = _library_or_fail(library_id)
    if library.webhook is None:
        raise click.ClickException(
            f"{library.id} has no webhook: give it webhook_url (or webhook_url_env) in the "
            "libraries file, or set SMH_WEBHOOK_URL for the single-library setup."
        )
    where = f"{library.webhook.masked} ({library.webhook.format.value})"
    error = notify.send_test(library)
    if error is not None:
        raise click.ClickException(f"Sending a test message to {where} failed: {error}")
    click.echo(f"Sent a test message to {where}.")


def _echo_row(library_id: str, task: Task) -> None:
    deleted = "" if task.delete_count is None else str(task.delete_count)
    # A label stored before labels were checked may hold a terminal's escape sequences.
    label = inputs.printable(task.label or "")
    click.echo(f"{library_id:<24} {task.task_id:>20}  {task.state:<11} {deleted:>9}  {label}")


@click.command("clear-history")
@with_appcontext
@click.argument("library_id")
@click.option("--yes", is_flag=True, help="Do not ask for the library id again (for scripts).")
@click.option(
    "--keep-history",
    is_flag=True,
    help="Keep the file-history settings, switch history off, clear once, wait for the task, "
    "then turn history back on with the kept settings; print each step.",
)
def clear_history(library_id: str, yes: bool, keep_history: bool) -> None:
    """Start clearing every historical version of a library (SMH cannot undo it); track it."""
    _refuse_if_read_only()
    library = _library_or_fail(library_id)
    if not yes:
        click.echo(
            f"This deletes every historical version of every file in {library.name}. "
            "SMH cannot undo it."
        )
        typed = click.prompt(f"Type the library id ({library.id}) to confirm", default="")
        if typed.strip() != library.id:
            why = "The id typed does not match: nothing was cleared."
            clears.refuse_clear(library, _who(), why)
            raise click.ClickException(why)
    if keep_history:
        _run_guided_clear(library)
        return
    busy = guided.refuse_while_under_way(library, _who())
    if busy is not None:
        raise click.ClickException(busy)
    result = clears.start_clear(library, _who())
    if not result.done:
        raise click.ClickException(result.message)
    click.echo(result.message)
    click.echo(f"Tracking task {result.task_id} in {library.id}.")


def _run_guided_clear(library: Library) -> None:
    """Start a guided clear and take its steps as they come due, printing each one."""
    seen = _newest_activity_id(library)
    started = guided.start_guided_clear(library, _who(), restore=True)
    if started.job is None:
        raise click.ClickException(started.message)
    job_id = started.job.id
    poll = float(current_app.config["SMH_POLL_SECONDS"])
    try:
        while True:
            # The same refresh pages and the watcher run: the job's due steps, under the lease.
            poller.refresh_library(library)
            seen = _echo_steps(library, seen)
            job = history_jobs.get_job(job_id)
            if job is None or not job.under_way:
                break
            wait = poll if job.next_at is None else job.next_at - clock.now()
            time.sleep(min(poll, max(0.2, wait)))
    except KeyboardInterrupt:
        raise click.ClickException(
            "Stopped following the guided clear; it goes on from open pages, flask watch or "
            "flask refresh."
        ) from None
    if job is None or job.ending is not Ending.DONE:
        raise click.ClickException(f"The guided clear ended: {job.outcome if job else 'gone'}.")
    click.echo("The guided clear is done.")


def _newest_activity_id(library: Library) -> int:
    newest = activity.list_activity(library.id, 0, 1)
    return newest[0].id if newest else 0


def _echo_steps(library: Library, seen: int) -> int:
    """Print the library's activity lines written since line `seen`; return the newest id."""
    entries = [e for e in activity.list_activity(library.id, 0, 50) if e.id > seen]
    for entry in reversed(entries):
        click.echo(
            f"{formats.utc(entry.at)}  {entry.action_text}: {entry.outcome_text}. {entry.message}"
        )
    return max([seen, *(e.id for e in entries)])


@click.command()
@with_appcontext
def prune() -> None:
    """Delete finished tasks, delivered messages and activity older than SMH_KEEP_*_DAYS."""
    click.echo(f"Pruned {pruning.prune().describe()}.")


@click.group()
def db() -> None:
    """Show or upgrade the database schema (Alembic migrations)."""


@db.command()
@with_appcontext
def upgrade() -> None:
    """Upgrade the database named by DATABASE_URL to the newest revision."""
    config = current_app.config
    engine = database.open_engine(config["DATABASE_URL"], config["SMH_DATABASE_BUSY_SECONDS"])
    try:
        click.echo(f"Database schema: {database.upgrade_schema(engine).describe()}.")
    finally:
        engine.dispose()


@db.command()
@with_appcontext
def current() -> None:
    """Print the revision the database is at, and the newest one."""
    engine = database.open_engine(current_app.config["DATABASE_URL"])
    try:
        revision = database.current_revision(engine)
    finally:
        engine.dispose()
    head = database.head_revision()
    click.echo(f"{revision or 'none'} ({'head' if revision == head else f'head is {head}'})")


@click.command("hash-password")
def hash_password() -> None:
    """Read a password (twice on a terminal, else once from standard input) and print its hash."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.UsageError("The password is empty.")
    click.echo(generate_password_hash(password))


@click.command()
@with_appcontext
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Start a simulated SMH and the dashboard on demo libraries whose tasks play out live."""
    instance = current_app.instance_path
    demo_file = os.path.join(instance, "demo.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(demo_file + suffix):
            os.remove(demo_file + suffix)
    # SMH applies a switch-off a little after it is asked, as it may: a guided clear of the
    # library with history on waits once more, and still ends within about a minute.
    sim = Simulator(history_off_delay=DEMO_HISTORY_OFF_DELAY)
    for entry in DEMO_LIBRARIES:
        sim.add_library(
            entry["id"], entry["secret"], history_enabled=entry["id"] in DEMO_HISTORY_ON
        )
    upstream = sim.serve()
    try:
        # The demo's own libraries replace whatever real ones the environment configures.
        app = current_app.extensions["app_factory"](
            {
                "SMH_LIBRARY_ID": None,
                "SMH_LIBRARY_SECRET": None,
                "SMH_ACCESS_TOKEN": None,
                "SMH_USER_ID": None,
                "SMH_LIBRARIES_FILE": None,
                "SMH_LIBRARIES": DEMO_LIBRARIES,
                "SMH_BASE_URL": upstream.base_url,
                "DATABASE_URL": f"sqlite:///{demo_file}",
                "SMH_UNKNOWN_GRACE_SECONDS": 15,
                "SMH_HISTORY_SETTLE_SECONDS": DEMO_SETTLE_SECONDS,
                # Its libraries are simulated, so a users file scoped to real ones cannot apply.
                "SMH_USERS_FILE": None,
                "SMH_AUTH_PROXY_HEADER": None,
                "SMH_AUTH_PROXY_IPS": (),
            }
        )
        with app.app_context():
            _stage_demo(sim)
        click.echo(f"Simulated SMH at {upstream.base_url}")
        click.echo(f"Dashboard at http://{host}:{port}/  (Ctrl-C stops both)")
        # app.run() refuses to start from inside a `flask` command; run_simple is what it wraps.
        run_simple(host, port, app, threaded=True)
    finally:
        upstream.shutdown()


def _stage_demo(sim: Simulator) -> None:
    """Create demo tasks upstream and track them, so the first minute shows every state."""
    now = clock.now()
    plan: list[tuple[str, dict[str, Any], str | None]] = [
        ("demo-marketing", {"run_seconds": 20, "delete_count": 1834}, "Spring campaign cleanup"),
        ("demo-marketing", {"run_seconds": 45, "delete_count": 12077}, "Old product shots"),
        ("demo-marketing", {"run_seconds": 30, "outcome": "failed"}, "Archive 2023"),
        ("demo-marketing", {"run_seconds": 60, "outcome": "empty"}, "Already clean folder"),
        (
            "demo-marketing",
            {"run_seconds": 600, "created_at": now - 7200, "delete_count": 530},
            "Morning run",
        ),
        ("demo-photos", {"run_seconds": 90, "delete_count": 402}, "Catalogue refresh"),
        ("demo-photos", {"run_seconds": 5, "created_at": now - 86400 * 3}, None),
    ]
    for library_id, task, label in plan:
        task_id = sim.add_task(library_id, **task)
        tasks.track_tasks(library_id, [task_id], label, now)
    # An id SMH never heard of: it is checked for the grace period, then shown as unknown.
    tasks.track_tasks("demo-marketing", [999999], "Typo in the task id", now)
