"""The guided clear and the retention settings from the library page: forms, refusals, steps."""

import re

import pytest
from markup import shown

from smh_dashboard import registry
from smh_dashboard.storage import activity, history_jobs

pytestmark = pytest.mark.backends

CLEAR = "/libraries/lib1/clear-history"
JOB = "/libraries/lib1/history-job"
CANCEL = "/libraries/lib1/history-job/cancel"
SETTINGS = "/libraries/lib1/history-settings"
RESTORE = "/libraries/lib1/history-settings/restore"
DISABLE = "/libraries/lib1/history-settings/disable"
GOOD = {
    "enableFileHistory": "on",
    "fileHistoryCount": "10",
    "fileHistoryExpireDay": "30",
    "mergeInterval": "600",
}


@pytest.fixture
def settings(settings):
    return settings | {"SMH_HISTORY_SETTLE_SECONDS": 60}


def csrf_of(client):
    page = client.get("/libraries/lib1").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def post(client, path, **data):
    return client.post(path, data={"csrf_token": csrf_of(client), **data})


def smh_settings(app):
    """Return the settings SMH answers now, as a dict under SMH's names."""
    with app.app_context():
        settings = registry.client_for("lib1").get_history_settings()
    return {
        "enableFileHistory": settings.enabled,
        "fileHistoryCount": settings.count,
        "fileHistoryExpireDay": settings.expire_days,
        "mergeInterval": settings.merge_interval,
    }


def job_of(app):
    with app.app_context():
        return history_jobs.latest_jobs(["lib1"]).get("lib1")


def logged(app):
    with app.app_context():
        return activity.list_activity("lib1", 0, 100)


def test_the_ticked_box_starts_a_guided_clear_whose_steps_the_page_shows(
    app, client, history_on, clock
):
    response = post(client, CLEAR, confirm="lib1", restore_history="on")

    assert response.status_code == 303
    page = shown(client.get("/libraries/lib1"))
    assert "Guided clear started" in page
    assert "File history is off since" in page
    job = job_of(app)
    assert job.step == "settle" and job.created_by == "no sign-in (127.0.0.1)"
    fragment = shown(client.get(JOB))
    assert "Waiting for SMH to apply the switch-off" in fragment
    assert "Started by no sign-in (127.0.0.1)" in fragment
    assert "Settings read and kept <time" in fragment
    assert "File history switched off <time" in fragment
    assert f'hx-get="{JOB}"' in fragment
    assert "Cancel the guided clear" in fragment

    clock.advance(60)
    client.get(JOB)
    clock.advance(30)
    client.get(JOB)
    fragment = shown(client.get(JOB))
    assert "Done: file history is on again." in fragment
    assert "File history on again <time" in fragment
    assert f'hx-get="{JOB}"' not in fragment  # the section stops polling once the job ended
    assert "File history is off since" not in shown(client.get("/libraries/lib1"))
    assert history_on.calls["history.clear"] == 1


def test_with_history_off_the_box_makes_no_difference(app, client, sim):
    response = post(client, CLEAR, confirm="lib1", restore_history="on")

    assert response.status_code == 303
    assert job_of(app) is None
    assert sim.calls["history.clear"] == 1


def test_a_wrong_confirmation_starts_no_guided_clear(app, client, history_on):
    response = post(client, CLEAR, confirm="lib2", restore_history="on")

    assert response.status_code == 400
    assert job_of(app) is None
    assert history_on.calls["history.set"] == 0


def test_a_second_guided_clear_is_refused_while_one_runs(app, client, history_on):
    post(client, CLEAR, confirm="lib1", restore_history="on")

    again = post(client, CLEAR, confirm="lib1", restore_history="on")

    assert again.status_code == 409
    assert "already under way" in shown(again)


def test_cancel_turns_history_back_on_and_no_clear_is_sent(app, client, history_on, clock):
    post(client, CLEAR, confirm="lib1", restore_history="on")

    response = post(client, CANCEL)

    assert response.status_code == 303
    assert smh_settings(app)["enableFileHistory"] is True
    fragment = shown(client.get(JOB))
    assert "Cancelled by no sign-in (127.0.0.1)" in fragment
    clock.advance(600)
    client.get(JOB)
    assert history_on.calls["history.clear"] == 0
    again = post(client, CANCEL)
    assert again.status_code == 409
    assert "Nothing was cancelled" in shown(again)


def test_read_only_refuses_the_guided_clear_and_the_settings(make_app, history_on):
    app = make_app(SMH_READ_ONLY=True)
    client = app.test_client()

    for path, data in ((CLEAR, {"confirm": "lib1", "restore_history": "on"}), (SETTINGS, GOOD)):
        assert client.post(path, data=data).status_code == 403
    assert job_of(app) is None
    assert history_on.calls["history.set"] == 0


def test_a_forged_post_from_another_site_changes_nothing(app, client, history_on):
    token = csrf_of(client)
    response = client.post(
        SETTINGS,
        data={"csrf_token": token, **GOOD, "fileHistoryCount": "3", "confirm": "lib1"},
        headers={"Origin": "https://evil.example"},
    )

    assert response.status_code == 403
    assert history_on.calls["history.set"] == 0


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("fileHistoryCount", "0", "Versions kept must be from 1 to 999, not 0."),
        ("fileHistoryCount", "1000", "Versions kept must be from 1 to 999, not 1000."),
        ("fileHistoryCount", "abc", "Versions kept must be a whole number"),
        ("fileHistoryCount", "", "Versions kept is required."),
        ("fileHistoryExpireDay", "1000", "Days kept must be from 0 (never expire) to 999"),
        ("fileHistoryExpireDay", "-1", "Days kept must be a whole number"),
        ("mergeInterval", "3", "Merge interval must be 0 (no merging) or from 5 to 600"),
        ("mergeInterval", "601", "Merge interval must be 0 (no merging) or from 5 to 600"),
        ("mergeInterval", "1.5", "Merge interval must be a whole number"),
    ],
)
def test_every_bad_retention_value_is_a_400_before_smh_is_asked(
    app, client, history_on, name, value, said
):
    response = post(client, SETTINGS, **(GOOD | {name: value}))

    assert response.status_code == 400
    assert said in shown(response)
    assert history_on.calls["history.set"] == 0
    assert history_on.calls["history.get"] == 0


