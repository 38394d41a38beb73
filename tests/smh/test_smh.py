import json
import logging
import socket
import threading

import pytest

from smh_dashboard.domain import states
from smh_dashboard.smh.answers import HistorySettings, ResultEntry, SMHError, parse_task_item
from smh_dashboard.smh.client import SMHClient
from smh_dashboard.smh.redact import redact
from smh_dashboard.smh.simulator import Simulator


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make_client(upstream, clock, sleeps, secret):
    made = []

    def make(**options):
        options.setdefault("secret", secret)
        options.setdefault("base_url", upstream.base_url)
        options.setdefault("retries", 0)
        # Wide, so that a loaded machine never turns a slow answer into a timeout.
        options.setdefault("read_timeout", 10)
        options.setdefault("sleep", sleeps.append)
        options.setdefault("clock", clock)
        client = SMHClient("lib1", **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_each_task_state_comes_back_with_its_result(sim, clock, make_client):
    running = sim.add_task("lib1", run_seconds=600)
    done = sim.add_task("lib1", run_seconds=10, delete_count=42)
    empty = sim.add_task("lib1", run_seconds=10, outcome="empty")
    failed = sim.add_task("lib1", run_seconds=10, outcome="failed")
    odd = sim.add_task("lib1", run_seconds=10, outcome=418)
    clock.advance(60)

    statuses = make_client().query_tasks([running, done, empty, failed, odd])

    assert [(s.task_id, s.state, s.code) for s in statuses] == [
        (running, states.RUNNING, 202),
        (done, states.DONE, 200),
        (empty, states.DONE_EMPTY, 204),
        (failed, states.FAILED, 500),
        (odd, states.UNKNOWN, 418),
    ]
    assert statuses[1].results == (ResultEntry(err="", status=0, delete_count=42),)
    assert statuses[1].delete_count == 42
    assert statuses[1].raw == {
        "taskId": done,
        "status": 200,
        "result": [{"err": "", "status": 0, "deleteCount": 42}],
    }
    assert statuses[3].results[0].err.startswith("InternalError")
    assert [s.is_terminal for s in statuses] == [False, True, True, True, False]


def test_running_task_becomes_done_as_time_passes(sim, clock, make_client):
    task_id = sim.add_task("lib1", run_seconds=30, delete_count=7)
    client = make_client()
    assert client.query_tasks([task_id])[0].state == states.RUNNING
    clock.advance(31)
    assert client.query_tasks([task_id])[0].state == states.DONE


def test_delete_counts_of_several_result_entries_are_summed():
    status = parse_task_item(
        {
            "taskId": 5,
            "status": 200,
            "result": [{"err": "", "status": 0, "deleteCount": 3}, {"deleteCount": 4}],
        }
    )
    assert status.delete_count == 7
    assert len(status.results) == 2


def test_250_ids_are_asked_in_three_calls(sim, make_client):
    ids = sim.add_tasks("lib1", 250, run_seconds=5)
    sim.reset_calls()

    statuses = make_client().query_tasks(ids)

    assert sim.calls["task.query"] == 3
    assert [len(asked) for asked in sim.task_queries] == [100, 100, 50]
    assert [s.task_id for s in statuses] == ids
    assert all(s.state == states.RUNNING for s in statuses)


def test_duplicate_ids_are_folded(sim, make_client):
    task_id = sim.add_task("lib1")
    statuses = make_client().query_tasks([task_id, task_id, task_id])
    assert [s.task_id for s in statuses] == [task_id]
    assert sim.task_queries == [[task_id]]


def test_ids_smh_leaves_out_are_reported_missing(sim, clock, make_client):
    known = sim.add_task("lib1", run_seconds=5)
    forgotten = sim.add_task("lib1", run_seconds=5)
    clock.advance(10)
    sim.add_task("lib1", run_seconds=5, task_id=999_000, created_at=clock() - 40 * 86400)

    statuses = make_client().query_tasks([known, 424242, forgotten, 999_000])

    assert [(s.task_id, s.state) for s in statuses] == [
        (known, states.DONE),
        (424242, states.MISSING),
        (forgotten, states.DONE),
        (999_000, states.MISSING),
    ]


def test_a_batch_refused_with_403_over_one_id_is_split_too(sim, make_client):
    ids = sim.add_tasks("lib1", 3, run_seconds=600)
    client = make_client()
    client.query_tasks(ids)
    sim.inject("error", endpoint="task.query", status=403, code="TaskExpired")
    statuses = client.query_tasks(ids)
    assert [s.state for s in statuses] == [states.RUNNING] * 3
    assert sim.calls["task.query"] == 4  # the refused batch, then its two halves


def test_a_refusal_without_an_smh_code_is_not_split(sim, make_client):
    client = make_client()
    client.query_tasks([sim.add_task("lib1")])
    sim.inject("error", endpoint="task.query", status=404, code="")
    with pytest.raises(SMHError) as caught:
        client.query_tasks([1, 2, 3, 4, 5, 6, 7, 8])
    assert caught.value.status == 404
    assert sim.calls["task.query"] == 2


@pytest.mark.parametrize("mode", ["400", "404"])
def test_a_batch_refused_over_one_id_still_reports_the_others(clock, secret, mode):
    sim = Simulator(clock, unknown_ids=mode)
    sim.add_library("lib1", secret)
    ids = sim.add_tasks("lib1", 8, run_seconds=5)
    clock.advance(10)
    with sim.serve() as server:
        client = SMHClient("lib1", secret=secret, base_url=server.base_url, retries=0)
        statuses = client.query_tasks([*ids[:3], 5, *ids[3:]])
        client.close()

    assert [s.state for s in statuses] == [states.DONE] * 3 + [states.MISSING] + [states.DONE] * 5
    assert statuses[3].refusal and f"HTTP {mode}" in statuses[3].refusal
    # Halving finds the refused id in a handful of calls, not one call per id.
    assert sim.calls["task.query"] <= 8


@pytest.mark.parametrize(
    ("status", "code"), [(400, "ParamInvalid"), (403, "TaskExpired"), (404, "TaskNotFound")]
)
def test_a_blanket_refusal_costs_three_calls_and_is_one_error(sim, make_client, status, code):
    ids = sim.add_tasks("lib1", 200)
    client = make_client()
    client.query_tasks(ids[:1])
    sim.inject("error", endpoint="task.query", status=status, code=code, times=None)
    sim.reset_calls()

    with pytest.raises(SMHError) as caught:
        client.query_tasks(ids)

    assert (caught.value.status, caught.value.code) == (status, code)
    # The first batch of 100, then its two halves: both refused, so SMH refuses everything.
    assert sim.task_queries == [ids[:100], ids[:50], ids[50:100]]


def test_two_refused_ids_in_both_halves_are_one_error(clock, secret):
    sim = Simulator(clock, unknown_ids="400")
    sim.add_library("lib1", secret)
    known = sim.add_tasks("lib1", 2)
    with sim.serve() as server:
        client = SMHClient("lib1", secret=secret, base_url=server.base_url, retries=0)
        with pytest.raises(SMHError) as caught:
            client.query_tasks([known[0], 5, known[1], 6])
        client.close()
    assert caught.value.code == "ParamInvalid"
    assert sim.calls["task.query"] == 3


def test_halving_stops_at_its_call_budget(clock, secret):
    sim = Simulator(clock, unknown_ids="404")
    sim.add_library("lib1", secret)
    ids = sim.add_tasks("lib1", 8)
    with sim.serve() as server:
        client = SMHClient(
            "lib1", secret=secret, base_url=server.base_url, retries=0, max_split_calls=2
        )
        with pytest.raises(SMHError) as caught:
            client.query_tasks([*ids[:3], 5, *ids[3:]])
        client.close()
    assert (caught.value.status, caught.value.code) == (404, "TaskNotFound")
    assert sim.calls["task.query"] == 3  # the batch, then two halves; the refused one not yet alone


def test_library_level_refusal_is_not_split(sim, make_client, upstream):
    client = SMHClient("nosuch", token="whatever", base_url=upstream.base_url, retries=0)
    with pytest.raises(SMHError) as caught:
        client.query_tasks([1, 2, 3, 4])
    client.close()
    assert caught.value.status == 404
    assert caught.value.code == "LibraryNotFound"
    assert sim.calls["task.query"] == 1


def test_one_token_is_minted_and_reused(sim, make_client):
    client = make_client()
    task_id = sim.add_task("lib1")
    for _ in range(3):
        client.query_tasks([task_id])
    assert sim.calls["token.create"] == 1
    assert sim.calls["task.query"] == 3


def test_token_expired_mid_run_is_minted_once_and_the_call_retried_once(sim, make_client):
    client = make_client()
    task_id = sim.add_task("lib1")
    client.query_tasks([task_id])
    sim.expire_tokens()
    sim.reset_calls()

    assert client.query_tasks([task_id])[0].state == states.RUNNING

    assert sim.calls == {"task.query": 2, "token.create": 1}


def test_twenty_threads_on_an_expired_token_cause_one_mint(sim, make_client):
    client = make_client()
    task_id = sim.add_task("lib1")
    client.query_tasks([task_id])
    sim.expire_tokens()
    sim.reset_calls()
    start = threading.Barrier(20)
    seen, errors = [], []

    def poll():
        start.wait()
        try:
            seen.append(client.query_tasks([task_id])[0].state)
        except SMHError as error:
            errors.append(error)

    threads = [threading.Thread(target=poll) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert seen == [states.RUNNING] * 20
    assert sim.calls["token.create"] == 1


def test_token_is_renewed_before_it_expires(clock, make_client, secret):
    sim = Simulator(clock, token_lifetime=1200)
    sim.add_library("lib1", secret)
    task_id = sim.add_task("lib1", run_seconds=10_000)
    with sim.serve() as server:
        client = make_client(base_url=server.base_url)
        client.query_tasks([task_id])
        clock.advance(1100)  # inside the renewal margin, still valid
        client.query_tasks([task_id])
        clock.advance(1100)
        client.query_tasks([task_id])
    assert sim.calls["token.create"] == 1
    assert sim.calls["token.renew"] == 2
    assert sim.calls["task.query"] == 3


def test_admin_token_is_minted_with_the_configured_period_and_user(sim, make_client, upstream):
    client = make_client(user_id="ops-bot", token_period=3600)
    client.query_tasks([sim.add_task("lib1")])
    (token,) = sim.issued_tokens("lib1")
    grant = sim.describe_token(token)
    assert (grant.lifetime, grant.user_id) == (3600, "ops-bot")
    # An admin token can clear history; a read-only one could not.
    assert isinstance(client.clear_history(), int)


def test_rejected_fixed_token_says_to_configure_a_new_one(sim, make_client):
    token = sim.issue_token("lib1")
    client = make_client(secret=None, token=token)
    task_id = sim.add_task("lib1")
    assert client.query_tasks([task_id])[0].state == states.RUNNING
    sim.revoke_token(token)

    with pytest.raises(SMHError) as caught:
        client.query_tasks([task_id])

    assert caught.value.status == 403
    assert caught.value.code == "InvalidAccessToken"
    assert "configure a new one" in str(caught.value)
    assert sim.calls["token.create"] == 0
    assert sim.calls["task.query"] == 2


def test_wrong_secret_is_reported(make_client):
    with pytest.raises(SMHError) as caught:
        make_client(secret="not-the-secret").query_tasks([1])
    assert (caught.value.status, caught.value.code) == (404, "WrongLibraryIdOrSecret")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "EmptyAccessToken"),
        (403, "NoPermission"),
        (403, "LibraryServiceExpired"),
        (404, "LibraryNotFound"),
        (429, "RateLimitExceeded"),
        (500, "InternalServerError"),
        (503, "ServerOverloaded"),
    ],
)
def test_smh_errors_carry_status_code_and_request_id(sim, make_client, status, code):
    client = make_client()
    client.query_tasks([sim.add_task("lib1")])
    sim.inject("error", endpoint="task.query", status=status, code=code)

    with pytest.raises(SMHError) as caught:
        client.query_tasks([1000])

    error = caught.value
    assert (error.status, error.code) == (status, code)
    assert error.request_id
    assert f"HTTP {status}" in str(error)
    assert code in str(error)


