"""A transformers victim audited end to end through the command line and through the dashboard, with its data as a
Hugging Face dataset (train split: the private data; test split: the held-out data)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import hf_trained, hf_vit_foundation, shown

# AppTest runs app.py on every rerun, as the server does (conftest.navigation_like_the_server)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("navigation_like_the_server")]


@pytest.fixture(scope="module")
def hf_case(tmp_path_factory):
    """A tiny transformers ViT foundation, a victim fine-tuned from it on the reduced demo's private images, a copy,
    an innocent model, and the demo's private / held-out images as one saved DatasetDict."""
    import datasets

    from forensics.audit.sources import load_data
    from forensics.engine.engine import Engine
    from forensics.engine.recipe import TrainConfig
    from forensics.runtime.store import ArtifactStore

    root = tmp_path_factory.mktemp("hf-case")
    private, heldout, aux = (load_data(f"demo:{s}", quick=True) for s in ("private", "heldout", "aux"))
    names = private.classes
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})

    def as_dataset(s):
        return datasets.Dataset.from_dict({"image": [s.pil(i) for i in range(len(s))], "label": s.labels.tolist()},
                                          features=feats)

    datasets.DatasetDict({"train": as_dataset(private), "test": as_dataset(heldout)}).save_to_disk(str(root / "ds"))
    hf_vit_foundation(root / "foundation", names)
    engine = Engine(ArtifactStore(root / "scratch"), device="cpu", cache_blocks=None)
    train = TrainConfig(epochs=8, batch_size=32, lr=1e-3, trainable_blocks=None, seed=0)

    def trained(start, data, seed, out):
        return hf_trained(engine, start, data, replace(train, seed=seed), root / out)

    victim = trained(root / "foundation", private, 0, "victim")
    innocent = trained(root / "foundation", aux, 2, "innocent")
    return {"root": root, "ds": root / "ds", "foundation": root / "foundation", "victim": victim,
            "innocent": innocent}


def test_the_command_line_audits_a_transformers_victim_on_a_dataset(hf_case, tmp_path):
    from forensics.cli.main import main

    c = hf_case
    out = tmp_path / "audit.json"
    rc = main(["audit", "--victim", f"local-dir:{c['victim']}", "--foundation", f"local-dir:{c['foundation']}",
               "--data", f"{c['ds']}?split=train", "--heldout", f"{c['ds']}?split=test",
               "--suspect", f"local-dir:{c['victim']}", "--suspect", f"local-dir:{c['innocent']}",
               "--trainable-blocks", "2", "--epochs", "6", "--lr", "1e-3", "--device", "cpu",
               "--store", str(tmp_path / "store"), "--json", str(out), "--quiet"])
    assert rc == 0
    rec = json.loads(out.read_text())
    p = {Path(s["name"].removeprefix("local-dir:")).name: s["p_value"] for s in rec["suspects"]}
    assert p["victim"] < 1e-3 and p["innocent"] > 0.01, p  # the copy caught, the innocent not accused
    assert rec["audit"]["victim"]["library"] == "transformers"
    assert rec["audit"]["private"]["classes"] == rec["audit"]["victim"]["classes"]


def test_the_dashboard_audits_a_transformers_victim_on_a_dataset(hf_case, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from forensics.runtime.jobs import get_job

    monkeypatch.setenv("FORENSICS_STORE", str(tmp_path / "store"))
    c = hf_case
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=300)
    at.run()
    values = {"Victim model": f"local-dir:{c['victim']}", "Foundation model": f"local-dir:{c['foundation']}",
              "Private training data": f"{c['ds']}?split=train",
              "Held-out data (same collection, never seen by the victim)": f"{c['ds']}?split=test"}
    for t in at.text_input:
        if t.label in values:
            t.set_value(values[t.label])
    next(b for b in at.button if b.label == "Load victim and data").click().run()
    assert not at.exception and not at.error, [shown(e) for e in at.error]
    for t in at.text_input:
        if t.label == "Suspect model":
            t.set_value(f"local-dir:{c['innocent']}")
    next(b for b in at.button if b.label == "Check and add suspect").click().run()
    assert not at.error, [shown(e) for e in at.error]
    case = at.session_state["case"]
    assert case.cards["victim"]["library"] == "transformers" and len(case.suspects) == 1
    at.switch_page("pages/shadows.py").run()
    next(b for b in at.button if b.label == "Build shadow models and verify suspects").click().run()
    job = get_job(at.session_state["job_id"]).wait(600)
    assert job.status == "done", job.error
    at.switch_page("pages/verdict.py").run()
    assert not at.exception
    done = at.session_state["case"]
    assert done.errors == {} and list(done.verdicts) == ["innocent"], done.errors
    assert any("None of" in m.value or "The suspect shows no" in m.value for m in at.markdown)
