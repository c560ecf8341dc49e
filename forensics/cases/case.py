"""A case: one audit's suspects and their verdicts, independent of any UI.

A :class:`Case` holds the :class:`~forensics.audit.spec.AuditSpec`, the suspects (model sources or answers files)
and, once :meth:`Case.run` has run (the dashboard runs it as a background job), the opened
:class:`~forensics.audit.opened.Audit`, the verdicts, the model cards and the suspects that could not be verified.
The CLI's ``audit`` and ``reverify``, the dashboard and the audit record all use it.
"""
from __future__ import annotations

import datetime
import io
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..audit.answers import answers_reading, read_outputs
from ..audit.build import PASS, audit_stage_plan, open_audit
from ..audit.opened import Audit
from ..audit.sources import evaluation_data, makes_training
from ..audit.spec import AuditSpec
from ..audit.verdict import Kind, Verdict
from ..demo import assets as demo_assets
from ..demo.assets import demo_spec
from ..errors import ConfigError, ForensicsError, LogitsFileError
from ..method.metrics import accuracy
from ..runtime.progress import Progress, emit
from ..runtime.store import ArtifactStore


@dataclass
class Suspect:
    """A suspect: a model source (``hf-hub:``, ``local-dir:``, file, ``demo:``) or an answers file."""

    name: str
    source: str
    kind: Kind | None = None          # "stolen" / "innocent" when known (the demo's), else None
    revision: str | None = None
    answers: str | None = None        # path of a stored answers file (.npy / .csv)
    query_set: str | None = None      # fingerprint of the query set the answers respond to, when known
    upload: str | None = None         # the user's own file name, when the source is an uploaded file in the store

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "kind": self.kind, "revision": self.revision,
                "answers": self.answers, "query_set": self.query_set, "upload": self.upload}

    def user_message(self, text: str) -> str:
        """``text`` with the store's copy of an uploaded file named as the user knows it."""
        if self.upload:
            for path in (self.answers, self.source.removeprefix("local-dir:")):
                if path:
                    text = text.replace(path, self.upload)
        return text

    @property
    def shown_source(self) -> str:
        """The source as the user knows it (an uploaded file by its own name)."""
        return f"uploaded {self.upload}" if self.upload else self.source


