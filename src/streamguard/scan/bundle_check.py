"""What a bundle's files must look like before anything in them is used: a bundle comes from someone else, and
a manifest only proves the files are the ones its author signed, not that they are sane. Every check here
fails as one ``UserError`` line (scan exits 2), never a traceback, an allocation of gigabytes or a path
chosen on the user's machine.

- only JSON, safetensors and text files (a ``pytorch_model.bin`` is refused: loading it would unpickle);
- every safetensors header is bounded, parses, and its tensors' shapes match their byte ranges;
- ``bundle.json`` is an object with a known ``kind`` and a threshold in [0, 1];
- no ``exp_config.json`` in the bundle sets a path-valued setting that predicting honours (``cache_dir``);
- a fusion's ``fusion.json`` names known, non-fusion kinds, one finite weight each, bases inside the bundle;
- a transformer's ``config.json`` has a model type this ``transformers`` knows and sizes within bounds.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from streamguard import thresholds
from streamguard.errors import UserError
from streamguard.rundir import EXP_FILE, RunDir

SAFE_SUFFIXES = frozenset({".json", ".safetensors", ".txt", ".md", ".jsonl", ".model"})
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own reader refuses headers over 100 MB
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
# Settings that choose a path on the machine running the model; predicting honours cache_dir (graph caches
# are written there). Export clears it; a bundle that sets one was edited, and is refused.
PATH_SETTINGS = ("cache_dir",)
# Sizes of a transformer config that allocate memory at load: bounded so that a bundle cannot ask for 1e9 rows.
_CONFIG_BOUNDS = {"vocab_size": 1 << 20, "hidden_size": 1 << 14, "num_hidden_layers": 256,
                  "num_attention_heads": 1024, "intermediate_size": 1 << 16, "max_position_embeddings": 1 << 16,
                  "type_vocab_size": 1 << 10}


MANIFEST = "manifest.json"  # the bundle's own: its files' sha256 and size (not a raw dataset's manifest)


def load_json(path: Path, what: str) -> Any:
    """JSON from a bundle file, or one line: unreadable, not JSON, or nested too deep to parse."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UserError(f"{what}: not readable JSON ({type(exc).__name__}); refused") from None


def check_manifest(listed: Any, root: Path) -> dict[str, dict[str, Any]]:
    if not isinstance(listed, dict):
        raise UserError(f"{root}: {MANIFEST} has no 'files' object; not a complete bundle")
    for rel, entry in listed.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and isinstance(entry.get("bytes"), int) and not isinstance(entry.get("bytes"), bool)):
            raise UserError(f"{root}: {MANIFEST} entry {rel!r} needs 'sha256' and 'bytes'; refused")
    return listed


def check_file(root: Path, rel: str) -> None:
    """A listed file's type: one of the safe formats, and a well-formed header for safetensors."""
    path = root / rel
    if path.suffix not in SAFE_SUFFIXES:
        raise UserError(f"{root}: {rel} is not JSON, safetensors or text (only those load from a bundle; a "
                        "pickle-based weight file such as pytorch_model.bin never does); refused")
    if path.suffix == ".safetensors":
        check_safetensors(path, f"{root}: {rel}")


def check_safetensors(path: Path, what: str) -> None:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise UserError(f"{what}: not a safetensors file (shorter than its header length); refused")
        n = struct.unpack("<Q", raw)[0]
        if n > MAX_HEADER or 8 + n > size:
            raise UserError(f"{what}: safetensors header of {n} bytes does not fit the {size}-byte file; refused")
        try:
            header = json.loads(fh.read(n))
        except (ValueError, RecursionError):
            header = None
    if not isinstance(header, dict):
        raise UserError(f"{what}: safetensors header is not a JSON object; refused")
    data_bytes = size - 8 - n
    for name, t in header.items():
        if name == "__metadata__":
            continue
        ok = isinstance(t, dict) and t.get("dtype") in _DTYPE_BYTES and _ints(t.get("shape")) \
            and _ints(t.get("data_offsets"), pair=True)
        if ok:
            begin, end = t["data_offsets"]
            ok = begin <= end <= data_bytes and end - begin == math.prod(t["shape"]) * _DTYPE_BYTES[t["dtype"]]
        if not ok:
            raise UserError(f"{what}: tensor {name!r} has a dtype, shape or byte range that does not fit; refused")


