"""Figures derived from cell records, the Markdown tables, the targets, the README section."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qmbench.spec import CONCURRENT, VARIANTS, WORKLOADS, units

OK = "ok"
TIMES = "\u00d7"  # the multiplication sign of "20x"
START_MARK = "<!-- results:start -->"
END_MARK = "<!-- results:end -->"


# -- figures ---------------------------------------------------------------------------


def derive(record: dict[str, Any]) -> dict[str, Any]:
    """Add ``units`` and ``per_unit_us`` (median time per node / flow / run) to ``record``."""
    n = units(record["workload"], record["size"])
    record["units"] = n
    median = record.get("median_s")
    if median is not None:
        record["per_unit_us"] = round(median / n * 1e6, 3)
        if record.get("cpu_median_s") is not None:
            record["per_unit_cpu_us"] = round(record["cpu_median_s"] / n * 1e6, 3)
    first = record.get("first_run_s")
    if first is not None:
        record["first_run_us"] = round(first / n * 1e6, 3)
    peak, setup = record.get("peak_rss_mb"), record.get("rss_setup_mb")
    if record["workload"] == CONCURRENT and peak is not None and setup is not None:
        # Every flow of a run is in flight at once: the growth over the set-up is theirs.
        record["kb_per_flow"] = round(max(0.0, peak - setup) * 1024 / record["size"], 2)
    return record


def per_unit(record: dict[str, Any] | None) -> float | None:
    """µs per unit of an ok record, else None."""
    if record is None or record.get("status") != OK:
        return None
    value = record.get("per_unit_us")
    return float(value) if value is not None else None


def fmt_num(value: float) -> str:
    """Three significant figures for small values, thousands separators above 100."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ratio(value: float) -> str:
    return f"{fmt_num(value)}{TIMES}"


def fmt_time(us: float, unit: str) -> str:
    """A per-unit time: µs, or ms/s for whole runs."""
    if unit == "run":
        return f"{us / 1000:,.0f} ms" if us >= 10_000 else f"{us / 1000:.1f} ms"
    return f"{fmt_num(us)} µs"


# -- tables ----------------------------------------------------------------------------


