"""What the launcher and the container agree on: hyperparameters, metric definitions, SageMaker's paths.

The launcher turns a kind and its resolved config into SageMaker ``HyperParameters`` (string -> string);
the container entry point turns ``/opt/ml/input/config/hyperparameters.json`` back into the same config.
Neither side imports the SageMaker SDK, so the container runs on an image without it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

from streamguard.config import load_config, to_dict
from streamguard.errors import UserError
from streamguard.train import registry

# Control keys travel beside the config's own keys; the prefix keeps them apart from any config field.
KIND = "sg_kind"
COMMIT = "sg_git_commit"
DIRTY = "sg_git_dirty"
REGISTER = "sg_register"
# Config keys travel as "cfg.<key>": SageMaker's torchrun driver appends every hyperparameter to the torchrun
# command line as --<key>, and torchrun took a bare --monitor for an abbreviation of its --monitor-interval.
CONFIG_PREFIX = "cfg."
CHANNEL = "train"                       # the data channel: the processed dataset dir (pretrain: the corpus)
PRETRAIN = "pretrain"                   # the job that pre-trains an encoder rather than training a kind
# pretrain's other inputs, each its own channel: CodeXGLUE jsonl (train joins the BPE, valid is held out), and
# optionally an exported encoder to continue from. The container points the config's key of the same name at it.
PRETRAIN_CHANNELS = ("devign", "init")
MAX_HP_VALUE = 2500                     # CreateTrainingJob's limits on HyperParameters
MAX_HP_COUNT = 100


def kinds() -> list[str]:
    """What a job runs: every trainable kind, from the one registry of kinds (a kind added there is a cloud
    kind too), and the encoder's pre-training."""
    return [*registry.known_kinds(), PRETRAIN]


def config_class(kind: str) -> type:
    if kind == PRETRAIN:
        from streamguard.pretrain.train import PretrainConfig  # imports Lightning: only when a job is built
        return PretrainConfig
    return registry.config_class(kind)


def _value_pattern() -> str:
    """The number pattern of the engine's metric line, taken from its own regex so the two cannot drift."""
    from streamguard.train.tracking import METRIC_RE  # imports Lightning: only when a request is built

    match = re.search(r"\(\?P<value>(.+)\)$", METRIC_RE.pattern)
    if match is None:
        raise RuntimeError("tracking.METRIC_RE no longer ends in a (?P<value>...) group")
    return match.group(1)


def metric_definitions() -> list[dict[str, str]]:
    """CloudWatch metric definitions for the engine's per-epoch line (``tracking.format_line``):
    ``epoch=3 train_loss=0.6512 val_loss=... lr=1.000e-03``. Each regex spells out the whole line with one
    field captured, so the progress bar's own ``val_loss=0.671`` on stderr (same log stream) never matches."""
    from streamguard.train.tracking import CSV_FIELDS

    value = _value_pattern()
    defs = []
    for name in CSV_FIELDS:
        parts = []
        for other in CSV_FIELDS:
            pat = r"[0-9]+" if other == "epoch" else value
            parts.append(f"{other}=({pat})" if other == name else f"{other}=(?:{pat})")
        defs.append({"Name": name, "Regex": " ".join(parts)})
    return defs


def encode_hyperparameters(kind: str, cfg: Any, control: dict[str, str]) -> dict[str, str]:
    """``HyperParameters`` of a job: every key of the resolved config (JSON-encoded unless a plain
    string) plus the control keys. Fails in one line when SageMaker's limits would refuse it."""
    hp = {KIND: kind, **{k: str(v) for k, v in control.items() if v is not None}}
    for key, value in to_dict(cfg).items():
        hp[CONFIG_PREFIX + key] = value if isinstance(value, str) else json.dumps(value)
    if len(hp) > MAX_HP_COUNT:
        raise UserError(f"{len(hp)} hyperparameters: SageMaker accepts at most {MAX_HP_COUNT}")
    for key, value in hp.items():
        if len(value) > MAX_HP_VALUE:
            raise UserError(f"hyperparameter {key} is {len(value)} characters; SageMaker accepts {MAX_HP_VALUE}")
    return hp


def decode_hyperparameters(hp: dict[str, Any]) -> tuple[str, Any, dict[str, str]]:
    """(kind, resolved config, control keys) from a job's hyperparameters."""
    kind = str(hp.get(KIND) or "")
    if kind not in kinds():
        raise UserError(f"hyperparameters name no known kind ({KIND}={kind!r}; known: {', '.join(kinds())})")
    cls = config_class(kind)
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for name, raw in hp.items():
        if not name.startswith(CONFIG_PREFIX):
            continue  # control keys, or what SageMaker itself adds
        key = name[len(CONFIG_PREFIX):]
        if key not in fields:
            raise UserError(f"hyperparameter {name!r}: {key!r} is not a {cls.__name__} key")
        values[key] = _decode(raw)
    control = {k: str(v) for k, v in hp.items() if k.startswith("sg_")}
    return kind, load_config(cls, None, values), control


def _decode(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # a plain string value


@dataclasses.dataclass(frozen=True)
class SageMakerPaths:
    """Where SageMaker puts things in a training container; ``root`` is /opt/ml there, a temp dir in tests."""
    root: Path
    model: Path
    output_data: Path
    checkpoints: Path

    @classmethod
    def from_env(cls, root: str | Path | None = None) -> SageMakerPaths:
        base = Path(root or os.environ.get("SG_SAGEMAKER_ROOT", "/opt/ml"))
        return cls(root=base, model=Path(os.environ.get("SM_MODEL_DIR", base / "model")),
                   output_data=Path(os.environ.get("SM_OUTPUT_DATA_DIR", base / "output" / "data")),
                   checkpoints=Path(os.environ.get("SG_CHECKPOINT_DIR", base / "checkpoints")))

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    def channel(self, name: str) -> Path:
        return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}", self.root / "input" / "data" / name))
