"""Typed configuration: one dataclass per stage, loaded from YAML plus ``key=value`` overrides.

Defaults are the specification's hyperparameters; every stage saves its resolved config beside its output.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from streamguard.errors import UserError

T = TypeVar("T")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML or command-line value to the field's declared type, or say clearly why not."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin in (list, tuple):
        items = value.split(",") if isinstance(value, str) else list(value)
        return [_coerce(v, args[0] if args else str, key) for v in items if v != ""]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise UserError(f"config key '{key}': expected true/false, got {value!r}")
    if annotation in (int, float, str):
        try:
            return annotation(value)
        except (TypeError, ValueError):
            raise UserError(f"config key '{key}': expected {annotation.__name__}, got {value!r}") from None
    return value


def _coerce_key(cls: type, key: str, value: Any) -> Any:
    hints = typing.get_type_hints(cls)
    if key not in hints:
        known = ", ".join(sorted(hints))
        raise UserError(f"unknown config key '{key}' for {cls.__name__} (known: {known})")
    return _coerce(value, hints[key], key)


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                extra: list[str] | None = None) -> T:
    """Build ``cls`` from its defaults, then a YAML file, then explicit overrides, then ``key=value`` strings.
    Values are checked against each field's range and choices (one clear line when out of range)."""
    values: dict[str, Any] = {}
    aliases = getattr(cls, "KEY_ALIASES", {})  # another spelling of a key: the CLI's one name for a concept
    if path is not None:
        for key, value in _read_yaml(Path(path)).items():
            values[aliases.get(key, key)] = _coerce_key(cls, aliases.get(key, key), value)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce_key(cls, key, value)
    for item in extra or []:
        if "=" not in item:
            raise UserError(f"override '{item}' must look like key=value")
        key, value = (part.strip() for part in item.split("=", 1))
        values[aliases.get(key, key)] = _coerce_key(cls, aliases.get(key, key), value)
    return cls(**values)


def _read_yaml(p: Path) -> dict[str, Any]:
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {p} must hold a mapping of keys to values")
    return data


def bounded_field(default: Any, lo: float | None = None, hi: float | None = None, choices: tuple | None = None,
           lo_open: bool = False) -> Any:
    """A config field with its allowed range (``lo <= v <= hi``; ``lo < v`` with ``lo_open``) or choices."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "lo_open": lo_open}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class Checked:
    """Base of every config: frozen (the code that receives a config never changes it: use
    ``dataclasses.replace``) and checked against its fields' ranges when built."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            _check(f, getattr(self, f.name), type(self).__name__)


def _check(f: dataclasses.Field, value: Any, owner: str) -> None:
    meta = f.metadata
    if not meta:
        return
    for v in value if isinstance(value, list) else [value]:
        if meta.get("choices") and v not in meta["choices"]:
            raise UserError(f"config key '{f.name}': must be one of {', '.join(map(str, meta['choices']))}, "
                            f"got {v!r}")
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        lo, hi = meta.get("lo"), meta.get("hi")
        too_low = lo is not None and (v <= lo if meta.get("lo_open") else v < lo)
        if too_low or (hi is not None and v > hi) or v != v:
            rng = f"{'>' if meta.get('lo_open') else '>='} {lo}" if lo is not None else ""
            rng += (" and " if rng and hi is not None else "") + (f"<= {hi}" if hi is not None else "")
            raise UserError(f"config key '{f.name}': must be {rng}, got {v!r}")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------------------
# One dataclass per stage. Defaults are the specification's hyperparameters.
# ---------------------------------------------------------------------------------------------------------

FROZEN = dataclasses.dataclass(frozen=True)
MONITORS = ("val_roc_auc", "val_f1_vulnerable", "val_accuracy")


