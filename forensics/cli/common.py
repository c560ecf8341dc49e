"""What the commands share: progress on the console (a tqdm bar per training run, a line per stage), the verdict
table, the audit options and the :class:`~forensics.audit.spec.AuditSpec` they (or a record) describe, and writing
the HTML / PDF report."""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..audit.spec import AuditSpec
from ..audit.verdict import format_p
from ..demo.assets import demo_spec
from ..errors import ConfigError
from ..protocols.registry import DEFAULT_PROTOCOL, protocol_names
from ..report.record import read_record
from ..runtime import settings
from ..runtime.safe_text import terminal_text

log = logging.getLogger("forensics")


class ConsoleProgress:
    """Progress callback for the terminal: a tqdm bar per training run, a line per stage."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.bars: dict[str, Any] = {}

    def __call__(self, event: Any) -> None:
        from tqdm import tqdm

        from ..engine.recipe import TrainProgress
        from ..runtime.progress import StageProgress

        if self.quiet:
            return
        if isinstance(event, StageProgress):
            if event.status == "done":
                print(f"  [{event.stage}] {event.detail or 'done'}", file=sys.stderr)
            return
        if isinstance(event, TrainProgress):
            bar = self.bars.get(event.label)
            if event.done and bar is None:
                print(f"  [{event.label}] " + ("shipped with the package (trained where it was made): loss "
                                              f"{event.loss:.3f}, accuracy {event.accuracy:.3f}" if event.shipped
                                              else "reused from the artifact store"), file=sys.stderr)
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
    """The verdicts as a table; the membership and lineage tests' own p-values beside where a lineage test ran."""
    lineage = any("lineage" in (r.get("evidence") or {}) for r in rows)
    head = (f"{'suspect':32s} {'kind':9s} {'p-value':>9s} {'dP':>7s}  {'verdict':11s} {'paper p':>9s} "
            f"{'paper verdict':13s}" + (f" {'member p':>9s} {'lineage p':>9s}" if lineage else ""))
    print(head)
    print("-" * len(head))
    for r in rows:
        dp = "-" if r.get("delta_p") is None else f"{r['delta_p']:+.3f}"
        name, kind = terminal_text(r["name"])[:32], terminal_text(r.get("kind") or "?")[:9]
        line = (f"{name:32s} {kind:9s} {format_p(r['p_value']):>9s} {dp:>7s}  "
                f"{r['verdict']:11s} {format_p(r.get('paper_p_value')):>9s} {r.get('paper_verdict') or '-'!s:13s}")
        if lineage:
            ev = r.get("evidence") or {}
            line += "".join(f" {format_p(ev[k]['p_value'] if k in ev else None):>9s}"
                            for k in ("membership", "lineage"))
        print(line)
    print(f"(verdict at alpha = {alpha}; 'stolen' means p < alpha" +
          ("; combined: 2 x the smaller of the membership and lineage p, where both ran)" if lineage else ")"))


def add_common_options(p: argparse.ArgumentParser, *, seed: bool = True) -> None:
    p.add_argument("--store", type=Path,
                   help="artifact store folder (default $FORENSICS_STORE or ~/.cache/holmes-forensics)")
    if seed:
        p.add_argument("--seed", type=int, help="seed of every random choice (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def add_audit_options(p: argparse.ArgumentParser) -> None:
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
    g.add_argument("--lineage-replicas", type=int, metavar="K",
                   help="add the lineage test for suspects whose weights you have: K more training runs of the "
                        "victim's recipe (e.g. 9), and one verdict from both tests (protocol 'combined')")
    g.add_argument("--reference-pairs", type=int, metavar="P",
                   help="a stronger membership test: 2P reference shadows on halves of your data, so that all of it "
                        "serves as members (e.g. 4; default 0: one reference, half of the data as members)")


def spec_from_args(args: argparse.Namespace):
    from ..audit.config import AuditConfig
    from ..audit.spec import AuditSpec

    if args.record:
        spec = spec_and_record(args.record, getattr(args, "store", None))[0]
    elif args.victim is None:
        given = [k for k in ("data", "heldout", "foundation", "arch", "input_size", "victim_revision",
                             "foundation_revision") if getattr(args, k)]
        if given:
            raise ConfigError(f"--{given[0].replace('_', '-')} needs --victim (or omit the audit options for the demo)")
        spec = demo_spec(args.seed or 0)
    else:
        if not args.foundation or not args.data:
            raise ConfigError("an audit needs --victim, --foundation and --data (and --heldout for the default "
                              "membership protocol)")
        spec = AuditSpec(victim=args.victim, foundation=args.foundation, data=args.data, heldout=args.heldout,
                         victim_revision=args.victim_revision, foundation_revision=args.foundation_revision,
                         arch=args.arch, input_size=args.input_size,
                         config=AuditConfig(seed=args.seed or 0))
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
    if getattr(args, "reference_pairs", None) is not None:
        over["reference_pairs"] = args.reference_pairs
    if getattr(args, "lineage_replicas", None) is not None:
        over["lineage_replicas"] = args.lineage_replicas
        if not args.protocol and args.lineage_replicas:
            over["protocol"] = "combined"
    if args.protocol:
        over["protocol"] = args.protocol
    if args.record and args.seed is not None and args.seed != cfg.seed:
        raise ConfigError(f"--seed {args.seed}: the record's audit has seed {cfg.seed}, and its query set depends on "
                          "it; drop --seed to verify against the recorded audit, or build a new audit without --record")
    spec.config = replace(cfg, train=train, poison_train=poison, **over)
    spec.device = args.device
    return spec


def spec_and_record(path: Path, store: str | Path | None = None) -> tuple[AuditSpec, dict[str, Any]]:
    """(spec, record) of the JSON audit record at ``path`` (:func:`forensics.report.record.read_record` checks it);
    its ``store:`` names (uploads) are read from ``store`` (default: ``FORENSICS_STORE``)."""
    rec = read_record(path, store=Path(store) if store else settings.current().store)
    return AuditSpec.from_dict(rec["spec"]), rec


def write_report(args, record: dict, audit, verdicts) -> None:
    """``--html`` and ``--pdf`` of a command: the report rendered once, the PDF after the HTML (a missing browser
    costs only the PDF)."""
    from ..report.html import audit_figures, audit_takeaways, render_html
    from ..report.pdf import render_pdf

    html = render_html(record, audit_figures(audit, verdicts), audit_takeaways(audit, verdicts))
    if args.html:
        Path(args.html).write_text(html, encoding="utf-8")
        print(f"wrote {args.html}")
    if args.pdf:
        Path(args.pdf).write_bytes(render_pdf(html))
        print(f"wrote {args.pdf}")


def open_from_args(args):
    from ..audit.build import open_audit
    from ..runtime.store import ArtifactStore

    spec = spec_from_args(args)
    return open_audit(spec, ArtifactStore(args.store) if args.store else None, ConsoleProgress(args.quiet))


def verdict_rows(pairs) -> list[dict[str, Any]]:
    rows = []
    for name, kind, v in pairs:
        paper = v.under("paper")
        rows.append({"name": name, "kind": kind, **v.to_dict(),
                     "paper_p_value": None if paper is None else paper.p_value,
                     "paper_verdict": None if paper is None else paper.verdict})
    return rows


def machine_description() -> str:
    import os
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}"
