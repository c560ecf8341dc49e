"""transformers image classifiers: real checkpoints written with save_pretrained (tiny ViTs), loaded from folders
and from an offline Hub cache, preprocessed as their own image processor does, partially fine-tuned."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import hf_trained, hf_vit_foundation, toy_images

from forensics.audit.sources import check_class_names, load_foundation, load_model
from forensics.data.transforms import EvalTransform
from forensics.engine.engine import Engine
from forensics.engine.recipe import TrainConfig
from forensics.errors import ClassCountMismatchError, ConfigError, ModelSourceError
from forensics.models import load_saved, save_model
from forensics.models.splitting import split_model
from forensics.runtime.store import ArtifactStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NAMES = ["dark", "mid", "bright"]


def tiny_vit(folder, *, seed: int = 0, labels=NAMES, layers: int = 3, processor: dict | None = None):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    cfg = ViTConfig(image_size=32, patch_size=8, num_hidden_layers=layers, hidden_size=32, num_attention_heads=2,
                    intermediate_size=37, num_labels=len(labels), id2label=dict(enumerate(labels)),
                    label2id={n: i for i, n in enumerate(labels)})
    model = ViTForImageClassification(cfg).eval()
    model.save_pretrained(str(folder))
    ViTImageProcessor(**(processor or {"size": {"height": 32, "width": 32}, "image_mean": [0.4, 0.5, 0.6],
                                       "image_std": [0.2, 0.25, 0.3]})).save_pretrained(str(folder))
    return model


def test_a_saved_checkpoint_loads_with_its_own_preprocessing_and_class_names(tmp_path):
    from transformers import ViTImageProcessor

    hf = tiny_vit(tmp_path / "v")
    m = load_model(f"local-dir:{tmp_path / 'v'}", num_classes=3)
    assert m.arch == "transformers:ViTForImageClassification" and m.num_classes == 3
    card = m.card()
    assert card["library"] == "transformers" and card["format"] == "model.safetensors" and card["classes"] == NAMES
    assert "_processor" not in card and card["split"].startswith("3 transformer layers: partial fine-tuning")
    images = toy_images(6)
    ours = Engine(ArtifactStore(tmp_path / "s"), device="cpu", cache_blocks=None).logits(m, images)
    proc = ViTImageProcessor.from_pretrained(str(tmp_path / "v"))
    pixels = proc(images=[images.pil(i) for i in range(6)], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        theirs = hf(pixel_values=pixels).logits.numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    # the transform itself gives the image processor's pixels
    ours_px = torch.stack([EvalTransform(m.data_config)(images.pil(i)) for i in range(6)])
    np.testing.assert_allclose(ours_px.numpy(), pixels.numpy(), atol=1e-5)


def test_the_hub_offline_and_the_usual_errors(tmp_path, offline_hub):
    tiny_vit(tmp_path / "v", seed=1)
    commit = offline_hub.add("acme/tiny-vit", tmp_path / "v")
    m = load_model("hf-hub:acme/tiny-vit", num_classes=3)
    assert m.revision == commit and m.source == "hf-hub:acme/tiny-vit" and m.extra["library"] == "transformers"
    with pytest.raises(ClassCountMismatchError, match="has 3 classes but 5 were expected"):
        load_model(f"local-dir:{tmp_path / 'v'}", num_classes=5)
    with pytest.raises(ConfigError, match="classifies other classes than the data holds"):
        check_class_names(m, ["cat", "dog", "fox"], "the suspect")
    with pytest.raises(ConfigError, match="in another order"):
        check_class_names(m, ["bright", "dark", "mid"], "the victim")
    cfg = json.loads((tmp_path / "v" / "config.json").read_text())
    (tmp_path / "v" / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoModel": "x.Model"}}))
    with pytest.raises(ModelSourceError, match="remote code is never run"):
        load_model(f"local-dir:{tmp_path / 'v'}")
    tiny_vit(tmp_path / "w")
    (tmp_path / "w" / "preprocessor_config.json").unlink()
    with pytest.raises(ModelSourceError, match=r"no preprocessor_config\.json"):
        load_model(f"local-dir:{tmp_path / 'w'}")


def test_a_transformers_foundation_gets_a_fresh_seeded_head(tmp_path):
    tiny_vit(tmp_path / "v")
    a = load_foundation(f"local-dir:{tmp_path / 'v'}", 5, seed=3)
    b = load_foundation(f"local-dir:{tmp_path / 'v'}", 5, seed=3)
    assert a.num_classes == 5 and a.fingerprint == b.fingerprint
    assert a.model(torch.zeros(1, 3, 32, 32)).shape == (1, 5)


def test_partial_fine_tuning_trains_the_last_layers_only_and_round_trips_through_the_store(tmp_path):
    tiny_vit(tmp_path / "v", layers=3)
    m = load_model(f"local-dir:{tmp_path / 'v'}", num_classes=3)
    split = split_model(m.model, 1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(split.tail(split.prefix(x)).numpy(), m.model(x).numpy(), atol=1e-5)
    assert split.family == "hf-vit" and split.k == 2
    assert all(n.startswith(("model.vit.layers.2.", "model.vit.layernorm.", "model.classifier."))
               for n in split.tail_state)
    before = {k: v.clone() for k, v in m.model.state_dict().items()}
    engine = Engine(ArtifactStore(tmp_path / "s"), device="cpu", cache_blocks=1)
    images = toy_images(48)
    engine.train(m, images, images.labels, TrainConfig(epochs=2, batch_size=16, lr=1e-2, trainable_blocks=1))
    changed = {k for k, v in m.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and changed <= split.tail_state
    save_model(m, tmp_path / "saved")
    back = load_saved(tmp_path / "saved", source="store:test")
    assert back.fingerprint == m.fingerprint and back.data_config == m.data_config
    np.testing.assert_allclose(engine.logits(back, images), engine.logits(m, images), atol=1e-5)


@pytest.mark.slow
def test_an_audit_whose_victim_is_a_transformers_model(tmp_path, monkeypatch):
    """End to end on the reduced demo's real images: a tiny transformers ViT victim (full fine-tuning), its copy,
    its fine-tune on other data, and an innocent model from the same foundation, all transformers folders."""
    from dataclasses import replace

    from forensics.audit.config import AuditConfig
    from forensics.audit.sources import load_data
    from forensics.audit.spec import AuditSpec
    from forensics.cases.case import Case, Suspect

    monkeypatch.setenv("FORENSICS_CPU_THREADS", "2")
    private, aux = load_data("demo:private", quick=True), load_data("demo:aux", quick=True)
    names = private.classes
    hf_vit_foundation(tmp_path / "foundation", names)
    store = ArtifactStore(tmp_path / "store")
    engine = Engine(store, device="cpu", cache_blocks=None)
    train = TrainConfig(epochs=8, batch_size=32, lr=1e-3, trainable_blocks=None, seed=0)

    def trained(start, data, seed, out):
        return hf_trained(engine, start, data, replace(train, seed=seed), tmp_path / out)

    victim = trained(tmp_path / "foundation", private, 0, "victim")
    spec = AuditSpec(victim=f"local-dir:{victim}", foundation=f"local-dir:{tmp_path / 'foundation'}",
                     data="demo:private", heldout="demo:heldout", quick=True, device="cpu",
                     config=AuditConfig(seed=0, train=train, poison_train=replace(train, epochs=3)))
    case = Case(spec=spec, suspects=[
        Suspect("copy", f"local-dir:{victim}"),
        Suspect("fine-tune", f"local-dir:{trained(victim, aux, 1, 'finetuned')}"),
        Suspect("innocent", f"local-dir:{trained(tmp_path / 'foundation', aux, 2, 'innocent')}")]).run(store)
    assert case.errors == {}
    p = {n: v.p_value for n, v in case.verdicts.items()}
    # measured on the CI machine kind: copy 3.0e-6, fine-tune 0.0064, innocent 0.20
    assert p["copy"] < 1e-3 and p["fine-tune"] < 0.05 and p["innocent"] > 0.05, p
    assert case.cards["victim"]["library"] == "transformers" and case.cards["victim"]["classes"] == names


def test_clip_style_image_towers_are_foundations(tmp_path, save_hf):
    """The two forms of a CLIP image tower with a linear head: timm's CLIP ViTs (pre-norm layout) and a transformers
    CLIP checkpoint (the whole contrastive model, or CLIPForImageClassification): the image tower gets a fresh head."""
    import timm
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    # timm: the CLIP ViT architecture (norm_pre, quick-gelu-free layout) at a tiny size, written with save_for_hf
    torch.manual_seed(0)
    tower = timm.create_model("vit_base_patch16_clip_224", pretrained=False, num_classes=0, img_size=32, patch_size=8,
                              embed_dim=32, depth=2, num_heads=2)
    folder = tmp_path / "timm-clip"
    folder.mkdir()
    timm.models.save_for_hf(tower, str(folder), model_args={"img_size": 32, "patch_size": 8, "embed_dim": 32,
                                                            "depth": 2, "num_heads": 2})
    f = load_foundation(f"local-dir:{folder}", 5, seed=1)
    assert f.num_classes == 5 and f.arch == "vit_base_patch16_clip_224" and f.card()["library"] == "timm"
    split = split_model(f.model, 1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(split.tail(split.prefix(x)).numpy(), f.model(x).numpy(), atol=1e-5)

    # transformers: a whole CLIP checkpoint (text tower included); its image processor resizes the shortest edge
    # (bicubic) and crops the centre
    cfg = CLIPConfig(text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                                      vocab_size=99, bos_token_id=0, eos_token_id=1, pad_token_id=1),
                     vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                        num_attention_heads=2, image_size=32, patch_size=8))
    CLIPModel(cfg).save_pretrained(str(tmp_path / "clip"))
    proc = CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32})
    proc.save_pretrained(str(tmp_path / "clip"))
    c = load_foundation(f"local-dir:{tmp_path / 'clip'}", 4, seed=1)
    assert c.num_classes == 4 and c.arch == "transformers:CLIPForImageClassification"
    assert c.extra["head"] == "none in the checkpoint" or "new 4-class head" in c.extra["head"]
    assert c.model(torch.zeros(1, 3, 32, 32)).shape == (1, 4)
    images = toy_images(4)
    ours = torch.stack([EvalTransform(c.data_config)(images.pil(i).resize((48, 36))) for i in range(4)])
    theirs = proc(images=[images.pil(i).resize((48, 36)) for i in range(4)], return_tensors="pt")["pixel_values"]
    # the same pixels up to one level of 8 bits on a few of them (bicubic rounding): measured 48 of 12,288 values
    diff = np.abs(ours.numpy() - theirs.numpy())
    one_level = 1 / 255 / min(c.data_config["std"]) + 1e-6
    assert diff.max() <= one_level and (diff > 1e-5).mean() < 0.01


def test_a_sharded_checkpoint_loads(tmp_path):
    hf = tiny_vit(tmp_path / "v")
    hf.save_pretrained(str(tmp_path / "sharded"), max_shard_size="40KB")
    (tmp_path / "sharded" / "preprocessor_config.json").write_bytes((tmp_path / "v" / "preprocessor_config.json")
                                                                     .read_bytes())
    assert len(list((tmp_path / "sharded").glob("model-*-of-*.safetensors"))) > 1
    a, b = load_model(f"local-dir:{tmp_path / 'v'}"), load_model(f"local-dir:{tmp_path / 'sharded'}")
    assert b.extra["format"] == "sharded safetensors" and a.fingerprint == b.fingerprint
    # (transformers 5 writes safetensors only; pytorch_model.bin checkpoints load through the same call,
    # transformers reading them with weights_only=True)
