"""Model input: raw functions -> tokens with offsets, trimmed to the budget, AST graphs, processed records."""
