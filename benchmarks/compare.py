"""Quartermaster side by side with LangGraph 1.2 and quartermaster-engine 0.1.5.

Creates the peers' virtual environments under ``.bench/`` if needed, runs every
cell (workload x size x engine variant) in its own process, prints one JSON line
per cell on stdout (progress goes to stderr) and, after a full run, rewrites
the results section of ``benchmarks/README.md``.

    .venv/bin/python benchmarks/compare.py [--quick] [--only W1,W3] [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qmbench import envs, machine, report
from qmbench.execute import MEMORY_CAP, TIMEOUT, run_cell
from qmbench.postgres_server import postgres_server
from qmbench.redis_server import redis_server
from qmbench.spec import ENGINES, WORKLOADS, Cell, plan

README = Path(__file__).resolve().parent / "README.md"
RESULTS = envs.BENCH_DIR / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Quartermaster against LangGraph and quartermaster-engine 0.1.5."
    )
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    parser.add_argument("--only", help=f"comma-separated workloads ({','.join(WORKLOADS)})")
    parser.add_argument("--engines", help=f"comma-separated engines ({','.join(ENGINES)})")
    parser.add_argument(
        "--runs", type=int, default=5, help="timed runs per cell, at least (default 5)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per cell process (default 300)"
    )
    parser.add_argument(
        "--mem-cap",
        type=float,
        default=8192,
        help="MB of RSS at which a cell is killed (default 8192)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="seconds of timed runs per cell before fewer runs are made (default 60)",
    )
    parser.add_argument(
        "--no-skip",
        action="store_true",
        help="run larger sizes even after a smaller one timed out or would obviously",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="report these cells together with the other cells of the last run",
    )
    parser.add_argument(
        "--readme",
        choices=("auto", "yes", "no"),
        default="auto",
        help="rewrite README.md's results: auto = after full or --merge runs",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: rewrite README.md from the last saved run (.bench/results/)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def _split(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def skip_reason(
    cell: Cell, previous: dict[str, Any] | None, timeout_s: float, budget_s: float = 60.0
) -> str | None:
    """Why ``cell`` need not run, judging from the same variant at the next smaller size.

    After a timeout (or the memory cap), a larger size would hit it too. After a
    wrong result, a larger size whose run would take longer than the cell's budget
    is not worth it: the variant is known to be broken (0.1.5's threaded joins
    re-run hundreds of times, which takes minutes). After a success, a run
    extrapolated linearly from the smaller size (a lower bound for engines
    whose cost per node does not fall with size) that exceeds the timeout
    cannot finish either.
    """
    if previous is None:
        return None
    if previous["status"] == TIMEOUT:
        return f"timed out at {previous['size']:,}, so a larger size would too"
    if previous["status"] == MEMORY_CAP:
        return f"passed the memory cap at {previous['size']:,}, so a larger size would too"
    failed = previous.get("failed_run_s")
    if previous["status"] == "wrong" and failed:
        estimate = failed * cell.size / previous["size"]
        if estimate > budget_s:
            return (
                f"the result was already wrong at {previous['size']:,}, and a run would take "
                f"at least {estimate:,.0f} s (linear from {failed:,.1f} s)"
            )
    median = previous.get("median_s")
    if previous["status"] == "ok" and median:
        estimate = median * cell.size / previous["size"]
        if estimate > timeout_s:
            return (
                f"one run would take at least {estimate:,.0f} s (linear from "
                f"{median:,.1f} s at {previous['size']:,}), past the {timeout_s:g} s timeout"
            )
    return None


@contextlib.contextmanager
def services(cells: list[Cell]) -> Iterator[dict[str, Any]]:
    """Parameters the cells need from services the harness starts (redis-server for W5,
    PostgreSQL for W3p)."""
    params: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if any(c.workload == "W5" for c in cells):
            params["redis_url"] = stack.enter_context(redis_server())
            _log(f"redis-server at {params['redis_url']}")
        if any(c.workload == "W3p" for c in cells):
            params["postgres_dsn"] = stack.enter_context(postgres_server())
            _log("PostgreSQL (fsync on, synchronous_commit on) started")
        yield params


def _skipped(cell: Cell, reason: str) -> dict[str, Any]:
    return {
        "cell": cell.id,
        "workload": cell.workload,
        "size": cell.size,
        "variant": cell.variant,
        "engine": cell.engine,
        "status": "skipped",
        "detail": reason,
        "runs": 0,
        "times_s": [],
    }


def run_all(args: argparse.Namespace, cells: list[Cell]) -> list[dict[str, Any]]:
    """Run ``cells`` one after another; print and return their records."""
    pythons, args.versions = envs.interpreters({c.engine for c in cells})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    work_root = envs.BENCH_DIR / "work" / stamp
    records: list[dict[str, Any]] = []
    # The last measured record of each (workload, variant), to judge its next size.
    measured: dict[tuple[str, str], dict[str, Any]] = {}
    with services(cells) as service_params:
        for i, cell in enumerate(cells, 1):
            previous = measured.get((cell.workload, cell.variant))
            reason = (
                None if args.no_skip else skip_reason(cell, previous, args.timeout, args.budget)
            )
            if reason is not None:
                record = _skipped(cell, reason)
            else:
                workdir = work_root / cell.id.replace("/", "_")
                record = run_cell(
                    cell,
                    pythons[cell.engine],
                    runs=args.runs,
                    budget_s=args.budget,
                    timeout_s=args.timeout,
                    mem_cap_mb=args.mem_cap,
                    params={**WORKLOADS[cell.workload].params, **service_params},
                    workdir=workdir,
                )
                shutil.rmtree(workdir, ignore_errors=True)
                measured[(cell.workload, cell.variant)] = record
            record = report.derive(record)
            record["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            records.append(record)
            print(json.dumps(record), flush=True)
            _log(f"[{i}/{len(cells)}] {cell.id}: {_summary(record)}")
    shutil.rmtree(work_root, ignore_errors=True)
    return records


def _summary(record: dict[str, Any]) -> str:
    if record["status"] != "ok":
        return f"{record['status']}: {record.get('detail', '')}"
    unit = WORKLOADS[record["workload"]].unit
    runs = f"{record['runs']} run(s)"
    return (
        f"{report.fmt_time(record['per_unit_us'], unit)} per {unit}, {runs}, "
        f"peak {record['peak_rss_mb']:,.0f} MB, process {record['process_s']:,.1f} s"
    )


def _saved_meta() -> dict[str, Any]:
    path = RESULTS / "latest-meta.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def _merge(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """These records over those of the last saved run (same cell: the newer wins)."""
    latest = RESULTS / "latest.jsonl"
    if not latest.exists():
        return records
    merged = {r["cell"]: r for r in map(json.loads, latest.read_text().splitlines()) if r}
    merged.update({r["cell"]: r for r in records})
    order = {c.id: i for i, c in enumerate(plan())}
    return sorted(merged.values(), key=lambda r: order.get(r["cell"], len(order)))


def render_saved() -> int:
    """Rewrite the README's results from the last saved run."""
    latest, meta_file = RESULTS / "latest.jsonl", RESULTS / "latest-meta.json"
    if not (latest.exists() and meta_file.exists()):
        _log(f"no saved run in {RESULTS}")
        return 1
    records = [report.derive(json.loads(line)) for line in latest.read_text().splitlines()]
    report.update_readme(README, report.render(records, json.loads(meta_file.read_text())))
    _log(f"wrote the results of {latest} into {README}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        return render_saved()
    try:
        cells = plan(_split(args.only), _split(args.engines), quick=args.quick)
    except ValueError as exc:
        _log(str(exc))
        return 2
    command = "benchmarks/compare.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command.strip(),
        "machine": machine.describe(envs.REPO),
        "runs": args.runs,
        "budget_s": args.budget,
        "timeout_s": args.timeout,
        "mem_cap_mb": args.mem_cap,
    }
    _log(f"{len(cells)} cells; {meta['machine']['cpu']}, {meta['machine']['cores']} cores")
    try:
        records = run_all(args, cells)
    except envs.EnvError as exc:
        _log(str(exc))
        return 1
    meta["duration_s"] = time.monotonic() - started
    meta["load_avg_end"] = [round(x, 2) for x in machine.describe(envs.REPO)["load_avg"]]
    meta["versions"] = args.versions
    full = not (args.quick or args.only or args.engines)
    all_records = records
    if args.merge:
        all_records = _merge(records)
        if len(all_records) > len(records):
            # Keep the machine and versions story straight: say which cells are older.
            meta["merged_into"] = _saved_meta().get("date")
    RESULTS.mkdir(parents=True, exist_ok=True)
    if full or args.merge:
        (RESULTS / "latest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in all_records))
        (RESULTS / "latest-meta.json").write_text(json.dumps(meta, indent=2))
    if args.readme == "yes" or (args.readme == "auto" and (full or args.merge)):
        report.update_readme(README, report.render(all_records, meta))
        _log(f"wrote the results into {README}")
    else:
        print(report.render(all_records, meta), file=sys.stderr)
    _log(f"done in {meta['duration_s']:,.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
