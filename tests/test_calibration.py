"""Calibrated scores (issue 26): temperature scaling and isotonic regression fitted on valid, ECE, the bundle's
calibration.json, and scans whose shown scores change while their verdicts do not."""
from __future__ import annotations

import json
import logging
import shutil

import jsonschema
import numpy as np
import pytest
from scan_fixture import make_bundle

from streamguard.cli import main
from streamguard.errors import UserError
from streamguard.evaluate import calibration as cal_mod
from streamguard.evaluate.calibration import Calibration
from streamguard.provenance import sha256_file
from streamguard.scan import formats
from streamguard.scan.bundle import CALIBRATION, open_model

CODE = "int f{n}(char *s)\n{{\n\tchar b[{n}];\n\tstrcpy(b, s);\n\treturn b[0] + {n};\n}}\n\n"
SAFE = "static int g{n}(int a)\n{{\n\treturn a * {n} + 1;\n}}\n\n"


def _synthetic(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose true log-odds are z but which a model reports as z * temperature (over-confident for T > 1)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < cal_mod.sigmoid(z)).astype(int)
    return cal_mod.sigmoid(z * temperature), y


def test_temperature_recovers_a_known_temperature():
    for true_t in (0.5, 2.5):
        p, y = _synthetic(20000, true_t)
        assert cal_mod.fit_temperature(p, y) == pytest.approx(true_t, rel=0.06)
        fitted = cal_mod.fit(p, y, "temperature")
        assert cal_mod.ece(fitted.apply(p), y) < cal_mod.ece(p, y) / 3


def test_isotonic_is_monotone_and_clips():
    p, y = _synthetic(3000, 2.0, seed=1)
    c = cal_mod.fit(p[(p > 0.1) & (p < 0.9)], y[(p > 0.1) & (p < 0.9)], "isotonic")
    grid = np.linspace(0, 1, 501)
    out = c.apply(grid)
    assert np.all(np.diff(out) >= 0) and np.all((out >= 0) & (out <= 1))
    # outside the fitted range the ends are held (out_of_bounds="clip"), not extrapolated
    assert c.apply([0.0, 0.05])[0] == c.apply([0.0, 0.05])[1] == c.iso_y[0]
    assert c.apply([1.0])[0] == c.iso_y[-1]
    # the JSON form applies exactly like scikit-learn's model
    from sklearn.isotonic import IsotonicRegression
    sk = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p[(p > 0.1) & (p < 0.9)],
                                                                      y[(p > 0.1) & (p < 0.9)])
    again = Calibration.from_dict(json.loads(json.dumps(c.to_dict())))
    assert np.allclose(again.apply(grid), sk.predict(grid))


def test_ece_of_a_calibrated_set_is_about_zero_and_of_a_wrong_one_is_not():
    rng = np.random.default_rng(3)
    p = rng.random(200000)
    y = (rng.random(len(p)) < p).astype(int)
    assert cal_mod.ece(p, y) < 0.005
    assert cal_mod.ece(np.clip(p + 0.2, 0, 1), y) > 0.15
    rel = cal_mod.reliability(p, y)
    assert len(rel["count"]) == cal_mod.BINS and sum(rel["count"]) == len(p)
    assert cal_mod.ece([1.0, 1.0], [1, 1]) == 0.0  # a score of exactly 1 falls in the last bin


def test_one_class_valid_is_not_calibrated_and_damaged_json_is_refused():
    c = cal_mod.fit([0.2, 0.7], [1, 1])
    assert not c.active and np.allclose(c.apply([0.2, 0.7]), [0.2, 0.7])
    for bad in ({"method": "platt"}, {"method": "temperature", "temperature": -1},
                {"method": "isotonic", "isotonic": {"x": [0.2, 0.1], "y": [0, 1]}}, []):
        with pytest.raises(ValueError):
            Calibration.from_dict(bad)


@pytest.fixture(scope="module")
def model(processed_small, tmp_path_factory):
    return make_bundle(processed_small, tmp_path_factory.mktemp("calmodel"))


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "a.c").write_text("".join(CODE.format(n=n) for n in range(1, 9)) + "".join(SAFE.format(n=n)
                                                                                     for n in range(1, 9)))
    return root


