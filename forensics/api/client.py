"""The HTTP client of a suspect behind a paid API: :class:`Endpoint` (how to reach and read it), :class:`Budget`,
and :class:`ApiClient`, which asks the query images concurrently under a rate limit, retries what may be retried,
journals every answer as it arrives and never asks a journalled query again.

The server is hostile: its bodies are read streaming and refused past ``max_response_bytes`` (and compressed ones
are refused), redirects are never followed, the environment's proxies and ``.netrc`` are ignored, only the
configured URL is ever requested, and the API key goes into the request's header only: not into the
:class:`Endpoint` (so not into its repr or :meth:`Endpoint.describe`), a journal line, an error message or a log.
Text from the server that lands in an error message goes through ``terminal_text``.
"""
from __future__ import annotations

import email.utils
import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..errors import ConfigError
from ..runtime import settings
from ..runtime.safe_text import terminal_text
from .formats import FORMATS, Answer, ApiError, parse_answer, png_bytes, request_parts
from .journal import Journal, public_url

__all__ = ["ApiClient", "ApiError", "Budget", "BudgetSpent", "Endpoint", "png_bytes"]

RETRY_STATUS = {429, 500, 502, 503, 504}
_SECRET_NAME = re.compile(r"(?i)auth|key|token|secret|cookie|passw|signature")
EXCERPT_CHARS = 200


class BudgetSpent(ApiError):
    """The budget allows no more queries; the answers paid for so far are in the journal."""


def _default_body() -> dict[str, Any]:
    return {"image": "{image_base64}"}


@dataclass(frozen=True)
class Endpoint:
    """How to reach a suspect's API and read its answers.  Holds no key: the key is read from ``api_key_env`` (an
    environment variable) or ``api_key_file`` when an :class:`ApiClient` starts, and sent as header ``auth_header``
    with the value ``auth_template`` (``{key}`` replaced).

    ``style``: ``json`` (this dataclass's settings) or ``hf`` (the wire format of ``huggingface_hub``'s
    ``InferenceClient.image_classification(image, top_k=K)`` against a URL: a JSON body ``{"inputs": <base64>,
    "parameters": {"top_k": K}}``, answers as a top-k list).  ``image_as``: ``base64`` (a JSON body from
    ``body_template``, where the string ``"{image_base64}"`` is replaced), ``multipart`` (a file field named
    ``multipart_field``) or ``bytes`` (the PNG itself).  ``response_path`` and ``fmt``: see
    :func:`~forensics.api.formats.parse_answer`.  Waits (backoff, ``Retry-After``) are capped at ``max_wait_s``."""

    url: str
    style: str = "json"
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    api_key_env: str | None = None
    api_key_file: str | None = None
    auth_header: str = "Authorization"
    auth_template: str = "Bearer {key}"
    image_as: str = "base64"
    body_template: Any = field(default_factory=_default_body)
    multipart_field: str = "file"
    response_path: str | None = None
    fmt: str = "auto"
    timeout_s: float = 30.0
    concurrency: int = 4
    rate_per_s: float | None = None
    max_retries: int = 5
    backoff_s: float = 0.5
    max_wait_s: float = 30.0
    max_response_bytes: int = 1_000_000
    price_per_query: float = 0.0

    def __post_init__(self) -> None:
        try:
            parts = httpx.URL(self.url) if isinstance(self.url, str) else None
        except (httpx.InvalidURL, TypeError):
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.host:
            raise ConfigError(f"endpoint URL {terminal_text(public_url(str(self.url)))!r} is not an http(s) URL")
        checks = [(self.style in ("json", "hf"), "style must be 'json' or 'hf'"),
                  (self.method.upper() in ("POST", "PUT"), "method must be POST or PUT"),
                  (self.image_as in ("base64", "multipart", "bytes"), "image_as must be base64, multipart or bytes"),
                  (self.fmt in FORMATS, f"fmt must be one of {', '.join(FORMATS)}"),
                  (self.timeout_s > 0 and self.max_wait_s >= 0 and self.backoff_s >= 0, "times must be positive"),
                  (self.concurrency >= 1 and self.max_retries >= 0, "concurrency >= 1 and max_retries >= 0"),
                  (self.rate_per_s is None or self.rate_per_s > 0, "rate_per_s must be positive (or None)"),
                  (self.max_response_bytes > 0 and self.price_per_query >= 0, "bounds must be positive"),
                  ("{key}" in self.auth_template, "auth_template must contain {key}")]
        bad = [msg for ok, msg in checks if not ok]
        if bad:
            raise ConfigError(f"endpoint {terminal_text(public_url(self.url))}: " + "; ".join(bad))

    def describe(self) -> dict[str, Any]:
        """These settings, safe to store in a record: no key, no user info or query string in the URL, the values
        of headers named like auth/key/token/secret masked."""
        return {"url": public_url(self.url), "style": self.style, "method": self.method.upper(),
                "headers": {k: "***" if _SECRET_NAME.search(k) else v for k, v in self.headers.items()},
                "auth_header": self.auth_header if (self.api_key_env or self.api_key_file) else None,
                "api_key_env": self.api_key_env, "api_key_file": self.api_key_file, "image_as": self.image_as,
                "response_path": self.response_path, "fmt": self.fmt, "timeout_s": self.timeout_s,
                "concurrency": self.concurrency, "rate_per_s": self.rate_per_s, "max_retries": self.max_retries,
                "max_response_bytes": self.max_response_bytes, "price_per_query": self.price_per_query}

    def read_key(self) -> str | None:
        """The API key from ``api_key_env`` or ``api_key_file`` (None where neither is set); an :class:`ApiError`
        naming the variable or file (never the key) where it is missing or empty."""
        if self.api_key_env:
            key = settings.secret_variable(self.api_key_env).strip()
            if not key:
                raise ApiError(f"the API key variable {terminal_text(self.api_key_env)} is not set or empty")
        elif self.api_key_file:
            shown = terminal_text(self.api_key_file)
            try:
                key = Path(self.api_key_file).expanduser().read_text().strip()
            except (OSError, UnicodeDecodeError) as e:
                raise ApiError(f"cannot read the API key file {shown} ({type(e).__name__})") from None
            if not key:
                raise ApiError(f"the API key file {shown} is empty")
        else:
            return None
        if any(c in key for c in "\r\n\0"):
            raise ApiError("the API key holds a line break or NUL; it must be one line")
        return key


