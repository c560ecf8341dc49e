"""Models: what a loaded classifier is, and how each kind of source is read.

* :mod:`.loaded` - :class:`LoadedModel`, weight fingerprints, preprocessing configs;
* :mod:`.weights` - reading ``.safetensors`` / ``.pth`` files safely;
* :mod:`.timm_models` - timm architectures, ``save_for_hf`` folders, weights files, saving;
* :mod:`.hub` - the Hugging Face Hub;
* :mod:`.foundation` - a backbone with a fresh head;
* :mod:`.lite` - ImageNet EfficientNet-Lite0 (the demo's foundation) and Lite1.

Which source string means which loader is decided in one place, :mod:`forensics.audit.sources`; splitting a
model into a frozen prefix and a trainable tail lives in :mod:`.splitting`.
"""
from .foundation import as_foundation, foundation_from_weights
from .hub import load_hub_model
from .lite import load_lite0_foundation, load_lite_foundation
from .loaded import LoadedModel, data_config_for, fingerprint_state_dict, jsonable_config
from .timm_models import build_model, fresh_model, load_local_dir, load_saved, load_weights_file, save_model
from .weights import WEIGHT_SUFFIXES, read_weights

__all__ = ["WEIGHT_SUFFIXES", "LoadedModel", "as_foundation", "build_model", "data_config_for",
           "fingerprint_state_dict", "foundation_from_weights", "fresh_model", "jsonable_config", "load_hub_model",
           "load_lite0_foundation", "load_lite_foundation", "load_local_dir", "load_saved", "load_weights_file",
           "read_weights", "save_model"]
