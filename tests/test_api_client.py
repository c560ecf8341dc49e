"""The HTTP client of a suspect behind a paid API (forensics.api), against a loopback server (tests/api_server.py):
every answer format, every fault, the journal of paid answers, the budget, the key, and huggingface_hub's
InferenceClient route."""
from __future__ import annotations

import hashlib
import json
import math
import threading
import time

import numpy as np
import pytest
from api_server import LoopbackApi, Sink, softmax

from forensics.api.client import ApiClient, ApiError, Budget, BudgetSpent, Endpoint, png_bytes
from forensics.api.formats import Answer, class_index, parse_answer, select
from forensics.api.journal import Journal, public_url
from forensics.errors import ConfigError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
K = len(CLASSES)
FAST = {"backoff_s": 0.01, "max_wait_s": 0.05, "timeout_s": 2.0}


def images(n: int, seed: int = 0) -> list[tuple[int, bytes]]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [(i, png_bytes(Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)))) for i in range(n)]


def log_softmax(z: np.ndarray) -> np.ndarray:
    return z - z.max() - np.log(np.exp(z - z.max()).sum())


def run(api: LoopbackApi, route: str, queries, tmp_path, *, budget=None, progress=None, name="j.jsonl", **kw):
    kw = {**FAST, **kw}
    ep = Endpoint(api.url(route), **kw)
    journal = Journal.open(tmp_path / name, "qs-1", ep.url, ep.fmt)
    try:
        with ApiClient(ep, CLASSES, journal, budget, progress) as client:
            return client.ask(queries)
    finally:
        journal.close()


@pytest.fixture
def api():
    with LoopbackApi(CLASSES, seed=0) as server:
        yield server


# ---- formats, without a server

def test_parse_every_format_and_label_mapping():
    z = np.linspace(-2, 3, K)
    a = parse_answer({"logits": z.tolist()}, "auto", CLASSES, None)
    assert a.kind == "logits" and a.label == K - 1 and np.allclose(a.scores, z)
    p = softmax(z)
    b = parse_answer(p.tolist(), "auto", CLASSES, None)
    assert b.kind == "probabilities" and np.allclose(b.scores, log_softmax(z))
    top = [{"label": CLASSES[i], "score": float(p[i])} for i in np.argsort(-p)[:3]]
    c = parse_answer(top, "auto", CLASSES, None)
    rest = (1 - sum(t["score"] for t in top)) / (K - 3)
    assert c.kind == "top-k" and c.label == K - 1 and math.isclose(c.scores[0], math.log(rest))
    assert math.isclose(c.scores[K - 1], math.log(p[K - 1]))
    assert parse_answer({"label": "Cat "}, "auto", CLASSES, None) == Answer(3, None, "label")
    assert parse_answer([{"label": "dog"}], "label", CLASSES, None).label == 5
    doc = {"data": {"predictions": [{"label": "LABEL_7", "logits": z.tolist()}]}}
    assert parse_answer(doc, "label", CLASSES, "data.predictions[0].label").label == 7
    assert parse_answer(doc, "auto", CLASSES, "data.predictions[0]").kind == "logits"
    for label, want in (("ship", 8), (" SHIP", 8), (4, 4), ("4", 4), ("LABEL_9", 9), ("label_2", 2)):
        assert class_index(label, CLASSES) == want