def _scan(bundle, tree, out, *extra):
    main(["scan", str(tree), "--model", str(bundle), "--format", "json", "--out", str(out), "--fail-on", "none",
          *extra])
    return json.loads(out.read_text())


def test_bundle_keeps_its_calibration_and_verdicts_do_not_change(model, tree, tmp_path):
    run, bundle = model
    doc = json.loads((bundle / CALIBRATION).read_text())
    assert doc["method"] == cal_mod.DEFAULT_METHOD and doc["temperature"] > 0 and doc["valid"]["n"] > 0
    loaded = open_model(bundle).info["calibration"]
    assert loaded == Calibration.from_dict(doc) and loaded.active
    assert loaded.temperature == pytest.approx(cal_mod.fit_run(run).temperature)
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "## Calibration" in card and "temperature scaling" in card and "| test |" in card and "ECE raw" in card
    rep = _scan(bundle, tree, tmp_path / "r.json", "--threshold", "accuracy")
    jsonschema.validate(rep, formats.json_schema())
    raw = np.array([f["raw_score"] for f in rep["findings"]])
    shown = np.array([f["score"] for f in rep["findings"]])
    assert np.allclose(shown, loaded.apply(raw)) and not np.allclose(shown, raw)
    # verdicts are those of the raw scores against the raw threshold
    assert [f["verdict"] for f in rep["findings"]] == \
        ["vulnerable" if r >= rep["threshold"] else "clean" for r in raw]
    assert 0 < rep["summary"]["vulnerable"] < len(raw)  # both verdicts occur: the comparison means something
    assert rep["operating_point"]["calibrated_threshold"] == pytest.approx(loaded.one(rep["threshold"]))
    assert rep["model"]["calibration"]["method"] == loaded.method
    # the same bundle without its calibration: identical verdicts, raw scores shown
    plain = tmp_path / "plain"
    shutil.copytree(bundle, plain)
    (plain / CALIBRATION).unlink()
    _resign(plain)
    rep2 = _scan(plain, tree, tmp_path / "p.json", "--threshold", "accuracy")
    assert [f["verdict"] for f in rep2["findings"]] == [f["verdict"] for f in rep["findings"]]
    assert [f["score"] for f in rep2["findings"]] == pytest.approx(list(raw))
    report = _report_of(bundle, tree)
    report.recut(rep["threshold"], {"description": "the cut"})
    sarif = formats.to_sarif(report)
    assert len(sarif["runs"][0]["results"]) == rep["summary"]["vulnerable"]  # flagged: raw score >= threshold
    assert all("raw_score" in r["properties"] for r in sarif["runs"][0]["results"])
    shown = f"{loaded.one(rep['threshold']):.3f}"
    assert f"threshold {shown}" in formats.write("html", report)  # the histogram's cut, on the drawn scale
    assert f"the cut is {loaded.one(rep['threshold']):.4f}" in formats.write("table", report, width=200)


def _report_of(bundle, tree):
    from streamguard.scan.detector import load
    with load(bundle) as det:
        return det.scan([tree], root=tree)


def _resign(bundle) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = {rel: {"sha256": sha256_file(bundle / rel), "bytes": (bundle / rel).stat().st_size}
                         for rel in manifest["files"] if (bundle / rel).is_file()}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_old_bundle_without_calibration_loads_with_one_warning(model, tmp_path, caplog):
    _, bundle = model
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    (old / CALIBRATION).unlink()
    _resign(old)
    with caplog.at_level(logging.WARNING):
        src = open_model(old)
    assert not src.info["calibration"].active
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and CALIBRATION in warned[0].getMessage() and "export it again" in warned[0].getMessage()
    # a damaged one is refused in one line, not used
    (old / CALIBRATION).write_text(json.dumps({"method": "temperature", "temperature": 0}))
    _resign(old)
    with pytest.raises(UserError, match=CALIBRATION):
        open_model(old)
