"""Every file in configs/ loads, and holds only what differs from the defaults (so a default changes in one
place); pipeline files name only configs that exist."""
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from streamguard.config import FuseConfig, GNNConfig, LexicalConfig, TransformerConfig, load_config
from streamguard.errors import UserError
from streamguard.pipeline import load_steps
from streamguard.pretrain.train import PretrainConfig

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if not p.name.startswith("pipeline-"))
PIPELINES = sorted((ROOT / "configs").glob("pipeline-*.yaml"))
CLASSES = {"gnn": GNNConfig, "transformer": TransformerConfig, "lexical": LexicalConfig,
           "pretrain": PretrainConfig, "fusion": FuseConfig}


def _class_of(path: Path) -> type:
    return CLASSES[path.stem.split("-")[0]]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_loads_and_sets_only_non_defaults(path: Path) -> None:
    cls = _class_of(path)
    cfg = load_config(cls, path)
    defaults = cls()
    keys = yaml.safe_load(path.read_text()) or {}
    assert keys, f"{path} sets nothing: delete it"
    same = [k for k in keys if getattr(cfg, k) == getattr(defaults, k)]
    assert not same, f"{path} repeats defaults: {same}"


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_pipeline_configs_name_existing_files(path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    steps, _ = load_steps(path, {})
    named = {m for s in steps for a in s["args"] for m in re.findall(r"configs/[\w/.-]+\.yaml", a)}
    assert named and not [p for p in named if not (ROOT / p).is_file()]


def test_configs_are_frozen_and_ranges_are_checked() -> None:
    cfg = GNNConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]
    for cls, bad, msg in ((GNNConfig, "epochs=-1", ">= 1"), (GNNConfig, "batch_size=0", ">= 1"),
                          (LexicalConfig, "c_grid=-1", "> 0"), (GNNConfig, "monitor=loss", "one of"),
                          (TransformerConfig, "dropout=1.5", "<= 0.99"), (GNNConfig, "lr=nan", "> 0")):
        with pytest.raises(UserError, match=msg):
            load_config(cls, None, None, [bad])