def test_timeout_becomes_an_error(sim, make_client):
    # A fixed token makes the slow call the only call, so nothing that should succeed races 0.2s.
    client = make_client(secret=None, token=sim.issue_token("lib1"), read_timeout=0.2)
    sim.inject("latency", endpoint="task.query", seconds=3)
    with pytest.raises(SMHError) as caught:
        client.query_tasks([1000])
    assert caught.value.is_timeout
    assert "0.2s" in str(caught.value)


def test_an_answer_that_trickles_is_cut_at_the_deadline(sim, make_client):
    # Sixty tasks make an answer of some 2,000 bytes: minutes at a byte every 0.1s, while the
    # whole answer is due within 2.5s (the connect timeout plus twice the read timeout).
    ids = sim.add_tasks("lib1", 60)
    client = make_client(
        secret=None, token=sim.issue_token("lib1"), connect_timeout=0.5, read_timeout=1
    )
    sim.inject("trickle", endpoint="task.query", seconds=0.1)

    with pytest.raises(SMHError) as caught:
        client.query_tasks(ids)

    assert caught.value.is_timeout
    assert "did not finish answering" in str(caught.value)
    assert sim.calls["task.query"] == 1


def test_unreachable_smh_becomes_an_error(secret):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SMHClient("lib1", secret=secret, base_url=f"http://127.0.0.1:{port}", retries=0)
    with pytest.raises(SMHError) as caught:
        client.query_tasks([1])
    client.close()
    assert caught.value.code == "Unreachable"


