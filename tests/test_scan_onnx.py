"""The transformer's forward pass on ONNX Runtime (scan --precision onnx | int8): a tiny real transformer scores
the fixture's functions as torch does (fp32 graph: within 1e-4; int8: within 0.02 and the same verdicts), the
graphs are kept in the scan's --cache and reused, a transformer inside a fusion runs there too, and a missing
dependency is one line, exit 2. The [onnx] extra is part of [dev]: these tests run in CI, never skipped."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import streamguard
from streamguard.cli import main
from streamguard.config import FuseConfig, TransformerConfig, to_dict
from streamguard.models import onnx_runtime
from streamguard.scan.bundle import export_run
from streamguard.train import fuse, transformer

TINY = TransformerConfig(model="tiny", tiny_layers=1, tiny_hidden=32, tiny_heads=2, tiny_intermediate=64,
                         max_length=96, lr=1e-3, epochs=1, batch_size=8, tracking_uri="off", threads=1, seed=7)
INT8_ATOL = 0.02  # dynamic int8 on this tiny model moves scores by thousandths (Devign: scan_onnx.md)


@pytest.fixture(scope="module")
def bundle(processed_small, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("onnx")
    return export_run(transformer.train(processed_small, root / "run", TINY), root / "bundle")


@pytest.fixture(scope="module")
def codes(processed_small) -> list[str]:
    raw = (Path(processed_small).parent / "raw" / "test.jsonl").read_text().splitlines()
    return [json.loads(x)["func"] for x in raw]


def _raw(bundle: Path, precision: str, codes: list[str]) -> tuple[np.ndarray, list[str], dict]:
    with streamguard.load(bundle, precision=precision) as det:
        scores = det.score(codes)
        return np.array([s.raw_prob for s in scores]), [s.verdict for s in scores], det.info()


def test_onnx_scores_as_torch_and_int8_keeps_the_verdicts(bundle, codes):
    torch_p, torch_v, _ = _raw(bundle, "fp32", codes)
    onnx_p, onnx_v, info = _raw(bundle, "onnx", codes)
    int8_p, int8_v, info8 = _raw(bundle, "int8", codes)
    assert info["precision"] == "onnx" and info8["precision"] == "int8"
    np.testing.assert_allclose(onnx_p, torch_p, rtol=0, atol=1e-4)
    assert onnx_v == torch_v
    np.testing.assert_allclose(int8_p, torch_p, rtol=0, atol=INT8_ATOL)
    assert np.abs(int8_p - onnx_p).max() > 1e-7  # the int8 graph did run, not the fp32 one
    assert sum(a != b for a, b in zip(int8_v, torch_v)) <= 1  # at most one of the 12 verdicts flips


def test_the_graph_takes_any_batch_and_length_and_keeps_padding_masked(bundle, tmp_path):
    """Scan runs one function at a time, but the graph is dynamic: a padded batch of three lengths gives torch's
    logits, and each row its logits alone (the mask was not traced away)."""
    import onnxruntime as ort
    import torch
    model, _ = transformer.loaded_export(bundle / "model")
    onnx_runtime.export(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    lengths = [5, 9, 14]
    ids = torch.full((3, 14), model.encoder.config.pad_token_id, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.arange(3, 3 + n) * (row + 1)
        mask[row, :n] = 1
    batch = session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(batch, model(ids, mask).numpy(), rtol=0, atol=1e-5)
    for row, n in enumerate(lengths):
        alone = session.run(["logits"], {"input_ids": ids[row:row + 1, :n].numpy(),
                                         "attention_mask": mask[row:row + 1, :n].numpy()})[0]
        np.testing.assert_allclose(alone[0], batch[row], rtol=0, atol=1e-5)


def _scan(bundle: Path, tree: Path, cache: Path) -> list[float]:
    with streamguard.load(bundle, precision="int8") as det:
        report = det.scan([tree], root=tree, cache=cache)
    return sorted(f.raw for f in report.findings)


def test_scan_cache_keeps_the_graphs_and_a_second_scan_reuses_them(bundle, codes, tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    tree.mkdir()
    for i, code in enumerate(codes[:4]):
        (tree / f"f{i}.c").write_text(code)
    first = _scan(bundle, tree, tmp_path / "cache")
    graphs = sorted(p.name for p in (tmp_path / "cache" / "onnx").iterdir())
    sha = onnx_runtime.weights_sha256(bundle / "model" / transformer.EXPORT_DIR)
    assert graphs == [f"{sha}-fp32.onnx", f"{sha}-int8.onnx"]  # no temporary file left behind

    def no_export(*_: object) -> None:
        raise AssertionError("the cached graph was made again")

    monkeypatch.setattr(onnx_runtime, "export", no_export)
    monkeypatch.setattr(onnx_runtime, "quantize", no_export)
    monkeypatch.setattr(onnx_runtime, "_SESSIONS", type(onnx_runtime._SESSIONS)())  # as a new process
    (tree / "f0.c").write_text(codes[0] + "\n")  # a changed file: its scores are not in the score cache
    again = _scan(bundle, tree, tmp_path / "cache")
    assert len(first) == 4 and again == pytest.approx(first, abs=1e-9)


def test_a_transformer_inside_a_fusion_runs_on_onnx_runtime(processed_small, codes, tmp_path, monkeypatch):
    (tmp_path / "transformer.yaml").write_text(json.dumps(to_dict(TINY)))
    cfg = FuseConfig(models=["transformer"], folds=2, seed=7,
                     base_configs=[f"transformer={tmp_path / 'transformer.yaml'}"])
    bundle = export_run(fuse.train(processed_small, tmp_path / "fusion", cfg), tmp_path / "bundle")
    torch_p, _, _ = _raw(bundle, "fp32", codes[:6])
    made: list[Path] = []
    real = onnx_runtime.export
    monkeypatch.setattr(onnx_runtime, "export", lambda model, path: (made.append(path), real(model, path)))
    onnx_p, _, info = _raw(bundle, "onnx", codes[:6])
    assert info["precision"] == "onnx" and len(made) == 1
    np.testing.assert_allclose(onnx_p, torch_p, rtol=0, atol=1e-4)


def test_without_onnxruntime_the_scan_says_what_to_install(bundle, tmp_path, capsys, monkeypatch):
    import importlib.util
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else find(name, *a))
    (tmp_path / "f.c").write_text("int f(int a) { return a + 1; }\n")
    assert main(["scan", str(tmp_path), "--model", str(bundle), "--precision", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "onnxruntime" in err and "streamguard[onnx]" in err
    with pytest.raises(SystemExit) as exc:
        main(["scan", str(tmp_path), "--model", str(bundle), "--precision", "fp16"])
    assert exc.value.code == 2