def test_raising_a_limit_is_saved_and_logged_before_and_after(app, client, history_on):
    response = post(client, SETTINGS, **(GOOD | {"fileHistoryCount": "20"}))

    assert response.status_code == 303
    assert smh_settings(app)["fileHistoryCount"] == 20
    [entry] = logged(app)
    assert entry.action == "history-settings"
    assert entry.message == (
        "File-history settings: history on, 10 versions, 30 days, merge 600 s → "
        "history on, 20 versions, 30 days, merge 600 s."
    )


def test_lowering_a_limit_asks_for_the_library_id(app, client, history_on):
    unconfirmed = post(client, SETTINGS, **(GOOD | {"fileHistoryCount": "3"}))

    assert unconfirmed.status_code == 400
    assert "Type the library id lib1 to confirm" in shown(unconfirmed)
    assert history_on.calls["history.set"] == 0

    confirmed = post(client, SETTINGS, **(GOOD | {"fileHistoryCount": "3", "confirm": "lib1"}))
    assert confirmed.status_code == 303
    assert smh_settings(app)["fileHistoryCount"] == 3


def test_one_button_turns_history_back_on_with_the_settings_kept_at_switch_off(
    app, client, history_on
):
    post(client, CLEAR, confirm="lib1")  # unticked: refused, history is on
    switched = post(client, DISABLE, confirm="off")
    assert switched.status_code == 303
    page = shown(client.get("/libraries/lib1"))
    assert "File history is off since" in page
    assert "Earlier settings: history on, 10 versions, 30 days, merge 600 s." in page

    response = post(client, RESTORE)

    assert response.status_code == 303
    assert smh_settings(app) == {
        "enableFileHistory": True,
        "fileHistoryCount": 10,
        "fileHistoryExpireDay": 30,
        "mergeInterval": 600,
    }
    assert "File history is off since" not in shown(client.get("/libraries/lib1"))
    assert logged(app)[0].action == "restore-history"
    assert post(client, RESTORE).status_code == 409


def test_the_index_shows_history_the_last_clear_and_a_job_under_way(app, client, history_on, clock):
    client.get("/libraries/lib1/history-settings")  # SMH's reading, as the library page asks it
    index = shown(client.get("/"))
    assert "history on, 10 versions, 30 days, merge 600 s" in index
    assert "Last clear" in index

    post(client, CLEAR, confirm="lib1", restore_history="on")
    assert "Guided clear under way" in shown(client.get("/"))

    clock.advance(60)
    client.get(JOB)
    clock.advance(30)
    client.get(JOB)
    client.get("/libraries/lib1/history-settings")
    index = shown(client.get("/"))
    assert "Guided clear under way" not in index
    assert "history on, 10 versions, 30 days, merge 600 s" in index
    row = index.split('id="library-lib1"', 1)[1].split("</tr>", 1)[0]
    assert "by no sign-in (127.0.0.1)" in row
    assert re.search(r"\d+ versions deleted", row), row


def test_the_retention_form_shows_smhs_settings_once_they_are_read(app, client, history_on):
    page = shown(client.get("/libraries/lib1"))
    # Before SMH's settings are read, no empty form says history is off while it is on.
    assert 'class="history-settings-form"' not in page
    assert "Reading the file-history settings from SMH" in page

    fragment = shown(client.get("/libraries/lib1/history-settings"))

    form = fragment[fragment.index('class="history-settings-form"') :]
    assert 'name="enableFileHistory" value="on" checked' in form
    assert 'name="fileHistoryCount" inputmode="numeric" value="10"' in form
    assert 'name="fileHistoryExpireDay" inputmode="numeric" value="30"' in form
    assert 'name="mergeInterval" inputmode="numeric" value="600"' in form
    assert 'name="csrf_token"' in form


def test_the_index_reads_a_librarys_file_history_it_has_not_read_yet(client, history_on):
    index = shown(client.get("/"))
    assert 'hx-get="/libraries/lib1/history-glance"' in index
    assert history_on.calls["history.get"] == 0  # the index itself never waits on SMH

    glance = shown(client.get("/libraries/lib1/history-glance"))

    assert glance.strip() == "<span>history on, 10 versions, 30 days, merge 600 s</span>"
    again = shown(client.get("/"))
    assert "history on, 10 versions, 30 days, merge 600 s" in again
    assert 'hx-get="/libraries/lib1/history-glance"' not in again


def test_the_index_says_when_smh_cannot_tell_the_file_history(client, history_on):
    history_on.inject("error", endpoint="history.get", status=500)

    glance = shown(client.get("/libraries/lib1/history-glance"))

    assert "not readable now" in glance
    # Within the cache window the index says so itself, without asking the server again.
    again = shown(client.get("/"))
    assert "not readable now" in again
    assert 'hx-get="/libraries/lib1/history-glance"' not in again
