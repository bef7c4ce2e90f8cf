"""Run the benchmarks: ``python -m benchmarks [--quick] [--only NAME] ...`` (``make bench``).

Discovers ``benchmarks/bench_*.py``; each module has ``run(args) -> list[dict]`` (one dict
per measurement, with at least ``bench``, ``case`` and ``size``; optionally ``seconds``,
``peak_mb``, ``base_mb``, ``note``). Prints one results table and writes every row, with
the machine's load average, to ``benchmarks/results/<timestamp>.json`` (and
``latest.json``). Generated data is cached under ``benchmarks/data/`` (gitignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> dict[str, str]:
    """Benchmark name (``retention`` for ``bench_retention.py``) -> module name."""
    return {p.stem.removeprefix("bench_"): f"benchmarks.{p.stem}"
            for p in sorted(HERE.glob("bench_*.py"))}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small sizes only (a smoke run of every benchmark)")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only this benchmark (repeatable), e.g. --only retention")
    ap.add_argument("--sizes", metavar="N[,N...]",
                    help="sizes to run (default per benchmark): demo accounts for core and "
                         "adoption (e.g. 1k,10k,100k), events for retention (e.g. 2e6,20e6)")
    ap.add_argument("--skip-pandas-above", type=float, default=None, metavar="N",
                    help="skip the pandas baseline above N events (it needs ~100 B/event)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed repetitions of each warm measurement (best is reported)")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data",
                    help="cache of generated data (default benchmarks/data)")
    ap.add_argument("--results-dir", type=Path, default=HERE / "results")
    ap.add_argument("--case-timeout", type=float, default=1800, metavar="SECONDS",
                    help="core: give up on one case after this long (reported as failed)")
    ap.add_argument("--cases", action="append", metavar="TEXT",
                    help="core: run only the cases whose name contains TEXT (repeatable); "
                         "dashboards: only the dashboards whose name contains TEXT")
    ap.add_argument("--lang", choices=("en", "ja", "both"), default=None,
                    help="dashboards: the labels' language (?lang= in the URL); 'both' "
                         "measures every dashboard in English and Japanese in the same run, "
                         "interleaved, and reports the ja/en ratios")
    return ap.parse_args(argv)


def format_table(rows: list[dict]) -> str:
    cols = ["bench", "size", "case", "seconds", "peak_mb", "base_mb", "note", "target"]
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
              for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in cells:
        out.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    return "\n".join(out)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}" if v < 100 else f"{v:,.0f}"
    if isinstance(v, int) and v >= 10_000:
        return f"{v:,}"
    return str(v)


def machine() -> dict:
    """Cores, memory, CPU model and load average: what the figures were measured on."""
    info = {"platform": platform.platform(), "cpus": os.cpu_count(),
            "python": sys.version.split()[0]}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(("MemTotal:", "MemAvailable:")):
                key = "memory_gb" if line.startswith("MemTotal") else "memory_available_gb"
                info[key] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        import duckdb

        info["duckdb"] = duckdb.__version__
    except ImportError:
        pass
    return info


def main(argv=None) -> int:
    args = parse_args(argv)
    found = discover()
    names = args.only or list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {sorted(found)}", file=sys.stderr)
        return 2
    rows: list[dict] = []
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    host = machine()
    print(f"machine: {host}; load average at start {load_before}", flush=True)
    for name in names:
        module = importlib.import_module(found[name])
        print(f"== {name}", flush=True)
        rows.extend(module.run(args))
    print()
    print(format_table(rows))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    # other work on the machine skews timings: keep the load average beside the numbers
    print(f"\nload average (1, 5, 15 min) before: {load_before}, after: {load_after}; "
          f"{os.cpu_count()} CPUs")
    payload = {"when": stamp, "python": sys.version.split()[0],
               "machine": platform.platform(), "cpus": os.cpu_count(), "host": host,
               "loadavg_before": load_before, "loadavg_after": load_after,
               "argv": sys.argv[1:], "rows": rows}
    names_part = "-".join(names) if args.only else "all"
    for target in (args.results_dir / f"{stamp}-{names_part}.json",
                   args.results_dir / "latest.json"):
        target.write_text(json.dumps(payload, indent=2, default=str))
    print(f"\nresults written to {args.results_dir / f'{stamp}-{names_part}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