@pytest.mark.parametrize(
    ("status", "code", "retry_after"),
    [(429, "RateLimitExceeded", 2), (503, "ServerOverloaded", 0.5), (429, "RateLimitExceeded", 90)],
)
def test_a_wait_smh_asks_for_is_never_slept_on(sim, make_client, sleeps, status, code, retry_after):
    client = make_client(retries=2)
    task_id = sim.add_task("lib1")
    client.query_tasks([task_id])
    sim.inject("error", endpoint="task.query", status=status, code=code, retry_after=retry_after)
    sim.reset_calls()

    with pytest.raises(SMHError) as caught:
        client.query_tasks([task_id])

    # The poller makes the wait the time of its next try.
    assert caught.value.retry_after == retry_after
    assert sleeps == []
    assert sim.calls["task.query"] == 1


def test_429_is_never_retried(sim, make_client, sleeps):
    client = make_client(retries=2)
    client.query_tasks([sim.add_task("lib1")])
    sim.inject("error", endpoint="task.query", status=429, code="RateLimitExceeded")
    sim.reset_calls()
    with pytest.raises(SMHError) as caught:
        client.query_tasks([1000])
    assert caught.value.status == 429
    assert sleeps == []
    assert sim.calls["task.query"] == 1


def test_5xx_and_timeouts_are_retried_with_growing_backoff(sim, make_client, sleeps):
    # The timeout must fire on the slow call yet never on the others: 1s against 3s and ~1ms.
    client = make_client(retries=3, backoff=0.5, read_timeout=1)
    task_id = sim.add_task("lib1")
    client.query_tasks([task_id])
    sim.inject("error", endpoint="task.query", status=503, code="ServerOverloaded")
    sim.inject("latency", endpoint="task.query", seconds=3)
    sim.inject("error", endpoint="task.query", status=500)
    sim.reset_calls()

    assert client.query_tasks([task_id])[0].state == states.RUNNING

    assert sleeps == [0.5, 1.0, 2.0]
    assert sim.calls["task.query"] == 4


