"""Command line: ``holmes-forensics`` (or ``python -m forensics``) ``{demo,audit,export-queries,verify,reverify}``."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from .errors import ConfigError, ForensicsError
from .protocols import DEFAULT_PROTOCOL, list_protocols, protocol_names
from .verify import format_p

log = logging.getLogger("forensics")


class ConsoleProgress:
    """Progress callback for the terminal: a tqdm bar per training run, a line per stage."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.bars: dict[str, Any] = {}

    def __call__(self, event: Any) -> None:
        from tqdm import tqdm

        from .progress import StageProgress
        from .training import TrainProgress

        if self.quiet:
            return
        if isinstance(event, StageProgress):
            if event.status == "done":
                print(f"  [{event.stage}] {event.detail or 'done'}", file=sys.stderr)
            return
        if isinstance(event, TrainProgress):
            bar = self.bars.get(event.label)
            if event.done and bar is None:
                print(f"  [{event.label}] reused from the artifact store", file=sys.stderr)
                return
            if bar is None:
                bar = self.bars[event.label] = tqdm(total=event.total_steps, desc=f"  {event.label}", leave=False,
                                                    file=sys.stderr, unit="step")
            bar.n = min(event.step, event.total_steps)
            bar.set_postfix(epoch=f"{event.epoch}/{event.epochs}", loss=f"{event.loss:.3f}",
                            acc=f"{event.accuracy:.3f}", refresh=False)
            bar.refresh()
            if event.done:
                bar.close()
                print(f"  [{event.label}] trained: loss {event.loss:.3f}, accuracy {event.accuracy:.3f}",
                      file=sys.stderr)
                del self.bars[event.label]