@dataclass
class Case:
    spec: AuditSpec | None = None
    suspects: list[Suspect] = field(default_factory=list)
    audit: Audit | None = None
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)   # suspect name -> why it could not be verified
    # what the auditor types about the case (all optional): "case_name", "auditor", "note"
    info: dict[str, str] = field(default_factory=dict)
    # the case's id in the artifact store (forensics.cases.casefile keeps it under cases/<id>.json)
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    ran_at: str | None = None   # when the verdicts were computed (ISO 8601); the record's "created"
    # the stress test's detection power for this audit (forensics.report.checks.power_summary), once it has run
    power: dict[str, Any] | None = None
    # who created it on a shared dashboard (forensics.runtime.access); None on your own machine
    owner: str | None = None

    @classmethod
    def demo(cls, seed: int = 0, *, quick: bool = False) -> Case:
        """The embedded demo: its spec and its six suspects."""
        return cls(spec=demo_spec(seed, quick=quick),
                   suspects=[Suspect(s.name, s.source, kind=s.kind) for s in demo_assets.DEMO_SUSPECTS])

    def add_suspect(self, suspect: Suspect) -> None:
        if any(s.name == suspect.name for s in self.suspects):
            raise ConfigError(f"a suspect named {suspect.name!r} is already in the list; remove it or pick "
                              "another name")
        self.suspects.append(suspect)

    def remove_suspect(self, name: str) -> None:
        self.suspects = [s for s in self.suspects if s.name != name]
        self.verdicts.pop(name, None)
        self.cards.pop(name, None)

    def ordered_verdicts(self) -> list[tuple[Suspect, Verdict]]:
        return [(s, self.verdicts[s.name]) for s in self.suspects if s.name in self.verdicts]

    def require_spec(self) -> AuditSpec:
        """The case's spec; a clear error when no victim has been loaded yet."""
        if self.spec is None:
            raise ConfigError("no victim loaded yet: load the demo or your own victim first")
        return self.spec

    @property
    def opened(self) -> Audit:
        """The case's opened audit; a clear error before :meth:`run` has built it."""
        if self.audit is None:
            raise ConfigError("the audit has not run yet: build it (2 · Shadow models, or holmes-forensics audit) "
                              "first")
        return self.audit

    def run(self, store: ArtifactStore, progress: Progress | None = None) -> Case:
        """Build (or reuse) the audit and verify every suspect; fills ``audit``, ``verdicts``, ``cards``,
        ``errors``.  One bad suspect does not cost the others their verdicts."""
        spec = self.require_spec()
        if progress is not None:
            progress(audit_stage_plan(spec, [("cards", "Model cards (accuracy of each model)"),
                                             *[(f"suspect:{s.name}", self._suspect_title(s)) for s in self.suspects]],
                                      {"cards": 4 * PASS, **{f"suspect:{s.name}": self._suspect_cost(s, spec)
                                                             for s in self.suspects}}))
        audit = open_audit(spec, store, progress)
        from ..api.audit import API_JOURNAL, read_journal_source, replay  # httpx loads here, not with the package

        emit(progress, "cards", "start")
        ref, ref_name = evaluation_data(spec, audit.heldout)

        def card(model) -> dict[str, Any]:
            c = model.card()
            if ref is not None:
                c["accuracy"] = accuracy(audit.engine.logits(model, ref), ref.labels)
                c["accuracy_on"] = ref_name
            return c

        sh = audit.shadows
        uploaded = (self.cards.get("victim") or {}).get("source", "")
        cards = {"victim": card(audit.victim), "foundation": audit.foundation.card(),
                 "poisoned shadow": card(sh.poisoned), "benign shadow": card(sh.benign)}
        if uploaded.startswith("uploaded "):  # an uploaded victim keeps the user's file name
            cards["victim"]["source"] = uploaded
        if sh.reference is not None:
            cards["reference shadow"] = card(sh.reference)
        emit(progress, "cards", "done")
        verdicts: dict[str, Verdict] = {}
        errors: dict[str, str] = {}
        for s in self.suspects:
            emit(progress, f"suspect:{s.name}", "start")
            try:
                if s.source.startswith(API_JOURNAL):
                    # a suspect behind an API: its journal replayed (no query is asked again)
                    journal, share = read_journal_source(s.source)
                    result = replay(audit, journal, name=s.name, futility_share=share)
                    verdicts[s.name] = result.verdict
                    cards[s.name] = {"source": s.shown_source, "answers": f"API answers ({result.asked} queries read, "
                                     f"{result.paid} paid)", "label_only": result.label_only,
                                     "reading": "labels only" if result.label_only else "scores (read like logits)"}
                elif s.answers:
                    if s.query_set and s.query_set != audit.queries.fingerprint:
                        raise LogitsFileError(
                            "these answers respond to another query set (the audit's victim, data or settings "
                            "changed since the query set was exported); export the new query set and query the "
                            "suspect again")
                    verdicts[s.name] = audit.verify(Path(s.answers), name=s.name)
                    given = read_outputs(s.answers, None, None, as_given=True)
                    cards[s.name] = {"source": s.source, "answers": s.upload or Path(s.answers).name,
                                     "label_only": verdicts[s.name].label_only, "reading": answers_reading(given)}
                else:
                    model = audit.load_suspect(s.source, revision=s.revision, progress=progress)
                    verdicts[s.name] = audit.verify(model, name=s.name)
                    cards[s.name] = card(model)
                    if s.upload:
                        cards[s.name]["source"] = f"uploaded {s.upload}"
            except ForensicsError as e:
                errors[s.name] = s.user_message(str(e))
            except Exception as e:  # noqa: BLE001 - one broken suspect must not cost the others their verdicts
                errors[s.name] = s.user_message(f"unexpected error: {type(e).__name__}: {e}")
            if s.name in errors:
                emit(progress, f"suspect:{s.name}", "failed", f"could not be verified: {errors[s.name]}")
            else:
                emit(progress, f"suspect:{s.name}", "done", f"p = {verdicts[s.name].p_value:.2g}")
        self.audit, self.verdicts, self.cards, self.errors = audit, verdicts, cards, errors
        self.ran_at = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        audit.engine.progress = None  # this run's progress view is done; later work reports nowhere
        return self

    @staticmethod
    def _suspect_cost(s: Suspect, spec: AuditSpec) -> float:
        """Expected cost of verifying ``s`` in epochs over the private data (a demo suspect is trained on its
        first run)."""
        if s.answers:
            return 0.05
        return 2 * PASS + (spec.config.train.epochs if makes_training(s.source, spec) else 0.0)

    @staticmethod
    def _suspect_title(s: Suspect) -> str:
        if s.answers:
            return f"Suspect {s.name}: reading its answers"
        if s.source.startswith("demo:"):
            return f"Suspect {s.name}: making the demo's suspect (or reading it), then verifying it"
        return f"Suspect {s.name}: loading and verifying it"

    def queries_zip(self) -> bytes:
        """The query images and queries.csv as one zip (what a black-box suspect must answer)."""
        import tempfile
        import zipfile

        from ..audit.answers import export_queries

        if self.audit is None:
            raise ConfigError("the query set exists once the audit has run")
        queries = self.audit.queries.images
        with tempfile.TemporaryDirectory() as tmp:
            export_queries(queries, tmp)
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for p in sorted(Path(tmp).rglob("*")):
                    if p.is_file():
                        z.write(p, p.relative_to(tmp).as_posix())
            return buf.getvalue()
