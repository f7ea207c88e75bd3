"""The parts of `quartermaster_graph.builder.GraphBuilder`, one job each: making a
node (`making`), the chain's wiring (`core`), the node methods by family (`llm`,
`control`, `waits`, `data`, `graphs`), the chain and its branches (`chain`). Import
the builder from `quartermaster_graph` (or `quartermaster_graph.builder`)."""
