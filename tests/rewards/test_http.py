import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tao_ray.rewards.http import HttpReward, RewardServiceError


class _Service:
    """A real HTTP reward service on 127.0.0.1; `reply(index, payload)` decides each answer."""

    def __init__(self):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.release = threading.Event()  # set at teardown so slow handlers stop waiting
        self.reply = None
        self._lock = threading.Lock()
        self._server = None

    def start(self, reply) -> str:
        self.reply = reply
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                with service._lock:
                    index = len(service.requests)
                    service.requests.append(json.loads(raw))
                    service.headers.append(dict(self.headers))
                answer = service.reply(index, service.requests[index])
                if answer is None:  # the reply chose not to answer (slow-server test)
                    return
                status, body = answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/score"

    def stop(self):
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def service():
    running = _Service()
    yield running
    running.stop()


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


def _by_length(index, payload):
    return 200, _json({"scores": [len(item["response"]) / 10 for item in payload["items"]]})


def _records(n):
    return [
        {
            "id": f"p{i}",
            "messages": [{"role": "user", "content": f"question {i}"}],
            "constraints": [],
            "metadata": {"source": "test"},
            "answer": str(i),
            "reference_sql": None,
            "reference_response": None,
        }
        for i in range(n)
    ]


def test_scores_in_batches_and_sends_records_with_responses(service):
    url = service.start(_by_length)
    records, responses = _records(5), ["a", "bb", "ccc", "dddd", "eeeee"]

    scores = HttpReward(url, batch_size=2).score(records, responses)

    assert scores == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert [len(r["items"]) for r in service.requests] == [2, 2, 1]
    sent = [item for request in service.requests for item in request["items"]]
    assert sent == [{**record, "response": response} for record, response in zip(records, responses)]
    assert sent[0]["messages"] == [{"role": "user", "content": "question 0"}]
    assert all(h["Content-Type"] == "application/json" for h in service.headers)


def test_empty_input_sends_nothing(service):
    url = service.start(_by_length)
    assert HttpReward(url).score([], []) == []
    assert service.requests == []


def test_mismatched_inputs_are_rejected():
    with pytest.raises(ValueError, match="2 records but 1 responses"):
        HttpReward("http://127.0.0.1:1/").score(_records(2), ["x"])


def test_non_http_url_is_rejected():
    with pytest.raises(ValueError, match="must start with http"):
        HttpReward("file:///etc/passwd")


@pytest.mark.parametrize("status", [503, 429])
def test_retries_transient_errors_then_succeeds(service, status):
    def flaky(index, payload):
        return (status, b'{"error": "busy"}') if index < 2 else _by_length(index, payload)

    url = service.start(flaky)
    scores = HttpReward(url, retries=2, backoff_s=0.01).score(_records(2), ["abc", "abcdef"])
    assert scores == [0.3, 0.6]
    assert len(service.requests) == 3


def test_gives_up_after_all_retries_fail(service):
    url = service.start(lambda index, payload: (503, b"overloaded"))
    with pytest.raises(RewardServiceError, match=r"unreachable after 3 attempts: HTTP 503: overloaded"):
        HttpReward(url, retries=2, backoff_s=0.01).score(_records(1), ["x"])
    assert len(service.requests) == 3


def test_slow_service_times_out_after_retries(service):
    def too_slow(index, payload):
        service.release.wait(10)
        return None

    url = service.start(too_slow)
    started = time.monotonic()
    with pytest.raises(RewardServiceError, match=r"^reward service .*/score unreachable after 3 attempts: "):
        HttpReward(url, timeout_s=0.3, retries=2, backoff_s=0.01).score(_records(1), ["x"])
    assert time.monotonic() - started < 5
    assert len(service.requests) == 3


@pytest.mark.parametrize(
    "status, body, problem",
    [
        (200, _json({"scores": [1.0]}), "returned 1 scores for 2 items"),
        (200, _json({"scores": "high"}), "returned a str for 2 items"),
        (200, b"<html>oops</html>", "returned invalid JSON: <html>oops</html>"),
        (200, _json({"score": [1.0, 0.0]}), 'returned no "scores"'),
        (400, b"bad request:\n missing field", "answered HTTP 400: bad request: missing field"),
        (404, b"", "answered HTTP 404$"),
    ],
)
def test_protocol_errors_are_not_retried(service, status, body, problem):
    url = service.start(lambda index, payload: (status, body))
    with pytest.raises(RewardServiceError, match=problem) as error:
        HttpReward(url, retries=2, backoff_s=0.01).score(_records(2), ["a", "b"])
    assert url in str(error.value)
    assert "\n" not in str(error.value)
    assert len(service.requests) == 1


def test_non_numeric_scores_become_none(service):
    body = b'{"scores": [null, "abc", NaN, Infinity, true, 0.5, 1, -2]}'
    url = service.start(lambda index, payload: (200, body))
    scores = HttpReward(url).score(_records(8), ["r"] * 8)
    assert scores == [None, None, None, None, None, 0.5, 1.0, -2.0]
    assert isinstance(scores[6], float)


def test_nothing_listening():
    with socket.socket() as probe:  # a port that was free a moment ago and is now closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RewardServiceError, match=rf"127.0.0.1:{port}/score unreachable after 2 attempts"):
        HttpReward(f"http://127.0.0.1:{port}/score", retries=1, backoff_s=0.01).score(_records(1), ["x"])
