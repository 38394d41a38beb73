"""The simulator applying a switch-off of file history only after a delay, as SMH may."""

import pytest
from werkzeug.test import Client

from smh_dashboard.smh.simulator import Simulator

SECRET = "lib-secret-123"
HISTORY = "/api/v1/directory-history/lib/library-history"
OFF = {
    "enableFileHistory": False,
    "fileHistoryCount": 10,
    "fileHistoryExpireDay": 30,
    "mergeInterval": 600,
}


@pytest.fixture
def sim(clock):
    sim = Simulator(clock)
    sim.add_library("lib", SECRET, history_enabled=True)
    sim.delay_history_off(10)
    return sim


def history(sim, method, body=None):
    token = sim.issue_token("lib")
    return Client(sim).open(HISTORY, method=method, query_string={"access_token": token}, json=body)


def test_a_switch_off_is_applied_only_after_the_delay(sim, clock):
    assert history(sim, "POST", OFF).status_code == 204

    assert history(sim, "GET").json["enableFileHistory"] is True
    refused = history(sim, "DELETE")
    assert (refused.status_code, refused.json["code"]) == (400, "FileHistoryEnabled")

    clock.advance(10)
    assert history(sim, "GET").json == {"enableFileHistory": False}
    assert history(sim, "DELETE").status_code == 202


def test_turning_history_on_again_before_the_delay_keeps_it_on(sim, clock):
    history(sim, "POST", OFF)
    history(sim, "POST", OFF | {"enableFileHistory": True, "fileHistoryCount": 5})

    clock.advance(60)

    assert history(sim, "GET").json == OFF | {"enableFileHistory": True, "fileHistoryCount": 5}


@pytest.mark.parametrize("seconds", [-1, "5", None])
def test_a_bad_delay_is_refused(sim, seconds):
    with pytest.raises(ValueError, match="non-negative number"):
        sim.delay_history_off(seconds)
