"""Run one benchmark cell in this interpreter and print its outcome as a JSON line.

Started by ``compare.py`` with the interpreter of the cell's engine (ours, or
a peer's environment under ``.bench/``); not meant to be run by hand, though
it can be, e.g. ``.venv/bin/python benchmarks/cell.py --workload W1 --size 1000
--variant ours --workdir /tmp/x``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

# Run as a script, this file's folder is on sys.path, so qmbench imports in every
# interpreter without being installed.
from qmbench.measure import emit, error_result, measure
from qmbench.spec import VARIANTS

ENGINE_MODULES = {
    "ours": "qmbench.engines.ours",
    "langgraph": "qmbench.engines.langgraph_engine",
    "qm015": "qmbench.engines.qm015",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--params", default="{}", help="JSON object of workload parameters")
    args = parser.parse_args(argv)
    try:
        module = importlib.import_module(ENGINE_MODULES[VARIANTS[args.variant].engine])
        bench = module.make(
            args.workload, args.variant, args.size, json.loads(args.params), args.workdir
        )
        result = measure(bench, runs=args.runs, budget_s=args.budget)
    except Exception as exc:  # the harness itself, or an engine that does not import
        result = error_result(exc)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