def print_table(rows: list[dict[str, Any]], alpha: float) -> None:
    head = (f"{'suspect':32s} {'kind':9s} {'p-value':>9s} {'dP':>7s}  {'verdict':11s} {'paper p':>9s} "
            f"{'paper verdict':13s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        dp = "-" if r.get("delta_p") is None else f"{r['delta_p']:+.3f}"
        print(f"{r['name'][:32]:32s} {str(r.get('kind') or '?'):9s} {format_p(r['p_value']):>9s} {dp:>7s}  "
              f"{r['verdict']:11s} {format_p(r.get('paper_p_value')):>9s} {str(r.get('paper_verdict') or '-'):13s}")
    print(f"(verdict at alpha = {alpha}; 'stolen' means p < alpha)")


def _add_common(p: argparse.ArgumentParser, *, seed: bool = True) -> None:
    p.add_argument("--store", type=Path,
                   help="artifact store folder (default $FORENSICS_STORE or ~/.cache/holmes-forensics)")
    if seed:
        p.add_argument("--seed", type=int, help="seed of every random choice (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _add_spec(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("audit (omit all of these to use the embedded demo victim)")
    g.add_argument("--record", type=Path, help="rebuild the audit from a JSON audit record")
    g.add_argument("--victim", help="hf-hub:ORG/NAME[@REV], local-dir:PATH, or a weights file")
    g.add_argument("--victim-revision")
    g.add_argument("--foundation", help="the pre-trained model the victim was fine-tuned from")
    g.add_argument("--foundation-revision")
    g.add_argument("--arch", help="timm architecture of weights files")
    g.add_argument("--data", help="the victim's private training data: a folder (one subfolder per class), a saved "
                                  "Hugging Face dataset (PATH?split=train), a .parquet/.arrow file, an imagefolder "
                                  "with metadata.csv, or a .csv of image paths and labels (?image=COL&label=COL)")
    g.add_argument("--heldout", help="unseen data from the same collection, in any of --data's forms (e.g. "
                                     "PATH?split=test of the same dataset)")
    g.add_argument("--input-size", type=int, help="override the model's input side length")
    g.add_argument("--gamma", type=float, help="fraction of lowest-loss samples in D_s (default 0.1)")
    g.add_argument("--lam", type=float, help="fraction of lowest-loss samples the benign shadow skips (default 0.5)")
    g.add_argument("--target-class", type=int, help="the poisoned shadow's target class (default 0)")
    g.add_argument("--epochs", type=int, help="epochs of the shadow models (the victim's recipe)")
    g.add_argument("--lr", type=float, help="learning rate of the shadow models")
    g.add_argument("--trainable-blocks", help="train the last N blocks + head, or 'all' (default 1)")
    g.add_argument("--protocol", choices=protocol_names(), help=f"verdict protocol (default {DEFAULT_PROTOCOL})")
    g.add_argument("--alpha", type=float, help="significance level of the verdict (default 0.01)")


def spec_from_args(args: argparse.Namespace):
    from .config import AuditConfig
    from .spec import AuditSpec

    if args.record:
        spec = read_record(args.record)[0]
    elif args.victim is None:
        given = [k for k in ("data", "heldout", "foundation", "arch", "input_size", "victim_revision",
                             "foundation_revision") if getattr(args, k)]
        if given:
            raise ConfigError(f"--{given[0].replace('_', '-')} needs --victim (or omit the audit options for the demo)")
        spec = AuditSpec.demo(args.seed or 0, protocol=args.protocol or DEFAULT_PROTOCOL)
    else:
        if not args.foundation or not args.data:
            raise ConfigError("an audit needs --victim, --foundation and --data (and --heldout for the default "
                              "membership protocol)")
        spec = AuditSpec(victim=args.victim, foundation=args.foundation, data=args.data, heldout=args.heldout,
                         victim_revision=args.victim_revision, foundation_revision=args.foundation_revision,
                         arch=args.arch, input_size=args.input_size,
                         config=AuditConfig(seed=args.seed or 0, protocol=args.protocol or DEFAULT_PROTOCOL))
    cfg = spec.config
    train, poison = cfg.train, cfg.poison_train
    if args.epochs is not None:
        train = replace(train, epochs=args.epochs)
    if args.lr is not None:  # the same learning rate and fine-tuning depth for every shadow, as in the dashboard
        train, poison = replace(train, lr=args.lr), replace(poison, lr=args.lr)
    if args.trainable_blocks is not None:
        if args.trainable_blocks != "all" and not args.trainable_blocks.isdigit():
            raise ConfigError(f"--trainable-blocks must be a number or 'all', not {args.trainable_blocks!r}")
        tb = None if args.trainable_blocks == "all" else int(args.trainable_blocks)
        train, poison = replace(train, trainable_blocks=tb), replace(poison, trainable_blocks=tb)
    over = {k: getattr(args, k) for k in ("gamma", "lam", "target_class", "alpha") if getattr(args, k) is not None}
    if getattr(args, "budget", None) is not None:
        over["query_budget"] = args.budget
    if args.protocol:
        over["protocol"] = args.protocol
    if args.record and args.seed is not None and args.seed != cfg.seed:
        raise ConfigError(f"--seed {args.seed}: the record's audit has seed {cfg.seed}, and its query set depends on "
                          "it; drop --seed to verify against the recorded audit, or build a new audit without --record")
    spec.config = replace(cfg, train=train, poison_train=poison, **over)
    spec.device = args.device
    return spec


def read_record(path: Path):
    """(spec, record) of a JSON audit record, with a clear error when it is not one."""
    from .spec import AuditSpec

    try:
        rec = json.loads(Path(path).read_text())
        return AuditSpec.from_dict(rec["spec"]), rec
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not a readable audit record ({type(e).__name__}: {e}); give the JSON that "
                          "the dashboard, `audit --json` or `export-queries` wrote") from e


def cmd_demo(args) -> int:
    from .demo import run_demo
    from .report import build_report
    from .store import ArtifactStore

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
        _write_report(args, rep, res.audit, [r.verdict for r in res.suspects])
    return 0


def _write_report(args, record: dict, audit, verdicts) -> None:
    """``--html`` and ``--pdf`` of a command: the report rendered once, the PDF after the HTML (a missing browser
    costs only the PDF)."""
    from .report import audit_figures, audit_takeaways, render_html, render_pdf

    html = render_html(record, audit_figures(audit, verdicts), audit_takeaways(audit, verdicts))
    if args.html:
        Path(args.html).write_text(html, encoding="utf-8")
        print(f"wrote {args.html}")
    if args.pdf:
        Path(args.pdf).write_bytes(render_pdf(html))
        print(f"wrote {args.pdf}")


def _open(args):
    from .spec import open_audit
    from .store import ArtifactStore

    spec = spec_from_args(args)
    return open_audit(spec, ArtifactStore(args.store) if args.store else None, ConsoleProgress(args.quiet))


def _verdict_rows(pairs) -> list[dict[str, Any]]:
    rows = []
    for name, kind, v in pairs:
        paper = v.under("paper")
        rows.append({"name": name, "kind": kind, **v.to_dict(),
                     "paper_p_value": None if paper is None else paper.p_value,
                     "paper_verdict": None if paper is None else paper.verdict})
    return rows


def cmd_audit(args) -> int:
    from .case import Case, Suspect, store_answers
    from .report import case_report
    from .sources import known_kind
    from .store import ArtifactStore

    store = ArtifactStore(args.store) if args.store else ArtifactStore()
    case = Case(spec=spec_from_args(args))
    # answers to an exported query set must meet the same query set: the record names it
    query_set = read_record(args.record)[1].get("audit", {}).get("queries_fingerprint") if args.record else None
    for src in args.suspect or []:
        case.add_suspect(Suspect(src, src, kind=known_kind(src)))
    for path in args.logits or []:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"logits file {str(p)!r} does not exist")
        case.add_suspect(Suspect(p.name, f"answers:{p.name}", answers=store_answers(store, p.read_bytes(), p.name),
                                 query_set=query_set))
    case.run(store, ConsoleProgress(args.quiet))
    for name, err in case.errors.items():
        print(f"error: suspect {name}: {err}", file=sys.stderr)
    a = case.audit
    s = a.summary()
    print(f"\nvictim {s['victim']['source']} ({s['victim']['arch']}, {s['victim']['fingerprint'][:12]}); "
          f"D_s {s['d_s_size']}; poisoned shadow attack success {s['poison_success']:.2f}; "
          f"meta-classifier validation accuracy {s['meta_val_accuracy']:.2f}")
    pairs = [(e.name, e.kind, v) for e, v in case.ordered_verdicts()]
    if pairs:
        print_table(_verdict_rows(pairs), a.config.alpha)
    else:
        print("no suspects given (--suspect SRC or --logits FILE); stages 1-2 are ready in the store")
    rep = case_report(case)
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))
        print(f"wrote {args.json}")
    if args.html or args.pdf:
        _write_report(args, rep, a, [v for _, _, v in pairs])
    return 2 if case.errors else 0


