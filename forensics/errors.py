"""Errors raised by Holmes forensics.

Every error is a :class:`ForensicsError` and also inherits the built-in type a caller
already catches (``ValueError``, ``LookupError``, ...).  Messages name the bad value and
say what to do about it.  The command line (``holmes-forensics``) prints one line per error and exits 2.
"""
from __future__ import annotations


class ForensicsError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(ForensicsError, ValueError):
    """A parameter is out of range or inconsistent with another one."""


class ModelSourceError(ForensicsError, ValueError):
    """A model could not be loaded from the source the user gave."""


class UnsafeCheckpointError(ModelSourceError):
    """A ``.pth``/``.bin`` checkpoint holds pickled code or objects, not plain tensors.

    We only load checkpoints with ``torch.load(weights_only=True)``; convert the file to
    safetensors with the tool that wrote it, or re-save a plain ``state_dict``.
    """


class CorruptWeightsError(ModelSourceError):
    """A weights file is truncated, not a weights file, or lacks tensors the model needs."""


class ClassCountMismatchError(ModelSourceError):
    """A model's classifier has another number of classes than the audit expects."""

    def __init__(self, message: str, *, expected: int, found: int):
        super().__init__(message)
        self.expected = expected
        self.found = found


class HubModelNotFoundError(ModelSourceError, LookupError):
    """A ``hf-hub:`` id is unknown, or not in the local cache while offline."""

    def __init__(self, message: str, *, repo_id: str, revision: str | None):
        super().__init__(message)
        self.repo_id = repo_id
        self.revision = revision


class DataSourceError(ForensicsError, ValueError):
    """A data folder is missing, empty, unreadable, or its classes do not fit the model."""


class DatasetTooSmallError(DataSourceError):
    """The private data is too small for the chosen gamma / lambda / splits."""


class LogitsFileError(ForensicsError, ValueError):
    """A suspect's logits (or labels) file has the wrong shape, NaN values, or wrong order."""


class ArtifactError(ForensicsError, RuntimeError):
    """The artifact store holds something unreadable; delete that entry and re-run."""