def test_retries_give_up_after_the_configured_count(sim, make_client, sleeps):
    client = make_client(retries=2)
    client.query_tasks([sim.add_task("lib1")])
    sim.inject("error", endpoint="task.query", status=500, times=None)
    sim.reset_calls()
    with pytest.raises(SMHError):
        client.query_tasks([1000])
    assert sim.calls["task.query"] == 3
    assert len(sleeps) == 2


def test_clear_history_is_never_retried_blindly(sim, make_client):
    client = make_client(retries=3)
    sim.inject("error", endpoint="history.clear", status=503, code="ServerOverloaded")
    with pytest.raises(SMHError):
        client.clear_history()
    assert sim.calls["history.clear"] == 1


def test_clear_history_returns_the_task_id_and_respects_the_rate_limit(sim, clock, make_client):
    client = make_client()
    task_id = client.clear_history()
    assert client.query_tasks([task_id])[0].state == states.RUNNING

    with pytest.raises(SMHError) as caught:
        client.clear_history()
    assert (caught.value.status, caught.value.code) == (429, "RateLimitExceeded")
    assert caught.value.retry_after is not None

    clock.advance(61)
    assert client.clear_history() != task_id


def test_history_settings_are_read(sim, make_client, secret):
    assert make_client().get_history_settings() == HistorySettings(enabled=False)
    sim.add_library("lib1", secret, history_enabled=True)
    settings = make_client().get_history_settings()
    assert settings.enabled is True
    assert settings.count == 10
    assert settings.expire_days == 30


