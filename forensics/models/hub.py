"""timm models on the Hugging Face Hub: only ``config.json`` and the weights are fetched, no code runs."""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import HubModelNotFoundError, ModelSourceError
from .loaded import LoadedModel
from .timm_models import load_local_dir

# timm's folders, and transformers checkpoints (their image processor config too); never code
HUB_FILES = ["config.json", "model.safetensors", "pytorch_model.bin", "preprocessor_config.json",
             "model.safetensors.index.json", "model-*-of-*.safetensors"]


def load_hub_model(repo_id: str, *, revision: str | None = None, num_classes: int | None = None,
                   input_size: int | None = None) -> LoadedModel:
    """Fetch config + weights of ``ORG/NAME`` at ``revision`` (or read them from the local cache).

    The commit the revision resolved to is recorded as the model's ``revision``."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise ModelSourceError(f"hf-hub:{repo_id}: a Hub id looks like ORG/NAME "
                               "(e.g. timm/vit_base_patch16_224.augreg_in21k)")
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES)
    except RevisionNotFoundError as e:
        raise HubModelNotFoundError(f"hf-hub:{repo_id}: revision {revision!r} does not exist on the Hub",
                                    repo_id=repo_id, revision=revision) from e
    except RepositoryNotFoundError as e:
        raise HubModelNotFoundError(
            f"hf-hub:{repo_id}: no such model on the Hub (or it is private: log in with `hf auth login`)",
            repo_id=repo_id, revision=revision) from e
    except LocalEntryNotFoundError as e:
        if constants.HF_HUB_OFFLINE:
            why = "HF_HUB_OFFLINE is set and the model is not in the local Hub cache"
        else:
            why = "the Hub could not be reached and the model is not in the local Hub cache"
        raise HubModelNotFoundError(
            f"hf-hub:{repo_id}{'@' + revision if revision else ''}: {why}; connect to the network (and "
            "unset HF_HUB_OFFLINE) once to download it, or load it from a local folder with local-dir:",
            repo_id=repo_id, revision=revision) from e
    except (HfHubHTTPError, OSError) as e:
        raise HubModelNotFoundError(f"hf-hub:{repo_id}: download failed ({e}); check the network and retry",
                                    repo_id=repo_id, revision=revision) from e
    commit = Path(folder).name
    loaded = load_local_dir(Path(folder), num_classes=num_classes, input_size=input_size,
                            source=f"hf-hub:{repo_id}", revision=commit)
    loaded.extra["requested_revision"] = revision or "main"
    return loaded
