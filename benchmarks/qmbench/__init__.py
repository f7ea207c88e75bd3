"""The side-by-side benchmark harness behind ``benchmarks/compare.py``.

Modules by concern:

- `spec`: workloads, sizes, engine variants and the cells they make (stdlib only);
- `measure`, `checks`: what runs inside a cell's process, in any of the three
  interpreters (stdlib only);
- `qm_graphs` and `engines.*`: the workloads written for each engine;
- `envs`, `execute`, `redis_server`, `machine`: the parent side (peer virtual
  environments, one subprocess per cell, services, machine description);
- `report`: the Markdown tables and the README section.
"""