class Footnotes:
    """Numbered notes under a table, for what does not fit in a cell."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def add(self, text: str) -> str:
        self.notes.append(text)
        return f"<sup>{len(self.notes)}</sup>"

    def render(self) -> list[str]:
        return [f"{i}. {note}" for i, note in enumerate(self.notes, 1)]


def _status_text(record: dict[str, Any], notes: Footnotes, unit: str) -> str:
    status = record.get("status")
    label = f"{record['workload']}/{record['size']:,} {VARIANTS[record['variant']].label}"
    peak = record.get("peak_rss_mb")
    if status == OK:
        text = fmt_time(record["per_unit_us"], unit)
        cpu = record.get("per_unit_cpu_us")
        if cpu is not None and unit != "run":
            text += f" ({fmt_num(cpu)} CPU)"
        text += f" · {peak:,.0f} MB"
        per_flow = record.get("kb_per_flow")
        if per_flow is not None:
            text += f" · {fmt_num(per_flow)} KB per flow"
        if record.get("budget_limited"):
            text += notes.add(
                f"{label}: {record['runs']} run(s) only: one run takes "
                f"{record['median_s']:,.1f} s, past the time budget"
            )
        return text
    detail = record.get("detail") or ""
    if status == "wrong":
        return f"**wrong**{notes.add(f'{label}: {detail}')}"
    if status in ("crash", "killed", "error"):
        failed = record.get("failed_run_s")
        after = f" (after {failed:,.2f} s)" if failed else ""
        return f"**{status}**{notes.add(f'{label}: {detail}{after}')}"
    if status in ("timeout", "memory cap"):
        return f"**{status}**{notes.add(f'{label}: {detail}')}"
    if status == "skipped":
        return f"not run{notes.add(f'{label}: {detail}')}"
    if status == "not installed":
        return f"not installed{notes.add(f'{label}: {detail}')}"
    return f"{status}"


def _ratio_text(ours: dict[str, Any] | None, peer: dict[str, Any] | None) -> str:
    mine, theirs = per_unit(ours), per_unit(peer)
    if mine is None or theirs is None or mine <= 0:
        return "—"
    return fmt_ratio(theirs / mine)


def _index(records: Iterable[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, Any]]:
    return {(r["workload"], r["size"], r["variant"]): r for r in records}


def render_workload(key: str, records: list[dict[str, Any]]) -> list[str]:
    """The section of one workload: description, the table, footnotes."""
    workload = WORKLOADS[key]
    mine = [r for r in records if r["workload"] == key]
    if not mine:
        return []
    by = _index(mine)
    variants = [v for v in workload.variants if any(r["variant"] == v for r in mine)]
    sizes = sorted({r["size"] for r in mine})
    unit = workload.unit
    per = {"node": "µs per node", "flow": "µs per flow", "run": "wall time of one run"}[unit]
    lines = [f"### {key} {workload.title}: {per}, peak RSS", "", workload.description]
    if workload.peers_note:
        lines += ["", workload.peers_note]
    lines.append("")
    notes = Footnotes()
    if workload.baseline is None:
        peers = [v for v in variants if v != workload.primary]
        primary_label = VARIANTS[workload.primary].label
        head = [workload.size_label, *(VARIANTS[v].label for v in variants)]
        head += [f"{VARIANTS[p].label} ÷ {primary_label}" for p in peers]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for size in sizes:
            row = [f"{size:,}"]
            for v in variants:
                rec = by.get((key, size, v))
                row.append(_status_text(rec, notes, unit) if rec else "")
            primary = by.get((key, size, workload.primary))
            row += [_ratio_text(primary, by.get((key, size, p))) for p in peers]
            lines.append("| " + " | ".join(row) + " |")
    else:
        base_label = VARIANTS[workload.baseline].label
        column = f"speed-up over {base_label}" if unit == "run" else f"cost ÷ {base_label}"
        head = [workload.size_label, "variant", "time · peak", column]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for size in sizes:
            base = per_unit(by.get((key, size, workload.baseline)))
            for v in variants:
                rec = by.get((key, size, v))
                if rec is None:
                    continue
                value = per_unit(rec)
                if value is None or base is None:
                    ratio = "—"
                elif unit == "run":
                    ratio = fmt_ratio(base / value)
                else:
                    ratio = fmt_ratio(value / base)
                text = _status_text(rec, notes, unit)
                lines.append(f"| {size:,} | {VARIANTS[v].label} | {text} | {ratio} |")
    described = "; ".join(f"{VARIANTS[v].label}: {VARIANTS[v].note}" for v in variants)
    lines += ["", f"Variants: {described}."]
    if notes.notes:
        lines += ["", *notes.render()]
    lines.append("")
    return lines


# -- targets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A figure an issue promises, checked against this run's records."""

    issue: str
    text: str
    measure: Callable[[dict[tuple[str, int, str], dict[str, Any]]], tuple[float | None, str]]
    ok: Callable[[float], bool]


def _cell_value(
    workload: str, size: int, variant: str, field: str = "per_unit_us", unit: str = "µs"
) -> Callable[[dict[tuple[str, int, str], dict[str, Any]]], tuple[float | None, str]]:
    def measure(by: dict[tuple[str, int, str], dict[str, Any]]) -> tuple[float | None, str]:
        rec = by.get((workload, size, variant))
        if rec is None:
            return None, "not measured"
        if rec.get("status") != OK:
            return None, f"{rec.get('status')}: {rec.get('detail', '')}"
        value = float(rec[field])
        text = f"{fmt_num(value)} {unit}"
        cpu = rec.get("per_unit_cpu_us") if field == "per_unit_us" else None
        if cpu is not None:
            text += f" (CPU {fmt_num(float(cpu))} {unit})"
        setup = rec.get("rss_setup_mb") if field == "peak_rss_mb" else None
        if setup is not None:
            text += f" ({fmt_num(float(setup))} MB once the graph and runner were built)"
        return value, text

    return measure