def test_clearing_with_history_enabled_is_refused(sim, make_client, secret):
    sim.add_library("lib1", secret, history_enabled=True)
    with pytest.raises(SMHError) as caught:
        make_client().clear_history()
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("kind", "code"),
    [("garbage", "BadAnswer"), ("truncated", "BadAnswer"), ("oversize", "AnswerTooLarge")],
)
def test_malformed_and_oversized_answers_are_errors(sim, make_client, kind, code):
    client = make_client()
    client.query_tasks([sim.add_task("lib1")])
    sim.inject(kind, endpoint="task.query")
    with pytest.raises(SMHError) as caught:
        client.query_tasks([1000])
    assert caught.value.code == code


def test_numbers_sent_as_strings_are_read_and_absurd_counts_dropped():
    status = parse_task_item(
        {"taskId": "7", "status": "200", "result": [{"deleteCount": 2**64, "status": "0"}]}
    )
    assert (status.task_id, status.state) == (7, states.DONE)
    assert status.results == (ResultEntry(err="", status=0, delete_count=None),)
    assert status.delete_count is None


@pytest.mark.parametrize("empty", [None, [], 0, False, "", {}])
def test_an_empty_result_of_any_type_is_no_result(empty):
    # The poller parses answers stored by earlier versions, which took any empty value.
    status = parse_task_item({"taskId": "00000000000000000007", "status": 204, "result": empty})
    assert (status.task_id, status.state, status.results) == (7, states.DONE_EMPTY, ())


@pytest.mark.parametrize(
    "item",
    [
        "not an object",
        {"status": 200},
        {"taskId": 1},
        {"taskId": True, "status": 200},
        {"taskId": 2**63, "status": 200},
        {"taskId": 0, "status": 200},
        {"taskId": 1, "status": 2**70},
        {"taskId": 1, "status": "\uff12\uff10\uff10"},
        {"taskId": 1, "status": 200, "result": ["nope"]},
    ],
)
def test_malformed_task_items_are_errors(item):
    with pytest.raises(SMHError) as caught:
        parse_task_item(item)
    assert caught.value.code == "BadAnswer"


