"""Training on several processes or machines with ``torchrun`` (DDP: NCCL on GPUs, gloo on CPUs).

Every command runs unchanged under ``torchrun``::

    torchrun --nproc_per_node 4 -m forensics audit ...            # one machine, 4 GPUs (or 4 CPU processes)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 -m forensics audit ...

Each worker runs the same pipeline.  Training (victim, shadows, reference, attacks, innocent models) is data
parallel through :class:`torch.nn.parallel.DistributedDataParallel`: every worker takes its share of each global
batch (``batch_size`` stays the global batch, so the recipe, and the cache key of the result, do not depend on the
number of workers), gradients are averaged with weights that make the step the one-process step, rank 0 writes the
epoch checkpoints and the artifact store entry, the others wait and read it.  Everything else (logits, cached
activations, loss order, the meta-classifier) is computed once, by whichever worker takes the store entry's lock
first; the others read it.  A worker that dies makes ``torchrun`` restart the group (``--max-restarts N``); the
restarted workers resume from the last epoch checkpoint.  All workers need the same store path (one machine, or a
network file system mounted at the same path on every node).

Limits: BatchNorm layers in the trained part use each worker's share of the batch for their statistics (no
SyncBatchNorm: it needs GPUs, and is not wired in), so a model with BatchNorm trained by several workers is another
model: its store key then carries the number of workers.  Every worker draws the same dropout masks for its share
(one seed per epoch), so a model with dropout matches the one-process run only in distribution.  ViT and CLIP towers
(LayerNorm, no dropout by default) are not affected.  Outside ``torchrun`` (no
``WORLD_SIZE`` in the environment, or ``WORLD_SIZE=1``) nothing here does anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import ConfigError
from . import settings


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


SINGLE = World(0, 1, 0)


def launched() -> bool:
    """True when this process is one of several launched by torchrun (or another launcher setting its variables)."""
    try:
        return int(settings.launcher().get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def world() -> World:
    """This process's place in the group; :data:`SINGLE` outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(settings.launcher().get("LOCAL_RANK", "0")))
    return SINGLE


def init(device: torch.device) -> World:
    """Join the torchrun group (once per process): NCCL on GPUs, gloo on CPUs.  Returns the world."""
    if not launched():
        return SINGLE
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; run without torchrun")
    if not dist.is_initialized():
        env = settings.launcher()
        for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            if var not in env:
                raise ConfigError(f"WORLD_SIZE is set but {var} is not: start the command with torchrun "
                                  "(torchrun --nproc_per_node N -m forensics ...), or unset WORLD_SIZE")
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = timedelta(minutes=settings.dist_timeout_minutes())
        # the store of torchrun's agent outlives a restart: keys of each attempt under their own prefix, or the
        # restarted workers read the addresses of the dead ones (gloo: "connectFullMesh failed ... refused")
        store, rank, size = next(dist.rendezvous("env://", timeout=timeout))
        attempt = env.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group(backend, store=dist.PrefixStore(f"forensics/attempt-{attempt}", store),
                                rank=rank, world_size=size, timeout=timeout)
    return world()


def local_device(device: torch.device) -> torch.device:
    """On GPUs each worker of a machine takes its own (``LOCAL_RANK``)."""
    if launched() and device.type == "cuda" and device.index is not None:
        raise ConfigError(f"--device {device} under torchrun would put every worker on one GPU; give --device cuda "
                          "(or auto): each worker takes its own GPU")
    if launched() and device.type == "cuda" and device.index is None:
        local = int(settings.launcher().get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ConfigError(f"worker {local} of this machine has no GPU of its own ({torch.cuda.device_count()} "
                              "visible); start at most one process per GPU (--nproc_per_node)")
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


def rank_from_launcher() -> int:
    """This worker's rank as torchrun set it (before the group is joined); 0 outside torchrun."""
    return int(settings.launcher().get("RANK", "0"))


def barrier() -> None:
    if world().size > 1:
        dist.barrier()


def broadcast(obj):
    """Rank 0's value of ``obj`` on every worker."""
    if world().size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def local_share(idx: torch.Tensor, w: World) -> tuple[torch.Tensor, float]:
    """This worker's rows of a global batch and the weight of its mean loss.

    Averaging the workers' gradients of ``weight * mean loss over the share`` gives the gradient of the mean loss
    over the whole batch, whatever the split.  A worker with no row of a (short) last batch takes one row with
    weight 0, so that every worker still runs the step."""
    if w.size == 1:
        return idx, 1.0
    share = torch.tensor_split(idx, w.size)[w.rank]
    if len(share) == 0:
        return idx[:1], 0.0
    return share, len(share) * w.size / len(idx)


def sum_over_workers(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over all workers (float64)."""
    if world().size == 1:
        return values
    # NCCL reduces only tensors on the worker's GPU
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.cpu().tolist()


def sync_state(model: torch.nn.Module) -> None:
    """Every worker takes rank 0's weights and buffers (the BatchNorm statistics of the last step differ)."""
    if world().size == 1:
        return
    for t in model.state_dict().values():
        if t.is_floating_point() or t.dtype in (torch.int64, torch.int32):
            dist.broadcast(t, src=0)


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module for the training step: DDP across the workers, the module itself in one process."""
    if world().size == 1:
        return module
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None)
