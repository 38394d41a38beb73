from smh_dashboard.storage import listings


def tracked(app):
    with app.app_context():
        return {t.task_id: t for t in listings.list_tasks("lib1", None)}


def test_track_and_untrack(runner, app):
    result = runner.invoke(args=["track", "lib1", "1000", "1001,1002", "--label", "From cron"])
    assert result.exit_code == 0, result.output
    assert "Tracking 3 new task(s) in lib1; 0 already tracked." in result.output
    assert {i: t.label for i, t in tracked(app).items()} == {
        1000: "From cron",
        1001: "From cron",
        1002: "From cron",
    }

    result = runner.invoke(args=["track", "lib1", "1000"])
    assert "Tracking 0 new task(s) in lib1; 1 already tracked." in result.output

    result = runner.invoke(args=["untrack", "lib1", "1000", "1001"])
    assert result.exit_code == 0
    assert "Stopped tracking 2 task(s) in lib1." in result.output
    assert list(tracked(app)) == [1002]


def test_bad_ids_and_libraries_are_refused_with_a_message(runner, app):
    runner.invoke(args=["track", "lib1", "5"])

    bad_id = runner.invoke(args=["track", "lib1", "7", "abc"])
    unknown = runner.invoke(args=["track", "nosuch", "7"])
    nothing = runner.invoke(args=["untrack", "lib1"])

    assert bad_id.exit_code == 2
    assert "“abc” is not a task id" in bad_id.output
    assert unknown.exit_code == 2
    assert "'nosuch' is not configured (configured: lib1)" in unknown.output
    assert nothing.exit_code == 2
    assert list(tracked(app)) == [5]


def test_refresh_polls_once_and_prints_a_table(runner, app, sim, clock):
    running = sim.add_task("lib1", run_seconds=600)
    done = sim.add_task("lib1", run_seconds=5, delete_count=321)
    runner.invoke(args=["track", "lib1", str(running), str(done)])
    clock.advance(10)

    result = runner.invoke(args=["refresh"])

    assert result.exit_code == 0, result.output
    # The table is standard output; the log's line per SMH call goes to standard error.
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["LIBRARY", "TASK", "STATE", "DELETED", "LABEL"]
    assert lines[1].split() == ["lib1", str(done), "done", "321"]
    assert lines[2].split() == ["lib1", str(running), "running"]
    assert sim.calls["task.query"] == 1


def test_refresh_reports_upstream_failure_and_exits_non_zero(runner, app, sim):
    runner.invoke(args=["track", "lib1", str(sim.add_task("lib1"))])
    sim.inject("error", status=503, code="ServerOverloaded", times=None)

    result = runner.invoke(args=["refresh"])

    assert result.exit_code == 1
    assert "lib1: SMH failed" in result.output
    assert "pending" in result.output


def test_overlong_labels_are_refused_as_on_the_form(runner, app):
    result = runner.invoke(args=["track", "lib1", "5", "--label", "x" * 201])
    assert result.exit_code == 2
    assert "Keep the label under 200 characters" in result.output
    assert tracked(app) == {}