@pytest.mark.parametrize("payload, fmt, path, words", [
    ({"logits": [0.0] * 9}, "auto", None, "expected 10 logits"),
    ({"logits": [0.0] * 9 + [float("nan")]}, "logits", None, "NaN"),
    ([-0.1, 1.1] + [0.0] * 8, "probabilities", None, "[0, 1]"),
    ([0.5] * 10, "probabilities", None, "sum to 5"),
    ({"label": "unicorn"}, "label", None, "unknown label 'unicorn'"),
    ({"label": "LABEL_10"}, "label", None, "class index 0..9"),
    ({"data": {"x": 1}}, "auto", "data.predictions[0].label", "no key 'predictions' at 'data' (keys found: x)"),
    ({"p": [1]}, "auto", "p[3]", "index [3] out of range at 'p'"),
    ({"a": 1}, "auto", "a..b", "not keys joined by dots"),
    ([{"label": "cat", "score": 0.9}, {"label": "cat", "score": 0.1}], "top-k", None, "lists a class twice"),
    ([{"label": "cat", "score": 2.0}], "top-k", None, "[0, 1]"),
    ({"weird": True}, "auto", None, "cannot tell the answer format"),
    ({"label": "\x1b[31mred"}, "label", None, "\\x1b[31mred"),
])
def test_parse_errors_say_what_was_expected(payload, fmt, path, words):
    with pytest.raises(ApiError) as e:
        parse_answer(payload, fmt, CLASSES, path)
    assert words in str(e.value) and "\x1b" not in str(e.value)
    with pytest.raises(ApiError, match="no key 'x'"):
        select({"y": 1}, "x")


# ---- every route and input, against the server

@pytest.mark.parametrize("route, fmt, path", [
    ("/logits", "auto", None), ("/logits", "logits", None), ("/bare", "auto", None),
    ("/probabilities", "auto", None), ("/probabilities", "probabilities", None), ("/top-k", "auto", None),
    ("/top-k", "top-k", None), ("/top-k?k=3", "auto", None), ("/label", "auto", None),
    ("/label?names=LABEL", "label", None), ("/label?names=index", "auto", None), ("/top-k?names=upper", "auto", None),
    ("/nested", "auto", "data.predictions[0]"), ("/nested", "logits", "data.predictions[0].logits"),
    ("/nested", "label", "data.predictions[0].label")])
def test_every_format_parsed_right(api, tmp_path, route, fmt, path):
    qs = images(6)
    got = run(api, route, qs, tmp_path, fmt=fmt, response_path=path)
    for i, png in qs:
        z = api.logits(png)
        assert got[i].label == int(np.argmax(z))
        if got[i].kind == "logits":
            assert np.allclose(got[i].scores, z)
        elif got[i].kind == "probabilities" or (got[i].kind == "top-k" and "k=3" not in route):
            assert np.allclose(got[i].scores, log_softmax(z), atol=1e-6)
        elif got[i].kind == "top-k":
            top = np.argsort(-z)[:3]
            assert np.allclose(np.asarray(got[i].scores)[top], log_softmax(z)[top], atol=1e-6)
        else:
            assert got[i].kind == "label" and got[i].scores is None


@pytest.mark.parametrize("image_as, template", [
    ("base64", None), ("base64", {"image": "{image_base64}", "options": {"copies": ["{image_base64}", 3]}}),
    ("multipart", None), ("bytes", None)])
def test_every_input_encoding(api, tmp_path, image_as, template):
    qs = images(3)
    extra = {"body_template": template} if template is not None else {}
    got = run(api, "/logits", qs, tmp_path, image_as=image_as, multipart_field="upload", **extra)
    assert all(np.allclose(got[i].scores, api.logits(png)) for i, png in qs)
    assert all(v == 1 for v in api.asked.values()) and len(api.asked) == 3


def test_answers_out_of_order_land_on_their_query(tmp_path):
    with LoopbackApi(CLASSES, seed=3, jitter_s=0.03) as api:
        qs = images(24, seed=1)
        got = run(api, "/logits", qs, tmp_path, concurrency=8)
        assert all(np.allclose(got[i].scores, api.logits(png)) for i, png in qs)
        order = [r["image"] for r in api.requests]
        assert len(order) == 24


def test_rate_limit_spaces_requests(api, tmp_path):
    t = time.monotonic()
    run(api, "/logits", images(6), tmp_path, concurrency=6, rate_per_s=25.0)
    assert time.monotonic() - t >= 5 / 25.0 - 0.02


# ---- faults

