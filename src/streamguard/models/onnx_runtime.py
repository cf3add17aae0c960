"""The transformer's forward pass on ONNX Runtime: ``scan --precision onnx`` (fp32) and ``int8``.

How a backend reaches a kind: the scorer runs the kind's ``predict`` inside ``running(precision, folder)``, as it
runs bf16 inside ``torch.autocast``; the transformer's ``predict`` passes its loaded classifier through
``forward`` (once), which gives it back unchanged outside ``running`` and an ONNX Runtime twin inside. So a
transformer inside a fusion gets the backend too, and no other code asks which backend is on.

The ONNX graph is made from the export's weights when first needed: ``torch.onnx.export`` with the TorchScript
exporter (the dynamo one needs onnxscript, which is not a dependency), batch and sequence length dynamic, traced
on a padded batch so that the attention mask stays in the graph. ``int8`` quantises that graph with onnxruntime's
dynamic quantisation (weights int8, activations quantised per batch at run time). The files are named by the
sha256 of the export's files and the exporter's version, under the folder the scan is given (``scan --cache``:
a second scan reuses them) or else a temporary folder removed once the session has read the graph. Nothing in a
bundle chooses a path.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamguard.errors import UserError

if TYPE_CHECKING:  # torch is imported where a graph is made or run: scan imports this module for every kind
    import torch
    from torch import nn

BACKENDS = ("onnx", "int8")  # scan precisions served here
OPSET = 17
FORMAT = 1                   # bump when the export changes: old cached graphs are then not reused
MAX_SESSIONS = 2             # a fusion holds one transformer; a second for a model swapped in a long process


@dataclass(frozen=True)
class Runtime:
    quantize: bool
    folder: Path | None


_ACTIVE: ContextVar[Runtime | None] = ContextVar("streamguard_onnx_runtime", default=None)
_SESSIONS: OrderedDict[tuple, OrtClassifier] = OrderedDict()
_SHAS: dict[Path, tuple[tuple, str]] = {}


def require() -> None:
    """A UserError (one line) when the optional dependencies are missing; checked before any work."""
    missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"precision onnx/int8 needs {' and '.join(missing)}: pip install 'streamguard[onnx]'")


@contextlib.contextmanager
def running(precision: str, folder: Path | None = None) -> Iterator[None]:
    """Transformer forward passes inside run on ONNX Runtime (``precision``: onnx or int8); graphs go to
    ``folder`` when given."""
    if precision not in BACKENDS:
        raise ValueError(f"not an ONNX Runtime precision: {precision!r}")
    token = _ACTIVE.set(Runtime(precision == "int8", folder))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def forward(model: nn.Module, export_dir: Path) -> nn.Module | OrtClassifier:
    """``model`` (a TransformerClassifier read from ``export_dir``), or inside ``running`` a module of the same
    call signature (input_ids, attention_mask -> logits) that runs its ONNX graph; one session per process."""
    rt = _ACTIVE.get()
    if rt is None:
        return model
    import torch
    key = (_sha_of(Path(export_dir)), rt.quantize, torch.get_num_threads(), rt.folder)
    if key not in _SESSIONS:
        _SESSIONS[key] = OrtClassifier(_session(model, key[0], rt))
        while len(_SESSIONS) > MAX_SESSIONS:
            _SESSIONS.popitem(last=False)
    _SESSIONS.move_to_end(key)
    return _SESSIONS[key]


def _sha_of(export_dir: Path) -> str:
    """``weights_sha256``, hashed again only when a file changed (a scan predicts once per chunk of functions)."""
    stats = tuple((p.name, st.st_ino, st.st_size, st.st_mtime_ns) for p in sorted(export_dir.iterdir())
                  if p.is_file() and (st := p.stat()))
    if _SHAS.get(export_dir.resolve(), (None,))[0] != stats:
        _SHAS[export_dir.resolve()] = (stats, weights_sha256(export_dir))
    return _SHAS[export_dir.resolve()][1]


def weights_sha256(export_dir: Path) -> str:
    """Of the export's files (names and bytes) and of what turns them into a graph (torch, opset, FORMAT)."""
    import torch
    h = hashlib.sha256(f"{FORMAT}\0{OPSET}\0{torch.__version__}\n".encode())
    for p in sorted(Path(export_dir).iterdir()):
        if p.is_file():
            h.update(f"{p.name}\0".encode())
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


class OrtClassifier:
    """An ONNX Runtime session behind the classifier's interface (what engine.predict_rows calls): int64
    tensors in, float32 logits out. Each function runs alone, unpadded: dynamic quantisation scales the
    activations of a whole batch by one range, so in batches a function's int8 score would depend on its
    neighbours and their padding (by up to 0.0066 on Devign, as much as int8's whole error; a file rescored
    from the scan cache moved by 2e-4 in the tests). Alone is 10-30% slower than the scan's length-sorted
    batches of 64 (benchmarks/results/scan_onnx.md): the price of a score that is the function's own."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def eval(self) -> OrtClassifier:
        return self  # inference only, like the classifier it stands for

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        import torch
        rows = []
        for ids, mask in zip(input_ids.numpy(), attention_mask.numpy()):
            n = int(mask.sum())  # records are padded at the end (TokenDataset.collate)
            rows.append(self.session.run(["logits"], {"input_ids": ids[None, :n], "attention_mask": mask[None, :n]})[0])
        return torch.from_numpy(np.concatenate(rows))


@contextlib.contextmanager
def _where(folder: Path | None) -> Iterator[Path]:
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="streamguard-onnx-") as tmp:
            yield Path(tmp)
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {folder}: {exc.strerror or exc}") from None
    yield folder


def _session(model: nn.Module, sha: str, rt: Runtime) -> Any:
    import onnxruntime as ort
    import torch
    with _where(rt.folder) as folder:
        path = folder / f"{sha}-fp32.onnx"
        if not path.is_file():
            _atomic(path, lambda tmp: export(model, tmp))
        if rt.quantize:
            fp32, path = path, folder / f"{sha}-int8.onnx"
            if not path.is_file():
                _atomic(path, lambda tmp: quantize(fp32, tmp))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()  # as many as torch's forward pass would use
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only: its warnings about initializers are not the user's business
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _atomic(path: Path, write: Any) -> None:
    """``write(tmp)`` then a rename: a scan killed halfway leaves no half graph for the next one to read."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export(model: nn.Module, path: Path) -> None:
    """The classifier's forward pass as ONNX, dynamic in batch and sequence length."""
    import torch
    cfg = model.encoder.config
    pad = int(cfg.pad_token_id if cfg.pad_token_id is not None else 0)
    token = 0 if pad != 0 else min(2, cfg.vocab_size - 1)
    ids = torch.full((2, 8), token, dtype=torch.int64)
    mask = torch.ones_like(ids)
    ids[1, 5:], mask[1, 5:] = pad, 0  # padding in the example: a mask of all ones could be traced away
    axes = {"batch": 0, "tokens": 1}
    dynamic = {"input_ids": {v: k for k, v in axes.items()}, "attention_mask": {v: k for k, v in axes.items()},
               "logits": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(model.eval(), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)


def quantize(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the graph's matrix multiplications (weights int8, activations uint8), after
    onnxruntime's recommended pre-processing (shape inference and graph optimisation)."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic
    prepared = dst.with_name(dst.name + ".pre")
    was = logging.root.manager.disable
    logging.disable(logging.WARNING)  # it logs a line per tensor on the root logger: noise in the scan's output
    try:
        quant_pre_process(str(src), str(prepared))
        quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8)
    finally:
        logging.disable(was)
        prepared.unlink(missing_ok=True)
