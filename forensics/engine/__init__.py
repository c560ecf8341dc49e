"""The one engine that runs models, and the one training loop.

* :mod:`.recipe` - :class:`TrainConfig` (how to fine-tune) and what a run reports (the leaf of this package);
* :mod:`.loop` - :func:`fit`, the training loop, typed against the small :class:`~.loop.Runner` protocol;
* :mod:`.engine` - :class:`Engine`: device, precision, batched inference with cached frozen-prefix activations;
* :mod:`.stored` - :func:`train_stored`: training through the artifact store (reused, resumed).
"""
from .engine import Engine, resolve_device
from .loop import Runner, fit
from .recipe import TrainConfig, TrainHistory, TrainProgress
from .stored import train_stored

__all__ = ["Engine", "Runner", "TrainConfig", "TrainHistory", "TrainProgress", "fit", "resolve_device",
           "train_stored"]
