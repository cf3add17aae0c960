import json

from streamguard.features.ast import ASTParser, strip_directives


def test_simple_function_parses_fully_and_drops_punctuation():
    g = ASTParser().parse("int add(int a, int b) { return a + b; }")
    assert g.strategy == "full"
    assert "+" in g.labels and "add" in g.labels
    assert not {";", "(", ")", "{", "}", ","} & set(g.labels)
    assert all(0 <= s < len(g.labels) and 0 <= d < len(g.labels) for s, d in g.edges)
    assert len(g.edges) == len(g.labels) - 1  # a tree


def test_single_child_chains_collapse():
    g = ASTParser().parse("void f(void) { g(1); }")
    # expression_statement -> call_expression collapses into the call
    assert "expression_statement" not in g.labels and "call_expression" in g.labels


def test_malformed_code_keeps_a_partial_tree_with_error_nodes():
    g = ASTParser().parse("int f(int x) { if (x > ) { return x; } int y = ; return y; }")
    assert g.strategy == "partial"
    # the tree around the two broken expressions survives: the function, its if, both returns
    assert g.labels[0] == "function_definition" and "if_statement" in g.labels
    assert g.labels.count("return_statement") == 2


def test_garbage_falls_back_to_a_token_graph():
    g = ASTParser().parse(") ) ] } ;; @@@ %% ` ` \\ foo bar ) ) ]] 12 ##")
    assert g.strategy == "token_graph"
    assert len(g.labels) >= 2 and g.edges == [(i, i + 1) for i in range(len(g.labels) - 1)]


def test_directives_are_blanked_keeping_positions():
    code = "int f(void) {\n#ifdef X\n  return 1;\n#else\n  return 2;\n#endif\n}\n"
    stripped = strip_directives(code)
    assert len(stripped) == len(code) and stripped.count("\n") == code.count("\n")
    assert "#" not in stripped and ASTParser().parse(code).strategy == "full"


def test_span_keeps_only_nodes_of_the_kept_text():
    code = "void f(int *a) { memset(a, 0, 4); zap(a); memcpy(a, b, 4); }"
    start = code.index("memcpy")
    g = ASTParser().parse(code, (start, len(code)))
    assert "memcpy" in g.labels and "memset" not in g.labels and "zap" not in g.labels


def test_every_real_function_yields_a_graph_and_most_parse(raw_small):
    parser = ASTParser()
    strategies = []
    for split in ("train", "valid", "test"):
        for line in (raw_small / f"{split}.jsonl").read_text().splitlines():
            g = parser.parse(json.loads(line)["func"])
            assert len(g.labels) >= 2
            strategies.append(g.strategy)
    assert sum(s != "token_graph" for s in strategies) / len(strategies) >= 0.9


def test_each_compaction_step_can_be_turned_off_on_real_functions(raw_small):
    """The plain tree-sitter AST is kept reachable so the cost of each step can be measured."""
    code = json.loads((raw_small / "train.jsonl").read_text().splitlines()[0])["func"]
    sizes = {}
    for drop, collapse in ((True, True), (True, False), (False, True), (False, False)):
        g = ASTParser(max_nodes=100_000, drop_punctuation=drop, collapse_chains=collapse).parse(code)
        assert g.strategy != "token_graph" and len(g.edges) == len(g.labels) - 1
        assert bool({";", "(", ")"} & set(g.labels)) is not drop
        sizes[drop, collapse] = len(g.labels)
    assert sizes[True, True] < sizes[True, False] < sizes[False, False]
    assert sizes[True, True] < sizes[False, True] < sizes[False, False]
