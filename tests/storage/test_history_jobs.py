"""Guided clears' rows: one under way per library, each step written once, on both databases."""

import pytest

from smh_dashboard.domain.guided import Step
from smh_dashboard.smh.answers import HistorySettings
from smh_dashboard.storage import history_jobs

pytestmark = pytest.mark.backends


def test_one_job_under_way_per_library(app, clock):
    with app.app_context():
        first = history_jobs.start_job("lib1", "ana", "127.0.0.1", True, clock())
        second = history_jobs.start_job("lib1", "vic", None, True, clock())
        other = history_jobs.start_job("lib2", "vic", None, False, clock())

        assert first is not None and first.step == Step.READ.value and first.under_way
        assert second is None
        assert other is not None and other.library_id == "lib2" and not other.restore
        assert history_jobs.current_job("lib1") == first


def test_an_ended_job_makes_room_for_the_next(app, clock):
    with app.app_context():
        first = history_jobs.start_job("lib1", "ana", None, True, clock())
        ended = history_jobs.move_job(first, {"step": "ended", "ended_at": clock()})
        clock.advance(1)
        second = history_jobs.start_job("lib1", "ana", None, True, clock())

        assert ended is not None and not ended.under_way
        assert second is not None and second.id != first.id
        assert history_jobs.latest_jobs(["lib1", "lib2"]) == {"lib1": second}
        assert history_jobs.current_job("lib1") == second


def test_a_step_is_written_once_over_the_version_it_was_read_at(app, clock):
    with app.app_context():
        job = history_jobs.start_job("lib1", "ana", None, True, clock())
        one = history_jobs.move_job(job, {"step": "clearing", "clear_asked_at": clock()})
        two = history_jobs.move_job(job, {"step": "clearing", "clear_asked_at": clock() + 1})

        assert one is not None and one.version == job.version + 1
        assert two is None
        stored = history_jobs.get_job(job.id)
        assert stored == one
        assert stored.clear_asked_at == clock()


def test_a_long_error_is_cut_to_fit(app, clock):
    with app.app_context():
        job = history_jobs.start_job("lib1", "ana", None, True, clock())
        moved = history_jobs.move_job(job, {"last_error": "x" * 2000})

        assert len(history_jobs.get_job(job.id).last_error) == 500
        assert moved.version == 2


def test_settings_kept_at_a_switch_off_are_replaced_and_forgotten(app, clock):
    with app.app_context():
        history_jobs.keep_settings("lib1", HistorySettings(True, 10, 30, 600), "ana", clock())
        clock.advance(5)
        history_jobs.keep_settings("lib1", HistorySettings(True, 3, 0, 0), "vic", clock())
        kept = history_jobs.kept_settings("lib1")
        history_jobs.forget_kept("lib1")

        assert kept.settings == {
            "enableFileHistory": True,
            "fileHistoryCount": 3,
            "fileHistoryExpireDay": 0,
            "mergeInterval": 0,
        }
        assert (kept.kept_at, kept.kept_by) == (clock(), "vic")
        assert history_jobs.kept_settings("lib1") is None
