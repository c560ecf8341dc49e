"""Progress events of the pipeline (the training loop's own are :class:`forensics.training.TrainProgress`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

Progress = Callable[[Any], None]


@dataclass
class StageProgress:
    """A pipeline stage starts (``status='start'``) or ends (``'done'``)."""

    stage: str
    status: str
    detail: str = ""


def emit(progress: Progress | None, stage: str, status: str, detail: str = "") -> None:
    if progress is not None:
        progress(StageProgress(stage, status, detail))
