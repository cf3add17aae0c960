"""The ``transformer`` model kind: train and predict entry points (docs/contracts.md) over processed tokens.

The encoder is a hub model (default ``microsoft/codebert-base``), a local directory holding a saved Hugging
Face model, or ``tiny``: a small RoBERTa built from config, sized to the data's own tokenizer, so that the
whole path runs without a model hub. The best checkpoint is also exported in Hugging Face format
(``<run>/hf_model``) and that export is what ``predict`` loads.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only

from streamguard.config import TransformerConfig
from streamguard.data.records import SPLITS, read_jsonl_lines
from streamguard.errors import UserError
from streamguard.features.processed import ProcessedDir
from streamguard.features.token_dataset import TokenDataset
from streamguard.features.tokenize import hub_reachable
from streamguard.models import loaded, onnx_runtime
from streamguard.models.transformer import POOLINGS, TransformerClassifier
from streamguard.train import engine, kinds
from streamguard.train.evidence import line_of, processed_records

log = logging.getLogger(__name__)
EXPORT_DIR = "hf_model"
HEAD_WEIGHTS = "streamguard_head.safetensors"
HEAD_CONFIG = "streamguard_head.json"
IG_STEPS = 24  # integrated-gradients steps of the line evidence
CONFIG = TransformerConfig
BUNDLE_FILES = (EXPORT_DIR,)


def _load_data_tokenizer(data_dir: Path) -> Any:
    from transformers import AutoTokenizer
    folder = ProcessedDir(data_dir).tokenizer_dir
    if not (folder / "tokenizer.json").is_file():
        raise UserError(f"{data_dir} holds no tokenizer/ directory: preprocess it again")
    return AutoTokenizer.from_pretrained(str(folder))


def _go_offline() -> None:
    """Hub calls fail at once instead of retrying for ~45 s; the constant is read at import, so set both."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import constants
    constants.HF_HUB_OFFLINE = True


def _from_pretrained(loader: Any, name: str) -> Any:
    """``loader.from_pretrained(name)`` for a hub name or a local directory; one line naming the fixes."""
    local = Path(name).is_dir()
    offline = not local and not hub_reachable()
    if offline:
        _go_offline()
    try:
        return loader.from_pretrained(name, local_files_only=offline)
    except (OSError, ValueError) as exc:
        where = "local directory" if local else "model hub (offline or unreachable)" if offline else "model hub"
        raise UserError(f"cannot load model '{name}' from the {where} ({str(exc).splitlines()[0][:120]}); "
                        "use --model tiny (a small RoBERTa built from config, no download) or --model PATH "
                        "(a directory holding a saved Hugging Face model)") from None


def check_tokenizer(model_tokenizer: Any, data_dir: Path, source: str) -> None:
    """Refuse a model whose tokenizer maps tokens to other ids than the one the data was encoded with."""
    data_tok = _load_data_tokenizer(data_dir)
    if model_tokenizer.get_vocab() != data_tok.get_vocab():
        sha = ProcessedDir(data_dir).tokenizer_meta["sha256"]
        raise UserError(f"model '{source}' has another tokenizer ({len(model_tokenizer)} tokens) than {data_dir} "
                        f"({len(data_tok)} tokens, sha256 {sha[:12]}); preprocess the data with --tokenizer "
                        f"{source}, or train with --model tiny")


def _tiny_encoder(cfg: TransformerConfig, tokenizer: Any) -> torch.nn.Module:
    from transformers import AutoModel, RobertaConfig
    pad = tokenizer.pad_token_id
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=cfg.tiny_hidden,
                           num_hidden_layers=cfg.tiny_layers, num_attention_heads=cfg.tiny_heads,
                           intermediate_size=cfg.tiny_intermediate, hidden_dropout_prob=cfg.dropout,
                           attention_probs_dropout_prob=cfg.dropout, type_vocab_size=1,
                           # RoBERTa numbers positions from pad_id + 1, as CodeBERT's 514 positions do
                           max_position_embeddings=cfg.max_length + pad + 1, pad_token_id=pad,
                           bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    return AutoModel.from_config(config)


def build_model(cfg: TransformerConfig, data_dir: Path) -> tuple[TransformerClassifier, Any]:
    """The classifier and the tokenizer that goes with it, refusing one that differs from the data's."""
    if cfg.pooling not in POOLINGS:
        raise UserError(f"pooling must be one of {', '.join(POOLINGS)}, got {cfg.pooling!r}")
    torch.manual_seed(cfg.seed)  # the fresh weights (tiny encoder, head) are part of the seeded run
    if cfg.model == "tiny":
        tokenizer = _load_data_tokenizer(data_dir)
        encoder = _tiny_encoder(cfg, tokenizer)
    else:
        from transformers import AutoModel, AutoTokenizer
        tokenizer = _from_pretrained(AutoTokenizer, cfg.model)
        check_tokenizer(tokenizer, data_dir, cfg.model)  # before the encoder: no download for a refusal
        encoder = _from_pretrained(AutoModel, cfg.model)
    positions = getattr(encoder.config, "max_position_embeddings", None)
    if positions is not None and cfg.max_length + tokenizer.pad_token_id + 1 > positions:
        raise UserError(f"max_length {cfg.max_length} exceeds what model '{cfg.model}' supports ({positions} "
                        "positions)")
    # from_pretrained returns eval mode, and Lightning keeps each module's mode: without this, no dropout
    return _classifier(encoder, cfg.head_hidden, cfg.dropout, cfg.pooling).train(), tokenizer


