"""Typed configuration: one dataclass per stage, loaded from YAML plus ``key=value`` overrides.

Defaults are the specification's hyperparameters; every stage saves its resolved config beside its output.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

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


def _set(cfg: Any, key: str, value: Any) -> None:
    hints = typing.get_type_hints(type(cfg))
    if key not in hints:
        known = ", ".join(sorted(hints))
        raise UserError(f"unknown config key '{key}' for {type(cfg).__name__} (known: {known})")
    setattr(cfg, key, _coerce(value, hints[key], key))


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                extra: list[str] | None = None) -> T:
    """Build ``cls`` from its defaults, then a YAML file, then explicit overrides, then ``key=value`` strings."""
    cfg = cls()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise UserError(f"config file {p} must hold a mapping of keys to values")
        for key, value in data.items():
            _set(cfg, key, value)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set(cfg, key, value)
    for item in extra or []:
        if "=" not in item:
            raise UserError(f"override '{item}' must look like key=value")
        key, value = item.split("=", 1)
        _set(cfg, key.strip(), value.strip())
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------------------
# One dataclass per stage. Defaults are the specification's hyperparameters.
# ---------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class PreprocessConfig:
    tokenizer: str = "microsoft/codebert-base"  # a hub name, a local directory, or "bpe"
    max_tokens: int = 512                       # budget including the two special tokens
    bpe_vocab_size: int = 16000
    node_vocab_size: int = 1000
    vocab_sample: int = 5000                    # train functions the node vocabulary is counted on
    max_ast_nodes: int = 1200
    ast_drop_punctuation: bool = True           # drop anonymous punctuation/keyword leaves from the AST
    ast_collapse_chains: bool = True            # collapse chains of single-child inner nodes
    workers: int = 0                            # 0 = all cores
    quick_test: bool = False
    quick_test_size: int = 100
    reuse_from: str | None = None


@dataclasses.dataclass
class EngineConfig:
    """What every neural model shares: the training engine's settings."""
    seed: int = 42
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10                    # early stopping, in epochs
    monitor: str = "val_f1_vulnerable"    # or val_accuracy, val_roc_auc
    precision: str = "32-true"            # bf16-mixed on CPU, 16-mixed on CUDA
    devices: int = 1
    strategy: str = "auto"                # ddp for several devices (gloo on CPU)
    accelerator: str = "auto"
    deterministic: bool = False
    grad_clip: float = 1.0
    accumulate: int = 1
    checkpoint_uri: str | None = None     # any fsspec URL; s3://bucket/prefix mirrors checkpoints
    sample_weights: str | None = None     # jsonl or json of id -> weight
    tracking_uri: str | None = None       # MLflow; default sqlite:///<out>/mlflow.db
    experiment: str = "streamguard"
    quick_test: bool = False
    quick_test_size: int = 64             # graphs per split with quick_test
    num_workers: int = 0
    threads: int = 0                      # torch threads per process; 0 = cores / devices
    optimizer: str = "adam"               # adam (L2 weight decay, as specified) or adamw
    scheduler: str = "plateau"            # plateau (ReduceLROnPlateau on the monitor), linear (decay), none
    lr_factor: float = 0.5                # ReduceLROnPlateau
    lr_patience: int = 5
    warmup_epochs: float = 0.0            # linear learning-rate warm-up
    predict_batch_size: int = 128


@dataclasses.dataclass
class GNNConfig(EngineConfig):
    vocab_size: int = 1000
    embed_dim: int = 128
    hidden: int = 256
    layers: int = 4
    dropout: float = 0.3
    head_hidden: int = 256
    auto_batch_size: bool = False
    memory_budget_gb: float = 4.0
    conv: str = "gcn"                     # gcn (specified) or ggnn (gated, as in Devign)
    residual: bool = False
    norm: bool = False                    # LayerNorm after each graph layer
    ncs_edges: bool = False               # edges between consecutive leaves (Devign's natural code sequence)
    ident_edges: bool = False             # edges between uses of the same leaf label (data-flow proxy)
    cache_dir: str | None = None          # graph cache; default <data>/.graph_cache


@dataclasses.dataclass
class TransformerConfig(EngineConfig):
    model: str = "microsoft/codebert-base"   # hub name, local directory, or "tiny"
    epochs: int = 5
    batch_size: int = 16
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    patience: int = 2
    max_length: int = 512
    head_hidden: int = 384
    dropout: float = 0.1
    pooling: str = "attention"               # or "cls"
    optimizer: str = "adamw"
    scheduler: str = "linear"                # after a warm-up of warmup_ratio of all steps
    precision: str = "auto"                  # 16-mixed on CUDA (GradScaler), 32-true on CPU
    predict_batch_size: int = 64
    # size of the "tiny" model built from config (configs/transformer-tiny.yaml)
    tiny_layers: int = 2
    tiny_hidden: int = 128
    tiny_heads: int = 2
    tiny_intermediate: int = 512


@dataclasses.dataclass
class LexicalConfig:
    analyzer: str = "char"                   # "char" (3-6 grams) or "code" (token uni+bi-grams)
    ngram_min: int = 3
    ngram_max: int = 6
    max_features: int = 500000
    strip_comments: bool = True
    c_grid: list[float] = dataclasses.field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0])
    seed: int = 42
    code_source: str = "raw"                 # "raw": whole function from the raw split; "processed": trimmed code
    collapse_blank_lines: bool = False       # squeeze whitespace-only line runs before the n-grams
    sample_weights: str | None = None        # jsonl/json of id -> weight (denoise); ids not in it weigh 1


@dataclasses.dataclass
class FuseConfig:
    models: list[str] = dataclasses.field(default_factory=lambda: ["gnn", "lexical"])
    folds: int = 5
    method: str = "weighted"                 # weighted average of logits, or "stacker" (logistic regression)
    seed: int = 42
    fold_epochs: int = 3                     # epoch budget of each neural fold model; 0 = each kind's own
    threshold_metric: str = "accuracy"       # what the decision threshold maximises on valid: accuracy or f1
    base_configs: list[str] = dataclasses.field(default_factory=list)  # "kind=path.yaml" per base model
    # "kind=run_dir": a finished run of that kind, trained on all of train, serves as the full base model
    # instead of training it again (the fold models are trained all the same)
    base_runs: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class EvaluateConfig:
    bootstrap: int = 1000
    seed: int = 42
    max_fpr: float = 0.005                   # VD-S: false-negative rate at FPR <= 0.5%
    peers: list[str] = dataclasses.field(default_factory=list)
    threshold_metric: str = "accuracy"       # what the valid-chosen threshold maximises: accuracy or f1
    examples: int = 3                        # most confident false negatives / false positives shown
