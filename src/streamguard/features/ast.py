"""ASTParser: C function -> compact graph, in three tiers, so that every function yields a graph.

Tier 1 ("full"): tree-sitter-c parses without error. Tier 2 ("partial"): the tree has ERROR nodes, which are
kept (labelled ERROR) as long as they cover at most half of the code. Tier 3 ("token_graph"): a chain of the
code's lexical tokens, for code the parser cannot make sense of. Preprocessor directives are blanked out first
(same length, so positions stay valid): Devign's macros-heavy code parses far better without them.

The graph is compacted so that it carries information rather than punctuation: anonymous punctuation and
keyword leaves are dropped (the parent's type already says "return" or "if"), comments are dropped, and chains
of inner nodes with a single child collapse into the lowest one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from tree_sitter import Node, Parser

from streamguard.data.extract import C_LANGUAGE

_DIRECTIVE = re.compile(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", re.MULTILINE)
_LEXEME = re.compile(r"[A-Za-z_]\w*|\d[\w.]*|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|->|\+\+|--|<<=?|>>=?|"
                     r"[<>!=]=|&&|\|\||[-+*/%&|^~!<>=?:]")
_PUNCTUATION = set("(){}[];,.") | {"...", "::"}
_LEAF_TYPES = {"string_literal", "char_literal", "concatenated_string", "system_lib_string", "preproc_arg"}
_TEXT_LEAVES = {"identifier", "field_identifier", "type_identifier", "number_literal", "primitive_type",
                "statement_identifier", "true", "false", "null"}
MAX_PARTIAL_ERROR_SHARE = 0.5


@dataclass
class Graph:
    labels: list[str] = field(default_factory=list)   # node label: node type, or token text for leaves
    leaf_text: list[bool] = field(default_factory=list)  # whether the label is a leaf's text (vocab-dependent)
    types: list[str] = field(default_factory=list)    # fallback label when the text is not in the vocabulary
    edges: list[tuple[int, int]] = field(default_factory=list)
    strategy: str = "full"
    # each node's byte span in the directive-stripped source, and that parse (root node, source bytes): what
    # the taint-flow graph is laid over (tiers 1 and 2 only; not written into records)
    spans: list[tuple[int, int]] = field(default_factory=list)
    tree: tuple[Node, bytes] | None = None

    def add(self, label: str, node_type: str, is_text: bool, parent: int | None,
            span: tuple[int, int] = (0, 0)) -> int:
        self.labels.append(label)
        self.spans.append(span)
        self.types.append(node_type)
        self.leaf_text.append(is_text)
        idx = len(self.labels) - 1
        if parent is not None:
            self.edges.append((parent, idx))
        return idx


def strip_directives(code: str) -> str:
    """Blank out preprocessor directives (keeping length and newlines so offsets stay valid)."""
    return _DIRECTIVE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), code)


def _kept_children(node: Node, lo: int, hi: int, drop_punctuation: bool) -> list[Node]:
    kept = []
    for child in node.children:
        if child.end_byte <= lo or child.start_byte >= hi or child.type == "comment":
            continue
        if drop_punctuation and not child.is_named and (child.type in _PUNCTUATION or child.type.isidentifier()):
            continue  # punctuation, and keywords implied by the parent's type
        kept.append(child)
    return kept


class ASTParser:
    """Both compaction steps are on by default; turning them off gives the plain tree-sitter AST, kept so
    that what each step costs in accuracy can be measured (benchmarks/results/gnn_devign.md)."""

    def __init__(self, max_nodes: int = 1200, drop_punctuation: bool = True, collapse_chains: bool = True):
        self.parser = Parser(C_LANGUAGE)
        self.max_nodes = max_nodes
        self.drop_punctuation = drop_punctuation
        self.collapse_chains = collapse_chains

    def parse(self, code: str, span: tuple[int, int] | None = None) -> Graph:
        """Build the graph of ``code[span]`` with the best tier that works; never raises on any string.

        The whole function is parsed (a window cut out of its middle parses badly), and only the nodes
        inside the span are kept, with their ancestors: the graph describes exactly the kept text.
        """
        lo_char, hi_char = span if span else (0, len(code))
        source = strip_directives(code).encode("utf-8", errors="replace")
        lo = len(code[:lo_char].encode("utf-8", errors="replace"))
        hi = lo + len(code[lo_char:hi_char].encode("utf-8", errors="replace"))
        try:
            root = self.parser.parse(source).root_node
        except (ValueError, RuntimeError):
            return self.token_graph(code[lo_char:hi_char])
        strategy = "full"
        if root.has_error:
            if _error_share(root, len(source)) > MAX_PARTIAL_ERROR_SHARE:
                return self.token_graph(code[lo_char:hi_char])
            strategy = "partial"
        graph = self._tree_graph(root, source, lo, hi)
        if len(graph.labels) < 2:
            return self.token_graph(code[lo_char:hi_char])
        graph.strategy = strategy
        graph.tree = (root, source)
        return graph

    def _tree_graph(self, root: Node, source: bytes, lo: int, hi: int) -> Graph:
        graph = Graph()
        stack: list[tuple[Node, int | None]] = [(root, None)]
        while stack and len(graph.labels) < self.max_nodes:
            node, parent = stack.pop()
            children = [] if node.type in _LEAF_TYPES else _kept_children(node, lo, hi, self.drop_punctuation)
            # collapse chains of inner nodes: a node whose only child is another inner node adds nothing
            while self.collapse_chains and len(children) == 1 and children[0].child_count \
                    and children[0].type not in _LEAF_TYPES:
                node = children[0]
                children = _kept_children(node, lo, hi, self.drop_punctuation)
            if children:
                idx = graph.add(node.type, node.type, False, parent, (node.start_byte, node.end_byte))
                stack.extend((child, idx) for child in reversed(children))
            elif node.start_byte < lo or node.end_byte > hi:
                continue  # a leaf cut by the window's edge is not part of the kept text
            elif node.type in _TEXT_LEAVES or not node.is_named:
                text = source[node.start_byte:node.end_byte].decode("utf-8", errors="replace")
                graph.add(text, node.type if node.is_named else "operator", True, parent,
                          (node.start_byte, node.end_byte))
            else:
                graph.add(node.type, node.type, False, parent, (node.start_byte, node.end_byte))
        return graph

    def token_graph(self, code: str) -> Graph:
        """Tier 3: the code's lexical tokens in order, each linked to the next."""
        graph = Graph(strategy="token_graph")
        graph.add("translation_unit", "translation_unit", False, None)
        previous = 0
        for m in _LEXEME.finditer(code[: self.max_nodes * 16]):
            if len(graph.labels) >= self.max_nodes:
                break
            text = m.group(0)
            kind = ("identifier" if text[0].isalpha() or text[0] == "_" else "number_literal" if text[0].isdigit()
                    else "string_literal" if text[0] in "\"'" else "operator")
            is_text = kind != "string_literal"
            previous = graph.add(text if is_text else kind, kind, is_text, previous)
        return graph


def _error_share(root: Node, total: int) -> float:
    """Fraction of the code's bytes inside ERROR nodes (outermost ones only, so nothing counts twice)."""
    covered, stack = 0, [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR":
            covered += node.end_byte - node.start_byte
        elif node.has_error:
            stack.extend(node.children)
    return covered / max(total, 1)