def _classifier(encoder: torch.nn.Module, head_hidden: int, dropout: float, pooling: str) -> TransformerClassifier:
    # The encoder's own pooler is unused (its outputs feed nothing): drop it, or DDP fails on unused parameters.
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return TransformerClassifier(encoder, encoder.config.hidden_size, head_hidden, dropout, pooling)


def _resolve_schedule(cfg: TransformerConfig) -> TransformerConfig:
    """Warm-up as a fraction of all steps (the engine counts it in epochs); precision ``auto``."""
    if cfg.warmup_ratio > 0 and cfg.warmup_epochs == 0:
        cfg = dataclasses.replace(cfg, warmup_epochs=cfg.warmup_ratio * cfg.epochs)
    if cfg.precision == "auto":
        # fp16 autocast with a GradScaler on CUDA; this CPU has no fast reduced-precision matmul
        cuda = torch.cuda.is_available() and cfg.accelerator in ("auto", "gpu", "cuda")
        cfg = dataclasses.replace(cfg, precision="16-mixed" if cuda else "32-true")
    if cfg.model == "tiny" and cfg.lr < 1e-4:
        log.warning("lr %g is meant for fine-tuning a pretrained encoder; a tiny model trained from scratch "
                    "learns little with it (configs/transformer-tiny.yaml uses a larger one)", cfg.lr)
    return cfg


def _datasets(data_dir: Path, cfg: TransformerConfig, train_ids: set[str] | None) -> dict[str, TokenDataset]:
    pad = int(ProcessedDir(data_dir).tokenizer_meta["pad_id"])
    weights = engine.load_sample_weights(cfg.sample_weights) if cfg.sample_weights else None
    out = {}
    for split in SPLITS:
        ids = train_ids if split == "train" else None
        if cfg.quick_test:
            ids = _first_ids(data_dir / f"{split}.jsonl", cfg.quick_test_size) if ids is None else \
                set(sorted(ids)[: cfg.quick_test_size])
        out[split] = TokenDataset(data_dir / f"{split}.jsonl", pad, cfg.max_length, ids,
                                  weights if split == "train" else None)
    engine.check_training_set(out["train"], weights, cfg, data_dir, "functions")
    return out


def _first_ids(path: Path, n: int) -> set[str]:
    ids: set[str] = set()
    for _, rec in read_jsonl_lines(path):
        if len(ids) >= n:
            break
        if isinstance(rec, dict) and "id" in rec:
            ids.add(str(rec["id"]))
    return ids


def train(data_dir: Path, out_dir: Path, cfg: TransformerConfig, train_ids: set[str] | None = None) -> Path:
    """Fine-tune (or, for ``tiny``, train) on the train split, write the run dir and the HF export."""
    data, out_dir = ProcessedDir(data_dir), Path(out_dir)
    data.identity()  # a dataset without a tokenizer record fails here, before any model is built
    cfg = _resolve_schedule(cfg)
    model, tokenizer = build_model(cfg, data.path)  # first: a model that cannot load fails before data is read
    datasets = _datasets(data.path, cfg, train_ids)
    lengths = torch.tensor([len(t) for t in datasets["train"].tokens], dtype=torch.float32)
    extra: dict[str, Any] = {"tokenizer": data.tokenizer_meta, "encoder": model.encoder.config.to_dict(),
                             "functions": {s: len(d) for s, d in datasets.items()},
                             "train_mean_tokens": round(float(lengths.mean()), 1),
                             "train_ids_given": train_ids is not None, "export_dir": EXPORT_DIR}
    engine.fit(model, datasets, cfg, out_dir, "transformer", data.path, extra)
    if rank_zero_only.rank == 0:
        model.load_state_dict(engine.best_state_dict(out_dir / "checkpoints"))
        export(model, tokenizer, cfg, out_dir / EXPORT_DIR)
    return out_dir


def export(model: TransformerClassifier, tokenizer: Any, cfg: TransformerConfig, folder: Path) -> Path:
    """Encoder + tokenizer with ``save_pretrained`` (loadable with transformers alone), head beside them."""
    from safetensors.torch import save_file
    folder.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    save_file({k: v.detach().cpu().contiguous() for k, v in model.head_state_dict().items()},
              str(folder / HEAD_WEIGHTS))
    (folder / HEAD_CONFIG).write_text(json.dumps({
        "hidden": model.encoder.config.hidden_size, "head_hidden": cfg.head_hidden, "dropout": cfg.dropout,
        "pooling": cfg.pooling, "max_length": cfg.max_length, "labels": ["not_vulnerable", "vulnerable"]},
        indent=2) + "\n")
    return folder


