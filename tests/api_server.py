"""A loopback suspect API for the client's tests: a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a
thread, serving a deterministic "model" (image bytes -> K logits) behind every answer format, with faults to inject.

Routes (the path picks the answer format; the request's Content-Type the input: JSON ``{"image": b64}`` or HF's
``{"inputs": b64, "parameters": {...}}``, multipart (any file field), or raw ``image/png``):

* ``/logits`` ``{"logits": [...]}``; ``/probabilities`` ``{"probabilities": [...]}``; ``/bare`` the bare list;
* ``/top-k?k=3`` (and ``/hf``, what InferenceClient.image_classification gets) ``[{"label", "score"}, ...]``
  sorted by score (``k`` from the query string, or HF's ``parameters.top_k``);
* ``/label`` ``{"label": <name>}``; ``/nested`` ``{"data": {"predictions": [{"label": .., "logits": [...]}]}}``;
* ``/echo?status=400`` logits plus the Authorization header it got (a server quoting the key back);
* ``?names=LABEL`` / ``index`` / ``upper`` on top-k and label routes: labels as ``LABEL_i``, ``"i"``, ``NAME``.

Faults (:meth:`LoopbackApi.fault`): ``429`` (with Retry-After), ``500``, ``503``, ``slow``, ``drop`` (socket closed
without a response), ``malformed``, ``wrong-count``, ``oversized`` (no Content-Length), ``redirect`` (307 to
``redirect_to``).  Each fires on chosen request numbers (1-based, over the whole server), on chosen attempts of each
image (1-based, per image), or with a probability drawn from a seeded ``random.Random``.  ``jitter_s``: a random
delay before each answer, so that concurrent answers come back out of order.
"""
from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

FAULTS = ("429", "500", "503", "slow", "drop", "malformed", "wrong-count", "oversized", "redirect")


def sha_logits(png: bytes, k: int) -> np.ndarray:
    """The default model: K logits drawn from a generator seeded by the image's SHA-256."""
    seed = int.from_bytes(hashlib.sha256(png).digest()[:8], "little")
    return np.random.default_rng(seed).normal(0.0, 2.0, k)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


