"""Probe for a lineage test of suspects whose weights we have (issue 17, item 2; not a protocol yet).

    .venv/bin/python benchmarks/lineage_probe.py --seeds 0 [--replicas 9] [--store DIR] [--entries ID ...]

What training changed in the victim: d_V = the victim's trained blocks minus the foundation's (the new head is left
out: its initial values are a seed's, and an innocent trained with the victim's seed shares them).  For each zoo
suspect of the victim's architecture, d_S likewise, and the statistic is corr(d_S, d_V).  The null is built from
*replicas*: K models trained like the victim (its recipe, its private data) from the same foundation with other
seeds.  If a suspect never descended from this victim's weights, the victim is one of K + 1 exchangeable runs of
the same recipe as far as the suspect is concerned, and the rank of corr(d_S, d_V) among the K + 1 correlations is
uniform: p = (1 + #{k: corr(d_S, d_Rk) >= corr(d_S, d_V)}) / (K + 1) is exact under that null (its smallest value
is 1 / (K + 1): K = 999 replicas for p = 0.001, which is why a parametric version is printed beside it: the
victim's correlation as a z-score among the replicas').

The exchangeability holds only as far as the replicas are made like the victim: a suspect that shares something with
the victim's run that the replicas do not (its seed, its data order) breaks it; the probe reports the innocents'
ranks so that this can be seen.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

import forensics
from forensics.demo.zoo import demo_zoo_context
from forensics.models.splitting import split_model
from forensics.zoo.attacks import run_attack
from forensics.zoo.entries import build_suspect, list_zoo_entries, select_zoo_entries, what_survives


def head_names(model: torch.nn.Module) -> set[str]:
    """Parameter names of the classifier head (timm's get_classifier)."""
    head = model.get_classifier()
    ids = {id(p) for p in head.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def delta(model: torch.nn.Module, foundation: dict[str, torch.Tensor], names: list[str]) -> np.ndarray | None:
    state = model.state_dict()
    if any(n not in state or state[n].shape != foundation[n].shape for n in names):
        return None
    return torch.cat([(state[n].float() - foundation[n].float()).reshape(-1) for n in names]).numpy().astype(np.float64)


def corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--replicas", type=int, default=9)
    ap.add_argument("--store", default=None)
    ap.add_argument("--entries", nargs="+", default=None)
    args = ap.parse_args()
    store = forensics.ArtifactStore(args.store) if args.store else forensics.ArtifactStore()
    entries = select_zoo_entries(args.entries) if args.entries else list_zoo_entries()
    for seed in args.seeds:
        t0 = time.perf_counter()
        a = forensics.open_audit(forensics.demo_spec(seed), store)
        ctx = demo_zoo_context(a)
        f_state = a.foundation.model.state_dict()
        tail = split_model(a.victim.model, ctx.recipe.trainable_blocks)
        names = sorted(n for n in tail.tail_state if n not in head_names(a.victim.model)
                       and f_state[n].is_floating_point() and "running" not in n)
        d_v = delta(a.victim.model, f_state, names)
        assert d_v is not None
        replicas = []
        for k in range(args.replicas):
            r = run_attack("innocent", a.victim, a.foundation, a.private, a.engine,
                           replace(ctx.recipe, seed=10_000 + 97 * k + seed))
            replicas.append(delta(r.model, f_state, names))
        between = [corr(x, y) for i, x in enumerate(replicas) for y in replicas[i + 1:]]
        print(f"\n== seed {seed}: {len(names)} tensors, {d_v.size:,} weights of the trained blocks; replicas "
              f"{args.replicas} ({time.perf_counter() - t0:.0f} s); corr(victim, replica) "
              f"{np.mean([corr(d_v, r) for r in replicas]):.3f}, replica-replica {np.mean(between):.3f}")
        print(f"{'suspect':52s} {'kind':8s} {'survives':8s} {'corr V':>7s} {'max R':>6s} {'mean R':>7s} "
              f"{'rank p':>7s} {'z':>6s}")
        for entry in entries:
            model = build_suspect(entry, ctx, seed)
            d_s = delta(model.model, f_state, names)
            if d_s is None:
                print(f"{entry.title[:52]:52s} {entry.kind:8s} another architecture: not applicable")
                continue
            c_v = corr(d_s, d_v)
            c_r = np.array([corr(d_s, r) for r in replicas])
            p = (1 + int((c_r >= c_v).sum())) / (len(c_r) + 1)
            z = (c_v - c_r.mean()) / (c_r.std(ddof=1) + 1e-12)
            print(f"{entry.title[:52]:52s} {entry.kind:8s} {what_survives(entry, ctx):8s} {c_v:7.3f} "
                  f"{c_r.max():6.3f} {c_r.mean():7.3f} {p:7.3f} {z:6.1f}", flush=True)


if __name__ == "__main__":
    main()
