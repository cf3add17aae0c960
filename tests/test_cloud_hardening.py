"""Red-team round two on the cloud and registry commands (issue 27, items 11 and 18): credentials in settings,
made-up instance types, tampered bundles, and a registry that lists where it registers."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from streamguard.cli import main
from streamguard.cloud.model_registry import list_versions

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BASE = ["cloud", "sagemaker", "train", "gnn", "--data", "s3://sg-bucket/d", "--output", "s3://sg-bucket/o",
        "--role", ROLE, "--region", "us-east-1", "--dry-run"]


@pytest.mark.parametrize("extra, key", [
    (["--set", "tracking_uri=https://user:hunter2@mlflow.example.com"], "tracking_uri"),
    (["--set", "checkpoint_uri=s3://AKIAX:hunter2@bucket/ck"], None),   # replaced by the job's own URI
    (["--set", "node_text_init=https://u:hunter2@host/enc"], "node_text_init"),
    (["--data", "s3://user:hunter2@sg-bucket/d"], None),
    (["--output", "s3://user:hunter2@sg-bucket/o"], None),
    (["--set", "optimizer=https://u:hunter2@host"], None),  # a config error quoting the value
])
def test_credentials_in_a_setting_are_refused_and_never_repeated(extra: list[str], key: str | None,
                                                                 capsys: pytest.CaptureFixture) -> None:
    args = [*BASE, *extra]
    rc = main(args)
    out = capsys.readouterr()
    assert "hunter2" not in out.out + out.err
    if key is None and rc == 0:  # the job's own URI took its place: nothing of it travels
        assert "hunter2" not in out.out
        return
    # the SDK's own DeprecationWarning may come first, as a "warning:" line; then our one error line
    errors = [ln for ln in out.err.splitlines() if ln.startswith("streamguard:")]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in out.err, out.err
    if key:
        assert f"setting {key}: a URI with credentials" in out.err


def test_a_made_up_instance_type_is_refused_even_in_a_dry_run(capsys: pytest.CaptureFixture) -> None:
    assert main([*BASE, "--instance-type", "ml.fake.huge"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'ml.fake.huge' is not a SageMaker training instance type" in err[0]
    assert "ml.g4dn" in err[0]  # names the families it knows
    assert main([*BASE, "--instance-type", "ml.g5.2xlarge"]) == 0


@pytest.fixture(scope="module")
def lexical_run(processed_small: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real lexical run and its exported bundle (tests/scan_fixture.py), trained without MLflow."""
    from scan_fixture import make_bundle

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", "off")
        return make_bundle(processed_small, tmp_path_factory.mktemp("reg"))


def test_register_refuses_a_bundle_that_does_not_match_its_manifest(lexical_run: tuple[Path, Path], tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    run, bundle = lexical_run
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    bad = tmp_path / "bad-bundle"
    shutil.copytree(bundle, bad)
    info = json.loads((bad / "bundle.json").read_text())
    (bad / "bundle.json").write_text(json.dumps({**info, "threshold": 0.01}))  # changed after export
    assert main(["models", "register", str(run), "lex", "--bundle", str(bad), "--tracking-uri", store]) == 2
    assert "does not match its sha256" in capsys.readouterr().err
    assert list_versions(store, "lex") == []
    assert main(["models", "register", str(run), "lex", "--bundle", str(bundle), "--tracking-uri", store]) == 0


def test_list_shows_the_latest_version_whatever_run_it_came_from(lexical_run: tuple[Path, Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run, _ = lexical_run
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["models", "register", str(run), "lex"]) == 0
    other = tmp_path / "copied-run"
    shutil.copytree(run, other)
    (other / "mlflow.db").write_bytes(b"")  # a run that carries its own store (older runs, copies)
    assert main(["models", "register", str(other), "lex"]) == 0
    assert "registered lex version 2" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:2] == ["lex", "v2"]