@FROZEN
class PreprocessConfig(Checked):
    tokenizer: str = "microsoft/codebert-base"  # a hub name, a local directory, or "bpe"
    max_tokens: int = bounded_field(512, lo=3)         # budget including the two special tokens (CLS, SEP)
    # max_length is the token budget's name everywhere else (transformer, pretrain, the CLI's --max-length)
    KEY_ALIASES: ClassVar[dict[str, str]] = {"max_length": "max_tokens"}
    bpe_vocab_size: int = bounded_field(16000, lo=300)
    node_vocab_size: int = bounded_field(1000, lo=2)
    vocab_sample: int = bounded_field(5000, lo=1)      # train functions the node vocabulary is counted on
    max_ast_nodes: int = bounded_field(1200, lo=2)
    ast_drop_punctuation: bool = True           # drop anonymous punctuation/keyword leaves from the AST
    ast_collapse_chains: bool = True            # collapse chains of single-child inner nodes
    taint_graph: bool = False                   # records also carry the taint-flow graph (docs/contracts.md)
    workers: int = bounded_field(0, lo=0)              # 0 = all cores
    memory_budget_gb: float = bounded_field(16.0, lo=0, lo_open=True)  # GPU memory the recommended GNN batch fits
    quick_test: bool = False
    quick_test_size: int = bounded_field(100, lo=1)
    reuse_from: str | None = None
    # VAR_i/FUN_i/TYPE_i for the project's names, "STR" for strings (features/normalise.py); scan does the same
    normalise_identifiers: bool = False


@FROZEN
class OptimiserConfig(Checked):
    """How the weights move: optimiser, learning rate and its schedule."""
    lr: float = bounded_field(1e-3, lo=0, lo_open=True)
    weight_decay: float = bounded_field(1e-4, lo=0)
    optimizer: str = bounded_field("adam", choices=("adam", "adamw"))  # adam: L2 weight decay, as specified
    # plateau (ReduceLROnPlateau on the monitor), linear (decay after warm-up), none
    scheduler: str = bounded_field("plateau", choices=("plateau", "linear", "none"))
    lr_factor: float = bounded_field(0.5, lo=0, hi=1, lo_open=True)   # ReduceLROnPlateau
    lr_patience: int = bounded_field(5, lo=0)
    warmup_epochs: float = bounded_field(0.0, lo=0)    # linear learning-rate warm-up
    grad_clip: float = bounded_field(1.0, lo=0)        # 0 = no clipping
    accumulate: int = bounded_field(1, lo=1)


@FROZEN
class RuntimeConfig(Checked):
    """Where and how a run executes: devices, precision, checkpoints' mirror, tracking, threads."""
    precision: str = "32-true"            # bf16-mixed on CPU, 16-mixed on CUDA
    devices: int = bounded_field(1, lo=1)
    num_nodes: int = bounded_field(1, lo=1)      # machines of a multi-node DDP job (torchrun sets it in the cloud)
    strategy: str = "auto"                # ddp for several devices (gloo on CPU)
    accelerator: str = "auto"
    deterministic: bool = False
    checkpoint_uri: str | None = None     # any fsspec URL; s3://bucket/prefix mirrors checkpoints
    tracking_uri: str | None = None       # MLflow; default MLFLOW_TRACKING_URI, else sqlite:///mlflow.db (cwd)
    experiment: str = "streamguard"
    num_workers: int = bounded_field(0, lo=0)
    threads: int = bounded_field(0, lo=0)        # torch threads per process; 0 = cores / devices
    predict_batch_size: int = bounded_field(128, lo=1)


@FROZEN
class EngineConfig(OptimiserConfig, RuntimeConfig):
    """What every neural model shares: the loop (this class), the optimiser and the runtime."""
    seed: int = 42
    epochs: int = bounded_field(100, lo=1)
    batch_size: int = bounded_field(32, lo=1)
    patience: int = bounded_field(10, lo=1)      # early stopping, in epochs
    # the early-stopping and best-checkpoint metric; ROC-AUC is threshold-free (argmax F1 is fragile on Devign)
    monitor: str = bounded_field("val_roc_auc", choices=MONITORS)
    sample_weights: str | None = None     # jsonl or json of id -> weight
    # pairwise margin ranking loss on fix pairs (raw pair_id; train/pairs.py): 0 = classification loss only
    pair_loss_weight: float = bounded_field(0.0, lo=0)
    pair_margin: float = bounded_field(1.0, lo=0)
    quick_test: bool = False
    quick_test_size: int = bounded_field(64, lo=1)  # items per split with quick_test


