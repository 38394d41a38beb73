"""`flask clear-history LIB --keep-history`: the guided clear from a shell, printing each step;
and killed with SIGKILL mid-way, resumed by whatever refreshes next."""

import time

import pytest
from processes import FlaskProcess, wait_until

from smh_dashboard import registry
from smh_dashboard.live import poller
from smh_dashboard.smh.answers import HistorySettings
from smh_dashboard.smh.simulator import Simulator
from smh_dashboard.storage import history_jobs

# lib1's settings in the simulator, which the guided clear keeps and puts back.
ORIGINAL = HistorySettings(True, 10, 30, 600)
DAY = 24 * 3600


@pytest.fixture
def clear_run_seconds():
    """How long SMH's clear task runs on the test's clock: by default it ends at once, so that
    a command's run needs no clock moved."""
    return 0


@pytest.fixture
def sim(clock, secret, other_secret, clear_run_seconds):
    simulator = Simulator(clock, clear_run_seconds=clear_run_seconds)
    simulator.add_library("lib1", secret, history_enabled=True)
    simulator.add_library("lib2", other_secret)
    return simulator


@pytest.fixture
def clock(clock):
    """The test's clock, a day ahead of the real one the commands' processes write their times
    by: a step a killed process put off is due on it, and that process's leases have run out.
    (Its fixed start would fall behind the real clock from 2027-01-15 on.)"""
    clock.advance(max(0.0, time.time() + DAY - clock()))
    return clock


@pytest.fixture
def settings(settings):
    return settings | {"SMH_HISTORY_SETTLE_SECONDS": 0, "SMH_POLL_SECONDS": 2}


def settings_now(app):
    with app.app_context():
        return registry.client_for("lib1").get_history_settings()


def test_keep_history_runs_the_whole_job_and_prints_each_step(runner, app, sim):
    result = runner.invoke(args=["clear-history", "lib1", "--keep-history", "--yes"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Kept the file-history settings: history on, 10 versions, 30 days" in result.output
    assert "File history is off; the clear follows once SMH has applied it" in result.output
    assert "SMH started clearing all historical versions: task" in result.output
    assert "The clear's task" in result.output and "ended: Done" in result.output
    assert "File history is on again with the kept settings" in result.output
    assert lines[-1] == "The guided clear is done."
    assert sim.calls["history.clear"] == 1
    assert sim.calls["history.set"] == 2
    assert settings_now(app) == ORIGINAL


def test_keep_history_is_refused_when_read_only(make_app, sim):
    app = make_app(SMH_READ_ONLY=True)

    result = app.test_cli_runner().invoke(args=["clear-history", "lib1", "--keep-history", "--yes"])

    assert result.exit_code == 1
    assert "read-only" in result.output
    assert sim.calls["history.set"] == 0


@pytest.fixture
def commands(flask_processes):
    """Start `flask clear-history lib1 --keep-history --yes` in a process of its own."""

    def start(settings, **extra) -> FlaskProcess:
        return flask_processes(
            settings, "clear-history", "lib1", "--keep-history", "--yes", **extra
        )

    return start


def wait_for_step(app, command, step):
    """Wait until the command's job is at the step; return the job as read then."""
    seen = []

    def at_step():
        with app.app_context():
            seen[:] = [history_jobs.current_job("lib1")]
        return seen[0] is not None and seen[0].step == step

    wait_until(at_step, command)
    return seen[0]


def refresh(app):
    with app.app_context():
        poller.refresh_library(registry.get_library("lib1"))


def test_sigkill_after_switching_off_resumes_to_one_clear_and_one_restore(
    settings, app, sim, commands, clock
):
    # An hour's settle wait: the command sits between "switched off" and the clear.
    command = commands(settings, SMH_HISTORY_SETTLE_SECONDS="3600")
    wait_for_step(app, command, "settle")
    command.kill()
    assert sim.calls["history.clear"] == 0

    # The test's clock is a day ahead of the killed process's: its settle wait is over.
    refresh(app)
    refresh(app)

    with app.app_context():
        job = history_jobs.latest_jobs(["lib1"])["lib1"]
    assert (job.step, job.outcome) == ("ended", "done")
    assert sim.calls["history.clear"] == 1
    assert sim.calls["history.set"] == 2
    assert settings_now(app) == ORIGINAL


# The clear's task runs 30 s of the test's clock, which only the test moves: the command
# waits for it until it is killed.
@pytest.mark.parametrize("clear_run_seconds", [30])
def test_sigkill_after_sending_the_clear_resumes_to_one_restore(
    settings, app, sim, commands, clock
):
    command = commands(settings)
    job = wait_for_step(app, command, "track")
    command.kill()
    assert sim.calls["history.clear"] == 1

    clock.advance(30)  # the clear's task ends
    refresh(app)

    with app.app_context():
        ended = history_jobs.get_job(job.id)
    assert (ended.step, ended.outcome, ended.task_id) == ("ended", "done", job.task_id)
    assert sim.calls["history.clear"] == 1
    assert sim.calls["history.set"] == 2
    assert settings_now(app) == ORIGINAL
