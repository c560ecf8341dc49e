"""One user's audit in progress, independent of any UI: what the dashboard keeps per browser session.

A :class:`Workspace` holds the audit spec, the suspects (models or uploaded answers), and once
:func:`run_workspace` has run (usually as a background job) the audit session and the verdicts.
Suspects given as answer files are copied into the artifact store under their SHA-256, so the audit
record can name them and ``python -m forensics reverify`` can find them again.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from .audit import Verdict, verify_model, verify_outputs
from .engine import accuracy
from .errors import ConfigError, ForensicsError, LogitsFileError
from .spec import AuditSession, AuditSpec, load_suspect, open_audit
from .store import ArtifactStore

UPLOADS = "uploads"


@dataclass
class SuspectEntry:
    """A suspect: a model source (``hf-hub:``, ``local-dir:``, file, ``demo:``) or an answers file."""

    name: str
    source: str
    kind: str | None = None           # "stolen" / "innocent" when known (demo), else None
    revision: str | None = None
    answers: str | None = None        # path of a stored answers file (.npy / .csv)
    query_set: str | None = None      # fingerprint of the query set the answers respond to, when known

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "kind": self.kind, "revision": self.revision,
                "answers": self.answers, "query_set": self.query_set}


@dataclass
class Workspace:
    spec: AuditSpec | None = None
    suspects: list[SuspectEntry] = field(default_factory=list)
    session: AuditSession | None = None
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)   # suspect name -> why it could not be verified

    def add_suspect(self, entry: SuspectEntry) -> None:
        if any(s.name == entry.name for s in self.suspects):
            raise ConfigError(f"a suspect named {entry.name!r} is already in the list; remove it or pick another name")
        self.suspects.append(entry)

    def remove_suspect(self, name: str) -> None:
        self.suspects = [s for s in self.suspects if s.name != name]
        self.verdicts.pop(name, None)
        self.cards.pop(name, None)

    def ordered_verdicts(self) -> list[tuple[SuspectEntry, Verdict]]:
        return [(s, self.verdicts[s.name]) for s in self.suspects if s.name in self.verdicts]


def store_answers(store: ArtifactStore, data: bytes, filename: str) -> str:
    """Keep an uploaded answers file in the store (content-addressed); return its path."""
    suffix = Path(filename).suffix.lower()
    if suffix not in (".csv", ".npy"):
        raise LogitsFileError(f"{filename!r}: upload the suspect's answers as .csv or .npy")
    digest = hashlib.sha256(data).hexdigest()
    folder = store.root / UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}{suffix}"
    if not path.exists():
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return str(path)


def demo_kind(source: str) -> str | None:
    """'stolen' / 'innocent' for a demo suspect source, else None (unknown)."""
    from .attacks import ATTACKS
    from .demo import SUSPECTS_BY_KEY

    s = SUSPECTS_BY_KEY.get(source[len("demo:"):]) if source.startswith("demo:") else None
    return ATTACKS[s.attack].kind if s else None


def demo_workspace(seed: int = 0, *, quick: bool = False) -> Workspace:
    """The embedded demo: its spec and its six suspects."""
    from .attacks import ATTACKS
    from .demo import DEMO_SUSPECTS

    ws = Workspace(spec=AuditSpec.demo(seed, quick=quick))
    for s in DEMO_SUSPECTS:
        ws.suspects.append(SuspectEntry(s.name, f"demo:{s.key}", kind=ATTACKS[s.attack].kind))
    return ws


def run_workspace(ws: Workspace, store: ArtifactStore, progress=None) -> Workspace:
    """Build (or reuse) the audit and verify every suspect; fills ``ws.session``, ``verdicts``, ``cards``."""
    from .io import read_outputs

    if ws.spec is None:
        raise ConfigError("no victim loaded yet: load the demo or your own victim first")
    session = open_audit(ws.spec, store, progress)
    a, eng = session.audit, session.engine
    ref = session.data.get("heldout")
    if ws.spec.is_demo:
        from .demo import demo_data
        ref = demo_data(ws.spec.quick)["test"]

    def card(model) -> dict[str, Any]:
        c = model.card()
        if ref is not None:
            c["accuracy"] = accuracy(eng.logits(model, ref), ref.labels)
            c["accuracy_on"] = "demo test set" if ws.spec.is_demo else "held-out set"
        return c

    cards = {"victim": card(a.victim), "foundation": a.foundation.card(), "poisoned shadow": card(a.poisoned),
             "benign shadow": card(a.benign)}
    if a.reference is not None:
        cards["reference shadow"] = card(a.reference)
    verdicts: dict[str, Verdict] = {}
    errors: dict[str, str] = {}
    for s in ws.suspects:
        try:  # one bad suspect does not cost the others their verdicts
            if s.answers:
                if s.query_set and s.query_set != a.queries.fingerprint:
                    raise LogitsFileError(
                        "these answers respond to another query set (the audit's victim, data or settings changed "
                        "since the query set was exported); export the new query set and query the suspect again")
                out = read_outputs(s.answers, len(a.queries), a.num_classes)
                verdicts[s.name] = verify_outputs(a, out, s.name)
                cards[s.name] = {"source": s.source, "answers": Path(s.answers).name,
                                 "label_only": verdicts[s.name].label_only}
            else:
                model = load_suspect(session, s.source, revision=s.revision, progress=progress)
                verdicts[s.name] = verify_model(a, eng, model, name=s.name)
                cards[s.name] = card(model)
        except ForensicsError as e:
            errors[s.name] = str(e)
        except Exception as e:  # noqa: BLE001 - one broken suspect must not cost the others their verdicts
            errors[s.name] = f"unexpected error: {type(e).__name__}: {e}"
    ws.session, ws.verdicts, ws.cards, ws.errors = session, verdicts, cards, errors
    return ws


def queries_zip(ws: Workspace) -> bytes:
    """The query images and queries.csv as one zip (what the suspect's API must answer)."""
    import tempfile
    import zipfile

    from .io import export_queries

    with tempfile.TemporaryDirectory() as tmp:
        export_queries(ws.session.audit.queries, tmp)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(Path(tmp).rglob("*")):
                if p.is_file():
                    z.write(p, p.relative_to(tmp).as_posix())
        return buf.getvalue()