def test_no_secret_or_token_reaches_logs_or_error_texts(sim, clock, make_client, secret, caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    # The timeout must fire on the slow calls yet never on the others: 1s against 3s and ~1ms.
    client = make_client(retries=1, read_timeout=1)
    task_id = sim.add_task("lib1")

    def attempt(call):
        try:
            call()
        except SMHError as error:
            texts.extend([str(error), repr(error), error.message])

    attempt(lambda: client.query_tasks([task_id]))
    sim.expire_tokens()
    attempt(lambda: client.query_tasks([task_id]))
    for kind in ("garbage", "truncated", "oversize"):
        sim.inject(kind, times=2)
        attempt(lambda: client.query_tasks([task_id]))
    sim.inject("latency", seconds=3, times=2)
    attempt(lambda: client.query_tasks([task_id]))
    sim.inject("error", status=403, code="InvalidAccessToken", times=3)
    attempt(lambda: client.query_tasks([task_id]))
    clock.advance(86400 - 100)
    attempt(lambda: client.query_tasks([task_id]))  # renews: the token sits in the URL path
    attempt(client.clear_history)
    attempt(client.clear_history)
    fixed = make_client(secret=None, token=sim.issue_token("lib1"))
    sim.expire_tokens()
    for call in (lambda: fixed.query_tasks([task_id]), fixed.clear_history):
        try:
            call()
        except SMHError as error:
            texts.extend([str(error), repr(error)])
    texts.append(repr(client))
    texts.append(repr(fixed))

    tokens = sim.issued_tokens("lib1")
    assert sim.calls["token.renew"] >= 1
    assert len(tokens) >= 3
    everything = "\n".join(texts + [record.getMessage() for record in caplog.records])
    assert "access_token=***" in everything  # the URLs are logged, redacted
    assert secret not in everything
    for token in tokens:
        assert token not in everything


def test_smh_messages_that_echo_the_credential_are_scrubbed(sim, make_client):
    token = sim.issue_token("lib1")
    client = make_client(secret=None, token=token)
    # Make SMH's own message carry the token, as a careless upstream might.
    sim.inject("error", status=403, code="NoPermission", message=f"token {token} is bad")

    with pytest.raises(SMHError) as caught:
        client.query_tasks([1])

    error = caught.value
    assert token not in str(error) + repr(error) + str(error.args)
    assert "token *** is bad" in str(error)


@pytest.mark.parametrize("field", ["requestId", "code", "message"])
def test_every_smh_field_that_echoes_the_token_is_scrubbed(sim, make_client, field):
    token = sim.issue_token("lib1")
    client = make_client(secret=None, token=token)
    echoed = {"code": "NoPermission", "message": "No.", "requestId": "r-1"} | {field: f"x{token}y"}
    sim.inject("answer", status=500, body=json.dumps(echoed))

    with pytest.raises(SMHError) as caught:
        client.query_tasks([1])

    error = caught.value
    assert token not in str(error) + repr(error) + str(error.args)
    assert token not in f"{error.code} {error.request_id} {error.message}"
    assert "x***y" in f"{error.code} {error.request_id} {error.message}"


def test_a_refused_renewal_that_echoes_the_token_is_scrubbed(clock, make_client, secret, caplog):
    caplog.set_level(logging.DEBUG)
    sim = Simulator(clock, token_lifetime=1200)
    sim.add_library("lib1", secret)
    task_id = sim.add_task("lib1", run_seconds=10_000)
    with sim.serve() as server:
        client = make_client(base_url=server.base_url)
        client.query_tasks([task_id])
        (token,) = sim.issued_tokens("lib1")
        clock.advance(1100)  # inside the renewal margin: the token goes in the renewal's path
        body = {"code": "ServerOverloaded", "message": f"cannot renew {token}", "requestId": token}
        sim.inject("answer", endpoint="token.renew", status=503, body=json.dumps(body))
        assert client.query_tasks([task_id])[0].state == states.RUNNING

    assert sim.calls["token.renew"] == 1
    assert sim.calls["token.create"] == 2  # the refused renewal is followed by a mint
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "cannot renew ***" in logged
    assert token not in logged


def test_redact_hides_tokens_in_queries_and_paths():
    text = redact_sample = (
        "GET /api/v1/token/lib1/AbC-123?x=1 and /api/v1/task/lib1/1?access_token=T0k3n&user_id=u "
        "and /api/v1/token?library_id=lib1&library_secret=S3cret&grant=admin"
    )
    clean = redact(text)
    assert "AbC-123" not in clean
    assert "T0k3n" not in clean
    assert "S3cret" not in clean
    assert "user_id=u" in clean
    assert redact_sample != clean