def _ratio_value(
    workload: str, size: int, variant: str, base: str, *, speedup: bool
) -> Callable[[dict[tuple[str, int, str], dict[str, Any]]], tuple[float | None, str]]:
    def measure(by: dict[tuple[str, int, str], dict[str, Any]]) -> tuple[float | None, str]:
        mine, ref = by.get((workload, size, variant)), by.get((workload, size, base))
        a, b = per_unit(mine), per_unit(ref)
        if a is None or b is None:
            missing = mine if a is None else ref
            status = missing.get("status") if missing else "not measured"
            return None, f"not measured ({status})"
        value = b / a if speedup else a / b
        unit = WORKLOADS[workload].unit
        return value, f"{fmt_ratio(value)} ({fmt_time(a, unit)} vs {fmt_time(b, unit)})"

    return measure


def _min_ratio(
    workload: str, peer: str
) -> Callable[[dict[tuple[str, int, str], dict[str, Any]]], tuple[float | None, str]]:
    """The smallest peer ÷ ours ratio over the sizes both completed."""

    def measure(by: dict[tuple[str, int, str], dict[str, Any]]) -> tuple[float | None, str]:
        primary = WORKLOADS[workload].primary
        pairs = []
        for (w, size, v), rec in by.items():
            if w == workload and v == peer:
                mine, theirs = per_unit(by.get((w, size, primary))), per_unit(rec)
                if mine is not None and theirs is not None:
                    pairs.append((theirs / mine, size))
        if not pairs:
            return None, "no size completed on both"
        value, size = min(pairs)
        return value, f"min {fmt_ratio(value)} (at {size:,}; {len(pairs)} size(s) compared)"

    return measure


def _max(limit: float) -> Callable[[float], bool]:
    return lambda value: value <= limit


def _min(limit: float) -> Callable[[float], bool]:
    return lambda value: value >= limit


TARGETS: list[Target] = [
    Target("#3", "W1 chain of 1,000: ≤ 10 µs per node", _cell_value("W1", 1_000, "ours"), _max(10)),
    Target(
        "#3",
        "W1 chain of 100,000: ≤ 10 µs per node",
        _cell_value("W1", 100_000, "ours"),
        _max(10),
    ),
    Target(
        "#3",
        "W2 fan-out of 10,000: ≤ 15 µs per node",
        _cell_value("W2", 10_000, "ours"),
        _max(15),
    ),
    Target(
        "#3",
        "W4 1,000 flows of 5 nodes: ≤ 100 µs per flow",
        _cell_value("W4", 1_000, "ours"),
        _max(100),
    ),
    Target(
        "#3",
        "W1 chain of 100,000: peak RSS < 300 MB (whole process)",
        _cell_value("W1", 100_000, "ours", "peak_rss_mb", "MB"),
        lambda value: value < 300,
    ),
    *(
        Target(
            "#6",
            f"W3 SQLite chain of {n:,}: ≤ 100 µs per node",
            _cell_value("W3", n, "ours-sqlite"),
            _max(100),
        )
        for n in (1_000, 5_000, 10_000)
    ),
    *(
        Target(
            "#7",
            f"W5 Redis chain of {n:,}: ≤ 150 µs per node",
            _cell_value("W5", n, "ours-redis"),
            _max(150),
        )
        for n in (1_000, 5_000, 10_000)
    ),
    *(
        Target(
            "#17",
            f"W3p PostgreSQL chain of {n:,}: ≤ 250 µs per node",
            _cell_value("W3p", n, "ours-postgres"),
            _max(250),
        )
        for n in (1_000, 5_000, 10_000)
    ),
    Target(
        "#8",
        f"W6 100 branches of 10 ms, 32 workers: speed-up over sync ≥ 0.8 {TIMES} 32 = 25.6",
        _ratio_value("W6", 100, "ours-thread", "ours-sync", speedup=True),
        _min(25.6),
    ),
    *(
        Target(
            "#8",
            f"{w} no-op {shape} of 1,000: thread dispatcher ≤ 3 {TIMES} the sync dispatcher "
            "per node",
            _ratio_value(w, 1_000, "ours-thread", "ours-sync", speedup=False),
            _max(3),
        )
        for w, shape in (("W6c", "chain"), ("W6f", "fan-out"))
    ),
    *(
        Target(
            "DESIGN §8",
            f"{w}: ≥ 10{TIMES} faster than {VARIANTS[p].label} at every size both completed",
            _min_ratio(w, p),
            _min(10),
        )
        for w in ("W1", "W2")
        for p in ("lg", "qm015", "qm015-thread")
    ),
    *(
        Target(
            "#31",
            f"{w} {what} of {n:,}: ≤ {limit} µs per {unit}",
            _cell_value(w, n, v),
            _max(limit),
        )
        for w, what, n, v, limit, unit in (
            ("W1", "chain", 1_000, "ours", 3, "node"),
            ("W1", "chain", 100_000, "ours", 3, "node"),
            ("W2", "fan-out", 1_000, "ours", 5, "node"),
            ("W2", "fan-out", 10_000, "ours", 5, "node"),
            ("W4", "flows", 1_000, "ours", 40, "flow"),
            ("W3", "SQLite chain", 1_000, "ours-sqlite", 50, "node"),
            ("W5", "Redis chain", 1_000, "ours-redis", 120, "node"),
            ("W3p", "PostgreSQL chain", 1_000, "ours-postgres", 250, "node"),
        )
    ),
    Target(
        "#31",
        "W8 10,000 concurrent flows of one 100 ms await: ≤ 0.5 s wall",
        _cell_value("W8", 10_000, "ours-async", unit="µs per run"),
        _max(500_000),
    ),
    Target(
        "#31",
        "W8 10,000 concurrent flows: ≤ 8 KB per flow in flight",
        _cell_value("W8", 10_000, "ours-async", "kb_per_flow", "KB"),
        _max(8),
    ),
]