def cmd_reverify(args) -> int:
    """Re-run every verification of a JSON audit record and compare the p-values."""
    from .case import Case, Suspect
    from .store import ArtifactStore

    spec, rec = read_record(args.record)
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
            print(f"{r['name'][:32]:32s} {r['p_value']:12.4e} {'failed':>13s}  NO ({case.errors.get(r['name'])})")
            same = False
            continue
        ok = v.p_value == r["p_value"] or abs(v.p_value - r["p_value"]) <= 1e-9 * max(abs(r["p_value"]), 1e-300)
        same &= ok
        print(f"{r['name'][:32]:32s} {r['p_value']:12.4e} {v.p_value:13.4e}  {'yes' if ok else 'NO'}")
    if case.audit.victim.fingerprint != rec["audit"]["victim"]["fingerprint"]:
        print("the victim's fingerprint differs from the record: the victim model changed")
        same = False
    if recorded:
        print("all p-values reproduced" if same else "MISMATCH: the record could not be reproduced")
    elif not same:
        print("MISMATCH: the record could not be reproduced")
    return 0 if same else 1


def cmd_scan(args) -> int:
    """Verify every suspect of a list against the audit of a record, a JSON line each, resumable."""
    from . import distributed
    from .progress import format_seconds
    from .scan import read_suspect_list, scan, scan_ray
    from .spec import open_audit
    from .store import ArtifactStore
    from .verify import format_p

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: give at least 1")
    if args.workers is not None and not args.ray:
        raise ConfigError("--workers needs --ray ADDRESS (without --ray the suspects are verified in this process)")
    if distributed.launched():
        raise ConfigError("scan trains nothing: run it without torchrun (use --ray to spread the suspects over "
                          "machines)")
    spec, rec = read_record(args.record)
    spec.device = args.device
    suspects = read_suspect_list(args.suspects)
    out = Path(args.out) if args.out else Path(args.record).with_suffix(".scan.jsonl")
    counts: dict[str, int] = {}
    start = time.perf_counter()

    def show(row, i, n):
        counts[row.status] = counts.get(row.status, 0) + 1
        what = f"p = {format_p(row.p_value)}  {row.verdict}" if row.p_value is not None else f"ERROR {row.error}"
        spent = time.perf_counter() - start
        left = f", ~{format_seconds(spent / i * (n - i))} left" if i < n else ""
        print(f"[{i}/{n}] {row.status:8s} {what}  {row.suspect}  ({format_seconds(spent)}{left})", flush=True)

    if args.ray:
        qfp = (rec.get("audit") or {}).get("queries_fingerprint")
        if not qfp:
            raise ConfigError(f"{args.record} has no query-set fingerprint (audit.queries_fingerprint); write the "
                              "record again with this version (audit --json, export-queries or the dashboard)")
        from .fanout import connect

        connect(args.ray, args.workers)  # before the audit: an unreachable cluster is said at once
        store = ArtifactStore(args.store) if args.store else ArtifactStore()
        # the audit's stages are in the store (or built here once), so that no worker trains them
        audit = open_audit(spec, store, ConsoleProgress(args.quiet))
        if audit.queries.fingerprint != qfp:
            raise ConfigError(f"the audit opened from {args.record} has another query set than the record says; the "
                              "store or the package version differs from the one that wrote it")
        alpha = audit.config.alpha
        rows = list(scan_ray(spec.to_dict(), qfp, suspects, out, store_root=store.root.resolve(), address=args.ray,
                             precision=audit.engine.precision, workers=args.workers, on_row=show))
    else:
        audit = open_audit(spec, ArtifactStore(args.store) if args.store else None, ConsoleProgress(args.quiet))
        alpha = audit.config.alpha
        rows = list(scan(audit, suspects, out, on_row=show))
    flagged = sum(r.verdict == "stolen" for r in rows)
    print(f"{len(rows)} suspects in {format_seconds(time.perf_counter() - start)}: {counts.get('verified', 0)} "
          f"verified, {counts.get('reused', 0)} reused from {out.name}, {counts.get('failed', 0)} failed; {flagged} "
          f"with evidence of derivation at alpha = {alpha:g}. Lines in {out}")
    return 2 if counts.get("failed") else 0


