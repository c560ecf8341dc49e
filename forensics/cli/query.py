"""``holmes-forensics query``: audit a suspect behind an HTTP API with the sequential test, paying for as few
queries as the evidence needs (:mod:`forensics.api.audit`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from ..runtime.safe_text import terminal_text
from .common import ConsoleProgress, add_common_options, print_table, verdict_rows, write_report

STYLES = ("json", "hf")
IMAGE_AS = ("base64", "multipart", "bytes")


def add_query_parser(sub) -> None:
    q = sub.add_parser(
        "query", help="audit a suspect behind an HTTP API: send it the query images pair by pair, stop as soon as "
                      "the evidence decides (anytime-valid p-value), resumable from a journal",
        description="Send the audit's query images to a suspect's HTTP endpoint, in the sequential test's order "
                    "(member-control pairs of equal difficulty, hardest first), and stop as soon as the verdict is "
                    "decided at alpha or the budget is spent. Every answer is journalled as it arrives: run the same "
                    "command again to resume without asking any answered query twice.")
    q.add_argument("--record", type=Path, required=True, help="the JSON audit record (audit --json, export-queries "
                                                              "or the dashboard's 5 · Report)")
    q.add_argument("--endpoint", required=True, help="the suspect's URL, e.g. https://api.example.com/v1/classify")
    q.add_argument("--name", help="what the report calls the suspect (default: the endpoint's host)")
    q.add_argument("--journal", type=Path, help="the answers journal, JSON lines (default: query-<host>.jsonl next to "
                                                "the record); an existing one is resumed")
    g = q.add_argument_group("the request")
    g.add_argument("--style", choices=STYLES, default="json",
                   help="json: the request below; hf: a Hugging Face Inference Endpoint (image classification)")
    g.add_argument("--method", default="POST", choices=("POST", "PUT"))
    g.add_argument("--image-as", choices=IMAGE_AS, default="base64",
                   help="base64 in a JSON body (--body-template), a multipart file field, or the PNG bytes as the body")
    g.add_argument("--body-template", help='JSON body with "{image_base64}" where the image goes '
                                           '(default {"image": "{image_base64}"})')
    g.add_argument("--multipart-field", default="file", help="the file field of --image-as multipart")
    g.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="an extra header (repeatable)")
    g.add_argument("--api-key-env", metavar="VAR", help="read the API key from this environment variable")
    g.add_argument("--api-key-file", metavar="FILE", help="read the API key from this file")
    g.add_argument("--auth-header", default="Authorization", help="the header that carries the key")
    g.add_argument("--auth-template", default="Bearer {key}", help="its value, {key} replaced (default 'Bearer {key}')")
    r = q.add_argument_group("the answer")
    r.add_argument("--format", dest="fmt", default="auto",
                   choices=("auto", "logits", "probabilities", "top-k", "label"),
                   help="what the API returns (auto: detected from each answer)")
    r.add_argument("--response-path", help="where the answer is in the JSON, e.g. predictions[0] or data.logits")
    c = q.add_argument_group("pace and budget")
    c.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    c.add_argument("--rate", type=float, help="at most this many requests per second")
    c.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    c.add_argument("--retries", type=int, default=5, help="retries of a 429, 5xx, timeout or dropped connection")
    c.add_argument("--max-queries", type=int, help="stop after paying for this many queries")
    c.add_argument("--price", type=float, default=0.0, help="the price of one query (for --max-cost and the report)")
    c.add_argument("--max-cost", type=float, help="stop before the queries paid cost more than this")
    c.add_argument("--batch", type=int, default=20, help="pairs asked per round before the test decides (default 20)")
    c.add_argument("--futility", type=float, default=0.1, metavar="SHARE",
                   help="stop without evidence once sure (at 1 %%) that the suspect carries less than this share of "
                        "your model's own signal (default 0.1; higher stops innocents sooner but may miss thefts "
                        "through labels alone; 0: never)")
    o = q.add_argument_group("outputs")
    o.add_argument("--json", type=Path, help="write the audit record with this suspect's verdict and its answers")
    o.add_argument("--html", type=Path, help="write a self-contained HTML report")
    o.add_argument("--pdf", type=Path, help="write the report as PDF (printed by headless Chromium)")
    add_common_options(q, seed=False)
    q.set_defaults(fn=cmd_query)


def endpoint_from_args(args: argparse.Namespace):
    from ..api.client import Endpoint

    headers = {}
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--header {terminal_text(h)!r}: write it as NAME:VALUE")
        headers[name.strip()] = value.strip()
    body = None
    if args.body_template:
        try:
            body = json.loads(args.body_template)
        except ValueError as e:
            raise ConfigError(f"--body-template is not JSON ({e}); e.g. '{{\"image\": \"{{image_base64}}\"}}'") from e
    extra = {"body_template": body} if body is not None else {}
    return Endpoint(args.endpoint, style=args.style, method=args.method, headers=headers,
                    api_key_env=args.api_key_env, api_key_file=args.api_key_file, auth_header=args.auth_header,
                    auth_template=args.auth_template, image_as=args.image_as, multipart_field=args.multipart_field,
                    response_path=args.response_path, fmt=args.fmt, timeout_s=args.timeout,
                    concurrency=args.concurrency, rate_per_s=args.rate, max_retries=args.retries,
                    price_per_query=args.price, **extra)


def cmd_query(args: argparse.Namespace) -> int:
    from ..api.audit import api_audit, journal_source
    from ..api.client import Budget
    from ..api.journal import public_url
    from ..audit.build import open_audit
    from ..protocols.registry import heldout_of
    from ..report.record import build_report
    from ..runtime.store import ArtifactStore
    from .common import spec_and_record

    if not 0 <= args.futility < 1:
        raise ConfigError(f"--futility {args.futility}: give a share from 0 (never stop for futility) to below 1")
    if args.max_queries is not None and args.max_queries < 2:
        raise ConfigError("--max-queries must be at least 2 (the test asks a member and a control together)")
    endpoint = endpoint_from_args(args)
    host = endpoint.describe()["url"].split("/")[2]
    name = args.name or host
    journal = args.journal or args.record.parent / f"query-{''.join(c if c.isalnum() else '-' for c in host)}.jsonl"
    spec = spec_and_record(args.record, args.store)[0]
    spec.device = args.device
    audit = open_audit(spec, ArtifactStore(args.store) if args.store else None, ConsoleProgress(args.quiet))
    heldout_of(audit)  # a clear error where the audit has no held-out data
    quiet = args.quiet

    def on_update(test, queries: int) -> None:
        if not quiet:
            print(f"  {queries:5d} queries read: anytime-valid p = {test.p_value:.3g}"
                  + (f" -> {'evidence of derivation' if test.decision == 'evidence' else 'no evidence (futility)'}"
                     if test.decision else ""), file=sys.stderr, flush=True)

    if not quiet:
        print(f"querying {terminal_text(public_url(args.endpoint))} ({terminal_text(name)}); journal "
              f"{terminal_text(str(journal))}", file=sys.stderr)
    try:
        result = api_audit(audit, endpoint, journal, name=name,
                           budget=Budget(args.max_queries, args.max_cost), batch_pairs=args.batch,
                           on_update=on_update, futility_share=args.futility)
    except KeyboardInterrupt:
        print(f"interrupted: every answer received is in {terminal_text(str(journal))}; run the same command again "
              "to resume (no answered query is asked again)", file=sys.stderr)
        return 130
    v = result.verdict
    print(f"\n{terminal_text(name)}: {result.summary()}")
    print_table(verdict_rows([(name, None, v)]), audit.config.alpha)
    rec = build_report(audit, [(name, None, v)], sources={name: {"source": journal_source(journal, args.futility),
                                                                  "answers": str(journal)}})
    if args.json:
        Path(args.json).write_text(json.dumps(rec, indent=1))
        print(f"wrote {args.json}")
    if args.html or args.pdf:
        write_report(args, rec, audit, [v])
    return 0
