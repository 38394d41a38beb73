"""Whatever SMH answers, the client returns plain data or raises one SMHError, nothing else."""

import io
import json
import logging
import socket
import threading

import pytest
import requests
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st

from smh_dashboard.domain import states
from smh_dashboard.smh.answers import HistorySettings, ResultEntry, SMHError
from smh_dashboard.smh.client import SMHClient
from smh_dashboard.smh.simulator import FakeClock, Simulator
from smh_dashboard.storage import listings, tasks

pytestmark = pytest.mark.backends

DEEP = 50_000
TOKEN_ANSWER = b'{"accessToken": "t0k3n", "expiresIn": 1200}'


@pytest.fixture
def smh_client(sim, upstream):
    client = SMHClient("lib1", token=sim.issue_token("lib1"), base_url=upstream.base_url, retries=0)
    yield client
    client.close()


def item(task_id, status=202, **fields):
    return {"taskId": task_id, "status": status} | fields


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>oops</html>", id="html"),
        pytest.param(b'[{"taskId": 1000, "status": 202}', id="truncated"),
        pytest.param(b"[1, 2] 3", id="trailing data"),
        pytest.param("\ufeff[]".encode(), id="byte order mark"),
        pytest.param("[]".encode("utf-16"), id="utf-16"),
        pytest.param(b'[{"taskId": 1000, "status": 202, "x": "\xff"}]', id="not utf-8"),
        pytest.param(b"[" * DEEP + b"]" * DEEP, id="nested 50,000 deep"),
        pytest.param(b'{"a": ' * DEEP + b"1" + b"}" * DEEP, id="objects nested 50,000 deep"),
        pytest.param(b"[" * 65 + b"]" * 65, id="nested 65 deep"),
        pytest.param(b'[{"taskId": 1000, "status": NaN}]', id="NaN"),
        pytest.param(b'[{"taskId": 1000, "status": -Infinity}]', id="-Infinity"),
        pytest.param(b'[{"taskId": 1000, "status": 202, "x": 1e400}]', id="1e400"),
        pytest.param(b'[{"taskId": 1000, "status": 202, "x": 1%s}]' % (b"0" * 400), id="10**400"),
        pytest.param(b'[{"taskId": 1000, "status": 202, "x": 1%s}]' % (b"0" * 5000), id="10**5000"),
        pytest.param(b'[{"taskId": 1000, "status": 202, "x": "\\ud800"}]', id="lone surrogate"),
        pytest.param(b'{"taskId": 1000, "status": 202}', id="not an array"),
        pytest.param(b"[null]", id="null item"),
        pytest.param(b"[[1000, 202]]", id="array item"),
        pytest.param(b'[{"status": 202}]', id="item without taskId"),
        pytest.param(b'[{"taskId": "1000x", "status": 202}]', id="unreadable taskId"),
        pytest.param(b'[{"taskId": "--1000", "status": 202}]', id="taskId with two minus signs"),
        pytest.param(b'[{"taskId": 1000.0, "status": 202}]', id="float taskId"),
        pytest.param(b'[{"taskId": true, "status": 202}]', id="boolean taskId"),
        pytest.param(b'[{"taskId": -1000, "status": 202}]', id="negative taskId"),
        pytest.param(b'[{"taskId": 9223372036854775808, "status": 202}]', id="taskId past int64"),
    ],
)
def test_an_unreadable_answer_is_one_bad_answer_error(sim, smh_client, body):
    sim.inject("answer", endpoint="task.query", status=200, body=body)

    with pytest.raises(SMHError) as caught:
        smh_client.query_tasks([1000])

    assert caught.value.code == "BadAnswer"
    assert sim.calls["task.query"] == 1


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_an_error_answer_nested_too_deep_has_no_smh_code(sim, smh_client, status):
    body = b'{"code": "ParamInvalid", "x": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    sim.inject("answer", endpoint="task.query", status=status, body=body)

    with pytest.raises(SMHError) as caught:
        smh_client.query_tasks([1000, 1001])

    assert (caught.value.status, caught.value.code) == (status, None)
    assert sim.calls["task.query"] == 1  # without an SMH code, the batch is not split


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(item(1001, result=5), id="result a number"),
        pytest.param(item(1001, result=True), id="result true"),
        pytest.param(item(1001, result="none"), id="result a string"),
        pytest.param(item(1001, result={"err": ""}), id="result an object"),
        pytest.param(item(1001, result=["nope"]), id="result entry a string"),
        pytest.param(item(1001, status="done"), id="status a word"),
        pytest.param(item(1001, status=202.0), id="status a float"),
        pytest.param(item(1001, status=True), id="status true"),
        pytest.param(item(1001, status=2**70), id="status past int64"),
        pytest.param(item(1001, status=None), id="status null"),
        pytest.param({"taskId": 1001}, id="no status"),
    ],
)
def test_one_unreadable_item_costs_only_its_own_task(sim, smh_client, bad):
    body = json.dumps([item(1000), bad, item("1002", "200", result=[])])
    sim.inject("answer", endpoint="task.query", status=200, body=body)

    statuses = smh_client.query_tasks([1000, 1001, 1002, 1003])

    assert [(s.task_id, s.state) for s in statuses] == [
        (1000, states.RUNNING),
        (1001, states.MISSING),
        (1002, states.DONE),
        (1003, states.MISSING),
    ]
    assert "1001" in statuses[1].refusal
    assert statuses[3].refusal is None  # not listed, which is not the same as unreadable


