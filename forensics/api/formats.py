"""One response of a suspect's API read as an :class:`Answer`: its logits, its probabilities (kept as
log-probabilities, which the verification reads like logits), its top-k classes (the rest of the probability mass
spread evenly over the classes not listed) or its label alone.

Also what is sent: :func:`png_bytes` (a query image as PNG) and :func:`request_parts` (the body of one request).

Everything here comes from the other side of a dispute: every value is checked, and every message quotes the
server's text through :func:`~forensics.runtime.safe_text.terminal_text`.
"""
from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audit.answers import PROBABILITY_SUM_TOLERANCE, probabilities_as_logits
from ..errors import ForensicsError
from ..runtime.safe_text import terminal_text

KINDS = ("logits", "probabilities", "top-k", "label")
FORMATS = ("auto", *KINDS)
#: where a response keeps each kind when it is an object (auto-detection and explicit formats alike)
KEYS = {"logits": ("logits",), "probabilities": ("probabilities", "probs", "scores"),
        "label": ("label", "prediction", "class", "predicted_label")}
_TOP_K_REST_FLOOR = 1e-6  # as forensics.audit.answers._top_k: unknown mass never below this
_LOG_FLOOR = 1e-12


class ApiError(ForensicsError, RuntimeError):
    """A suspect's API answered something unusable, refused, or could not be reached (the message says which query,
    which HTTP status and what came back)."""


@dataclass(frozen=True)
class Answer:
    """One query's answer.  ``scores``: K values read like logits (log-probabilities where the API gave
    probabilities or top-k), None for a label-only answer; ``label``: the class the API put first (the argmax of
    ``scores`` where there are scores); ``kind``: one of :data:`KINDS`."""

    label: int | None
    scores: tuple[float, ...] | None
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "scores": None if self.scores is None else list(self.scores), "kind": self.kind}

    @classmethod
    def from_json(cls, d: Any) -> Answer:
        """An answer as :meth:`to_json` wrote it (a journal line); ValueError when it is not one."""
        if not isinstance(d, dict) or d.get("kind") not in KINDS:
            raise ValueError("not an answer object")
        label, scores = d.get("label"), d.get("scores")
        if label is not None and (not isinstance(label, int) or isinstance(label, bool)):
            raise ValueError("label is not an integer")
        if scores is not None and (not isinstance(scores, list) or not all(_is_number(x) for x in scores)):
            raise ValueError("scores are not a list of numbers")
        return cls(label, None if scores is None else tuple(float(x) for x in scores), d["kind"])


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _show(x: Any, n: int = 120) -> str:
    s = repr(x)
    return terminal_text(s if len(s) <= n else s[:n - 1] + "…")


_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def select(payload: Any, path: str | None) -> Any:
    """The part of ``payload`` at ``path`` (``predictions[0].label``, ``data.logits``: keys after dots, list
    indexes in brackets); an :class:`ApiError` naming the path and what was found where it does not lead."""
    if not path:
        return payload
    steps, pos = [], 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None or (m.group(1) is not None and pos > 0 and path[pos] != "."):
            raise ApiError(f"response path {terminal_text(path)!r} is not keys joined by dots with [i] indexes "
                           "(e.g. predictions[0].label)")
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    here, done = payload, ""
    for step in steps:
        at = f" at {terminal_text(done)!r}" if done else " at the top"
        if isinstance(step, str):
            if not isinstance(here, dict):
                raise ApiError(f"response path {terminal_text(path)!r}: expected an object{at}, found "
                               f"{type(here).__name__} {_show(here)}")
            if step not in here:
                keys = ", ".join(terminal_text(k) for k in list(here)[:20]) or "none"
                raise ApiError(f"response path {terminal_text(path)!r}: no key {terminal_text(step)!r}{at} "
                               f"(keys found: {keys})")
            here, done = here[step], f"{done}.{step}" if done else step
        else:
            if not isinstance(here, list):
                raise ApiError(f"response path {terminal_text(path)!r}: expected a list{at}, found "
                               f"{type(here).__name__} {_show(here)}")
            if step >= len(here):
                raise ApiError(f"response path {terminal_text(path)!r}: index [{step}] out of range{at} (a list "
                               f"of {len(here)})")
            here, done = here[step], f"{done}[{step}]"
    return here


