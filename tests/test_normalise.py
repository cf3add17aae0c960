"""Identifier normalisation (features/normalise.py): real Devign functions lose their project vocabulary and keep
C, libc and the risky APIs; preprocessing records it and applies it, and a bundle trained on normalised data
scores (and explains) scanned code exactly as its run predicted."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import streamguard
from streamguard.config import GNNConfig, LexicalConfig, PreprocessConfig
from streamguard.data.risky_api import risky_name
from streamguard.features.normalise import KEPT, PLACEHOLDER, normalise_code, normaliser
from streamguard.features.processed import ProcessedDir
from streamguard.scan.bundle import export_run
from streamguard.train import registry

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "train.jsonl"


def _sample() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]


def _idcin() -> str:
    """FFmpeg's idcin_decode_frame: types, fields, a project API, memcpy, a string and comments."""
    return next(r["func"] for r in _sample() if r["func"].startswith("static int idcin_decode_frame(")
                and "get_buffer() failed" in r["func"])


def test_a_real_function_keeps_c_and_apis_and_loses_its_names() -> None:
    code = _idcin()
    out = normalise_code(code)
    assert out.startswith("static int FUN_0(TYPE_0 *VAR_0,")  # AVCodecContext *avctx
    # keywords, standard types, NULL, libc and risky APIs as written
    for kept in ("const uint8_t *", "return -1;", "sizeof(", "NULL", "memcpy(", "if ("):
        assert kept in out
    assert out.count("memcpy(") == code.count("memcpy(") == 2
    # no project name survives: avctx, avpkt, AVPacket, av_log, priv_data, AV_LOG_ERROR, AVPALETTE_SIZE
    for name in ("avctx", "avpkt", "AVPacket", "av_log", "priv_data", "AV_LOG_ERROR", "AVPALETTE_SIZE", "idcin"):
        assert name not in out
    # one name, one placeholder: avctx is VAR_0 everywhere it was avctx
    assert out.count("VAR_0") == len(re.findall(r"\bavctx\b", code))
    # a type met first inside sizeof() is still a type: sizeof(AVFrame) and the cast (AVFrame*)
    assert "sizeof(TYPE_3)" in out and "(TYPE_3*)" in out
    # fields have their own name space: s->size and avpkt->size are one FIELD, the local buf_size a VAR
    assert "VAR_6->FIELD_1 = VAR_5;" in out
    # string contents and comments gone, lines kept (line evidence maps 1:1)
    assert '"STR"' in out and "get_buffer() failed" not in out and "palette available" not in out
    assert out.count("\n") == code.count("\n")


def test_numbers_strings_and_risky_wrappers() -> None:
    code = ('int f(char *dst, const char *src) {\n  /* two\n lines */ char *p = av_malloc(1024 + 17);\n'
            '  memcpy(dst, src, 0xff); x = 12345 + 3.5 + 255 + 65535 + 256 + 0x10;\n'
            '  return g("a\\"b") + \'\\0\';\n}')
    out = normalise_code(code)
    assert "av_malloc(1024 + 17)" in out  # the risky-API list counts av_malloc as malloc; sizes < 256 and 2^k kept
    assert "memcpy(VAR_0, VAR_1, 0xff)" in out and "VAR_3 = NUM + NUM + 255 + 65535 + 256 + 0x10" in out
    assert "FUN_1(\"STR\") + '\\0'" in out
    assert out.count("\n") == code.count("\n")


def test_normalising_is_a_fixed_point_on_real_functions() -> None:
    for row in _sample()[:300]:
        once = normalise_code(row["func"])
        assert normalise_code(once) == once
        assert once.count("\n") == row["func"].count("\n")


@pytest.fixture(scope="module")
def processed_normalised(raw_small, tmp_path_factory) -> Path:
    from streamguard.data.ingest import import_codexglue
    from streamguard.features.preprocess import preprocess
    root = tmp_path_factory.mktemp("normalised")
    import_codexglue(raw_small, root / "raw")
    preprocess(root / "raw", root / "processed", PreprocessConfig(tokenizer="bpe", bpe_vocab_size=2000, workers=1,
                                                                  normalise_identifiers=True))
    return root / "processed"


def test_preprocessing_records_and_applies_the_option(processed_normalised: Path) -> None:
    data = ProcessedDir(processed_normalised)
    assert data.metadata["config"]["normalise_identifiers"] is True
    assert normaliser(processed_normalised) is normalise_code
    recs = data.read_split("train")
    raw = data.raw_functions("train", recs)
    for rec, func in zip(recs, raw):
        assert rec["code"].strip() in normalise_code(func)  # the kept window of the normalised function
    # every name a model sees is C's, libc's, a risky API or a placeholder (but the first and last of a window,
    # which may start inside a name: the trimmer cuts between sub-word tokens)
    names = {n for r in recs for n in re.findall(r"\b[A-Za-z_]\w*", re.sub(r"'(?:\\.|[^'\\])*'", "", r["code"]))[1:-1]}
    assert names and not [n for n in names if not (n in KEPT or PLACEHOLDER.fullmatch(n) or risky_name(n))]


@pytest.mark.parametrize("kind,cfg", [
    ("lexical", LexicalConfig(ngram_min=3, ngram_max=4, max_features=20000, c_grid=[1.0])),
    ("gnn", GNNConfig(embed_dim=16, hidden=16, layers=2, head_hidden=16, epochs=1, batch_size=8,
                      tracking_uri="off", threads=1, seed=7)),
])
def test_a_normalised_bundle_scans_as_its_run_predicted(processed_normalised, raw_small, kind, cfg, tmp_path):
    run = registry.get(kind).train(processed_normalised, tmp_path / "run", cfg)
    bundle = export_run(run, tmp_path / "bundle")
    predicted = {r["id"]: r["prob_vulnerable"] for r in
                 (json.loads(x) for x in (run / "predictions" / "test.jsonl").read_text().splitlines())}
    funcs = [json.loads(x)["func"] for x in (raw_small / "test.jsonl").read_text().splitlines()[:4]]
    tree = tmp_path / "tree"
    tree.mkdir()
    for i, func in enumerate(funcs):
        (tree / f"f{i}.c").write_text(func)
    with streamguard.load(bundle, threshold=0.0, precision="fp32") as det:
        scores = det.score(funcs)  # raw code in: the bundle normalises it as preprocessing did
        np.testing.assert_allclose([s.raw_prob for s in scores], [predicted[f"CODEXGLUE-TEST-{i}"] for i in range(4)],
                                   rtol=0, atol=1e-5)
        report = det.scan([tree], root=tree, evidence=2, evidence_for=4)
    assert len(report.findings) == 4
    for f in report.findings:
        assert f.evidence and all(f.start_line <= e.line <= f.end_line for e in f.evidence)


def test_reuse_from_refuses_data_made_without_the_models_normalisation(processed_normalised, tmp_path) -> None:
    from streamguard.errors import UserError
    from streamguard.features.preprocess import preprocess
    raw = json.loads((processed_normalised / "preprocessing_metadata.json").read_text())["raw_dir"]
    with pytest.raises(UserError, match="normalise_identifiers=True: set the same"):
        preprocess(Path(raw), tmp_path / "out", PreprocessConfig(workers=1, reuse_from=str(processed_normalised)))
