"""Neural bundles: a tiny transformer and a small GNN exported and scored through scan's code path give the
runs' own test predictions, and their line evidence lies inside the function."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import streamguard
from streamguard.config import GNNConfig, TransformerConfig
from streamguard.scan.bundle import export_run
from streamguard.train import gnn, transformer

COMMON = {"epochs": 1, "batch_size": 8, "tracking_uri": "off", "threads": 1, "seed": 7}
KINDS = {
    "transformer": (transformer, TransformerConfig(model="tiny", tiny_layers=1, tiny_hidden=32, tiny_heads=2,
                                                   tiny_intermediate=64, max_length=96, lr=1e-3, **COMMON)),
    "gnn": (gnn, GNNConfig(embed_dim=16, hidden=16, layers=2, head_hidden=16, **COMMON)),
    # leaves' sub-tokens by the shipped encoder's tokenizer, not the data's: scan must split them the same way
    "gnn-text": (gnn, GNNConfig(embed_dim=16, hidden=16, layers=2, head_hidden=16,
                                node_text_init=str(Path(__file__).resolve().parents[1] / "models" /
                                                   "streamguard-c-encoder"), **COMMON)),
}


@pytest.fixture(scope="module", params=sorted(KINDS))
def neural(request, processed_small, tmp_path_factory):
    module, cfg = KINDS[request.param]
    root = tmp_path_factory.mktemp(request.param)
    run = module.train(processed_small, root / "run", cfg)
    return request.param, run, export_run(run, root / "bundle")


def test_neural_bundle_reproduces_the_run(neural, processed_small):
    kind, run, bundle = neural
    assert not [p for p in bundle.rglob("*") if p.suffix in (".ckpt", ".pt", ".bin", ".pkl")]
    raw = [json.loads(x) for x in (Path(processed_small).parent / "raw" / "test.jsonl").read_text().splitlines()]
    written = {r["id"]: r["prob_vulnerable"] for r in
               (json.loads(x) for x in (run / "predictions" / "test.jsonl").read_text().splitlines())}
    expected = [written[f"CODEXGLUE-TEST-{i}"] for i in range(len(raw))]
    det = streamguard.load(bundle, precision="fp32")
    assert det.kind == kind.split("-")[0] and det.info()["precision"] == "fp32"
    scores = det.score([r["func"] for r in raw[:6]], evidence=3)
    np.testing.assert_allclose([s.raw_prob for s in scores], expected[:6], rtol=0, atol=1e-5)
    n_lines = [len(r["func"].split("\n")) for r in raw[:6]]
    for s, n in zip(scores, n_lines):
        assert all(1 <= e.line <= n for e in s.evidence)
    assert any(s.evidence for s in scores)


@pytest.mark.parametrize("neural", ["transformer"], indirect=True)
def test_transformer_attributions_map_through_token_offsets_to_lines(neural, monkeypatch):
    """Integrated gradients replaced by known attributions: all on the last text token (the closing brace), then
    one per token: the line scores must follow the token offsets."""
    _, _, bundle = neural
    import torch
    from captum.attr import LayerIntegratedGradients

    mode = {"last": True}

    def fake(self, inputs, baselines=None, additional_forward_args=None, n_steps=50):
        n = inputs.shape[1]
        per_token = torch.zeros(n) if mode["last"] else torch.ones(n)
        per_token[n - 2] = 1.0
        return per_token.reshape(1, n, 1).expand(1, n, 4) / 4

    monkeypatch.setattr(LayerIntegratedGradients, "attribute", fake)
    code = "int f(int a)\n{\n\tint b = a * 2;\n\n\treturn b;\n}\n"
    det = streamguard.load(bundle)
    (scores,) = transformer.line_scores(det.source.model_dir, det.source.prep_dir, [code])
    assert scores.argmax() + 1 == 6 and scores.sum() == pytest.approx(1.0)  # all on "}" (line 6)
    mode["last"] = False
    (scores,) = transformer.line_scores(det.source.model_dir, det.source.prep_dir, [code])
    assert scores[3] == 0 and (scores[[0, 1, 2, 4, 5]] >= 1).all()  # every text token lands on its own line
    assert scores[2] > scores[1]  # "\tint b = a * 2;" holds more tokens than "{"


def test_bf16_scores_stay_close_to_the_runs_and_auto_follows_the_cpu(neural, processed_small):
    """bf16 forward passes (emulated where the CPU lacks them: slower, same numbers) move a score by a few
    thousandths; ``auto`` picks bf16 exactly where the CPU multiplies it in hardware."""
    kind, run, bundle = neural
    raw = [json.loads(x) for x in (Path(processed_small).parent / "raw" / "test.jsonl").read_text().splitlines()]
    codes = [r["func"] for r in raw[:12]]
    exact = [s.prob for s in streamguard.load(bundle, precision="fp32").score(codes)]
    half = streamguard.load(bundle, precision="bf16")
    assert half.info()["precision"] == "bf16"
    probs = [s.prob for s in half.score(codes)]
    np.testing.assert_allclose(probs, exact, rtol=0, atol=0.02)
    assert probs != exact  # the forward passes did run in bf16
    from streamguard.scan.model import native_bf16
    assert streamguard.load(bundle).info()["precision"] == ("bf16" if native_bf16() else "fp32")



@pytest.mark.parametrize("neural", ["transformer"], indirect=True)
def test_loading_a_transformer_through_the_api_draws_no_bar(neural, capfd, monkeypatch):
    """The CLI turns Hugging Face bars off for its process; the Python API must not print one per model."""
    from streamguard.models import loaded
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    loaded.clear()  # a fresh load, not the cached model
    streamguard.load(neural[2], precision="fp32").score("int f(void) { return 0; }")
    assert "Loading weights" not in capfd.readouterr().err