@pytest.mark.parametrize("kind", ["429", "500", "503", "drop", "slow", "malformed", "wrong-count"])
def test_each_fault_is_retried(tmp_path, kind):
    with LoopbackApi(CLASSES, seed=1, slow_s=0.6, retry_after="0") as api:
        api.fault(kind, attempts=(1,))
        qs = images(4)
        got = run(api, "/logits", qs, tmp_path, timeout_s=0.3)
        assert all(np.allclose(got[i].scores, api.logits(png)) for i, png in qs)
        assert all(n == 2 for n in api.asked.values())
        lines = (tmp_path / "j.jsonl").read_text().splitlines()
        paid_failures = [json.loads(x) for x in lines[1:] if "failed" in json.loads(x)]
        assert len(paid_failures) == (4 if kind in ("malformed", "wrong-count") else 0)


def test_retry_after_is_honoured_and_capped(tmp_path):
    with LoopbackApi(CLASSES, retry_after="0.3") as api:
        api.fault("429", requests=(1,))
        t = time.monotonic()
        run(api, "/logits", images(1), tmp_path, max_wait_s=1.0)
        assert time.monotonic() - t >= 0.25
    with LoopbackApi(CLASSES, retry_after="3600") as api:
        api.fault("503", requests=(1,))
        t = time.monotonic()
        run(api, "/logits", images(1), tmp_path, name="k.jsonl", max_wait_s=0.2)
        assert time.monotonic() - t < 1.5


@pytest.mark.parametrize("kind, words", [
    ("500", "query 0: still refused after 3 attempts (HTTP 500); body: 'internal error \\\\x1b[31mred"),
    ("malformed", "query 0: unusable answer twice: malformed JSON (JSONDecodeError) (HTTP 200); body:"),
    ("wrong-count", "expected 10 logits (one per class of the victim), found 9 (HTTP 200)"),
    ("drop", "query 0: no answer after 3 attempts (RemoteProtocolError)"),
    ("oversized", "query 0: the response was refused: a body over 1000000 bytes (HTTP 200)"),
])
def test_persistent_faults_give_clear_errors(api, tmp_path, kind, words):
    api.fault(kind, p=1.0)
    with pytest.raises(ApiError) as e:
        run(api, "/logits", images(1), tmp_path, max_retries=2)
    assert words in str(e.value) and "\x1b" not in str(e.value)
    assert sum(api.asked.values()) == (2 if kind in ("malformed", "wrong-count") else 1 if kind == "oversized" else 3)


def test_a_refusal_is_not_retried_and_redirects_are_not_followed(tmp_path):
    sink = Sink()
    try:
        with LoopbackApi(CLASSES, api_key="s3cret", redirect_to=sink.url) as api:
            api.fault("redirect", p=1.0)
            with pytest.raises(ApiError, match="HTTP 401") as e:
                run(api, "/logits", images(1), tmp_path)  # no key: 401, asked once
            assert sum(api.asked.values()) == 1 and "bad key" in str(e.value)
        with LoopbackApi(CLASSES, redirect_to=sink.url) as api:
            api.fault("redirect", p=1.0)
            with pytest.raises(ApiError, match=r"redirects to 'http://127\.0\.0\.1:\d+/steal', which is never"):
                run(api, "/logits", images(2), tmp_path, name="k.jsonl")
        assert sink.hits == []
    finally:
        sink.close()


# ---- no paid answer lost, nothing asked twice

def test_after_an_error_every_paid_answer_is_journalled_and_a_resume_asks_the_rest(api, tmp_path):
    qs = images(12)
    api.fault("redirect", requests=(6,))
    with pytest.raises(ApiError, match="redirects"):
        run(api, "/logits", qs, tmp_path, concurrency=3)
    with Journal.open(tmp_path / "j.jsonl", "qs-1", api.url("/logits"), "auto") as j:
        answered = j.answered
    digest = {i: hashlib.sha256(png).hexdigest() for i, png in qs}
    assert {i for i, d in digest.items() if d in api.delivered} <= set(answered)
    assert 0 < len(answered) < 12
    api.faults.clear()
    got = run(api, "/logits", qs, tmp_path, concurrency=3)
    assert sorted(got) == list(range(12)) and all(np.allclose(got[i].scores, api.logits(png)) for i, png in qs)
    redirected = api.requests[5]["image"]
    assert {d: n for d, n in api.asked.items() if n != 1} == {redirected: 2}