def render_targets(records: list[dict[str, Any]]) -> list[str]:
    by = _index(records)
    lines = ["| issue | target | measured | met |", "|---|---|---|---|"]
    for target in TARGETS:
        value, text = target.measure(by)
        met = "—" if value is None else ("yes" if target.ok(value) else "**no**")
        lines.append(f"| {target.issue} | {target.text} | {text} | {met} |")
    return lines


# -- the whole section -------------------------------------------------------------------


def render(records: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The README's results section (between the markers)."""
    machine = meta["machine"]
    lines = [
        f"Measured {meta['date']} by `{meta['command']}` in {_duration(meta['duration_s'])}."
        + (
            f" Cells that command did not run are those of the run of {meta['merged_into']}."
            if meta.get("merged_into")
            else ""
        ),
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM, "
        f"{machine['os']}; Python {machine['python']} ({machine['python_impl']}) for every "
        f"engine; load average {_load(meta)}; commit {machine.get('commit') or 'unknown'} "
        "(plus the working tree).",
        "",
        "Versions: " + "; ".join(_versions(meta["versions"])) + ".",
        "",
        f"Each cell: its own process, a warm-up run, then the median of at least "
        f"{meta['runs']} runs (fewer past a {meta['budget_s']:g} s budget, noted), "
        f"timeout {meta['timeout_s']:g} s and RSS cap "
        f"{meta.get('mem_cap_mb', 8192):,.0f} MB per cell. "
        "Times are wall time per no-op node (or per flow, or per run) of the median run, "
        "with in brackets the process's CPU time (all threads) over the same run, which "
        "other load on the machine disturbs less; peak RSS is "
        "the whole process's (interpreter, imports and graph included). Ratios are the "
        f"peer's time divided by ours: 20{TIMES} means the peer spends twenty times as long.",
        "",
        "### Targets",
        "",
        *render_targets(records),
        "",
    ]
    for key in WORKLOADS:
        lines += render_workload(key, records)
    return "\n".join(lines).rstrip() + "\n"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(math.ceil(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _load(meta: dict[str, Any]) -> str:
    start = meta["machine"]["load_avg"]
    end = meta.get("load_avg_end")
    text = "/".join(f"{x:g}" for x in start) + " at start"
    if end:
        text += ", " + "/".join(f"{x:g}" for x in end) + " at end"
    return text


def _versions(versions: dict[str, dict[str, str | None]]) -> list[str]:
    out = []
    for engine, dists in versions.items():
        listed = ", ".join(f"{d} {v or 'not installed'}" for d, v in dists.items())
        out.append(f"{engine}: {listed}")
    return out


def update_readme(path: Path, section: str) -> None:
    """Replace the text between the results markers of ``path`` with ``section``."""
    text = path.read_text()
    start, end = text.find(START_MARK), text.find(END_MARK)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no {START_MARK} ... {END_MARK} section")
    path.write_text(text[: start + len(START_MARK)] + "\n\n" + section + "\n" + text[end:])
