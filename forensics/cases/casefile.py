"""Cases that outlive a browser session: kept in the artifact store, listed, reopened from a record.

A case is saved as ``ROOT/cases/<id>.json``: the JSON audit record of :func:`case_report`
(when the audit has run) plus what the dashboard needs to show it again - the suspects still waiting
for a verdict, the model cards, the errors and the case's information (name, auditor, note).
:func:`reopen` turns such a file, or any audit record the CLI or the dashboard wrote, back into a
:class:`~forensics.cases.case.Case` with its verdicts: the audit's stages come from the store (computed only
when the store lacks them) and the verdicts from the record, so nothing the store holds is recomputed.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..audit.build import audit_stage_plan, open_audit
from ..audit.spec import AuditSpec
from ..audit.verdict import Verdict, headline
from ..errors import ConfigError, ForensicsError
from ..report.record import RECORD_FORMAT, build_report, now_iso, read_record, store_names
from ..runtime.access import NAME
from ..runtime.progress import Progress, emit
from ..runtime.store import ArtifactStore, write_json
from .case import Case, Suspect

CASES = "cases"
LOGS = "case-logs"
_ID = re.compile(r"^[0-9a-f]{12}$")


@dataclass(frozen=True)
class CaseSummary:
    """One line of the "recent audits" list."""

    id: str
    title: str
    updated: str
    suspects: int
    verdicts: int
    stolen: int

    @property
    def status(self) -> str:
        if self.verdicts:
            return f"{self.stolen} of {self.verdicts} flagged"
        return "set up, not run"


def case_path(store: ArtifactStore, case_id: str) -> Path:
    if not _ID.match(case_id or ""):
        raise ConfigError(f"{case_id!r} is not an audit id (12 hexadecimal characters, as in the address bar's "
                          "?audit=...)")
    return store.root / CASES / f"{case_id}.json"


def log_path(store: ArtifactStore, case_id: str) -> Path:
    """Where the log of the case's last build is kept (:mod:`forensics.cases.joblog`)."""
    return store.root / LOGS / case_path(store, case_id).name


def case_report(case: Case) -> dict[str, Any]:
    """The audit record of a :class:`~forensics.cases.case.Case` that has run."""
    pairs = case.ordered_verdicts()
    return build_report(case.opened, [(s.name, s.kind, v) for s, v in pairs],
                        sources={s.name: {"source": s.source, "revision": s.revision, "answers": s.answers,
                                          "query_set": s.query_set, "upload": s.upload} for s, _ in pairs},
                        info=case.info, errors=case.errors, created=case.ran_at)


def case_record(case: Case) -> dict[str, Any]:
    """Everything needed to show ``case`` again: the audit record (if it has run) and the dashboard's state."""
    if case.spec is None:
        raise ConfigError("an empty case (no victim loaded) is not saved")
    if case.audit is not None:
        rec = case_report(case)
    else:
        rec = {"format": RECORD_FORMAT, "spec": case.spec.to_dict(), "suspects": []}
    done = {s["name"] for s in rec["suspects"]}
    rec.update({
        "case_id": case.id,
        "case": dict(case.info),
        "updated": now_iso(),
        "order": [s.name for s in case.suspects],
        "pending": [s.to_dict() for s in case.suspects if s.name not in done],
        "cards": case.cards,
        "errors": dict(case.errors),
        "power": case.power,
        "owner": case.owner,
    })
    return rec


def save_case(store: ArtifactStore, case: Case) -> Path:
    """Write (or overwrite) the case's file in the store; atomic, so a reader never sees half of it."""
    path = case_path(store, case.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, store_names(case_record(case), store.root))  # uploads named store-relative
    return path


def run_case(case: Case, store: ArtifactStore, progress: Progress | None = None) -> Case:
    """:meth:`Case.run`, then save the case, so its verdicts outlive whoever started the run."""
    case.run(store, progress)
    save_case(store, case)
    return case