def test_ctrl_c_leaves_a_consistent_journal(api, tmp_path):
    qs = images(10)
    api.jitter_s = 0.02

    def progress(done, total):
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(api, "/logits", qs, tmp_path, progress=progress, concurrency=2)
    first = dict(api.asked)
    with Journal.open(tmp_path / "j.jsonl", "qs-1", api.url("/logits"), "auto") as j:
        assert len(j.answered) == sum(first.values()) == j.spent  # every answer sent is journalled
    assert len(j.answered) < 10
    got = run(api, "/logits", qs, tmp_path, concurrency=4)
    assert len(got) == 10 and set(api.asked.values()) == {1}


def test_resume_with_a_new_client_asks_nothing_twice(api, tmp_path):
    qs = images(8)
    run(api, "/probabilities", qs[:5], tmp_path)
    again = run(api, "/probabilities", qs, tmp_path)
    assert len(again) == 8 and set(api.asked.values()) == {1} and len(api.requests) == 8
    run(api, "/probabilities", qs, tmp_path)
    assert len(api.requests) == 8


def test_budget_stops_at_exactly_max_queries_and_max_cost(api, tmp_path):
    qs = images(9)
    with pytest.raises(BudgetSpent, match="5 queries paid") as e:
        run(api, "/logits", qs, tmp_path, budget=Budget(max_queries=5), concurrency=4)
    assert "4 of 9 queries unanswered" in str(e.value) and len(api.requests) == 5
    with pytest.raises(BudgetSpent):
        run(api, "/logits", qs, tmp_path, budget=Budget(max_cost=0.7), price_per_query=0.1)
    assert len(api.requests) == 7  # the budget counts the journal's whole spend
    got = run(api, "/logits", qs, tmp_path, budget=Budget(max_queries=9, max_cost=0.9), price_per_query=0.1)
    assert len(got) == 9 and set(api.asked.values()) == {1}


# ---- the journal

def test_torn_last_line_is_recovered_and_other_damage_refused(api, tmp_path):
    qs = images(4)
    run(api, "/logits", qs, tmp_path)
    path = tmp_path / "j.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"query": 7, "answer": {"lab')
    with pytest.warns(RuntimeWarning, match="last line was cut off"), \
            Journal.open(path, "qs-1", api.url("/logits"), "auto") as j:
        assert sorted(j.answered) == [0, 1, 2, 3] and j.spent == 4
    assert path.read_bytes() == whole
    lines = whole.splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], b"not json\n", *lines[1:]]))
    with pytest.raises(ApiError, match="line 2 is not JSON"):
        Journal.open(path, "qs-1", api.url("/logits"), "auto")
    path.write_bytes(whole[:20])  # a torn header: a fresh journal
    with pytest.warns(RuntimeWarning), Journal.open(path, "qs-1", api.url("/logits"), "auto") as j:
        assert j.answered == {} and j.spent == 0


def test_a_journal_of_another_query_set_or_endpoint_is_refused(tmp_path):
    Journal.open(tmp_path / "j.jsonl", "qs-1", "https://user:pw@api.example/v1?key=abc", "auto").close()
    header = json.loads((tmp_path / "j.jsonl").read_text().splitlines()[0])
    assert header["endpoint"] == "https://api.example/v1" and header["query_set"] == "qs-1" and "created" in header
    Journal.open(tmp_path / "j.jsonl", "qs-1", "https://api.example/v1?key=other", "auto").close()
    with pytest.raises(ApiError, match="another query set"):
        Journal.open(tmp_path / "j.jsonl", "qs-2", "https://api.example/v1", "auto")
    with pytest.raises(ApiError, match="another endpoint"):
        Journal.open(tmp_path / "j.jsonl", "qs-1", "https://evil.example/v1", "auto")
    with pytest.raises(ApiError, match="another answer format"):
        Journal.open(tmp_path / "j.jsonl", "qs-1", "https://api.example/v1", "label")
    assert public_url("http://a:b@[::1]:8080/x?y#z") == "http://[::1]:8080/x"


