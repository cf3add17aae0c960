"""Function fingerprints that survive what does not change a function's logic.

A fingerprint hashes the function's file path, its name and its token stream with comments and layout removed and
its local names (parameters and variables declared inside it) replaced by ``VAR_0``, ``VAR_1``, ... in order of
first appearance. So moving the function within its file, reformatting it, re-commenting it or renaming its
locals keeps the fingerprint; changing an operator, a literal (a bound), a called function, a type, a global or
a field changes it. Baselines and SARIF's ``partialFingerprints`` (``streamguardFunction/v1``) key on it.

Tokens come from the C token regexes the data pipeline's duplicate detection uses (``data.neardup``), locals
from tree-sitter-c (the extractor's grammar): the model's subword tokenizer would tie fingerprints to a bundle.
"""
from __future__ import annotations

import hashlib

from tree_sitter import Node, Parser, Query, QueryCursor

from streamguard.data.extract import C_LANGUAGE
from streamguard.data.neardup import COMMENT, NORM_TOKEN

VERSION = "v1"          # part of the SARIF key: a change of the recipe must change the key
SARIF_KEY = f"streamguardFunction/{VERSION}"
# every declarator of a parameter or of a declaration (locals, for-loop variables, K&R parameter lists)
_DECLARATORS = Query(C_LANGUAGE, """
(parameter_declaration declarator: (_) @d)
(declaration declarator: (_) @d)
""")
_PARSER = Parser(C_LANGUAGE)   # one per process: a parser is reusable (scan fingerprints in its main thread)
_WRAPPERS = {"init_declarator", "pointer_declarator", "array_declarator", "parenthesized_declarator",
             "function_declarator", "attributed_declarator"}


def _declared_name(node: Node) -> str | None:
    """The identifier a declarator declares (``*buf[8] = ...`` -> ``buf``)."""
    while node is not None and node.type in _WRAPPERS:
        inner = node.child_by_field_name("declarator")
        node = inner if inner is not None else next((c for c in node.named_children if c.type != "comment"), None)
    return node.text.decode("utf-8", errors="replace") if node is not None and node.type == "identifier" else None


def local_names(code: str, name: str = "", node: Node | None = None) -> set[str]:
    """Names of the parameters and variables declared in one function's code (not the function's own name);
    from ``node``, the function's node in its file's tree, when the caller has it (no second parse)."""
    if node is None:
        try:
            node = _PARSER.parse(code.encode("utf-8", errors="replace")).root_node
        except (ValueError, RuntimeError):  # as extract_functions: no tree, so no locals (the raw tokens still hash)
            return set()
    nodes = QueryCursor(_DECLARATORS).captures(node).get("d", [])
    names = {n for n in map(_declared_name, nodes) if n}
    names.discard(name)
    return names


def normalised_tokens(code: str, name: str = "", node: Node | None = None) -> list[str]:
    """The function's tokens without comments, its locals renamed ``VAR_i`` in order of first appearance; names
    after ``.`` / ``->`` are fields, never locals."""
    local = local_names(code, name, node)
    toks = NORM_TOKEN.findall(COMMENT.sub(" ", code))
    renamed: dict[str, str] = {}
    for i, tok in enumerate(toks):  # one set lookup a token: this runs for every scanned function
        if tok in local and not (i and (toks[i - 1] == "." or (toks[i - 1] == ">" and toks[i - 2] == "-"))):
            new = renamed.get(tok)
            if new is None:
                new = renamed[tok] = f"VAR_{len(renamed)}"
            toks[i] = new
    return toks


def fingerprint(path: str, name: str, code: str, node: Node | None = None) -> str:
    """32 hex digits of sha256 over the recipe version, path, name and normalised tokens. ``node``: the function's
    node in its file's tree (``data.extract.function_nodes``), which gives the same locals as parsing ``code``
    alone (tests/test_scan_fingerprint.py checks this on real files) at no parsing cost."""
    text = "\x1f".join([VERSION, path, name, *normalised_tokens(code, name, node)])
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()[:32]