def test_an_unreadable_item_never_hides_a_readable_one_for_the_same_task(sim, smh_client):
    body = json.dumps([item(1000, status="?"), item(1000), item(1000, result=7)])
    sim.inject("answer", endpoint="task.query", status=200, body=body)
    assert smh_client.query_tasks([1000])[0].state == states.RUNNING


def test_result_fields_of_the_wrong_type_are_left_out(sim, smh_client):
    entries = [
        {"err": 5, "status": 1.5, "deleteCount": True},
        {"err": ["x"], "status": "-1", "deleteCount": "4"},
        {"err": "disk full", "status": 2**64, "deleteCount": -(2**64)},
    ]
    body = json.dumps([item(1000, 200, result=entries)])
    sim.inject("answer", endpoint="task.query", status=200, body=body)

    (status,) = smh_client.query_tasks([1000])

    assert status.state == states.DONE

    assert status.results == (
        ResultEntry(err="", status=None, delete_count=None),
        ResultEntry(err="", status=-1, delete_count=4),
        ResultEntry(err="disk full", status=None, delete_count=None),
    )
    assert status.delete_count == 4


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"taskId": "\xd9\xa3"}', "BadAnswer"),  # an Arabic-Indic digit three
        (b'{"taskId": "\xc2\xb2"}', "BadAnswer"),  # a superscript two
        (b'{"taskId": "99999999999999999999999"}', "BadAnswer"),
        (b'{"taskId": 0}', "BadAnswer"),
        (b"[" * DEEP + b"]" * DEEP, "BadAnswer"),
        (b'{"taskId": "20"}', None),
    ],
)
def test_a_clear_answer_is_a_task_id_or_one_error(sim, smh_client, body, code):
    sim.inject("answer", endpoint="history.clear", status=202, body=body)
    if code is None:
        assert smh_client.clear_history() == 20
        return
    with pytest.raises(SMHError) as caught:
        smh_client.clear_history()
    assert caught.value.code == code


@pytest.mark.parametrize(
    "body",
    [
        b'{"accessToken": 5, "expiresIn": 1200}',
        b'{"accessToken": "", "expiresIn": 1200}',
        b'{"accessToken": "a b", "expiresIn": 1200}',
        b'{"accessToken": "a&b", "expiresIn": 1200}',
        b'{"accessToken": "t\\n", "expiresIn": 1200}',
        b'{"accessToken": "' + b"t" * 5000 + b'", "expiresIn": 1200}',
        b'{"accessToken": {"t": 1}}',
        b"[" * DEEP + b"]" * DEEP,
    ],
)
def test_an_unusable_token_answer_is_one_bad_answer_error(sim, upstream, secret, body):
    client = SMHClient("lib1", secret=secret, base_url=upstream.base_url, retries=0)
    sim.inject("answer", endpoint="token.create", status=200, body=body)
    with pytest.raises(SMHError) as caught:
        client.query_tasks([1000])
    client.close()
    assert caught.value.code == "BadAnswer"
    assert sim.calls["task.query"] == 0


