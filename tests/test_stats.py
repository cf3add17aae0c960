from streamguard.data.stats import audit, graph_statistics, recommended_batch_size


def test_graph_statistics_follow_the_specified_formula():
    # 1 GiB, half kept free, for 1,024-node graphs of 256 float32 a node: 2**29 / 2**20 = 512 graphs
    assert recommended_batch_size(1024, 1.0) == 512 and recommended_batch_size(2048, 1.0) == 256
    assert recommended_batch_size(1024, 1.0, hidden=128) == 1024
    stats = graph_statistics(list(range(1, 101)), memory_budget_gb=0.05)
    assert stats["max_nodes"] == 100 and stats["mean_nodes"] == 50.5 and stats["p95_nodes"] == 95.05
    assert stats["recommended_batch_size"] == 275  # 0.05 GiB * 0.5 / (95.05 * 256 * 4 B), under the cap


def test_recommended_batch_is_capped():
    # the formula alone asks for 11,031 graphs of 95 nodes a batch with 2 GB; three tiny functions, ~100,000
    assert graph_statistics(list(range(1, 101)), memory_budget_gb=2.0)["recommended_batch_size"] == 512
    assert graph_statistics([3, 4, 5], memory_budget_gb=16.0)["recommended_batch_size"] == 512


def test_batch_size_scales_with_budget_and_graph_size():
    assert recommended_batch_size(500, 8.0) == 2 * recommended_batch_size(500, 4.0)
    assert recommended_batch_size(1000, 4.0) < recommended_batch_size(500, 4.0)
    assert recommended_batch_size(10**9, 0.001) == 1


def test_audit_finds_whitespace_duplicates_leakage_and_conflicts():
    row = lambda f, t: {"func": f, "target": t}  # noqa: E731
    report = audit({"train": [row("int f() { return 1; }", 0), row("int f()  {\n return 1; }", 1), row("x", 0)],
                    "valid": [], "test": [row("int  f() { return 1; }", 1), row("y", 1)]})
    assert report["splits"]["train"]["duplicate_rows"] == 1
    assert report["splits"]["train"]["duplicate_groups_with_conflicting_labels"] == 1
    assert report["cross_split"]["train-test"]["shared_functions"] == 1
    assert report["splits"]["test"]["vulnerable_share"] == 1.0