def cmd_export(args) -> int:
    from .answers import export_queries
    from .report import build_report

    audit = _open(args)
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


def _machine() -> str:
    import os
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}"


def _bench(args, stress: bool) -> int:
    import datetime

    from . import bench as b
    from .sources import load_data
    from .spec import open_audit
    from .store import ArtifactStore

    store = ArtifactStore(args.store) if args.store else ArtifactStore()
    progress = ConsoleProgress(args.quiet)
    seeds = args.seeds or ([0] if args.small else [0, 1, 2])
    default = b.STRESS_ZOO if stress else (b.SMALL_ZOO if args.small else None)
    entries = b.zoo_entries(args.attacks or default)
    t = time.perf_counter()
    if getattr(args, "ray", None) and args.record:
        raise ConfigError("bench --ray builds the demo's zoo; a benchmark of an audit record (--record) runs in "
                          "this process: drop --ray")
    if args.record:
        if not args.thief_data or not args.innocent_data:
            raise ConfigError("a stress test of your own victim needs --thief-data (images a thief would use) and "
                              "--innocent-data (images of the same kind an honest party would train on), both disjoint "
                              "from the audit's private and held-out data")
        spec = read_record(args.record)[0]
        spec.device = args.device
        audit = open_audit(spec, store, progress)
        classes = audit.private.classes
        thief = load_data(args.thief_data, classes=classes, quick=spec.quick)
        innocent = load_data(args.innocent_data, classes=classes, quick=spec.quick)
        test = load_data(args.test_data, classes=classes, quick=spec.quick) if args.test_data else None
        audits = contexts = None
        meta = {"victim": audit.victim.source, "seeds": seeds, "record": str(args.record)}
    else:
        if stress:
            raise ConfigError("give --record AUDIT.json: the stress test simulates thefts of the victim of that audit "
                              "(use `bench` for the demo victim)")
        audits, contexts = b.demo_contexts(seeds, store, quick=args.small, progress=progress)
        meta = b.demo_meta(seeds, args.small)
    meta.update(date=datetime.datetime.now().isoformat(timespec="seconds"), machine=_machine(),
                entries=[e.name for e in entries])
    times = {"audits": time.perf_counter() - t}
    def header():
        if not args.quiet:
            print(f"\n{'suspect':46s} {'kind':8s} {'agree':>5s} " + " ".join(
                f"{p.name[:10]:>10s}" for p in list_protocols(baselines=not args.no_baselines)), flush=True)

    def show(r):
        e = r.verdict.evidence
        print(f"{r.entry.name[:38] + f' #{r.seed}':46s} {r.entry.kind:8s} {r.agreement:5.2f} " + " ".join(
            f"{format_p(e.get(p.name, {}).get('p_value')):>10s}"
            for p in list_protocols(baselines=not args.no_baselines)), flush=True)

    if audits is None:
        header()
        result = b.stress_test(audit, thief, innocent, entries, seeds, test=test,
                               other_foundation=args.other_foundation, baselines=not args.no_baselines,
                               budgets=() if stress else b.BUDGETS,
                               on_result=None if args.quiet else show)
        for why in result.meta["skipped"]:
            print(f"skipped {why}", file=sys.stderr)
        result.times["audits"] = times["audits"]
    else:
        if getattr(args, "ray", None):
            t_ray = time.perf_counter()
            failed = b.fan_out_zoo(entries, seeds, quick=args.small, store_root=store.root.resolve(),
                                   baselines=not args.no_baselines, address=args.ray, workers=args.workers,
                                   on_done=None if args.quiet else lambda o: print(
                                       f"  built {o.item[1]} #{o.item[0]} on a Ray worker in {o.seconds:.1f} s"
                                       + (f" - FAILED: {o.error} (built here instead)" if o.error else ""),
                                       flush=True))
            times["zoo on Ray"] = time.perf_counter() - t_ray
            for why in failed:
                print(f"a Ray task failed, built in this process instead: {why}", file=sys.stderr)
        header()
        result = b.run_bench(audits, contexts, entries, seeds, baselines=not args.no_baselines,
                             on_result=None if args.quiet else show, times=times)
    result.times["total"] = time.perf_counter() - t
    result.meta = {**result.meta, **meta}
    paths = b.write_bench(result, args.out)
    print("\n" + paths["markdown"].read_text())
    if stress:
        print(b.stress_summary(result, read_record(args.record)[1], alpha=audit.config.alpha))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_bench(args) -> int:
    return _bench(args, stress=False)


