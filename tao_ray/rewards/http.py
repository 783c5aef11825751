"""Remote reward service: score responses by POSTing them to a user's HTTP server, in batches.

In: prompt records and their responses. Out: one score per response, or None for a sample the service did not score.

Protocol (what a server must implement):

    POST <url>
    Content-Type: application/json

    {"items": [{"id": ..., "messages": [{"role": ..., "content": ...}, ...], "constraints": [...],
                "metadata": {...}, "answer": ..., "reference_sql": ..., "reference_response": ...,
                "response": "<generated text>"},
               ...]}

    -> 200, Content-Type: application/json
    {"scores": [0.75, null, ...]}

Each item is the prompt record with every key it has, plus "response". "scores" has exactly one entry per item,
in order: a finite number, or null for "could not score this one" (the caller counts it as a failed sample).
Anything else in a slot (a string, a bool, NaN, Infinity) is treated as null. Requests hold at most `batch_size`
items; a server may receive several requests for one call.

Errors: connection failures, timeouts, 5xx and 429 are retried `retries` more times with exponential backoff
(backoff_s, 2*backoff_s, ...), since they are usually transient. Any other 4xx, a body that is not JSON, a missing
"scores" or one of the wrong length is a bug in the server or the request, so it is reported at once as
RewardServiceError instead of being retried.
"""

from __future__ import annotations

import http.client
import json
import math
import time
import urllib.error
import urllib.request
from typing import Any

_BODY_SNIPPET = 200


class RewardServiceError(RuntimeError):
    """The reward service failed for a whole batch; the message is one line naming the url and the problem."""


class _Retryable(Exception):
    pass


def _snippet(raw: bytes) -> str:
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    return text[:_BODY_SNIPPET] + ("..." if len(text) > _BODY_SNIPPET else "")


def _read_error_body(error: urllib.error.HTTPError) -> bytes:
    # Only used to make the message useful; a body that cannot be read must not hide the status code.
    try:
        return error.read()
    except (OSError, http.client.HTTPException):
        return b""


def _to_score(value: Any) -> float | None:
    # bool is an int subclass, but `true` from a server is a protocol mistake, not a score of 1.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        score = float(value)
    except OverflowError:
        return None
    return score if math.isfinite(score) else None


class HttpReward:
    def __init__(
        self,
        url: str,
        timeout_s: float = 10.0,
        retries: int = 2,
        batch_size: int = 64,
        backoff_s: float = 0.2,
    ) -> None:
        # urllib would also open file:// and ftp:// urls; a reward service is only ever http(s).
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"reward service url {url!r} must start with http:// or https://")
        if timeout_s <= 0 or retries < 0 or batch_size < 1 or backoff_s < 0:
            raise ValueError("HttpReward needs timeout_s > 0, retries >= 0, batch_size >= 1 and backoff_s >= 0")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.batch_size = batch_size
        self.backoff_s = backoff_s

    def score(self, records: list[dict], responses: list[str]) -> list[float | None]:
        if len(records) != len(responses):
            raise ValueError(f"got {len(records)} records but {len(responses)} responses")
        scores: list[float | None] = []
        for start in range(0, len(records), self.batch_size):
            end = start + self.batch_size
            items = [
                {**record, "response": response} for record, response in zip(records[start:end], responses[start:end])
            ]
            scores.extend(self._score_batch(items))
        return scores

    def _score_batch(self, items: list[dict]) -> list[float | None]:
        body = json.dumps({"items": items}).encode("utf-8")
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                return self._parse(self._post(body), len(items))
            except _Retryable as error:
                if attempt == attempts - 1:
                    tries = f"{attempts} attempts" if attempts > 1 else "1 attempt"
                    raise RewardServiceError(f"reward service {self.url} unreachable after {tries}: {error}") from None
                time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _post(self, body: bytes) -> bytes:
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            body_text = _snippet(_read_error_body(error))
            detail = f"HTTP {error.code}: {body_text}" if body_text else f"HTTP {error.code}"
            if error.code >= 500 or error.code == 429:
                raise _Retryable(detail) from None
            raise RewardServiceError(f"reward service {self.url} answered {detail}") from None
        except urllib.error.URLError as error:
            raise _Retryable(str(error.reason)) from None
        except TimeoutError:
            raise _Retryable(f"no answer within {self.timeout_s:g} s") from None
        except (OSError, http.client.HTTPException) as error:
            # Dropped connections and truncated responses: the server may be restarting.
            raise _Retryable(f"{type(error).__name__}: {error}") from None

    def _parse(self, raw: bytes, expected: int) -> list[float | None]:
        try:
            payload = json.loads(raw)
        except ValueError:
            raise RewardServiceError(f"reward service {self.url} returned invalid JSON: {_snippet(raw)}") from None
        if not isinstance(payload, dict) or "scores" not in payload:
            raise RewardServiceError(f'reward service {self.url} returned no "scores": {_snippet(raw)}')
        scores = payload["scores"]
        if not isinstance(scores, list) or len(scores) != expected:
            got = f"{len(scores)} scores" if isinstance(scores, list) else f"a {type(scores).__name__}"
            raise RewardServiceError(
                f'reward service {self.url} returned {got} for {expected} items; "scores" '
                "must be a list with one entry per item"
            )
        return [_to_score(value) for value in scores]
