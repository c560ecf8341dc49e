"""The parser of ``holmes-forensics`` and :func:`main`: a :class:`~forensics.errors.ForensicsError` becomes one line
on stderr and exit status 2; under torchrun only rank 0 prints and writes outputs."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..demo.assets import DEMO_VICTIMS
from ..errors import ForensicsError
from ..protocols.registry import DEFAULT_PROTOCOL, protocol_names
from ..runtime.safe_text import terminal_text
from ..zoo.bench import STRESS_ZOO
from .audit import cmd_audit, cmd_demo, cmd_digest, cmd_export, cmd_reverify, cmd_verify
from .bench import cmd_bench, cmd_stress
from .common import add_audit_options, add_common_options
from .query import add_query_parser
from .scan import cmd_scan


def build_parser() -> argparse.ArgumentParser:
    prog = "python -m forensics" if Path(sys.argv[0]).name == "__main__.py" else Path(sys.argv[0]).name
    p = argparse.ArgumentParser(prog=prog, description="Holmes forensics: prove with a p-value "
                                "that a suspect model was derived from yours.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the embedded offline demo audit")
    add_common_options(d)
    d.add_argument("--json", type=Path, help="write the results as JSON")
    d.add_argument("--html", type=Path, help="write a self-contained HTML report")
    d.add_argument("--pdf", type=Path, help="write the report as PDF (printed by headless Chromium)")
    d.add_argument("--protocol", default=DEFAULT_PROTOCOL, choices=protocol_names())
    d.add_argument("--quick", action="store_true", help="a reduced demo (smaller data, fewer epochs) for smoke tests")
    for name, fn, hlp in (("audit", cmd_audit, "build an audit and verify suspects"),
                          ("export-queries", cmd_export, "write the query set a black-box suspect must answer"),
                          ("verify", cmd_verify, "verify suspects (models or logits files)")):
        s = sub.add_parser(name, help=hlp)
        add_common_options(s)
        add_audit_options(s)
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
        add_common_options(s, seed=False)
        s.add_argument("--record", type=Path, help="a JSON audit record: its victim is the one attacked "
                       "(default for bench: the demo victim)")
        s.add_argument("--thief-data", help="images the simulated thieves train on (one subfolder per class), "
                       "never the audit's private or held-out data")
        s.add_argument("--innocent-data", help="images of the same kind the simulated innocent models train on")
        s.add_argument("--test-data", help="labelled images to measure fidelity on (default: --innocent-data)")
        s.add_argument("--other-foundation", help="another pre-trained model for the students of another foundation")
        s.add_argument("--attacks", nargs="+", help="zoo entries by name, or 'all' (default: "
                       + (f"a standard set of {len(STRESS_ZOO)}" if name == "stress" else "all; with --small, 6") + ")")
        s.add_argument("--seeds", type=int, nargs="+", help="attack seeds (default 0 1 2; with --small, 0)")
        s.add_argument("--small", action="store_true", help="the reduced demo and 6 suspects (what the tests run)")
        s.add_argument("--no-baselines", action="store_true", help="only the audit's own protocols")
        if name == "bench":
            s.add_argument("--ray", metavar="ADDRESS", help="build the zoo's suspects as Ray tasks first (auto, "
                                                            "HOST:6379, ray://HOST:10001 or local), then sum up here")
            s.add_argument("--workers", type=int, help="with --ray: at most N zoo entries at a time")
            s.add_argument("--victim", choices=sorted(DEMO_VICTIMS), default="lite0",
                           help="which demo victim the zoo attacks (lite0: the demo's own; lite1: EfficientNet-Lite1 "
                                "at 72 px with another recipe)")
        s.add_argument("--lineage-replicas", type=int, metavar="K",
                       help="add the lineage test (K re-runs of the victim's recipe) and the combined verdict")
        s.add_argument("--reference-pairs", type=int, metavar="P",
                       help="the membership test with 2P reference shadows on halves of the victim's data (all of it "
                            "as members)")
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
    add_common_options(sc, seed=False)
    sc.set_defaults(fn=cmd_scan)
    r = sub.add_parser("reverify", help="re-run the verifications of a JSON audit record and compare p-values")
    r.add_argument("record", type=Path, help="the JSON audit record (dashboard download or audit --json)")
    add_common_options(r, seed=False)
    r.set_defaults(fn=cmd_reverify)
    g = sub.add_parser("digest", help="the SHA-256 a report states for an audit record, or check an HTML report's own")
    g.add_argument("file", type=Path, help="an audit.json (its content's SHA-256) or an HTML report (its stated "
                                           "SHA-256 checked against its content)")
    g.set_defaults(fn=cmd_digest)
    u = sub.add_parser("add-user", help="add a user to a shared dashboard's users file (FORENSICS_USERS_FILE), or "
                                        "set a new password; the password is read from the terminal or stdin")
    u.add_argument("name", help="the user's sign-in name (letters, digits, '_', '.', '@', '-')")
    u.add_argument("--users-file", type=Path, required=True, help="the users file (created readable by you only)")
    u.set_defaults(fn=cmd_add_user)
    add_query_parser(sub)
    return p


def cmd_add_user(args) -> int:
    import getpass

    from ..runtime.access import add_user

    password = getpass.getpass(f"password for {args.name}: ") if sys.stdin.isatty() else sys.stdin.readline()
    add_user(args.users_file, args.name, password.rstrip("\n"))
    print(f"{args.users_file}: {args.name} can sign in (set FORENSICS_USERS_FILE={args.users_file} and "
          "FORENSICS_DATA_ROOT for the dashboard)")
    return 0


def _torchrun_follower(args) -> bool:
    """Under torchrun every worker runs the command (they train together, see :mod:`forensics.runtime.distributed`);
    rank 0 prints and writes the outputs, the others run silent and write theirs to a scratch folder that is thrown
    away."""
    from ..runtime import distributed

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
        print(f"error: {terminal_text(e, lines=True)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished stages are kept in the artifact store; re-run to resume", file=sys.stderr)
        return 130