def cmd_stress(args) -> int:
    return _bench(args, stress=True)


def build_parser() -> argparse.ArgumentParser:
    prog = "python -m forensics" if Path(sys.argv[0]).name == "__main__.py" else Path(sys.argv[0]).name
    p = argparse.ArgumentParser(prog=prog, description="Holmes forensics: prove with a p-value "
                                "that a suspect model was derived from yours.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the embedded offline demo audit")
    _add_common(d)
    d.add_argument("--json", type=Path, help="write the results as JSON")
    d.add_argument("--html", type=Path, help="write a self-contained HTML report")
    d.add_argument("--pdf", type=Path, help="write the report as PDF (printed by headless Chromium)")
    d.add_argument("--protocol", default=DEFAULT_PROTOCOL, choices=protocol_names())
    d.add_argument("--quick", action="store_true", help="a reduced demo (smaller data, fewer epochs) for smoke tests")
    for name, fn, hlp in (("audit", cmd_audit, "build an audit and verify suspects"),
                          ("export-queries", cmd_export, "write the query set a black-box suspect must answer"),
                          ("verify", cmd_verify, "verify suspects (models or logits files)")):
        s = sub.add_parser(name, help=hlp)
        _add_common(s)
        _add_spec(s)
        if name == "export-queries":
            s.add_argument("--out", required=True, type=Path, help="output folder")
            s.add_argument("--budget", type=int, help="at most N queries: members and controls of the membership test "
                           "drawn at random (the Holmes protocols, which need D_s, are then unavailable)")
        else:
            s.add_argument("--suspect", action="append", help="a suspect model source (repeatable)")
            s.add_argument("--logits", action="append", help="a suspect's answers on the queries, CSV or .npy")
            s.add_argument("--json", type=Path, help="write the JSON audit record")
            s.add_argument("--html", type=Path, help="write a self-contained HTML report")
            s.add_argument("--pdf", type=Path, help="write the report as PDF (printed by headless Chromium)")
        s.set_defaults(fn=fn)
    d.set_defaults(fn=cmd_demo)
    for name, fn, hlp in (
            ("bench", cmd_bench, "build the attack zoo for the demo victim (or --record's), run every protocol and "
             "baseline, write JSON, markdown and ROC figures"),
            ("stress", cmd_stress, "if someone stole my model this way, would this audit catch it? simulated thefts "
             "and innocents of the victim of --record")):
        s = sub.add_parser(name, help=hlp)
        _add_common(s, seed=False)
        s.add_argument("--record", type=Path, help="a JSON audit record: its victim is the one attacked "
                       "(default for bench: the demo victim)")
        s.add_argument("--thief-data", help="images the simulated thieves train on (one subfolder per class), "
                       "never the audit's private or held-out data")
        s.add_argument("--innocent-data", help="images of the same kind the simulated innocent models train on")
        s.add_argument("--test-data", help="labelled images to measure fidelity on (default: --innocent-data)")
        s.add_argument("--other-foundation", help="another pre-trained model for the students of another foundation")
        s.add_argument("--attacks", nargs="+", help="zoo entries by name, or 'all' (default: "
                       + ("a standard set of 15" if name == "stress" else "all; with --small, 6") + ")")
        s.add_argument("--seeds", type=int, nargs="+", help="attack seeds (default 0 1 2; with --small, 0)")
        s.add_argument("--small", action="store_true", help="the reduced demo and 6 suspects (what the tests run)")
        s.add_argument("--no-baselines", action="store_true", help="only the audit's own protocols")
        if name == "bench":
            s.add_argument("--ray", metavar="ADDRESS", help="build the zoo's suspects as Ray tasks first (auto, "
                                                            "HOST:6379, ray://HOST:10001 or local), then sum up here")
            s.add_argument("--workers", type=int, help="with --ray: at most N zoo entries at a time")
        s.add_argument("--out", type=Path, default=Path(f"{name}-out"), help=f"output folder (default {name}-out)")
        s.set_defaults(fn=fn)
    sc = sub.add_parser("scan", help="verify many suspects (a file, one source per line) against an audit record, "
                                     "resumable")
    sc.add_argument("--record", type=Path, required=True, help="the JSON audit record (audit --json, export-queries "
                                                               "or the dashboard)")
    sc.add_argument("--suspects", type=Path, required=True,
                    help="a text file: one suspect per line (hf-hub:ORG/NAME[@REV], local-dir:PATH, a weights file, "
                         "an answers .csv/.npy); # comments")
    sc.add_argument("--out", help="the JSON-lines output (default RECORD.scan.jsonl); suspects already in it for the "
                                  "same audit are not verified again")
    sc.add_argument("--ray", metavar="ADDRESS", help="verify the suspects as Ray tasks: auto (the cluster of this "
                                                     "machine), HOST:6379 or ray://HOST:10001, or local (start Ray "
                                                     "here); the store must be at the same path on every node")
    sc.add_argument("--workers", type=int, help="with --ray: at most N suspects at a time (default: one per GPU of the "
                                                "cluster, or per CPU)")
    _add_common(sc, seed=False)
    sc.set_defaults(fn=cmd_scan)
    r = sub.add_parser("reverify", help="re-run the verifications of a JSON audit record and compare p-values")
    r.add_argument("record", type=Path, help="the JSON audit record (dashboard download or audit --json)")
    _add_common(r, seed=False)
    r.set_defaults(fn=cmd_reverify)
    return p


def _torchrun_follower(args) -> bool:
    """Under torchrun every worker runs the command (they train together, see :mod:`forensics.distributed`); rank 0
    prints and writes the outputs, the others run silent and write theirs to a scratch folder that is thrown away."""
    from . import distributed

    if not distributed.launched() or distributed.rank_from_launcher() == 0:
        return False
    import atexit
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix=f"forensics-rank{distributed.rank_from_launcher()}-"))
    atexit.register(shutil.rmtree, scratch, True)
    for name in ("json", "html", "pdf", "out"):
        if getattr(args, name, None) is not None:
            setattr(args, name, scratch / Path(str(getattr(args, name))).name)
    args.quiet = True
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of this worker's life
    return True


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    _torchrun_follower(args)
    try:
        return args.fn(args)
    except ForensicsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished stages are kept in the artifact store; re-run to resume", file=sys.stderr)
        return 130
