"""The audit commands: ``demo`` (the embedded offline demo), ``audit`` (build an audit and verify suspects),
``export-queries`` (the query set a black-box suspect must answer), ``verify`` (suspects against a record),
``reverify`` (re-run every verification of a record and compare the p-values) and ``digest`` (the SHA-256 a report
states for a record, or a report's own, checked)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ConfigError
from ..runtime.access import allowed_path
from ..runtime.safe_text import terminal_text
from .common import (
    ConsoleProgress,
    open_from_args,
    print_table,
    spec_and_record,
    spec_from_args,
    verdict_rows,
    write_report,
)


def cmd_demo(args) -> int:
    from ..demo.runner import run_demo
    from ..report.record import build_report
    from ..runtime.store import ArtifactStore

    seed = args.seed or 0
    res = run_demo(seed, store=ArtifactStore(args.store) if args.store else None,
                   progress=ConsoleProgress(args.quiet), protocol=args.protocol, device=args.device, quick=args.quick)
    d = res.to_dict()
    print(f"\nHolmes forensics demo (seed {seed}): victim test accuracy {res.victim_test_accuracy:.3f}, "
          f"protocol {res.audit.config.protocol}")
    print_table(d["suspects"], res.audit.config.alpha)
    if args.json:
        Path(args.json).write_text(json.dumps(d, indent=2))
        print(f"wrote {args.json}")
    if args.html or args.pdf:
        rep = build_report(res.audit, [(r.suspect.name, r.kind, r.verdict) for r in res.suspects],
                           sources={r.suspect.name: {"source": r.suspect.source} for r in res.suspects})
        write_report(args, rep, res.audit, [r.verdict for r in res.suspects])
    return 0


def cmd_audit(args) -> int:
    from ..audit.sources import known_kind
    from ..cases.case import Case, Suspect
    from ..cases.casefile import case_report
    from ..cases.uploads import store_answers
    from ..runtime.store import ArtifactStore

    store = ArtifactStore(args.store) if args.store else ArtifactStore()
    case = Case(spec=spec_from_args(args))
    # answers to an exported query set must meet the same query set: the record names it
    rec = spec_and_record(args.record, args.store)[1] if args.record else {}
    query_set = rec.get("audit", {}).get("queries_fingerprint")
    for src in args.suspect or []:
        case.add_suspect(Suspect(src, src, kind=known_kind(src)))
    for path in args.logits or []:
        p = allowed_path(path, "answers file")
        if not p.is_file():
            raise ConfigError(f"logits file {str(p)!r} does not exist")
        case.add_suspect(Suspect(p.name, f"answers:{p.name}", answers=store_answers(store, p.read_bytes(), p.name),
                                 query_set=query_set))
    case.run(store, ConsoleProgress(args.quiet))
    for name, err in case.errors.items():
        print(f"error: suspect {terminal_text(name)}: {terminal_text(err, lines=True)}", file=sys.stderr)
    a = case.opened
    s = a.summary()
    print(f"\nvictim {s['victim']['source']} ({s['victim']['arch']}, {s['victim']['fingerprint'][:12]}); "
          f"D_s {s['d_s_size']}; poisoned shadow attack success {s['poison_success']:.2f}; "
          f"meta-classifier validation accuracy {s['meta_val_accuracy']:.2f}")
    pairs = [(e.name, e.kind, v) for e, v in case.ordered_verdicts()]
    if pairs:
        print_table(verdict_rows(pairs), a.config.alpha)
    else:
        print("no suspects given (--suspect SRC or --logits FILE); stages 1-2 are ready in the store")
    rep = case_report(case)
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))
        print(f"wrote {args.json}")
    if args.html or args.pdf:
        write_report(args, rep, a, [v for _, _, v in pairs])
    return 2 if case.errors else 0


def cmd_reverify(args) -> int:
    """Re-run every verification of a JSON audit record and compare the p-values."""
    from ..cases.case import Case, Suspect
    from ..runtime.store import ArtifactStore

    spec, rec = spec_and_record(args.record, getattr(args, "store", None))
    recorded = rec.get("suspects", [])
    spec.device = args.device
    case = Case(spec=spec)
    for r in recorded:
        if not r.get("source"):
            raise ConfigError(f"suspect {r.get('name')!r} in the record has no source; it cannot be re-verified")
        case.add_suspect(Suspect(r["name"], r["source"], kind=r.get("kind"), revision=r.get("revision"),
                                 answers=r.get("answers"), query_set=r.get("query_set")))
    case.run(ArtifactStore(args.store) if args.store else ArtifactStore(), ConsoleProgress(args.quiet))
    if not recorded:
        print("the record holds no suspects: the audit was rebuilt, there is nothing to re-verify")
    same = True
    print(f"{'suspect':32s} {'recorded p':>12s} {'recomputed p':>13s}  match")
    for r in recorded:
        v = case.verdicts.get(r["name"])
        if v is None:
            print(f"{terminal_text(r['name'])[:32]:32s} {r['p_value']:12.4e} {'failed':>13s}  NO "
                  f"({terminal_text(case.errors.get(r['name']))})")
            same = False
            continue
        ok = v.p_value == r["p_value"] or abs(v.p_value - r["p_value"]) <= 1e-9 * max(abs(r["p_value"]), 1e-300)
        same &= ok
        print(f"{terminal_text(r['name'])[:32]:32s} {r['p_value']:12.4e} {v.p_value:13.4e}  {'yes' if ok else 'NO'}")
    if case.opened.victim.fingerprint != rec["audit"]["victim"]["fingerprint"]:
        print("the victim's fingerprint differs from the record: the victim model changed")
        same = False
    if recorded:
        print("all p-values reproduced" if same else "MISMATCH: the record could not be reproduced")
    elif not same:
        print("MISMATCH: the record could not be reproduced")
    return 0 if same else 1


def cmd_export(args) -> int:
    from ..audit.answers import export_queries
    from ..report.record import build_report

    audit = open_from_args(args)
    out = Path(args.out)
    csv = export_queries(audit.queries.images, out)
    rec = build_report(audit, [])
    (out / "audit.json").write_text(json.dumps(rec, indent=1))
    print(f"wrote {len(audit.queries)} query images and {csv}; send the images to the suspect in that order, "
          f"save its logits (one row per query) as CSV or .npy, then run:\n  holmes-forensics verify --record "
          f"{out / 'audit.json'} --logits ANSWERS.csv")
    return 0


def cmd_verify(args) -> int:
    if not args.logits and not args.suspect:
        raise ConfigError("give --logits FILE (black-box answers) or --suspect SOURCE (a model)")
    return cmd_audit(args)


MAX_DIGEST_MB = 512  # a report with its figures is a few MB; anything far larger is not one


def cmd_digest(args) -> int:
    """The SHA-256 of an audit record's content (what its report states), or an HTML report's own SHA-256 checked
    against its content: exit status 1 when the report was changed after it was written."""
    from ..report.html import report_digest
    from ..report.record import record_digest

    path: Path = args.file
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ConfigError(f"cannot read {path} ({e.strerror or e}); give an audit.json or an HTML report") from e
    if size > MAX_DIGEST_MB * 2**20:
        raise ConfigError(f"{path} is {size / 2**20:.0f} MB, larger than any audit record or report "
                          f"({MAX_DIGEST_MB} MB at most); give an audit.json or an HTML report")
    data = path.read_bytes()
    if data.startswith(b"%PDF"):
        raise ConfigError(f"{path} is a PDF: its first page states the SHA-256 of the HTML report it was printed "
                          "from; check that HTML report, or the audit.json (whose SHA-256 it also states)")
    if data.lstrip()[:1] == b"{":
        try:
            rec = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path} is not JSON ({e}); give the audit.json the dashboard or the CLI wrote") from e
        if not isinstance(rec, dict) or not str(rec.get("format", "")).startswith("holmes-forensics audit record"):
            raise ConfigError(f"{path} is not a Holmes forensics audit record; give the audit.json the dashboard "
                              "(5 · Report) or the CLI (--json) wrote")
        print(f"audit record SHA-256: {record_digest(rec)}")
        return 0
    stated, computed = report_digest(data.decode("utf-8", "replace"))
    if stated is None:
        raise ConfigError(f"{path} states no SHA-256: it is not a Holmes forensics HTML report (or one written "
                          "before reports stated their SHA-256); give an audit.json or an HTML report")
    if stated == computed:
        print(f"report SHA-256: {computed} (as the report states: unchanged since it was written)")
        return 0
    print(f"report SHA-256: {computed}, but the report states {stated}: it was changed after it was written",
          file=sys.stderr)
    return 1
