"""Reading weights files safely: safetensors, or pickle checkpoints with ``weights_only=True``."""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from ..errors import CorruptWeightsError, ModelSourceError, UnsafeCheckpointError

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from safetensors, or from a pickle checkpoint with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise ModelSourceError(f"weights file {str(path)!r} does not exist; check the path")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise CorruptWeightsError(
                f"{path} is not a readable safetensors file ({e}); it may be truncated: download or "
                "export it again"
            ) from e
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ModelSourceError(
            f"{path.name!r}: unknown weights format; give a .safetensors file (preferred) or a "
            ".pth/.pt/.bin state dict"
        )
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if not any(k in msg for k in ("Unsupported global", "weights_only", "Unsupported operand", "GLOBAL")):
            first = msg.splitlines()[0] if msg else "unpickling failed"
            raise CorruptWeightsError(f"{path} is not a readable checkpoint ({first}); it may be truncated: download "
                                      "or export it again") from e
        raise UnsafeCheckpointError(
            f"{path} contains pickled code or objects, not only tensors, and was not loaded "
            f"({str(e).splitlines()[0]}). Re-save a plain state_dict, or convert it to safetensors "
            "with the tool that wrote it"
        ) from e
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, IndexError, KeyError) as e:
        # (garbage that is not a zip checkpoint can make the pickle reader fail with IndexError/KeyError)
        raise CorruptWeightsError(
            f"{path} is not a readable checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
            "it may be truncated: download or export it again"
        ) from e
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "ema"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CorruptWeightsError(f"{path} does not hold a state dict of tensors; re-save model.state_dict()")
    return {re.sub(r"^module\.", "", k): v for k, v in obj.items()}