def load_record(store: ArtifactStore, case_id: str, *, owner: str | None = None) -> dict[str, Any]:
    """The saved case ``case_id``; ``owner``: on a shared dashboard, only a case that user created (another user's
    reads exactly as a missing one, so that ids cannot be probed)."""
    path = case_path(store, case_id)
    missing = ConfigError(f"no audit {case_id} in the artifact store {store.root}; it may have been deleted, or the "
                          "dashboard uses another store (FORENSICS_STORE). Reopen it from its audit.json instead")
    try:
        data = path.read_bytes()
    except OSError:
        raise missing from None
    rec = read_record(data, path.name, store=store.root)
    if owner is not None and rec.get("owner") != owner:
        raise missing
    return rec


def recent_cases(store: ArtifactStore, n: int = 10, *, owner: str | None = None) -> list[CaseSummary]:
    """The ``n`` most recently saved cases, newest first (unreadable files are skipped); ``owner``: on a shared
    dashboard, only that user's."""
    folder = store.root / CASES
    if not folder.is_dir():
        return []
    stamped = []
    for p in folder.glob("*.json"):
        try:
            stamped.append((p.stat().st_mtime, p))
        except OSError:  # deleted meanwhile
            continue
    out = []
    for _, p in sorted(stamped, reverse=True):
        try:
            rec = json.loads(p.read_text())
            spec = rec["spec"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if owner is not None and rec.get("owner") != owner:
            continue
        info = rec.get("case") or {}
        judged = [s for s in rec.get("suspects", []) if "p_value" in s]
        title = info.get("case_name") or ("Offline demo" if str(spec.get("victim", "")).startswith("demo:")
                                          else f"Victim {spec.get('victim')}")
        out.append(CaseSummary(p.stem, title, rec.get("updated") or rec.get("created", ""),
                               len(judged) + len(rec.get("pending", [])), len(judged),
                               sum(s.get("verdict") == "stolen" for s in judged)))
        if len(out) == n:
            break
    return out


def forget_case(store: ArtifactStore, case_id: str, *, owner: str | None = None) -> bool:
    """Remove the saved case ``case_id`` from the store's list of audits (its models and shadows stay in the store,
    shared with other audits); False when there was none (or, with ``owner``, none of that user's)."""
    path = case_path(store, case_id)
    if owner is not None:
        try:
            load_record(store, case_id, owner=owner)
        except ForensicsError:
            return False
    log_path(store, case_id).unlink(missing_ok=True)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _suspect(d: dict[str, Any]) -> Suspect:
    if not isinstance(d, dict) or not d.get("name") or not d.get("source"):
        what = d.get("name") if isinstance(d, dict) else d
        raise ConfigError(f"a suspect in the record has no name or source ({what!r}); it cannot be reopened")
    return Suspect(d["name"], d["source"], kind=d.get("kind"), revision=d.get("revision"), answers=d.get("answers"),
                   query_set=d.get("query_set"), upload=d.get("upload"))


def case_from_record(rec: dict[str, Any], *, case_id: str | None = None) -> Case:
    """The case a record describes, without its audit (the spec, suspects, cards, errors, information)."""
    try:
        spec = AuditSpec.from_dict(rec["spec"])
        listed = [_suspect(d) for d in [*rec.get("suspects", []), *rec.get("pending", [])]]
        suspects = {s.name: s for s in listed}
        order = [n for n in rec.get("order", []) if n in suspects] or list(suspects)
        case = Case(spec=spec, suspects=[suspects[n] for n in order], cards=dict(rec.get("cards") or {}),
                    errors=dict(rec.get("errors") or {}), info=dict(rec.get("case") or {}))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"the audit record is damaged ({type(e).__name__}: {e}); reopen it from the audit.json "
                          "you downloaded, or load the victim again") from e
    if case_id or rec.get("case_id"):
        case.id = case_id or rec["case_id"]
    if has_verdicts(rec):
        case.ran_at = rec.get("created")
    case.power = _power(rec.get("power"))
    owner = rec.get("owner")
    case.owner = owner if isinstance(owner, str) and NAME.match(owner) else None
    return case


