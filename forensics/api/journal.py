"""The journal of a suspect's paid answers: a JSON-lines file written answer by answer (append, flush, fsync), so
that a crash, a Ctrl-C or an error loses no answer that was paid for, and a resumed run asks only what is missing.

Line 1 is a header naming the query set (its fingerprint), the endpoint (its URL without user info or query string)
and the answer format; a journal opened for another query set, endpoint or format is refused, never mixed.  Then
one line per event:

* ``{"query": i, "answer": {...}, "raw": <the response text, at most MAX_RAW_CHARS>, "status": 200, "t": unix
  time, "attempts": n}`` - an answered query;
* ``{"query": i, "failed": <why>, "raw": ..., "status": 200, "t": ..., "attempts": n}`` - an unusable answer the
  server sent with status 200 (malformed JSON, another class count, an oversized body): presumably billed.

:attr:`Journal.spent` counts both kinds of line: every response with status 200, usable or not, is taken as paid.
Refusals (429, 5xx, 4xx), timeouts and dropped connections are not journalled and not counted.
"""
from __future__ import annotations

import json
import os
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..runtime.safe_text import terminal_text
from .formats import FORMATS, Answer, ApiError

JOURNAL_VERSION = 1
MAX_RAW_CHARS = 65_536  # the server's text kept per line (the rest is cut; "raw_chars" says how long it was)


def public_url(url: str) -> str:
    """``url`` without user info, query string or fragment (where keys hide): what a journal or a record keeps."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class Journal:
    """The answers paid for so far to one query set by one endpoint (open with :meth:`open`).  Thread-safe."""

    def __init__(self, path: Path, header: dict[str, Any], answered: dict[int, Answer], spent: int, fd: int):
        self.path = path
        self.header = header
        self._answered = answered
        self._spent = spent
        self._fd: int | None = fd
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path, query_set: str, endpoint: str, fmt: str) -> Journal:
        """The journal at ``path``: created with its header where there is none, else read (a torn last line, left
        by a crash mid-write, is cut away with a warning) and checked against ``query_set``, ``endpoint`` and
        ``fmt``."""
        if fmt not in FORMATS:
            raise ApiError(f"unknown answer format {terminal_text(fmt)!r}; choose one of {', '.join(FORMATS)}")
        path = Path(path)
        want = {"journal": JOURNAL_VERSION, "query_set": str(query_set), "endpoint": public_url(endpoint),
                "format": fmt}
        shown = terminal_text(str(path))
        data = path.read_bytes() if path.exists() else b""
        complete, torn = data.rsplit(b"\n", 1) if b"\n" in data else (b"", data)
        if torn:
            warnings.warn(f"journal {shown}: its last line was cut off (a crash while writing it); dropping that "
                          f"line ({len(torn)} bytes)", RuntimeWarning, stacklevel=2)
            with open(path, "r+b") as f:
                f.truncate(len(data) - len(torn))
                f.flush()
                os.fsync(f.fileno())
        lines = complete.split(b"\n") if complete else []
        answered: dict[int, Answer] = {}
        spent = 0
        if lines:
            header = cls._line(lines[0], 1, shown)
            cls._check_header(header, want, shown)
            for n, raw in enumerate(lines[1:], start=2):
                entry = cls._line(raw, n, shown)
                i = entry.get("query")
                if not isinstance(i, int) or isinstance(i, bool) or i < 0:
                    raise ApiError(f"journal {shown}, line {n}: no query index; the file was edited or damaged")
                if "answer" in entry:
                    try:
                        answered.setdefault(i, Answer.from_json(entry["answer"]))
                    except ValueError as e:
                        raise ApiError(f"journal {shown}, line {n}: unreadable answer ({e})") from e
                elif not isinstance(entry.get("failed"), str):
                    raise ApiError(f"journal {shown}, line {n}: neither an answer nor a failed answer")
                spent += 1
        else:
            header = {**want, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        journal = cls(path, header, answered, spent, fd)
        if not lines:
            journal._write(header)
            try:  # the new file's directory entry, too, survives a crash
                dir_fd = os.open(path.parent if str(path.parent) else ".", os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            except OSError:
                pass  # not every platform can fsync a directory
        return journal

    @staticmethod
    def _line(raw: bytes, n: int, shown: str) -> dict[str, Any]:
        try:
            entry = json.loads(raw)
        except ValueError as e:
            raise ApiError(f"journal {shown}, line {n} is not JSON ({e}); the file was edited or damaged - only a "
                           "torn last line is repaired") from e
        if not isinstance(entry, dict):
            raise ApiError(f"journal {shown}, line {n} is not a JSON object; the file was edited or damaged")
        return entry

    @staticmethod
    def _check_header(header: dict[str, Any], want: dict[str, Any], shown: str) -> None:
        if header.get("journal") != JOURNAL_VERSION:
            raise ApiError(f"{shown} is not a journal of answers (version {JOURNAL_VERSION}); give another path")
        for key, what in (("query_set", "query set (fingerprint)"), ("endpoint", "endpoint"),
                          ("format", "answer format")):
            if header.get(key) != want[key]:
                raise ApiError(f"journal {shown} holds answers for another {what}: "
                               f"{terminal_text(header.get(key))!r}, not {terminal_text(want[key])!r}; answers are "
                               "never mixed - give a new journal path for this one")

    @property
    def answered(self) -> dict[int, Answer]:
        """Query index -> answer, for every query answered so far (a copy)."""
        with self._lock:
            return dict(self._answered)

    @property
    def spent(self) -> int:
        """Responses with status 200 journalled so far, usable or not: the queries paid for."""
        with self._lock:
            return self._spent

    def record(self, i: int, answer: Answer, raw: str, status: int, attempts: int) -> None:
        """Journal query ``i``'s answer (durably: on disk when this returns)."""
        self._append({"query": int(i), "answer": answer.to_json(), **self._raw(raw), "status": int(status),
                      "t": time.time(), "attempts": int(attempts)}, i, answer)

    def record_failed(self, i: int, reason: str, raw: str, status: int, attempts: int) -> None:
        """Journal a response with status 200 that could not be used: no answer, but paid for."""
        self._append({"query": int(i), "failed": str(reason)[:2000], **self._raw(raw), "status": int(status),
                      "t": time.time(), "attempts": int(attempts)}, i, None)

    @staticmethod
    def _raw(raw: str) -> dict[str, Any]:
        return {"raw": raw[:MAX_RAW_CHARS]} if len(raw) <= MAX_RAW_CHARS else {
            "raw": raw[:MAX_RAW_CHARS], "raw_chars": len(raw)}

    def _append(self, entry: dict[str, Any], i: int, answer: Answer | None) -> None:
        with self._lock:
            self._write(entry)
            self._spent += 1
            if answer is not None:
                self._answered.setdefault(int(i), answer)

    def _write(self, entry: dict[str, Any]) -> None:
        if self._fd is None:
            raise ApiError(f"journal {terminal_text(str(self.path))} is closed")
        data = (json.dumps(entry, ensure_ascii=True, allow_nan=False, separators=(",", ":")) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, answered={len(self._answered)}, spent={self._spent})"
