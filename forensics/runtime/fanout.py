"""Fan work out over a Ray cluster (or a Ray started on this machine), one task per item, results as they finish.

Used by ``holmes-forensics scan --ray`` (one suspect per task) and ``holmes-forensics bench --ray`` (one zoo entry per
task).  Ray is an optional dependency (``pip install 'holmes-forensics[scale]'``); without ``--ray`` the same work
runs in this process.  Every task gets one GPU where the cluster has GPUs (otherwise one CPU), the ``FORENSICS_*``
and Hugging Face variables of this process (the same store, thread count, offline mode), and is retried once when
its worker dies; an exception inside a task comes back as that item's error, the others go on.

The workers share the artifact store by its path: on several machines it must be a network file system mounted at
the same path on every node (the store's per-entry file locks and atomic renames keep it write-once; see
:mod:`.store`), and every node needs this package installed in the same versions.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from . import settings


def _ray():
    try:
        import ray
    except ImportError as e:
        raise ConfigError("--ray needs Ray: pip install 'holmes-forensics[scale]' (or pip install ray), or run "
                          "without --ray to do the same work in this process") from e
    return ray


def connect(address: str | None, workers: int | None = None):
    """Join a Ray cluster: ``auto`` (the one this machine belongs to), ``ray://HOST:10001`` or ``HOST:6379``, or
    ``local`` (start one on this machine with ``workers`` CPUs).  A Ray already initialised in this process (a test,
    a notebook) is used as it is."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address in (None, "", "local"):
            ray.init(num_cpus=workers or os.cpu_count(), **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError(f"cannot reach a Ray cluster at {address!r} ({e}); start one with `ray start --head` (and "
                          "`ray start --address HEAD:6379` on the other machines), give its address, or use --ray "
                          "local to start one on this machine") from e
    return ray


@dataclass
class Outcome:
    """One item's result (``value``) or why it has none (``error``), and the seconds its task ran."""

    index: int
    item: Any
    value: Any = None
    error: str | None = None
    seconds: float = 0.0


def _timed(fn: Callable[..., Any], env: dict[str, str], args: tuple) -> tuple[Any, float]:
    settings.adopt_environment(env)
    t = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - t


def ray_map(fn: Callable[..., Any], items: Sequence[Any], args: Callable[[Any], tuple], *, address: str | None,
            workers: int | None = None) -> Iterator[Outcome]:
    """``fn(*args(item))`` for every item as Ray tasks, at most ``workers`` at a time (default: as many as the
    cluster's GPUs, or CPUs); yields each :class:`Outcome` as soon as its task finishes.  ``fn`` must be a function
    of an importable module (the workers import it)."""
    ray = connect(address, workers)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    slots = gpus if gpus else int(resources.get("CPU", 1))
    limit = max(1, min(workers or slots, slots))
    # num_gpus on the decorator: Ray then runs each GPU task in a fresh process (max_calls=1), so that a reused
    # worker never keeps the CUDA context of another GPU; CPU workers are reused (their opened audit with them)
    remote = ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1, max_retries=1)(_timed)
    env = settings.shared_environment()
    pending: dict[Any, int] = {}
    queue = list(enumerate(items))
    while queue or pending:
        while queue and len(pending) < limit:
            i, item = queue.pop(0)
            pending[remote.remote(fn, env, args(item))] = i
        ready, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(ready[0])
        try:
            value, seconds = ray.get(ready[0])
            yield Outcome(i, items[i], value, None, seconds)
        except Exception as e:  # noqa: BLE001 - a task's failure is its item's error; the others go on
            cause = getattr(e, "cause", None) or e
            if isinstance(e, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)):
                why = f"its Ray worker died twice ({type(e).__name__}); out of memory? see `ray status` and the logs"
            else:
                why = f"{type(cause).__name__}: {cause}"
            yield Outcome(i, items[i], None, why)
