"""Markdown tables from result files: ``python -m benchmarks.report results/*.json``.

One table for the core benchmark (analyses × sizes: warm seconds and peak MB, the
baselines and their ratios) and one for the Spark comparison, with the machine and load
of each run. Used to write the README's Benchmarks section.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(paths) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


def _cell(row: dict | None) -> str:
    if row is None:
        return "—"
    if "FAILED" in (row.get("note") or ""):
        return "failed"
    if row.get("seconds") is None:
        return (row.get("note") or "—").split(";")[0]
    mb = f", {row['peak_mb']:.0f} MB" if row.get("peak_mb") else ""
    return f"{row['seconds']:.2f} s{mb}"


def core_table(runs: list[dict]) -> str:
    rows = [r for run in runs for r in run["rows"] if r.get("bench") == "core"]
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    cases = list(dict.fromkeys(r["case"] for r in rows if not r["case"].startswith("ratio")))
    by = {(r["case"], r["size"]): r for r in rows}
    events = {r["size"]: r.get("events") for r in rows}
    head = "| analysis (warm, best of repeats; peak RSS) | " + " | ".join(
        f"{s} ({events[s] / 1e6:.1f}M events)" if events.get(s) else s for s in sizes) + " |"
    out = [head, "|---" * (len(sizes) + 1) + "|"]
    for case in cases:
        out.append(f"| {case} | " + " | ".join(_cell(by.get((case, s))) for s in sizes)
                   + " |")
    ratios = list(dict.fromkeys(r["case"] for r in rows if r["case"].startswith("ratio")))
    for case in ratios:
        out.append(f"| {case.removeprefix('ratio ')} | " + " | ".join(
            (by[(case, s)]["note"] if (case, s) in by else "—") for s in sizes) + " |")
    return "\n".join(out)


def spark_table(runs: list[dict]) -> str:
    rows = [r for run in runs for r in run["rows"] if r.get("bench") == "spark"]
    if not rows:
        return ""
    out = ["| size | analysis | Spark local[2] warm | DuckDB warm | Spark / DuckDB |",
           "|---|---|---|---|---|"]
    by = {(r["size"], r["case"]): r for r in rows}
    for r in rows:
        if r["case"].endswith(": spark"):
            name = r["case"].removesuffix(": spark")
            d = by.get((r["size"], f"{name}: duckdb"))
            q = by.get((r["size"], f"{name}: ratio spark / duckdb"))
            out.append(f"| {r['size']} | {name} | {_cell(r)} (first {r.get('first') or 0:.1f} s)"
                       f" | {_cell(d)} | {q['note'] if q else '—'} |")
    return "\n".join(out)


def machines(runs: list[dict]) -> str:
    lines = []
    for run in runs:
        h = run.get("host", {})
        lines.append(f"- {run['when']} (`{' '.join(run.get('argv', []))}`): "
                     f"{h.get('cpus')} cores, {h.get('cpu_model')}, {h.get('memory_gb')} GB; "
                     f"load average at start {tuple(round(x, 1) for x in run['loadavg_before'])}"
                     f", at the end {tuple(round(x, 1) for x in run['loadavg_after'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    runs = _load(sys.argv[1:])
    print(machines(runs), "", core_table(runs), "", spark_table(runs), sep="\n")
