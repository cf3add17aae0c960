"""Shared fixtures: small real Devign data, raw and preprocessed (once per test session)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

FIXTURES = Path(__file__).parent / "fixtures"
RAW_SMALL = FIXTURES / "raw_small"


@pytest.fixture(scope="session", autouse=True)
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the session (as a workspace has one), never the mlflow.db of the directory that
    pytest runs in; subprocesses inherit it through the environment."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


@pytest.fixture(scope="session")
def raw_small() -> Path:
    """40 / 12 / 12 real Devign functions in CodeXGLUE format."""
    return RAW_SMALL


@pytest.fixture(scope="session")
def processed_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``raw_small`` imported and preprocessed with a BPE tokenizer trained on its train split.

    Read-only for tests: copy it before changing anything.
    """
    from streamguard.config import PreprocessConfig
    from streamguard.data.ingest import import_codexglue
    from streamguard.features.preprocess import preprocess

    root = tmp_path_factory.mktemp("processed_small")
    import_codexglue(RAW_SMALL, root / "raw")
    preprocess(root / "raw", root / "processed", PreprocessConfig(tokenizer="bpe", bpe_vocab_size=2000, workers=1))
    return root / "processed"
