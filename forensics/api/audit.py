"""An audit of a suspect behind a paid API: the sequential membership test (:mod:`forensics.protocols.sequential`)
asking the suspect's endpoint pair by pair, stopping as soon as the verdict is decided or the budget is spent.

    result = api_audit(audit, endpoint, journal="suspect.jsonl", name="their API", budget=Budget(600))
    result.verdict          # protocol "sequential": its p-value is valid however early the audit stopped

Every answer is journalled as it arrives (:class:`~forensics.api.journal.Journal`): a crash, Ctrl-C or a spent budget
loses no paid answer, and running the same audit again replays the journal (no query is asked twice) and goes on
where it stopped.  :func:`replay` gives the verdict of a journal without any network (what ``reverify`` and a
reopened dashboard audit use).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audit.verdict import Verdict
from ..errors import ConfigError
from ..method.sequential import FUTILITY_SHARE, SequentialTest
from ..protocols.registry import AuditView
from ..protocols.sequential import SequentialDesign, sequential_design, sequential_evidence
from ..runtime.safe_text import terminal_text
from .client import ApiClient, Budget, BudgetSpent, Endpoint
from .formats import Answer, ApiError, png_bytes
from .journal import Journal

#: how a record names an API suspect: its answers journal, which ``reverify`` and a reopened audit replay (no query)
API_JOURNAL = "api-journal:"
#: pairs asked per round by default (40 queries): small enough to stop soon after the evidence decides
BATCH_PAIRS = 20
#: the raw answer text kept per query in the record (the journal keeps up to its own bound)
RECORD_RAW_CHARS = 4000

# how an API audit ended
STOPS = {"evidence": "the evidence decided: evidence of derivation",
         "futility": "the evidence decided: the suspect shows too little of your model's signal to go on",
         "budget": "the budget is spent before the evidence decided",
         "plan": "every query of the plan was asked before the evidence decided",
         "journal": "the journal ends here (replayed without asking the API)"}


@dataclass(frozen=True)
class ApiProgress:
    """An API audit's state after a round, as a background job's progress event."""

    queries: int                      # queries the test has read
    paid: int                         # queries paid for so far
    p_value: float
    decision: str | None
    trace: tuple[tuple[int, float], ...]  # (queries, p-value) after each round


class _JournalEnds(Exception):
    """Replaying a journal reached a query it holds no answer to."""


@dataclass
class ApiAuditResult:
    verdict: Verdict
    test: SequentialTest
    stopped: str                      # a key of STOPS
    asked: int                        # queries whose answers the test read
    paid: int                         # queries paid for (the journal's count, failed paid attempts included)
    label_only: bool
    answers: dict[int, Answer]

    def summary(self) -> str:
        price = float(self.verdict.evidence["sequential"].get("endpoint", {}).get("price_per_query") or 0.0)
        cost = f", cost {self.paid * price:.2f}" if price else ""
        return (f"{STOPS[self.stopped]}; {self.asked} queries read ({self.paid} paid{cost}), anytime-valid p = "
                f"{self.test.p_value:.3g}")


def as_array(answers: list[Answer], label_only: bool) -> np.ndarray:
    """Answers in order as the test reads them: scores (n, K) read like logits, or labels (n,)."""
    if label_only:
        labels = [a.label for a in answers]
        if any(x is None for x in labels):
            raise ApiError("an answer holds neither a label nor scores")
        return np.asarray(labels, np.int64)
    return np.asarray([a.scores for a in answers], np.float64)


def _label_only(answers: list[Answer]) -> bool:
    return any(a.scores is None for a in answers)


def sequential_run(audit: AuditView, ask: Callable[[list[int]], dict[int, Answer]], *, batch_pairs: int = BATCH_PAIRS,
                   max_pairs: int | None = None, label_only: bool | None = None,
                   futility_share: float = FUTILITY_SHARE,
                   on_update: Callable[[SequentialTest, int], None] | None = None
                   ) -> tuple[SequentialTest, str, dict[int, Answer], bool, list[tuple[int, float]]]:
    """Ask ``ask(positions)`` for the audit's pairs in order, ``batch_pairs`` at a time, updating the sequential
    test after each batch; stops at a decision, at ``max_pairs``, when ``ask`` raises :class:`BudgetSpent` (the pairs
    it did answer in full are read first) or :class:`_JournalEnds`.  Returns the test, why it stopped, the answers
    read, whether they were labels only (decided by the first answers: labels only if any of them has no scores) and
    the (queries read, p-value) after each round."""
    if batch_pairs < 1:
        raise ConfigError("batch_pairs must be at least 1")
    design: SequentialDesign = sequential_design(audit)
    n = len(design) if max_pairs is None else min(len(design), max_pairs)
    if n == 0:
        raise ConfigError("the audit's design holds no member-control pair; it needs held-out data of the same "
                          "collection (see the README: Audit your own model)")
    order = design.positions  # member, control, member, ... (computed once, read every round)
    test: SequentialTest | None = None
    answers: dict[int, Answer] = {}
    rounds: list[tuple[int, float]] = []  # (queries read, p-value) after each round
    stopped = "plan"
    for start in range(0, n, batch_pairs):
        stop = min(n, start + batch_pairs)
        positions = order[2 * start:2 * stop].tolist()
        try:
            got = ask(positions)
            done = stop
        except (BudgetSpent, _JournalEnds) as e:
            got = getattr(e, "answered", {})
            done = start
            while done < stop and all(int(p) in got for p in order[2 * done:2 * done + 2]):
                done += 1
            stopped = "budget" if isinstance(e, BudgetSpent) else "journal"
        batch = [got[int(p)] for p in order[2 * start:2 * done]]
        answers.update({int(p): got[int(p)] for p in order[2 * start:2 * done]})
        if batch:
            if label_only is None:
                label_only = _label_only(batch)
            if test is None:
                test = SequentialTest(audit.config.alpha, design.expected(label_only) if futility_share > 0 else None,
                                      futility_share=futility_share)
            arr = as_array(batch, label_only or _label_only(batch))  # a label among scores: read as labels
            test.update(design.gains(arr[0::2], arr[1::2], start))
            if on_update is not None:
                on_update(test, len(answers))
            rounds.append((len(answers), test.p_value))
        if test is not None and test.decision is not None:
            stopped = test.decision
            break
        if stopped in ("budget", "journal"):
            break
    if test is None:
        test = SequentialTest(audit.config.alpha)
    return test, stopped, answers, bool(label_only), rounds


def _verdict(audit: AuditView, name: str, test: SequentialTest, stopped: str, label_only: bool, asked: int,
             extra: dict[str, Any]) -> Verdict:
    design = sequential_design(audit)
    evidence = {**sequential_evidence(test, design, label_only, asked), "stopped": stopped, **extra}
    return Verdict(name, "sequential", test.p_value, None, test.p_value < audit.config.alpha, audit.config.alpha,
                   asked, audit.config.seed, {"sequential": evidence}, label_only=label_only)


def api_audit(audit: AuditView, endpoint: Endpoint, journal: str | Path, *, name: str, budget: Budget | None = None,
              batch_pairs: int = BATCH_PAIRS, on_update: Callable[[SequentialTest, int], None] | None = None,
              on_progress: Callable[[int, int], None] | None = None, progress: Callable[[Any], None] | None = None,
              api_key: str | None = None, futility_share: float = FUTILITY_SHARE) -> ApiAuditResult:
    """Audit the suspect behind ``endpoint`` with the sequential test, journalling every answer in ``journal``
    (an existing journal of the same query set and endpoint is resumed: its answers are read, not asked again).
    ``on_update(test, queries)`` after each round; ``progress``: :class:`ApiProgress` events (a background job's
    callback); ``api_key``: a key given directly (the dashboard's), never stored, instead of the endpoint's;
    ``futility_share``: stop without evidence once sure the suspect carries less than this share of the victim's own
    signal (0: never; see :mod:`forensics.method.sequential`)."""
    images = audit.queries.images
    classes = list(audit.private.classes)
    log = Journal.open(journal, audit.queries.fingerprint, endpoint.url, endpoint.fmt)

    trace: list[tuple[int, float]] = []

    def updated(test: SequentialTest, queries: int) -> None:
        trace.append((queries, test.p_value))
        if on_update is not None:
            on_update(test, queries)
        if progress is not None:
            progress(ApiProgress(queries, log.spent, test.p_value, test.decision, tuple(trace)))

    try:
        with ApiClient(endpoint, classes, log, budget or Budget(None, None), progress=on_progress,
                       api_key=api_key) as client:
            def ask(positions: list[int]) -> dict[int, Answer]:
                try:
                    return client.ask([(p, png_bytes(images.pil(p))) for p in positions])
                except BudgetSpent as e:
                    e.answered = log.answered  # type: ignore[attr-defined]
                    raise

            test, stopped, answers, label_only, rounds = sequential_run(audit, ask, batch_pairs=batch_pairs,
                                                                        on_update=updated,
                                                                        futility_share=futility_share)
        paid = log.spent
        extra = {"endpoint": endpoint.describe(), "paid": paid, "journal": str(log.path), "trace": rounds,
                 "answers_raw": record_answers(log.path, answers)}
        verdict = _verdict(audit, name, test, stopped, label_only, len(answers), extra)
    finally:
        log.close()
    return ApiAuditResult(verdict, test, stopped, len(answers), paid, label_only, answers)


def journal_source(journal: str | Path, futility_share: float = FUTILITY_SHARE) -> str:
    """How a record names an API suspect: its journal, and the futility share its audit used when not the default."""
    return f"{API_JOURNAL}{journal}" + (f"#futility={futility_share:g}" if futility_share != FUTILITY_SHARE else "")


def read_journal_source(source: str) -> tuple[Path, float]:
    """(journal, futility share) of a :func:`journal_source`."""
    path, _, share = source.removeprefix(API_JOURNAL).partition("#futility=")
    try:
        return Path(path), float(share) if share else FUTILITY_SHARE
    except ValueError as e:
        raise ConfigError(f"{terminal_text(source)!r}: the futility share after '#futility=' is not a number") from e


def replay(audit: AuditView, journal: str | Path, *, name: str, endpoint: str | None = None,
           fmt: str | None = None, futility_share: float = FUTILITY_SHARE) -> ApiAuditResult:
    """The verdict of a journal's answers, asking nothing: the sequential test read in the audit's order until the
    decision or the first query the journal does not hold (``endpoint`` / ``fmt``: as in its header by default;
    ``futility_share``: the one the audit used)."""
    path = Path(journal)
    header = read_header(path)
    log = Journal.open(path, audit.queries.fingerprint, endpoint or header["endpoint"], fmt or header["format"])
    try:
        held = log.answered

        def ask(positions: list[int]) -> dict[int, Answer]:
            missing = [p for p in positions if p not in held]
            if missing:
                e = _JournalEnds()
                e.answered = held  # type: ignore[attr-defined]
                raise e
            return {p: held[p] for p in positions}

        test, stopped, answers, label_only, rounds = sequential_run(audit, ask, futility_share=futility_share)
        extra = {"endpoint": {"url": header["endpoint"]}, "paid": log.spent, "journal": str(path), "trace": rounds,
                 "answers_raw": record_answers(path, answers)}
        verdict = _verdict(audit, name, test, stopped, label_only, len(answers), extra)
        return ApiAuditResult(verdict, test, stopped, len(answers), log.spent, label_only, answers)
    finally:
        log.close()


def read_header(path: Path) -> dict[str, Any]:
    """A journal's header line (what it answers and which endpoint), with a clear error when it is none."""
    shown = terminal_text(str(path))
    try:
        with open(path, "rb") as f:
            first = f.readline(64_000)
        header = json.loads(first)
    except (OSError, ValueError) as e:
        raise ApiError(f"{shown} is not a readable API journal ({type(e).__name__}); give the journal file an API "
                       "audit wrote") from None
    if not isinstance(header, dict) or "query_set" not in header or "endpoint" not in header:
        raise ApiError(f"{shown} is not an API journal (its first line is not a journal header)")
    return header


def record_answers(path: Path, answers: dict[int, Answer]) -> list[dict[str, Any]]:
    """The answers the verdict read, verbatim as the API sent them (bounded per answer), for the audit record:
    ``[{"query": i, "raw": text}]`` in query order."""
    raw: dict[int, str] = {}
    try:
        with open(path, "rb") as f:
            next(f, None)
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                i = entry.get("query") if isinstance(entry, dict) else None
                if isinstance(i, int) and i in answers and "answer" in entry and i not in raw:
                    text = entry.get("raw")
                    if isinstance(text, dict):
                        text = text.get("text", "")
                    raw[i] = str(text)[:RECORD_RAW_CHARS]
    except OSError:
        pass
    return [{"query": i, "raw": raw.get(i, "")} for i in sorted(answers)]