MAX_POWER_ROWS = 500


def _power(power: Any) -> dict[str, Any] | None:
    """A record's stress-test summary, kept only as far as it has the expected shape (a record comes from anyone:
    anything else in it is dropped, never shown)."""
    if not isinstance(power, dict) or not isinstance(power.get("rows"), list):
        return None
    rows = []
    for r in power["rows"][:MAX_POWER_ROWS]:
        if not isinstance(r, dict):
            continue
        try:
            rows.append({"id": str(r.get("id", ""))[:200], "name": str(r["name"])[:200],
                         "group": str(r.get("group", ""))[:200], "kind": str(r.get("kind", ""))[:50],
                         "role": str(r["role"])[:50], "flagged": int(r["flagged"]), "runs": int(r["runs"]),
                         "median_p": None if r.get("median_p") is None else float(r["median_p"])})
        except (KeyError, TypeError, ValueError):
            continue
    try:
        alpha = float(power["alpha"])
    except (KeyError, TypeError, ValueError):
        return None
    build, ran_at = power.get("build"), power.get("ran_at")
    return {"protocol": str(power.get("protocol", ""))[:50], "alpha": alpha, "rows": rows,
            "build": build if isinstance(build, str) else None, "ran_at": ran_at if isinstance(ran_at, str) else None}


def has_verdicts(rec: dict[str, Any]) -> bool:
    return any("p_value" in s for s in rec.get("suspects", []))


def reopen(rec: dict[str, Any], store: ArtifactStore, progress: Progress | None = None, *,
           case_id: str | None = None) -> Case:
    """The case of ``rec`` with its audit (from the store; stages the store lacks are computed) and the recorded
    verdicts (not recomputed: ``holmes-forensics reverify`` does that).  Refuses when the rebuilt audit is not the
    recorded one (the victim, the data or the query set changed)."""
    case = case_from_record(rec, case_id=case_id)
    spec = case.require_spec()
    if progress is not None:
        progress(audit_stage_plan(spec, [("verdicts", "Reading the recorded verdicts")], {"verdicts": 0.05}))
    audit = open_audit(spec, store, progress)
    emit(progress, "verdicts", "start")
    recorded = rec.get("audit") or {}
    for what, mine, theirs in [
        ("victim", audit.victim.fingerprint, (recorded.get("victim") or {}).get("fingerprint")),
        ("query set", audit.queries.fingerprint, recorded.get("queries_fingerprint")),
    ]:
        if theirs is not None and mine != theirs:
            raise ConfigError(f"the audit rebuilt from this record has another {what} fingerprint ({mine[:12]} vs "
                              f"{theirs[:12]} recorded): the victim, its data or the settings changed since. Load the "
                              "victim again and re-run the audit, or check the record with `holmes-forensics "
                              "reverify`")
    verdicts = {}
    for d in rec.get("suspects", []):
        if "p_value" in d:
            verdicts[d["name"]] = Verdict.from_dict({"suspect": d["name"], **d})
    case.audit, case.verdicts = audit, verdicts
    if not case.cards:
        case.cards = {"victim": audit.victim.card(), "foundation": audit.foundation.card()}
    for s in case.suspects:
        if s.name in verdicts and s.name not in case.cards:
            case.cards[s.name] = ({"source": s.source, "answers": Path(s.answers).name,
                                   "label_only": verdicts[s.name].label_only} if s.answers
                                  else {"source": s.source, "fingerprint": verdicts[s.name].fingerprint})
    readings = [r for v in verdicts.values() if (r := v.under()) is not None]
    emit(progress, "verdicts", "done", headline(readings, audit.config.alpha))
    audit.engine.progress = None  # the reopening's progress view is done
    return case