@dataclass(frozen=True)
class Budget:
    """At most ``max_queries`` paid queries and ``max_cost`` spent (queries x ``price_per_query``) over the whole
    journal, resumed runs included.  None: no limit."""

    max_queries: int | None = None
    max_cost: float | None = None


class _Fatal(Exception):  # ends one query's attempts (wraps the ApiError to raise)
    pass


class ApiClient:
    """Asks a suspect's API (:meth:`ask`; ``progress(done, total)`` in the calling thread); ``api_key``: see below."""

    def __init__(self, endpoint: Endpoint, class_names: Sequence[str], journal: Journal, budget: Budget | None = None,
                 progress: Callable[[int, int], None] | None = None, api_key: str | None = None):
        self.endpoint, self.class_names, self.journal = endpoint, list(class_names), journal
        self.budget, self.progress = budget or Budget(), progress
        key = api_key.strip() if api_key and api_key.strip() else endpoint.read_key()  # a key held in memory only
        self._secrets = [s for s in (key, endpoint.auth_template.replace("{key}", key) if key else None) if s]
        headers = {"Accept": "application/json", "Accept-Encoding": "identity", **dict(endpoint.headers)}
        if key:
            headers[endpoint.auth_header] = endpoint.auth_template.replace("{key}", key)
        self._headers = headers
        self._http = httpx.Client(follow_redirects=False, trust_env=False, timeout=httpx.Timeout(endpoint.timeout_s),
                                  limits=httpx.Limits(max_connections=endpoint.concurrency))
        self._lock = threading.Lock()
        self._reserved = 0  # attempts under way (each may be paid)
        self._paid = 0  # responses journalled as paid since ask() started (on top of self._spent_before)
        self._spent_before = 0
        self._next_slot = 0.0
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return f"ApiClient({public_url(self.endpoint.url)!r}, journal={str(self.journal.path)!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def _send(self, png: bytes) -> tuple[int, bytes, httpx.Headers]:
        ep = self.endpoint
        req = request_parts(png, ep.style, ep.image_as, ep.body_template, ep.multipart_field, len(self.class_names))
        start = time.monotonic()
        with self._http.stream(ep.method.upper(), ep.url, headers={**self._headers, **req.pop("headers")},
                               **req) as r:
            length = r.headers.get("content-length", "")
            if r.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
                raise _Oversized(r.status_code, "a compressed body (asked for identity)")
            if length.isdigit() and int(length) > ep.max_response_bytes:
                raise _Oversized(r.status_code, f"a body of {int(length)} bytes")
            body = bytearray()
            for chunk in r.iter_raw():
                body += chunk
                if len(body) > ep.max_response_bytes:
                    raise _Oversized(r.status_code, f"a body over {ep.max_response_bytes} bytes")
                if time.monotonic() - start > ep.timeout_s:
                    raise httpx.ReadTimeout("the body took longer than timeout_s")
            return r.status_code, bytes(body), r.headers

    def _reserve(self) -> bool:
        with self._lock:
            n = self._spent_before + self._paid + self._reserved + 1
            b, price = self.budget, self.endpoint.price_per_query
            if (b.max_queries is not None and n > b.max_queries) or (
                    b.max_cost is not None and n * price > b.max_cost + 1e-9):
                return False
            self._reserved += 1
            return True

    def _release(self, paid: bool) -> None:
        with self._lock:  # at once: a paid attempt never counts twice, nor an unpaid one as spent
            self._reserved -= 1
            self._paid += int(paid)

    def _pace(self) -> None:
        if self.endpoint.rate_per_s is None:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.endpoint.rate_per_s
        self._stop.wait(slot - now)

    def _delay(self, attempt: int, headers: httpx.Headers | None) -> float:
        ep = self.endpoint
        wait_s = min(ep.max_wait_s, ep.backoff_s * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        after = headers.get("retry-after") if headers is not None else None
        if after:
            try:
                wait_s = max(wait_s, float(after))
            except ValueError:
                when = email.utils.parsedate_to_datetime(after) if email.utils.parsedate(after) else None
                if when is not None and when.tzinfo is not None:
                    wait_s = max(wait_s, when.timestamp() - time.time())
        return max(0.0, min(wait_s, ep.max_wait_s))

    def _fail(self, i: int, status: int | None, what: str, body: bytes = b"") -> _Fatal:
        excerpt = self._redact(body[:EXCERPT_CHARS * 4].decode("utf-8", "replace"))[:EXCERPT_CHARS]
        shown = f"; body: {terminal_text(excerpt)!r}" if body else ""
        return _Fatal(ApiError(f"query {i}: {what}" + (f" (HTTP {status})" if status is not None else "") + shown
                               + f" [endpoint {terminal_text(public_url(self.endpoint.url))}]"))

    def _ask_one(self, i: int, png: bytes) -> Answer | None:
        attempts, unusable = 0, 0
        while not self._stop.is_set():
            if not self._reserve():
                return None
            paid = [False]
            try:  # the reservation holds until the attempt is journalled (paid) or ends unpaid
                self._pace()
                attempts += 1
                outcome, value = self._attempt(i, png, attempts, unusable, paid)
            finally:
                self._release(paid[0])
            if outcome == "answer":
                return value
            if outcome == "unusable":
                unusable += 1
            else:
                self._stop.wait(value)
        return None

    def _attempt(self, i: int, png: bytes, attempts: int, unusable: int, paid: list[bool]) -> tuple[str, Any]:
        """One request: ("answer", Answer), ("retry", seconds to wait) or ("unusable", None); _Fatal to stop.
        ``paid[0]`` set once a paid response is journalled."""
        ep = self.endpoint
        try:
            status, body, headers = self._send(png)
        except _Oversized as e:
            if e.status == 200:
                self.journal.record_failed(i, f"refused {e.what}", "", 200, attempts)
                paid[0] = True
            raise self._fail(i, e.status, f"the response was refused: {e.what}") from None
        except httpx.TransportError as e:  # timeouts, refused or dropped connections
            if attempts > ep.max_retries:
                raise self._fail(i, None, f"no answer after {attempts} attempts ({type(e).__name__})") from None
            return "retry", self._delay(attempts, None)
        if status != 200:
            if status in RETRY_STATUS and attempts <= ep.max_retries:
                return "retry", self._delay(attempts, headers)
            if 300 <= status < 400:
                where = terminal_text(public_url(headers.get("location", "?")))
                raise self._fail(i, status, f"the API redirects to {where!r}, which is never followed; configure "
                                            "the final URL")
            raise self._fail(i, status, "the API refused the query" if status not in RETRY_STATUS
                             else f"still refused after {attempts} attempts", body)
        raw = self._redact(body.decode("utf-8", "replace"))
        fmt = "top-k" if ep.style == "hf" and ep.fmt == "auto" else ep.fmt
        try:
            answer = parse_answer(json.loads(body), fmt, self.class_names, ep.response_path)
        except (ValueError, RecursionError, ApiError) as e:
            reason = str(e) if isinstance(e, ApiError) else f"malformed JSON ({type(e).__name__})"
            self.journal.record_failed(i, reason, raw, status, attempts)
            paid[0] = True
            if unusable >= 1:
                raise self._fail(i, status, f"unusable answer twice: {reason}", body) from None
            return "unusable", None
        self.journal.record(i, answer, raw, status, attempts)
        paid[0] = True
        return "answer", answer

    def ask(self, queries: Sequence[tuple[int, bytes]]) -> dict[int, Answer]:
        """Answers to ``(query index, PNG bytes)`` items: those in the journal are read from it, the others asked
        (concurrently, under the rate limit) and journalled as they arrive.  Raises :class:`BudgetSpent` when the
        budget stops it, an :class:`ApiError` when a query cannot be answered; in both cases (and on Ctrl-C)
        the answers that came back stay in the journal and a rerun asks only the rest."""
        queries = list(queries)
        if len({i for i, _ in queries}) != len(queries):
            raise ConfigError("query indices must be distinct")
        done = self.journal.answered
        todo = [(i, png) for i, png in queries if i not in done]
        total, finished = len(queries), len(queries) - len(todo)
        self._stop.clear()
        with self._lock:
            self._spent_before, self._paid, self._reserved = self.journal.spent, 0, 0
        if self.progress:
            self.progress(finished, total)
        pool = ThreadPoolExecutor(max_workers=self.endpoint.concurrency, thread_name_prefix="holmes-api")
        pending: set[Future[Answer | None]] = {pool.submit(self._ask_one, i, png) for i, png in todo}
        error: BaseException | None = None
        try:
            while pending:
                finished_now, pending = wait(pending, return_when=FIRST_COMPLETED, timeout=0.2)
                for f in finished_now:
                    if f.exception() is not None and error is None:
                        error = f.exception()
                        self._stop.set()
                finished += sum(1 for f in finished_now if f.exception() is None and f.result() is not None)
                if finished_now and self.progress:
                    self.progress(finished, total)
        except BaseException:  # Ctrl-C (or a progress callback's error): what is in flight lands in the journal
            self._stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if error is not None:
            raise error.args[0] if isinstance(error, _Fatal) else error
        answered = self.journal.answered
        missing = [i for i, _ in queries if i not in answered]
        if missing:
            b = self.budget
            raise BudgetSpent(f"budget spent: {self.journal.spent} queries paid (max_queries={b.max_queries}, "
                              f"max_cost={b.max_cost}, price_per_query={self.endpoint.price_per_query}); "
                              f"{len(missing)} of {total} queries unanswered; the answers so far are in the journal "
                              f"{terminal_text(str(self.journal.path))}")
        return {i: answered[i] for i, _ in queries}


class _Oversized(Exception):
    def __init__(self, status: int, what: str):
        super().__init__(what)
        self.status, self.what = status, what
