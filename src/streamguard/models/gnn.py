"""Graph models over AST graphs: tensors in, logits out.

The specified model is a 4-layer GCN (embedding 1000 -> 128, hidden 256, mean + max pooling, head
512 -> 256 -> 2). Message passing is a product with the precomputed, symmetrically normalised adjacency
D^-1/2 (A + I) D^-1/2 held as a CSR matrix: the same maths as PyG's ``GCNConv`` but, without
torch_scatter on this CPU, several times faster (docs/models.md).
"""
from __future__ import annotations

import warnings

import torch
from torch import nn
from torch_geometric.nn import global_max_pool, global_mean_pool

CONVS = ("gcn", "ggnn")


def csr_adjacency(edge_index: torch.Tensor, edge_weight: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """A sparse CSR matrix from edges already sorted by source row (as the graph cache stores them)."""
    row, col = edge_index[0], edge_index[1]
    counts = torch.bincount(row, minlength=num_nodes)
    crow = torch.zeros(num_nodes + 1, dtype=torch.int64, device=row.device)
    torch.cumsum(counts, 0, out=crow[1:])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col.to(torch.int64), edge_weight.float(), size=(num_nodes, num_nodes),
                                       check_invariants=False)


class _SymmetricSpMM(torch.autograd.Function):
    """adj @ h for a symmetric adj: the gradient is adj @ grad, which skips the CSR transpose autograd
    would otherwise build on every backward pass (that transpose cost more than the product itself)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, adj: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(adj)
        return torch.sparse.mm(adj, h)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        (adj,) = ctx.saved_tensors
        return None, torch.sparse.mm(adj, grad.contiguous())


def propagate(adj: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """adj @ h (adj symmetric) in float32: sparse kernels have no reduced-precision CPU path."""
    with torch.autocast(device_type=h.device.type, enabled=False):
        return _SymmetricSpMM.apply(adj, h.float())


def dropout(h: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout whose CPU mask comes from random bytes: torch's CPU Bernoulli sampling took a quarter of
    a training step. Keep probability is (256 - round(256 p)) / 256, i.e. p = 0.3 drops 77/256 = 0.301."""
    if not training or p <= 0:
        return h
    if h.device.type != "cpu":
        return nn.functional.dropout(h, p, True)
    n, cut = h.numel(), round(256 * p)
    words = torch.empty((n + 6) // 7, dtype=torch.int64).random_()
    # random_() fills 63 bits: use the 7 low bytes of each word, never the biased top byte (little-endian)
    rand = words.view(torch.uint8).view(-1, 8)[:, :7].reshape(-1)[:n].view(h.shape)
    # a float mask and a product: masked_fill and where were several times slower here
    return h * (rand >= cut).to(h.dtype).mul_(256.0 / (256 - cut))


class GraphClassifier(nn.Module):
    """GCN (default) or gated graph network over node-label ids, pooled per graph, then an MLP head.

    With ``text_vocab`` > 0 a node also gets the mean of its text's sub-token embeddings (ReGVD's node
    features), projected and added to its label's: identifiers and literals outside the label vocabulary
    still say something. The table can start from a pre-trained encoder's input embeddings."""

    def __init__(self, vocab_size: int = 1000, embed_dim: int = 128, hidden: int = 256, layers: int = 4,
                 dropout: float = 0.3, head_hidden: int = 256, conv: str = "gcn", residual: bool = False,
                 norm: bool = False, text_vocab: int = 0, text_dim: int = 128, relations: int = 1,
                 flag_values: int = 0) -> None:
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {conv!r}")
        self.conv, self.residual, self.dropout = conv, residual, dropout
        self.embed = nn.Embedding(vocab_size, embed_dim)
        if conv == "gcn":
            dims = [embed_dim] + [hidden] * layers
            self.lins = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(layers))
        else:
            # Devign's GGNN: project the embedding to the state size, then gated updates with per-step weights
            self.inp = nn.Linear(embed_dim, hidden)
            self.lins = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(layers))
            self.gru = nn.GRUCell(hidden, hidden)
        # a node without text gets the empty bag's zeros
        self.text_embed = nn.EmbeddingBag(text_vocab, text_dim, mode="mean") if text_vocab else None
        self.text_proj = nn.Linear(text_dim, hidden, bias=False) if text_vocab else None
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) if norm else nn.Identity() for _ in range(layers))
        # a relational GNN over typed edges (the taint-flow graph): the first type is the AST's, with the
        # layer's own weight; each further type gets its weight per layer (R-GCN, or the gated network's
        # per-type messages), and node flags an embedding added to the first layer's states
        self.relations = relations
        self.rel_lins = nn.ModuleList(nn.ModuleList(nn.Linear(hidden, hidden, bias=False)
                                                    for _ in range(relations - 1)) for _ in range(layers))
        self.flag_embed = nn.Embedding(flag_values, hidden) if flag_values else None
        self.head = nn.Sequential(nn.Linear(2 * hidden, head_hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(head_hidden, 2))

    def first_layer(self, x: torch.Tensor, text: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        # Embedding then linear equals one lookup in (E W): cheaper when a batch has more nodes than the
        # vocabulary has labels, and the gradient reaching E and W is the same.
        lin = self.lins[0] if self.conv == "gcn" else self.inp
        table = lin(self.embed.weight)
        z = nn.functional.embedding(x, table)  # its backward is ~4x faster than indexing on CPU
        if self.text_embed is not None and self.text_proj is not None:
            if text is None:
                raise ValueError("this model reads node text: the batch needs text_ids and text_offsets")
            z = z + self.text_proj(self.text_embed(*text))
        return z

    def node_states(self, x: torch.Tensor, text: tuple[torch.Tensor, torch.Tensor] | None,
                    flags: torch.Tensor | None) -> torch.Tensor:
        """The first layer's node states: label (and text) embedding, plus the flags' where the model has them
        (what line evidence differentiates)."""
        z = self.first_layer(x, text)
        if self.flag_embed is not None:
            if flags is None:
                raise ValueError("this model reads taint-flow flags: the batch needs flags and edge_type")
            z = z + self.flag_embed(flags)
        return z

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor,
                batch: torch.Tensor, num_graphs: int, text_ids: torch.Tensor | None = None,
                text_offsets: torch.Tensor | None = None, edge_type: torch.Tensor | None = None,
                flags: torch.Tensor | None = None) -> torch.Tensor:
        n = x.numel()
        if self.relations > 1:
            if edge_type is None:
                raise ValueError("this model is relational: the batch needs edge_type")
            adjs = []
            for r in range(self.relations):
                keep = edge_type == r
                adjs.append(csr_adjacency(edge_index[:, keep], edge_weight[keep], n))
        else:
            adjs = [csr_adjacency(edge_index, edge_weight, n)]
        text = (text_ids, text_offsets) if text_ids is not None and text_offsets is not None else None
        h0 = self.node_states(x, text, flags)
        h = self._gcn(h0, adjs) if self.conv == "gcn" else self._ggnn(h0, adjs)
        pooled = torch.cat([global_mean_pool(h, batch, num_graphs), global_max_pool(h, batch, num_graphs)], 1)
        return self.head(pooled)

    def _messages(self, i: int, adjs: list[torch.Tensor], z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Layer i's messages: the AST adjacency over ``z``, plus each further edge type's over its own
        projection of ``h``."""
        out = propagate(adjs[0], z).to(z.dtype)
        for lin, adj in zip(self.rel_lins[i], adjs[1:]):
            out = out + propagate(adj, lin(h)).to(z.dtype)
        return out

    def _gcn(self, h0: torch.Tensor, adjs: list[torch.Tensor]) -> torch.Tensor:
        h = None
        for i, lin in enumerate(self.lins):
            z = h0 if h is None else lin(h)
            out = self.norms[i](self._messages(i, adjs, z, h0 if h is None else h))
            if self.residual and h is not None:
                out = out + h
            h = dropout(torch.relu(out), self.dropout, self.training)
        return h

    def _ggnn(self, h0: torch.Tensor, adjs: list[torch.Tensor]) -> torch.Tensor:
        h = h0
        for i, lin in enumerate(self.lins):
            h = self.norms[i](self.gru(self._messages(i, adjs, lin(h), h), h))
        return dropout(h, self.dropout, self.training)