def class_index(label: Any, class_names: Sequence[str]) -> int:
    """The victim's class index of an API's label: the exact class name, the name ignoring case and surrounding
    spaces, a class index (an integer or integer string), or ``LABEL_<i>``."""
    k = len(class_names)
    if _is_number(label) and float(label).is_integer() and 0 <= int(label) < k:
        return int(label)
    if isinstance(label, str):
        if label in class_names:
            return list(class_names).index(label)
        folded = [c.strip().casefold() for c in class_names]
        key = label.strip().casefold()
        if folded.count(key) == 1:
            return folded.index(key)
        m = re.fullmatch(r"(?:label_)?(\d{1,9})", key)
        if m and int(m.group(1)) < k:
            return int(m.group(1))
    shown = ", ".join(terminal_text(c) for c in list(class_names)[:12]) + (", …" if k > 12 else "")
    raise ApiError(f"unknown label {_show(label)}: expected one of the victim's {k} class names ({shown}), a class "
                   f"index 0..{k - 1}, or LABEL_<i>")


def _numbers(values: Any, what: str, k: int) -> list[float]:
    if not isinstance(values, list) or not all(_is_number(x) for x in values):
        raise ApiError(f"expected {what} as a list of {k} numbers, found {_show(values)}")
    if len(values) != k:
        raise ApiError(f"expected {k} {what} (one per class of the victim), found {len(values)}")
    out = [float(x) for x in values]
    if not all(math.isfinite(x) for x in out):
        raise ApiError(f"the {what} contain NaN or infinite values: {_show(values)}")
    return out


def _check_probabilities(p: Sequence[float], what: str, *, full: bool) -> None:
    if min(p) < 0.0 or max(p) > 1.0:
        raise ApiError(f"{what} must lie in [0, 1]; found {_show(list(p))}")
    total = sum(p)
    if (abs(total - 1.0) if full else total - 1.0) > PROBABILITY_SUM_TOLERANCE:
        raise ApiError(f"{what} sum to {total:.4g}, expected {'1' if full else 'at most 1'} "
                       f"(within {PROBABILITY_SUM_TOLERANCE})")


def _looks_like_probabilities(p: Sequence[float]) -> bool:
    return len(p) > 1 and min(p) >= 0.0 and max(p) <= 1.0 and abs(sum(p) - 1.0) <= PROBABILITY_SUM_TOLERANCE


def _scored(scores: Sequence[float], kind: str) -> Answer:
    t = tuple(float(x) for x in scores)
    return Answer(int(np.argmax(t)), t, kind)


def _top_k(items: list[Any], class_names: Sequence[str]) -> Answer:
    k = len(class_names)
    if not items or not all(isinstance(x, dict) and "label" in x and "score" in x for x in items):
        raise ApiError(f"expected a top-k list of {{\"label\": ..., \"score\": ...}} objects, found {_show(items)}")
    if len(items) > k:
        raise ApiError(f"a top-k answer lists {len(items)} classes but the victim has {k}")
    idx = [class_index(x["label"], class_names) for x in items]
    if len(set(idx)) != len(idx):
        raise ApiError(f"a top-k answer lists a class twice: {_show(items)}")
    p = _numbers([x["score"] for x in items], "top-k scores", len(items))
    _check_probabilities(p, "top-k scores (probabilities)", full=len(items) == k)
    rest = max(1.0 - sum(p), _TOP_K_REST_FLOOR) / max(k - len(items), 1)
    full = [rest] * k
    for i, s in zip(idx, p, strict=True):
        full[i] = s
    logp = [math.log(max(x, _LOG_FLOOR)) for x in full]
    return Answer(idx[max(range(len(p)), key=lambda j: p[j])], tuple(logp), "top-k")


def _unwrap(payload: Any, keys: Sequence[str]) -> Any:
    """A one-element batch ``[x]`` holding a list or object, or an object keyed by one of ``keys``, opened."""
    for _ in range(3):
        if isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], (list, dict)):
            payload = payload[0]
        elif isinstance(payload, dict) and (hit := [key for key in keys if key in payload]):
            payload = payload[hit[0]]
        else:
            break
    return payload


