"""Line evidence: which lines of a function moved a model's score towards "vulnerable", from the model itself.

- lexical: each n-gram's coefficient x its tf-idf value, shared among its occurrences, spread over their
  characters, summed per line (exact: the line scores add up to the decision value minus the intercept);
- transformer: integrated gradients (captum) on the input embeddings, each token's attribution given to the
  line its text starts on (token offsets of the processed record; special tokens carry none);
- gnn: gradient x input on the node features (the first layer's node states), each node's attribution spread
  over the lines its source span covers (leaves are located in the code in order; inner nodes span their leaves);
- fusion: each base model's line scores, normalised to unit L1, weighted by its fusion weight, summed.

``explain(source, codes, k)`` -> per function, the top ``k`` (line, score) pairs, 1-based lines of the code.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.data.processed import ProcessedDir
from streamguard.models.lexical import _BLANK_RUN, _CODE_TOKEN, _COMMENT_OR_LITERAL

_WHITESPACES = re.compile(r"\s\s+")  # what sklearn's char analyzer collapses to one space
IG_STEPS = 24


def explain(source: Any, codes: Sequence[str], k: int = 3) -> list[list[tuple[int, float]]]:
    per_line = line_scores(source.kind, Path(source.model_dir), Path(source.prep_dir), codes)
    return [top_lines(s, k) for s in per_line]


def top_lines(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i) + 1, float(scores[i])) for i in order if scores[i] > 0]


def line_scores(kind: str, model_dir: Path, prep_dir: Path, codes: Sequence[str]) -> list[np.ndarray]:
    """Per function, one score per line (index 0 = line 1)."""
    if kind == "lexical":
        return lexical_lines(model_dir, codes)
    if kind == "transformer":
        return transformer_lines(model_dir, prep_dir, codes)
    if kind == "gnn":
        return gnn_lines(model_dir, prep_dir, codes)
    if kind == "fusion":
        return fusion_lines(model_dir, prep_dir, codes)
    raise ValueError(f"no line evidence for model kind {kind!r}")


def _line_of(code: str) -> np.ndarray:
    """The 0-based line of every character (and one past the end)."""
    return np.concatenate([[0], np.cumsum(np.frombuffer(code.encode("utf-32-le"), dtype=np.uint32) == 10)])


# --- lexical -------------------------------------------------------------------------------------------------

def _sub_with_map(pattern: re.Pattern, text: str, idx: list[int], repl) -> tuple[str, list[int]]:
    """``pattern.sub(repl, text)`` that also carries, for every output character, its original position."""
    out, out_idx, pos = [], [], 0
    for m in pattern.finditer(text):
        out.append(text[pos:m.start()])
        out_idx.extend(idx[pos:m.start()])
        r = repl(m)
        out.append(r)
        out_idx.extend(idx[m.start():m.start() + len(r)] if r == m.group(0) else [idx[m.start()]] * len(r))
        pos = m.end()
    out.append(text[pos:])
    out_idx.extend(idx[pos:])
    return "".join(out), out_idx


def normalise_with_map(code: str, strip: bool, collapse: bool) -> tuple[str, list[int]]:
    """``models.lexical.normalise`` with a map from the normalised text back to ``code``'s characters."""
    text, idx = code, list(range(len(code)))
    if strip:
        text, idx = _sub_with_map(_COMMENT_OR_LITERAL, text, idx, lambda m: " " if m.group(0)[0] == "/" else m.group(0))
    if collapse:
        text, idx = _sub_with_map(_BLANK_RUN, text, idx, lambda m: "\n")
        lead = len(text) - len(text.lstrip())
        text, idx = text.strip(), idx[lead:lead + len(text.strip())]
    return text, idx