@pytest.mark.parametrize("expires_in", ["-5", "0", '"soon"', "1.5", "true", "null"])
def test_a_token_answer_with_an_odd_lifetime_asks_for_the_period_again(
    sim, upstream, secret, clock, expires_in
):
    client = SMHClient("lib1", secret=secret, base_url=upstream.base_url, retries=0, clock=clock)
    body = b'{"accessToken": "%s", "expiresIn": %s}' % (
        sim.issue_token("lib1").encode(),
        expires_in.encode(),
    )
    sim.inject("answer", endpoint="token.create", status=200, body=body)
    task_id = sim.add_task("lib1")
    for _ in range(3):
        client.query_tasks([task_id])
        clock.advance(60)
    client.close()
    # The token stands for the period asked for: no renewal a minute later, no second mint.
    assert (sim.calls["token.create"], sim.calls["token.renew"]) == (1, 0)


def test_a_blanket_refusal_is_one_outage_and_no_task_goes_missing(app, client, sim, clock):
    ids = sim.add_tasks("lib1", 200, run_seconds=3600)
    with app.app_context():
        tasks.track_tasks("lib1", ids, None, clock())
    client.get("/libraries/lib1/rows")
    sim.inject("error", endpoint="task.query", status=400, code="ParamInvalid", times=None)
    sim.reset_calls()

    for _ in range(4):
        # Past the cache window, the back-off and the grace before a task counts as missing.
        clock.advance(200)
        page = client.get("/libraries/lib1/rows").get_data(as_text=True)
        assert "SMH is failing" in page
        assert "ParamInvalid" in page

    with app.app_context():
        assert listings.count_states(["lib1"]) == {"lib1": {states.RUNNING: 200}}
    assert sim.calls["task.query"] == 4 * 3


# Hypothesis draws answers from here: JSON values of every type, SMH's own keys mixed with
# random ones, number literals Python cannot hold, and bytes broken in every way.