def _detect(payload: Any) -> str:
    if isinstance(payload, dict):
        hits = [kind for kind, keys in KEYS.items() if any(key in payload for key in keys)]
        if hits:
            return hits[0]
    if isinstance(payload, list) and payload and all(isinstance(x, dict) and {"label", "score"} <= x.keys()
                                                     for x in payload):
        return "top-k"
    if isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], (list, dict)):
        return _detect(payload[0])
    if isinstance(payload, list) and payload and all(_is_number(x) for x in payload):
        return "probabilities" if _looks_like_probabilities([float(x) for x in payload]) else "logits"
    if isinstance(payload, (str, int)) and not isinstance(payload, bool):
        return "label"
    raise ApiError(f"cannot tell the answer format of {_show(payload)}: expected logits or probabilities (a list "
                   "of numbers), a top-k list of {\"label\", \"score\"} objects, or a label; give the format and "
                   "a response path")


def parse_answer(payload: Any, fmt: str, class_names: Sequence[str], response_path: str | None) -> Answer:
    """One decoded JSON response as an :class:`Answer` for a victim with ``class_names``.

    ``response_path`` selects inside the response first (:func:`select`).  ``fmt``: ``auto`` (detected),
    ``logits``, ``probabilities`` (stored as log-probabilities, as ``probabilities_as_logits``), ``top-k``
    (Hugging Face's ``[{"label", "score"}, ...]``) or ``label``.  Labels map to class indices by
    :func:`class_index`.  Anything else (another class count, NaN, negative probabilities) is an :class:`ApiError`
    that says what was expected."""
    if fmt not in FORMATS:
        raise ApiError(f"unknown answer format {terminal_text(fmt)!r}; choose one of {', '.join(FORMATS)}")
    k = len(class_names)
    here = select(payload, response_path)
    kind = _detect(here) if fmt == "auto" else fmt
    if kind == "top-k":
        here = _unwrap(here, ("predictions", "results", "top_k"))
        if isinstance(here, dict) and "label" in here and "score" in here:
            here = [here]
        if not isinstance(here, list):
            raise ApiError(f"expected a top-k list of {{\"label\", \"score\"}} objects, found {_show(here)}")
        return _top_k(here, class_names)
    here = _unwrap(here, KEYS[kind])
    if kind == "label":
        if isinstance(here, (dict, list, bool)) or here is None:
            raise ApiError(f"expected a label (a class name or index), found {_show(here)}")
        return Answer(class_index(here, class_names), None, "label")
    values = _numbers(here, kind, k)
    if kind == "probabilities":
        _check_probabilities(values, "probabilities", full=True)
        return _scored(probabilities_as_logits(np.asarray([values], np.float64))[0].tolist(), "probabilities")
    return _scored(values, "logits")


def png_bytes(pil_image: Any) -> bytes:
    """A PIL image as PNG bytes (what is sent: the original pixels, the suspect applies its own preprocessing)."""
    buf = io.BytesIO()
    pil_image.save(buf, format="PNG")
    return buf.getvalue()


def request_parts(png: bytes, style: str, image_as: str, body_template: Any, multipart_field: str,
                  k: int) -> dict[str, Any]:
    """What an httpx request carries for one query image (``content`` or ``files``, and ``headers``): see
    :class:`~forensics.api.client.Endpoint` for ``style``, ``image_as``, ``body_template`` and
    ``multipart_field``; ``k`` the class count (the ``top_k`` the ``hf`` style asks for)."""
    if style == "hf":  # huggingface_hub's InferenceClient.image_classification(png, top_k=k) against a URL
        body = {"inputs": base64.b64encode(png).decode(), "parameters": {"top_k": k}}
        return {"content": json.dumps(body).encode(), "headers": {"Content-Type": "application/json"}}
    if image_as == "bytes":
        return {"content": png, "headers": {"Content-Type": "image/png"}}
    if image_as == "multipart":
        return {"files": {multipart_field: ("query.png", png, "image/png")}, "headers": {}}
    b64 = base64.b64encode(png).decode()

    def fill(t: Any) -> Any:
        if isinstance(t, str):
            return b64 if t == "{image_base64}" else t.replace("{image_base64}", b64)
        if isinstance(t, dict):
            return {key: fill(v) for key, v in t.items()}
        return [fill(v) for v in t] if isinstance(t, list) else t

    return {"content": json.dumps(fill(body_template)).encode(), "headers": {"Content-Type": "application/json"}}