def _occurrences(vec: Any, text: str, idx: list[int]) -> list[tuple[str, list[int]]]:
    """Every n-gram occurrence the vectorizer counts in ``text``: (term, original character positions)."""
    out = []
    lo, hi = vec.ngram_range
    if vec.analyzer == "char":
        t, m = _sub_with_map(_WHITESPACES, text, idx, lambda _: " ")
        for n in range(lo, min(hi, len(t)) + 1):
            out.extend((t[i:i + n], m[i:i + n]) for i in range(len(t) - n + 1))
        return out
    toks = [(mt.group(0), idx[mt.start():mt.end()]) for mt in _CODE_TOKEN.finditer(text)]
    for n in range(lo, hi + 1):
        for i in range(len(toks) - n + 1):
            span = toks[i:i + n]
            out.append((" ".join(s for s, _ in span), [c for _, cs in span for c in cs]))
    return out


def lexical_lines(model_dir: Path, codes: Sequence[str]) -> list[np.ndarray]:
    from streamguard.train.lexical import loaded_model
    feats, clf = loaded_model(model_dir)  # the model the scan scored with, not a second copy
    x = feats.transform(list(codes)).tocsr()
    coef = np.asarray(clf.coef_[0], dtype=np.float64)
    results = []
    for row, code in enumerate(codes):
        lines = _line_of(code)
        scores = np.zeros(int(lines[-1]) + 1)
        text, idx = normalise_with_map(code, feats.strip_comments, feats.collapse_blank_lines)
        start, end = x.indptr[row], x.indptr[row + 1]
        value = dict(zip(x.indices[start:end].tolist(), x.data[start:end].tolist()))  # this row's tf-idf
        offset = 0
        for vec in feats._vecs:
            occ = _occurrences(vec, text, idx)
            cols = [vec.vocabulary_.get(term) for term, _ in occ]
            counts: dict[int, int] = {}
            for c in cols:
                if c is not None:
                    counts[c] = counts.get(c, 0) + 1
            for (_, chars), c in zip(occ, cols):
                if c is None or not chars:
                    continue
                share = coef[offset + c] * value.get(offset + c, 0.0) / counts[c]
                np.add.at(scores, lines[chars], share / len(chars))
            offset += len(vec.vocabulary_)
        results.append(scores)
    return results


# --- neural kinds --------------------------------------------------------------------------------------------

def _records(prep_dir: Path, codes: Sequence[str]) -> list[dict[str, Any] | None]:
    """The processed record of each function (None where preprocessing rejected it), in order."""
    from streamguard.data import preprocess as prep
    from streamguard.scan.model import featurizer_init
    out: list[dict[str, Any] | None] = [None] * len(codes)
    tasks = [("test", i, {"func": c, "target": 0}) for i, c in enumerate(codes)]
    with prep._pool(1, featurizer_init(prep_dir)) as pool:
        for _, row, line, _, _ in pool.imap_unordered(prep._record_task, tasks):
            out[row] = json.loads(line) if line else None
    return out


def transformer_lines(model_dir: Path, prep_dir: Path, codes: Sequence[str]) -> list[np.ndarray]:
    import torch
    from captum.attr import LayerIntegratedGradients

    from streamguard.train.transformer import loaded_export
    model, head = loaded_export(model_dir)  # the scan's copy: captum removes the hooks it adds
    pad = int(json.loads((prep_dir / "preprocessing_metadata.json").read_text())["tokenizer"]["pad_id"])
    max_len = int(head["max_length"])

    def margin(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=input_ids, attention_mask=mask)
        return logits[:, 1] - logits[:, 0]

    lig = LayerIntegratedGradients(margin, model.encoder.get_input_embeddings())
    results = []
    for code, rec in zip(codes, _records(prep_dir, codes)):
        lines = _line_of(code)
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


def node_spans(code: str, graph: Any) -> list[tuple[int, int] | None]:
    """Character span of each graph node: text leaves found in the code in order (nodes are in pre-order, so
    leaves come in source order); every other node spans its descendants' leaves."""
    from streamguard.data.ast import strip_directives
    text = strip_directives(code)
    spans: list[tuple[int, int] | None] = [None] * len(graph.labels)
    pos = 0
    children: dict[int, list[int]] = {}
    for a, b in graph.edges:
        children.setdefault(a, []).append(b)
    for i, (label, is_text) in enumerate(zip(graph.labels, graph.leaf_text)):
        if is_text and i not in children:
            j = text.find(label, pos)
            if j >= 0:
                spans[i] = (j, j + len(label))
                pos = j + len(label)
    for i in reversed(range(len(spans))):  # children come after their parent in pre-order
        kids = [spans[c] for c in children.get(i, []) if spans[c] is not None]
        if spans[i] is None and kids:
            spans[i] = (min(s for s, _ in kids), max(e for _, e in kids))
    return spans