@FROZEN
class GNNConfig(EngineConfig):
    vocab_size: int = bounded_field(1000, lo=2)
    embed_dim: int = bounded_field(128, lo=1)
    hidden: int = bounded_field(256, lo=1)
    layers: int = bounded_field(4, lo=1)
    dropout: float = bounded_field(0.3, lo=0, hi=0.99)
    head_hidden: int = bounded_field(256, lo=1)
    auto_batch_size: bool = False         # batch size from the graph statistics for memory_budget_gb
    memory_budget_gb: float = bounded_field(16.0, lo=0, lo_open=True)  # the specification's T4 has 16 GB
    max_batch_size: int = bounded_field(512, lo=1)  # cap of the automatic batch size
    conv: str = bounded_field("gcn", choices=("gcn", "ggnn"))  # gcn (specified) or ggnn (gated, as in Devign)
    residual: bool = False
    norm: bool = False                    # LayerNorm after each graph layer
    ncs_edges: bool = False               # edges between consecutive leaves (Devign's natural code sequence)
    ident_edges: bool = False             # edges between uses of the same leaf label (data-flow proxy)
    # "taint": also the records' taint-flow edges (cfg, def_use, guard) and node flags, through a relational
    # GNN (one weight per edge type); needs data preprocessed with taint_graph (docs/models.md)
    graph: str = bounded_field("ast", choices=("ast", "taint"))
    cache_dir: str | None = None          # graph cache; default <data>/.graph_cache
    # ReGVD-style node features: each leaf also gets the mean embedding of its text's sub-tokens, so
    # identifiers outside the 1000-label vocabulary still carry meaning (docs/models.md)
    node_text: bool = False               # sub-tokens of the data's tokenizer, embeddings learned from scratch
    node_text_dim: int = bounded_field(128, lo=1)  # the sub-token table's width (the encoder's with node_text_init)
    node_text_init: str | None = None     # an exported encoder: its tokenizer and input embeddings (implies
                                          # node_text)


@FROZEN
class TransformerConfig(EngineConfig):
    model: str = "microsoft/codebert-base"   # hub name, local directory, or "tiny"
    epochs: int = bounded_field(5, lo=1)
    batch_size: int = bounded_field(16, lo=1)
    lr: float = bounded_field(2e-5, lo=0, lo_open=True)
    weight_decay: float = bounded_field(0.01, lo=0)
    warmup_ratio: float = bounded_field(0.1, lo=0, hi=1)
    patience: int = bounded_field(2, lo=1)
    max_length: int = bounded_field(512, lo=8)
    head_hidden: int = bounded_field(384, lo=1)
    dropout: float = bounded_field(0.1, lo=0, hi=0.99)
    pooling: str = bounded_field("attention", choices=("attention", "cls"))
    optimizer: str = bounded_field("adamw", choices=("adam", "adamw"))
    scheduler: str = bounded_field("linear", choices=("plateau", "linear", "none"))  # after warmup_ratio of all steps
    precision: str = "auto"                  # 16-mixed on CUDA (GradScaler), 32-true on CPU
    predict_batch_size: int = bounded_field(64, lo=1)
    # training batches of similar length: each batch is padded to its longest function (docs/models.md)
    group_by_length: bool = False
    # size of the "tiny" model built from config (configs/transformer-tiny.yaml)
    tiny_layers: int = bounded_field(2, lo=1)
    tiny_hidden: int = bounded_field(128, lo=1)
    tiny_heads: int = bounded_field(2, lo=1)
    tiny_intermediate: int = bounded_field(512, lo=1)