class LoopbackApi:
    """The server; use as a context manager.  ``requests``: the headers (lower-cased names) and path of every
    request, in arrival order; ``asked``: requests per image digest; ``delivered``: image digest -> the payload
    of each 200 with a usable answer that was written out (slow answers excluded: the client gave up on them)."""

    def __init__(self, class_names: list[str], *, model: Callable[[bytes], np.ndarray] | None = None,
                 api_key: str | None = None, seed: int = 0, jitter_s: float = 0.0, slow_s: float = 1.0,
                 retry_after: str = "0", redirect_to: str = "http://127.0.0.1:9/"):
        self.class_names = class_names
        self.model = model or (lambda png: sha_logits(png, len(class_names)))
        self.api_key, self.jitter_s, self.slow_s = api_key, jitter_s, slow_s
        self.retry_after, self.redirect_to = retry_after, redirect_to
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.faults: dict[str, tuple[set[int], set[int], float]] = {}
        self.requests: list[dict] = []
        self.asked: Counter[str] = Counter()
        self.delivered: dict[str, list] = {}
        self.n = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, route: str) -> str:
        return self.base + route

    def fault(self, kind: str, *, requests: tuple[int, ...] = (), attempts: tuple[int, ...] = (),
              p: float = 0.0) -> LoopbackApi:
        assert kind in FAULTS, kind
        self.faults[kind] = (set(requests), set(attempts), p)
        return self

    def logits(self, png: bytes) -> np.ndarray:
        return np.asarray(self.model(png), np.float64)

    def __enter__(self) -> LoopbackApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- one request

    def _which_fault(self, n: int, attempt: int) -> str | None:
        with self.lock:
            for kind, (reqs, atts, p) in self.faults.items():
                if n in reqs or attempt in atts or (p and self.rng.random() < p):
                    return kind
        return None

    def _answer(self, route: str, query: dict[str, list[str]], png: bytes, top_k: int | None, wrong: bool):
        z = self.logits(png)
        if wrong:
            z = z[:-1]
        style = query.get("names", ["name"])[0]
        names = {"name": self.class_names, "LABEL": [f"LABEL_{i}" for i in range(len(self.class_names))],
                 "index": [str(i) for i in range(len(self.class_names))],
                 "upper": [f" {c.upper()} " for c in self.class_names]}[style]
        if route == "/logits":
            return {"logits": z.tolist()}
        if route == "/bare":
            return z.tolist()
        if route == "/probabilities":
            return {"probabilities": softmax(z).tolist()}
        if route in ("/top-k", "/hf"):
            p = softmax(z)
            k = int(query.get("k", [top_k or len(p)])[0])
            order = np.argsort(-p, kind="stable")[:k]
            return [{"label": names[i], "score": float(p[i])} for i in order]
        if route == "/label":
            return {"label": names[int(np.argmax(z))]}
        if route == "/nested":
            return {"data": {"predictions": [{"label": names[int(np.argmax(z))], "logits": z.tolist()}]}}
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                      length: bool = True) -> None:
                self.send_response(status)
                for k, v in (headers or {"Content-Type": "application/json"}).items():
                    self.send_header(k, v)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def _image(self, body: bytes) -> tuple[bytes, int | None]:
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("application/json"):
                    doc = json.loads(body)
                    if "inputs" in doc:  # huggingface_hub's InferenceClient
                        return base64.b64decode(doc["inputs"]), (doc.get("parameters") or {}).get("top_k")
                    return base64.b64decode(doc["image"]), None
                if ctype.startswith("multipart/form-data"):
                    msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
                    part = next(p for p in msg.iter_parts() if p.get_filename())
                    return part.get_payload(decode=True), None
                return body, None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                url = urlsplit(self.path)
                png, top_k = self._image(body)
                digest = hashlib.sha256(png).hexdigest()
                with api.lock:
                    api.n += 1
                    n = api.n
                    api.asked[digest] += 1
                    attempt = api.asked[digest]
                    api.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                         "image": digest})
                if api.jitter_s:
                    with api.lock:
                        delay = api.rng.uniform(0, api.jitter_s)
                    time.sleep(delay)
                if api.api_key is not None and self.headers.get("Authorization") != f"Bearer {api.api_key}":
                    return self._send(401, b'{"error": "bad key"}')
                fault = api._which_fault(n, attempt)
                if fault in ("429", "503"):
                    return self._send(int(fault), b'{"error": "busy"}', {"Retry-After": api.retry_after,
                                                                         "Content-Type": "application/json"})
                if fault == "500":
                    return self._send(500, b"internal error \x1b[31mred\x1b[0m")
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if fault == "malformed":
                    return self._send(200, b'{"logits": [1, 2,')
                if fault == "oversized":
                    return self._send(200, b'{"logits": [' + b"0.0, " * 400_000 + b"0.0]}", length=False)
                if fault == "redirect":
                    return self._send(307, b"", {"Location": api.redirect_to})
                if fault == "slow":
                    time.sleep(api.slow_s)
                query = parse_qs(url.query)
                if url.path == "/echo":  # a hostile server quoting the key back, in an answer or an error
                    status = int(query.get("status", ["200"])[0])
                    echo = {"logits": api.logits(png).tolist(), "seen": self.headers.get("Authorization")}
                    return self._send(status, json.dumps(echo).encode())
                payload = api._answer(url.path, query, png, top_k, fault == "wrong-count")
                if payload is None:
                    return self._send(404, b'{"error": "no such route"}')
                try:
                    self._send(200, json.dumps(payload).encode())
                except OSError:
                    return None
                if fault is None:
                    with api.lock:
                        api.delivered.setdefault(digest, []).append(payload)
                return None

            do_PUT = do_POST

        return Handler


class Sink:
    """Another host (another port) that records whatever reaches it: the target of a redirect."""

    def __init__(self) -> None:
        self.hits: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                sink.hits.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/steal"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def audit_model(audit, logits: np.ndarray) -> Callable[[bytes], np.ndarray]:
    """A model for the server: ``logits`` (one row per query of ``audit``) looked up by the query image's PNG, as the
    client sends it (so a real model's answers come back for the audit's own images)."""
    from forensics.api.formats import png_bytes

    table = {hashlib.sha256(png_bytes(audit.queries.images.pil(i))).hexdigest(): np.asarray(logits[i])
             for i in range(len(audit.queries))}
    return lambda png: table[hashlib.sha256(png).hexdigest()]