def gnn_lines(model_dir: Path, prep_dir: Path, codes: Sequence[str]) -> list[np.ndarray]:
    import torch
    from tokenizers import Tokenizer

    from streamguard.config import GNNConfig, load_config
    from streamguard.data.featurize import Featurizer
    from streamguard.data.graphs import normalised_graph, text_subtokens
    from streamguard.scan.model import featurizer_init
    from streamguard.train.gnn import build_model, graph_options, run_text_tokenizer, state_dict
    exp = json.loads((model_dir / "exp_config.json").read_text())
    cfg = load_config(GNNConfig, overrides={k: v for k, v in exp["hyperparameters"].items()
                                            if k in GNNConfig.__dataclass_fields__})
    text_tokenizer = run_text_tokenizer(model_dir, cfg)
    model = build_model(cfg, text_tokenizer).eval()
    model.load_state_dict(state_dict(model_dir))
    init = featurizer_init(prep_dir)
    feat = Featurizer.from_dir(Path(init[0]), init[1], init[2], init[3], init[4])
    opts = graph_options(ProcessedDir(prep_dir), cfg, text_tokenizer)
    text_tok = Tokenizer.from_file(str(text_tokenizer)) if text_tokenizer else None  # once, not per function
    captured: dict[str, torch.Tensor] = {}
    first = model._first_layer

    def hooked(x: torch.Tensor, text: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        z = first(x, text)
        z.retain_grad()
        captured["z"] = z
        return z

    model._first_layer = hooked
    results = []
    for code in codes:
        lines = _line_of(code)
        scores = np.zeros(int(lines[-1]) + 1)
        graph = feat.labels(code)
        nodes = feat.node_ids(graph)
        ei, w = normalised_graph(nodes, graph.edges, opts)
        text = {}
        if text_tok is not None:  # the node text features, as the graph cache would hold them
            sub = text_subtokens([feat.node_texts(graph)], text_tok)
            text = {"text_ids": sub["text_ids"].long(), "text_offsets": sub["text_ptr"][:-1]}
        out = model(torch.tensor(nodes), ei, w.float(), torch.zeros(len(nodes), dtype=torch.int64), 1, **text)
        (out[0, 1] - out[0, 0]).backward()
        z = captured["z"]
        per_node = (z * z.grad).sum(-1).detach().numpy()
        for a, span in zip(per_node, node_spans(code, graph)):
            if span is not None:
                covered = np.unique(lines[span[0]:max(span[1], span[0] + 1)])
                scores[covered] += float(a) / len(covered)
        results.append(scores)
    return results


def fusion_lines(model_dir: Path, prep_dir: Path, codes: Sequence[str]) -> list[np.ndarray]:
    from streamguard.train.fuse import FUSION_FILE, base_run_dir
    from streamguard.train.seeds import seed_runs
    meta = json.loads((model_dir / FUSION_FILE).read_text())
    total = [np.zeros(int(_line_of(c)[-1]) + 1) for c in codes]
    for kind, weight in zip(meta["models"], meta["weights"]):
        if weight == 0:
            continue
        members = seed_runs(base_run_dir(model_dir, meta["base_runs"][kind]))
        per_seed = [line_scores(kind, run, prep_dir, codes) for run in members]
        base = [np.mean(scores, axis=0) for scores in zip(*per_seed)]  # a seed ensemble: its seeds' mean
        for acc, s in zip(total, base):
            norm = np.abs(s).sum()
            if norm > 0:
                acc += weight * s / norm
    return total