@contextlib.contextmanager
def _no_loading_bar() -> Iterator[None]:
    """transformers draws a "Loading weights" bar for each model it loads: noise on every scan through the Python
    API (the CLI turns Hugging Face bars off for the whole process). Off while loading, then as it was."""
    from transformers.utils import logging as hf_logging
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def load_export(folder: Path) -> tuple[TransformerClassifier, dict[str, Any]]:
    """The classifier of an export: ``AutoModel.from_pretrained`` for the encoder, the head from safetensors."""
    from safetensors.torch import load_file
    from transformers import AutoModel
    if not (folder / HEAD_CONFIG).is_file():
        raise UserError(f"{folder} is not a transformer export: {HEAD_CONFIG} is missing")
    head = json.loads((folder / HEAD_CONFIG).read_text())
    with _no_loading_bar():
        try:  # the export has no pooler (unused); say so, or transformers reports its weights as missing
            encoder = AutoModel.from_pretrained(str(folder), add_pooling_layer=False)
        except TypeError:  # an architecture without that option
            encoder = AutoModel.from_pretrained(str(folder))
    model = _classifier(encoder, head["head_hidden"], head["dropout"], head["pooling"])
    missing, unexpected = model.load_state_dict(load_file(str(folder / HEAD_WEIGHTS)), strict=False)
    if unexpected or any(not k.startswith("encoder.") for k in missing):
        raise UserError(f"{folder}/{HEAD_WEIGHTS} does not match the head in {HEAD_CONFIG}")
    return model.eval(), head


def loaded_export(run_dir: Path) -> tuple[TransformerClassifier, dict[str, Any]]:
    """The run's exported classifier, read once per process; callers must not change its weights."""
    folder = Path(run_dir) / EXPORT_DIR
    return loaded.cached("transformer", folder, lambda: load_export(folder))


def config_from_run(exp: dict[str, Any]) -> TransformerConfig:
    return kinds.config_from_run(TransformerConfig, exp)


def predict(run_dir: Path, data_dir: Path, split: str, ids: set[str] | None = None) -> list[dict]:
    """Rows of the predictions contract for ``split`` of any dataset made with the run's tokenizer."""
    exp, data = kinds.open_run(run_dir, data_dir, "transformer")
    model, head = loaded_export(run_dir)
    model = onnx_runtime.forward(model, Path(run_dir) / EXPORT_DIR)  # itself, unless scan chose ONNX Runtime
    pad = int(data.tokenizer_meta["pad_id"])
    ds = TokenDataset(data.split_path(split), pad, int(head["max_length"]), ids)
    kinds.check_ids(ds.ids, ids, data.split_path(split))
    batch = int(exp.get("hyperparameters", {}).get("predict_batch_size", 32))
    return engine.predict_rows(model, ds, batch)


# --- the rest of the kind contract (streamguard.train.kinds) -------------------------------------------------

def export_files(run: Path, dst: Path) -> None:
    kinds.copy_files(run, dst, BUNDLE_FILES, "transformer")


def uses_torch(model_dir: Path) -> bool:
    return True


def reads_features(model_dir: Path) -> bool:
    return True


def line_scores(model_dir: Path, prep_dir: Path, codes: Sequence[str]) -> list[np.ndarray]:
    """Integrated gradients (captum) on the input embeddings, each token's attribution given to the line its
    text starts on (token offsets of the processed record; special tokens carry none)."""
    from captum.attr import LayerIntegratedGradients
    model, head = loaded_export(model_dir)  # the scan's copy: captum removes the hooks it adds
    pad = int(ProcessedDir(prep_dir).tokenizer_meta["pad_id"])
    max_len = int(head["max_length"])

    def margin(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=input_ids, attention_mask=mask)
        return logits[:, 1] - logits[:, 0]

    lig = LayerIntegratedGradients(margin, model.encoder.get_input_embeddings())
    results = []
    for code, rec in zip(codes, processed_records(prep_dir, codes)):
        lines = line_of(code)
        scores = np.zeros(int(lines[-1]) + 1)
        if rec is not None:
            toks, offs = rec["tokens"], rec["token_offsets"]
            if len(toks) > max_len:  # as TokenDataset truncates: keep CLS ... SEP
                toks, offs = toks[:max_len - 1] + toks[-1:], offs[:max_len - 1] + offs[-1:]
            ids = torch.tensor([toks])
            base = ids.clone()
            base[0, 1:-1] = pad
            mask = torch.ones_like(ids)
            attr = lig.attribute(ids, baselines=base, additional_forward_args=(mask,), n_steps=IG_STEPS)
            per_tok = attr.sum(-1)[0].detach().numpy()
            first = rec["metadata"]["trim_span"][0]
            for a, (s, e) in zip(per_tok, offs):
                if e > s:
                    scores[lines[min(first + s, len(code))]] += float(a)
        results.append(scores)
    return results
