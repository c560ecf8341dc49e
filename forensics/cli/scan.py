"""``holmes-forensics scan``: many suspects against one audit record, a JSON line each as soon as it is known,
resumable, in this process or as Ray tasks (``--ray``)."""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import ConfigError
from ..runtime.safe_text import terminal_text
from .common import ConsoleProgress, spec_and_record


def cmd_scan(args) -> int:
    """Verify every suspect of a list against the audit of a record, a JSON line each, resumable."""
    from ..audit.build import open_audit
    from ..audit.verdict import format_p
    from ..cases.scan import read_suspect_list, scan, scan_ray
    from ..runtime import distributed
    from ..runtime.progress import format_seconds
    from ..runtime.store import ArtifactStore

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: give at least 1")
    if args.workers is not None and not args.ray:
        raise ConfigError("--workers needs --ray ADDRESS (without --ray the suspects are verified in this process)")
    if distributed.launched():
        raise ConfigError("scan trains nothing: run it without torchrun (use --ray to spread the suspects over "
                          "machines)")
    spec, rec = spec_and_record(args.record, getattr(args, "store", None))
    spec.device = args.device
    suspects = read_suspect_list(args.suspects)
    out = Path(args.out) if args.out else Path(args.record).with_suffix(".scan.jsonl")
    counts: dict[str, int] = {}
    start = time.perf_counter()

    def show(row, i, n):
        counts[row.status] = counts.get(row.status, 0) + 1
        what = (f"p = {format_p(row.p_value)}  {row.verdict}" if row.p_value is not None
                else f"ERROR {terminal_text(row.error)}")
        spent = time.perf_counter() - start
        left = f", ~{format_seconds(spent / i * (n - i))} left" if i < n else ""
        print(f"[{i}/{n}] {row.status:8s} {what}  {terminal_text(row.suspect)}  ({format_seconds(spent)}{left})",
              flush=True)

    if args.ray:
        qfp = (rec.get("audit") or {}).get("queries_fingerprint")
        if not qfp:
            raise ConfigError(f"{args.record} has no query-set fingerprint (audit.queries_fingerprint); write the "
                              "record again with this version (audit --json, export-queries or the dashboard)")
        from ..runtime.fanout import connect

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