def _ints(value: Any, pair: bool = False) -> bool:
    return isinstance(value, list) and (len(value) == 2 or not pair) \
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


def check_info(info: Any, root: Path, fmt: int) -> dict[str, Any]:
    from streamguard.train import registry
    what = f"{root}/bundle.json"
    if not isinstance(info, dict):
        raise UserError(f"{what}: not a JSON object; refused")
    if info.get("format") != fmt:
        raise UserError(f"{root}: bundle format {info.get('format')!r} is not supported (expected {fmt})")
    kind = info.get("kind")
    if not isinstance(kind, str) or kind not in registry.KINDS:
        raise UserError(f"{what}: 'kind' {kind!r} is not a model kind ({', '.join(registry.known_kinds())})")
    threshold = info.get("threshold")
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        raise UserError(f"{what}: 'threshold' must be a number in [0, 1], got {threshold!r}")
    thresholds.check(float(threshold), what)
    return info


def check_model(model_dir: Path, kind: str, depth: int = 0) -> None:
    """The run-shaped model folder of ``kind``: its own config, or a seed ensemble's members (seed-N), each
    checked; a fusion's bases recursively."""
    members = [m for _, m in sorted(RunDir(model_dir).seed_members().items())]
    has_own = RunDir(model_dir).is_run()
    if not has_own and not (members and depth):
        raise UserError(f"{model_dir}: no {EXP_FILE}; not a complete bundle")
    for run in ([model_dir] if has_own else []) + members:
        _check_run(run, kind, depth)


def _check_run(run: Path, kind: str, depth: int) -> None:
    exp_path = RunDir(run).exp_path
    exp = load_json(exp_path, str(exp_path))
    hyper = exp.get("hyperparameters") if isinstance(exp, dict) else None
    if not isinstance(exp, dict) or exp.get("model") != kind or not isinstance(hyper or {}, dict):
        raise UserError(f"{exp_path}: not the config of a {kind} model; refused")
    for key in PATH_SETTINGS:
        if (hyper or {}).get(key) not in (None, ""):
            raise UserError(f"{exp_path} sets {key}: a bundle may not choose a path on this "
                            "machine; refused")
    if kind == "fusion":
        _check_fusion(run, depth)
    elif kind == "transformer":
        _check_transformer(run)


def _check_fusion(model_dir: Path, depth: int) -> None:
    from streamguard.train import registry
    what = f"{model_dir}/fusion.json"
    meta = load_json(model_dir / "fusion.json", what)
    models = meta.get("models") if isinstance(meta, dict) else None
    if depth or not isinstance(models, list) or not models or len(set(map(str, models))) != len(models) \
            or not all(isinstance(k, str) and k in registry.KINDS and k != "fusion" for k in models):
        raise UserError(f"{what}: 'models' must list distinct base kinds (not fusion); got {models!r}")
    weights, bases = meta.get("weights"), meta.get("base_runs")
    if not isinstance(weights, list) or len(weights) != len(models) or not all(_finite(w) for w in weights) \
            or not _finite(meta.get("bias")):
        raise UserError(f"{what}: {len(models)} models need {len(models)} finite weights and a finite bias, got "
                        f"weights {weights!r}; refused")
    if not isinstance(bases, dict) or set(bases) != set(models) or not all(isinstance(b, str) for b in bases.values()):
        raise UserError(f"{what}: 'base_runs' must name one folder per model; refused")
    for kind in models:
        base = (model_dir / bases[kind]).resolve()
        if not base.is_relative_to(model_dir.resolve()) or base == model_dir.resolve() or not base.is_dir():
            raise UserError(f"{what}: base run {bases[kind]!r} is not a folder inside the bundle; refused")
        check_model(base, kind, depth + 1)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_transformer(model_dir: Path) -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    export = model_dir / "hf_model"
    what = f"{export}/config.json"
    cfg = load_json(export / "config.json", what)
    if not isinstance(cfg, dict) or cfg.get("model_type") not in CONFIG_MAPPING_NAMES:
        raise UserError(f"{what}: model_type {cfg.get('model_type') if isinstance(cfg, dict) else None!r} is "
                        "not one this transformers knows; refused")
    for key, cap in _CONFIG_BOUNDS.items():
        v = cfg.get(key)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and 0 < v <= cap):
            raise UserError(f"{what}: {key} {v!r} is out of bounds (1..{cap}); refused")