SMH_KEYS = [
    *("taskId", "status", "result", "err", "deleteCount", "code", "message", "requestId"),
    *("accessToken", "expiresIn", "enableFileHistory", "fileHistoryCount", "mergeInterval"),
]
ODD_LITERALS = [
    *("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "-0", "1E2", "0.0"),
    *("1" + "0" * 400, "1" + "0" * 5000, "9223372036854775808", "-9223372036854775809"),
    *('"\\ud800"', '"\\udc00\\ud800"', '"\\u0000"', '"1000"', '"--5"', '"\\u0663"'),
]


class Literal(str):
    """JSON text to be written as it is."""


def render(value):
    if isinstance(value, Literal):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{render(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([1000, 1001, 200, 202, 204, 500, 0, -1]),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(ODD_LITERALS).map(Literal),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(SMH_KEYS) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
entries = st.fixed_dictionaries({}, optional={k: values for k in ("err", "status", "deleteCount")})
items = st.fixed_dictionaries(
    {},
    optional={
        "taskId": st.sampled_from([1000, 1001, "1000"]) | values,
        "status": st.sampled_from([200, 202, 204, 500, "200"]) | values,
        "result": st.lists(entries | values, max_size=3) | values,
        "extra": values,
    },
)
documents = st.one_of(
    values,
    st.lists(items | values, max_size=4),
    st.dictionaries(st.sampled_from(SMH_KEYS), values, max_size=5),
)


@st.composite
def bodies(draw):
    text = render(draw(documents))
    breakages = ["truncated", "bom", "utf-16", "bad byte", "deep", "bytes"]
    how = draw(st.sampled_from(["as is"] * len(breakages) + breakages))
    data = text.encode()
    if how == "truncated":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if how == "bom":
        return b"\xef\xbb\xbf" + data
    if how == "utf-16":
        return text.encode("utf-16")
    if how == "bad byte":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + data[at:]
    if how == "deep":
        depth = draw(st.sampled_from([63, 64, 65, 1000, 5000]))
        return b"[" * depth + data + b"]" * depth
    if how == "bytes":
        return draw(st.binary(max_size=64))
    return data


@pytest.fixture(scope="module")
def lone_smh():
    """An SMH served for the whole module, for examples that must not each start a server."""
    sim = Simulator()
    sim.add_library("lib1", "lone-secret")
    with sim.serve() as server:
        yield sim, server


@settings(max_examples=200, deadline=None)
@given(
    body=bodies(),
    status=st.sampled_from([200, 200, 200, 202, 400, 403, 404, 500]),
)
def test_any_task_answer_is_statuses_or_one_smh_error(lone_smh, body, status):
    sim, server = lone_smh
    token = sim.issue_token("lib1")
    client = SMHClient("lib1", token=token, base_url=server.base_url, retries=0)
    sim.clear_faults()
    sim.inject("answer", endpoint="task.query", status=status, body=body)
    try:
        statuses = client.query_tasks([1000, 1001, 7])
    except SMHError as error:
        assert token not in str(error)
    else:
        assert [s.task_id for s in statuses] == [1000, 1001, 7]
        assert all(s.state in states.ALL for s in statuses)
    finally:
        client.close()


class CannedTransport(requests.adapters.BaseAdapter):
    """Answer each request with the next canned status, headers and body, as real Responses."""

    def __init__(self, answers):
        super().__init__()
        self.answers = list(answers)
        self.building = requests.adapters.HTTPAdapter()

    def send(self, request, **kwargs):
        status, headers, body = self.answers.pop(0) if self.answers else (500, {}, b"")
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(body), headers=headers, status=status, preload_content=False
        )
        return self.building.build_response(request, raw)

    def close(self):
        self.building.close()


HEADER_VALUES = {
    "Retry-After": [
        *("0", "2", "0.5", "-1", "nan", "inf", "1e400", "9" * 500, "", " 7 ", "1_000"),
        *("Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 99 Foo"),
    ],
    "Content-Length": ["0", "5", "-5", "--5", "99999999999999999999", "x"],
    "Content-Encoding": ["gzip", "deflate", "br", "zstd", "identity", "gzip, x"],
    "Content-Type": ["application/json; charset=utf-16", "text/html"],
}
answers = st.tuples(
    st.sampled_from([200, 202, 204, 301, 302, 400, 403, 404, 429, 500, 503, 599]),
    st.fixed_dictionaries(
        {}, optional={name: st.sampled_from(v) for name, v in HEADER_VALUES.items()}
    ),
    bodies() | st.sampled_from([TOKEN_ANSWER, b'{"taskId": 1}', b'{"enableFileHistory": 0}']),
)


def ask(client, clock, call):
    if call == "renew":
        client.query_tasks([1])
        clock.advance(1150)  # into the renewal margin of the token's 1200 s
        return client.query_tasks([1])
    if call == "query":
        return client.query_tasks([1, 2])
    if call == "clear":
        return client.clear_history()
    return client.get_history_settings()


RETURNS = {
    "renew": list,
    "query": list,
    "clear": int,
    "settings": HistorySettings,
}


@settings(max_examples=200, deadline=None)
@given(
    call=st.sampled_from(sorted(RETURNS)),
    canned=st.lists(answers, min_size=1, max_size=4),
)
def test_every_public_call_returns_its_data_or_raises_one_smh_error(call, canned):
    clock = FakeClock()
    if call == "renew":
        # A good token and a good answer first, so that the canned ones reach the renewal.
        canned = [(200, {}, TOKEN_ANSWER), (200, {}, b"[]"), *canned]
    session = requests.Session()
    session.mount("http://", CannedTransport(canned))
    sleeps = []
    client = SMHClient(
        "lib1",
        secret="s3cret-key",
        base_url="http://smh.test",
        retries=1,
        backoff=0.25,
        session=session,
        sleep=sleeps.append,
        clock=clock,
    )
    try:
        result = ask(client, clock, call)
    except SMHError as error:
        shown = f"{error} {error!r} {error.code} {error.request_id}"
        assert "s3cret-key" not in shown
        assert "t0k3n" not in shown
    else:
        assert isinstance(result, RETURNS[call])
    finally:
        client.close()
    # Back-off between tries is the only wait: a Retry-After is never slept on.
    assert set(sleeps) <= {0.25}


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0.5", 0.5),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("1e400", None),
        ("9" * 500, None),
        ("Mon, 99 Foo 2020 25:61:61 GMT", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header, seconds):
    session = requests.Session()
    session.mount("http://", CannedTransport([(503, {"Retry-After": header}, b"")]))
    client = SMHClient("lib1", token="t", base_url="http://smh.test", session=session, retries=0)
    with pytest.raises(SMHError) as caught:
        client.get_history_settings()
    client.close()
    assert caught.value.retry_after == seconds


def test_retry_after_a_date_to_come_counts_the_seconds_until_then():
    session = requests.Session()
    answer = (429, {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}, b"")
    session.mount("http://", CannedTransport([answer]))
    client = SMHClient("lib1", token="t", base_url="http://smh.test", session=session, retries=0)
    with pytest.raises(SMHError) as caught:
        client.get_history_settings()
    client.close()
    assert caught.value.retry_after > 7000 * 365 * 86400


# Answers broken below HTTP's own framing, which the simulator (a real HTTP server) cannot send:
# a socket that writes the bytes given and hangs up.


@pytest.fixture
def raw_smh():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    replies, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                try:
                    connection.recv(65536)
                    connection.sendall(replies.pop(0) if replies else b"")
                except OSError:
                    pass  # the client hung up first, as it may on a broken answer

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", replies
    stop.set()
    thread.join()
    listener.close()


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"HTTP/1.1 2OO OK\r\n\r\n", id="odd status"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n[]", id="short body"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n",
            id="bad chunk size",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n[]",
            id="not gzip",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"Content-Length: 2\r\n\r\n[]",
            id="101 headers",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\nContent-Length: 2\r\n\r\n[]",
            id="header line past 64 KiB",
        ),
        pytest.param(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/\r\nContent-Length: 0\r\n\r\n",
            id="redirect",
        ),
        pytest.param(b"HTTP/1.1 103 Early Hints\r\nContent-Length: 2\r\n\r\n[]", id="103"),
    ],
)
def test_an_answer_broken_below_http_is_one_smh_error(raw_smh, reply):
    base_url, replies = raw_smh
    replies.append(reply)
    client = SMHClient("lib1", token="raw-t0k3n", base_url=base_url, retries=0)
    with pytest.raises(SMHError) as caught:
        client.query_tasks([1000])
    client.close()
    assert "raw-t0k3n" not in str(caught.value)


def test_a_malformed_header_is_logged_without_the_token(raw_smh, caplog):
    caplog.set_level(logging.DEBUG)
    base_url, replies = raw_smh
    replies.append(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n: no name\r\n\r\n[]")
    client = SMHClient("lib1", token="raw-t0k3n", base_url=base_url, retries=0)
    assert client.query_tasks([1000])[0].state == states.MISSING
    client.close()
    # urllib3 logs the full URL, token included, when it cannot parse a header.
    assert any(record.name == "urllib3.connection" for record in caplog.records)
    assert "raw-t0k3n" not in caplog.text


def test_a_redirect_is_an_error_not_followed(raw_smh):
    base_url, replies = raw_smh
    replies.append(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /elsewhere\r\n\r\n")
    replies.append(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]")
    client = SMHClient("lib1", token="raw-t0k3n", base_url=base_url, retries=0)
    with pytest.raises(SMHError) as caught:
        client.query_tasks([1000])
    client.close()
    assert caught.value.status == 307
    assert replies  # the answer waiting at the redirect's target was never asked for