@FROZEN
class LexicalConfig(Checked):
    analyzer: str = bounded_field("char", choices=("char", "code"))  # char 3-6 grams, or code token uni+bi-grams
    ngram_min: int = bounded_field(3, lo=1)
    ngram_max: int = bounded_field(6, lo=1)
    max_features: int = bounded_field(500000, lo=1)
    strip_comments: bool = True
    c_grid: list[float] = bounded_field([0.5, 1.0, 2.0, 4.0], lo=0, lo_open=True)
    seed: int = 42
    # "raw": whole function from the raw split; "processed": trimmed code
    code_source: str = bounded_field("raw", choices=("raw", "processed"))
    collapse_blank_lines: bool = False       # squeeze whitespace-only line runs before the n-grams
    sample_weights: str | None = None        # jsonl/json of id -> weight (denoise); ids not in it weigh 1
    pair_loss_weight: float = bounded_field(0.0, lo=0)  # weight of the fix pairs' difference rows (train/pairs.py)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ngram_min > self.ngram_max:
            raise UserError(f"config: ngram_min {self.ngram_min} exceeds ngram_max {self.ngram_max}")
        if not self.c_grid:
            raise UserError("config key 'c_grid': needs at least one value")


@FROZEN
class AnalysersConfig(Checked):
    """The ``analysers`` kind: logistic regression over flawfinder + cppcheck finding counts (docs/models.md)."""
    c_grid: list[float] = bounded_field([0.01, 0.1, 1.0], lo=0, lo_open=True)   # chosen on valid by log-loss
    top_rules: int = bounded_field(24, lo=0)  # cppcheck rule ids with a feature of their own (most frequent on train)
    jobs: int = bounded_field(2, lo=1)              # cppcheck -j
    seed: int = 42
    cache_dir: str | None = None             # findings per function text on disk (always in memory)


@FROZEN
class FuseConfig(Checked):
    models: list[str] = dataclasses.field(default_factory=lambda: ["gnn", "lexical"])
    folds: int = bounded_field(5, lo=2)
    # weighted average of logits, or "stacker" (logistic regression)
    method: str = bounded_field("weighted", choices=("weighted", "stacker"))
    seed: int = 42
    fold_epochs: int = bounded_field(3, lo=0)       # epoch budget of each neural fold model; 0 = each kind's own
    # what the decision threshold maximises on valid
    threshold_metric: str = bounded_field("accuracy", choices=("accuracy", "f1"))
    base_configs: list[str] = dataclasses.field(default_factory=list)  # "kind=path.yaml" per base model
    # "kind=run_dir": a finished run of that kind, trained on all of train, serves as the full base model
    # instead of training it again (the fold models are trained all the same)
    base_runs: list[str] = dataclasses.field(default_factory=list)
    # seeds of each neural base model: its fold and full models are trained once per seed and their log-odds
    # averaged into one base model (a seed ensemble); [] = one model at the fusion's seed. A base_runs entry
    # may then name a `--seeds` folder (OUT/seed-N)
    base_seeds: list[int] = dataclasses.field(default_factory=list)


@FROZEN
class EvaluateConfig(Checked):
    bootstrap: int = bounded_field(1000, lo=1)
    seed: int = 42
    max_fpr: float = bounded_field(0.005, lo=0, hi=1, lo_open=True)  # VD-S: false-negative rate at FPR <= 0.5%
    peers: list[str] = bounded_field([], choices=("flawfinder", "cppcheck"))
    # what the valid-chosen threshold maximises
    threshold_metric: str = bounded_field("accuracy", choices=("accuracy", "f1"))
    examples: int = bounded_field(3, lo=0)          # most confident false negatives / false positives shown
    primary: str | None = None               # Holm's family = the pairs with this entry (None: all pairs)