def test_the_journal_is_thread_safe(tmp_path):
    with Journal.open(tmp_path / "j.jsonl", "qs", "http://h/", "auto") as j:
        threads = [threading.Thread(target=lambda n=n: [j.record(n * 50 + i, Answer(1, None, "label"), "x" * 100,
                                                                  200, 1) for i in range(50)]) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    with Journal.open(tmp_path / "j.jsonl", "qs", "http://h/", "auto") as j:
        assert sorted(j.answered) == list(range(200)) and j.spent == 200


# ---- the key

def test_the_key_is_sent_and_shown_nowhere(tmp_path, monkeypatch):
    key = "sk-TOPSECRET-123"
    monkeypatch.setenv("SUSPECT_KEY", key)
    with LoopbackApi(CLASSES, api_key=key) as api:
        ep_kw = {"api_key_env": "SUSPECT_KEY", "headers": {"X-Api-Key": "hdr-secret", "X-Trace": "t1"}}
        run(api, "/echo", images(3), tmp_path, **ep_kw)
        assert {r["headers"]["authorization"] for r in api.requests} == {f"Bearer {key}"}
        with pytest.raises(ApiError) as e:
            run(api, "/echo?status=400", images(1, seed=5), tmp_path, name="k.jsonl", **ep_kw)
        ep = Endpoint(api.url("/echo") + "?token=qs-secret", api_key_env="SUSPECT_KEY",
                      headers={"X-Api-Key": "hdr-secret", "X-Trace": "t1"})
        journal_text = (tmp_path / "j.jsonl").read_text() + (tmp_path / "k.jsonl").read_text()
        described = json.dumps(ep.describe())
        for shown in (journal_text, str(e.value), repr(ep), described):
            assert key not in shown
        assert "***" in journal_text and "hdr-secret" not in described and "qs-secret" not in described
        assert ep.describe()["headers"] == {"X-Api-Key": "***", "X-Trace": "t1"}
    monkeypatch.setenv("SUSPECT_KEY", "  ")
    with pytest.raises(ApiError, match="variable SUSPECT_KEY is not set or empty"):
        Endpoint("http://127.0.0.1:1/", api_key_env="SUSPECT_KEY").read_key()
    (tmp_path / "key.txt").write_text("\n")
    with pytest.raises(ApiError, match=r"key\.txt is empty"):
        Endpoint("http://127.0.0.1:1/", api_key_file=str(tmp_path / "key.txt")).read_key()
    (tmp_path / "key.txt").write_text(key + "\n")
    assert Endpoint("http://127.0.0.1:1/", api_key_file=str(tmp_path / "key.txt")).read_key() == key
    with pytest.raises(ConfigError, match="style must be"):
        Endpoint("http://127.0.0.1:1/", style="grpc")
    with pytest.raises(ConfigError, match="not an http"):
        Endpoint("file:///etc/passwd")


# ---- huggingface_hub's InferenceClient

def test_hf_style_matches_inference_client_against_the_loopback_server(api, tmp_path, monkeypatch):
    from huggingface_hub import InferenceClient, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_KEY", "hf_loopback")
    qs = images(3)
    got = run(api, "/hf", qs, tmp_path, style="hf", api_key_env="HF_KEY")
    hf = InferenceClient(model=api.url("/hf"), token="hf_loopback")
    for i, png in qs:
        ref = hf.image_classification(png, top_k=K)
        assert len(ref) == K and ref[0].label == CLASSES[got[i].label]
        for r in ref:
            assert math.isclose(got[i].scores[CLASSES.index(r.label)], math.log(r.score), rel_tol=1e-6)
    assert {r["headers"]["authorization"] for r in api.requests} == {"Bearer hf_loopback"}
    assert all(r["image"] in api.asked for r in api.requests) and len(api.asked) == 3
