"""A few analyses on Spark local (Ibis PySpark backend) beside DuckDB, same data, same run.

Sizes are demo accounts (``--sizes``; default 10k, about 5.3M events; 20k gives about
10.7M). Every table of the cached demo workspace (:mod:`benchmarks.demo_cache`) is
written as Parquet by DuckDB once (``<data-dir>/demo-<N>/spark-parquet/``), read by a
``local[2]`` SparkSession (``tests/backends/servers.py: spark_session``, driver memory
1 GB) and registered as temporary views, rollup tables and settings included, as the
backend test leg does. Each case runs in a fresh process: ``first`` is the first call
(Spark plans and JIT-compiles), ``seconds`` the best of ``--repeat`` warm calls.
``peak_mb`` is the Python process's peak RSS; the JVM's RSS at the end is in the note.
The DuckDB figures are measured in the same run (:func:`benchmarks.bench_core.run_child`);
``ratio`` = Spark seconds / DuckDB seconds. There is no target for Spark (issue 18).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (10_000,)
CASES = ("cohort_retention contract", "cohort_retention activity",
         "cohort_retention activity, raw events", "survival", "ttv_summary", "nps")


def parquet_copy(folder: Path) -> Path:
    """Every table of ``folder/workspace.duckdb`` as Parquet (written once)."""
    import duckdb

    out = folder / "spark-parquet"
    if (out / ".done").exists():
        return out
    out.mkdir(exist_ok=True)
    con = duckdb.connect(str(folder / "workspace.duckdb"), read_only=True)
    for (name,) in con.execute("SHOW TABLES").fetchall():
        con.execute(f"COPY \"{name}\" TO '{out / name}.parquet' (FORMAT parquet)")
    con.close()
    (out / ".done").write_text("")
    return out


def _jvm_mb() -> float:
    import psutil

    return sum(c.memory_info().rss for c in psutil.Process().children(recursive=True)
               if "java" in c.name()) / 2**20


def _child(folder: str, repeat: int) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import ibis

    from benchmarks.bench_core import _peak_mb, _special_check, analyses
    from cs_analysis.workspace import Workspace
    from tests.backends.servers import spark_session

    t0 = time.perf_counter()
    session = spark_session()
    pq = Path(folder) / "spark-parquet"
    for f in sorted(pq.glob("*.parquet")):
        session.read.parquet(str(f)).createOrReplaceTempView(f.stem)
    con = ibis.pyspark.connect(session)
    start = time.perf_counter() - t0
    fns = analyses()
    out = {"session_start": start, "cases": {}}
    for case in CASES:
        raw = case.endswith("raw events")
        name = case.removesuffix(", raw events")
        ws = Workspace(con, config={"timezone": "Etc/UTC"} if raw else {})
        try:
            t0 = time.perf_counter()
            result = fns[name](ws)
            first = time.perf_counter() - t0
            times = []
            for _ in range(max(repeat, 1)):
                t0 = time.perf_counter()
                result = fns[name](ws)
                times.append(time.perf_counter() - t0)
            out["cases"][case] = {"seconds": min(times), "first": first,
                                  "check": _special_check(name, result)}
        except Exception as exc:  # noqa: BLE001 - reported, the other cases still run
            out["cases"][case] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        print(f"  spark {case}: {out['cases'][case]}", file=sys.stderr, flush=True)
    out["peak_mb"] = _peak_mb()
    out["jvm_mb"] = _jvm_mb()
    session.stop()
    print("RESULT " + json.dumps(out, default=str))


def run(args) -> list[dict]:
    from benchmarks.bench_core import parse_size, run_child
    from benchmarks.demo_cache import demo_workspace, meta

    sizes = [parse_size(s) for s in args.sizes.split(",")] if args.sizes else \
        list(DEFAULT_SIZES)
    repeat = max(1, args.repeat)
    rows: list[dict] = []
    for size in sizes:
        folder = demo_workspace(size, args.data_dir)
        events = meta(folder)["events"]
        t0 = time.perf_counter()
        parquet_copy(folder)
        label = f"{size:,} accounts"
        print(f"-- {label} ({events:,} events); Parquet copy "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                            os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_spark", "--child",
                               str(folder), str(repeat)], capture_output=True, text=True,
                              env=env, timeout=3600)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not lines:
            rows.append({"bench": "spark", "size": label, "case": "spark session",
                         "note": "FAILED: " + proc.stderr.strip()[-300:]})
            print(rows[-1]["note"], flush=True)
            continue
        spark = json.loads(lines[-1].removeprefix("RESULT "))
        rows.append({"bench": "spark", "size": label, "events": events,
                     "case": "spark session start + views", "seconds": spark["session_start"],
                     "peak_mb": spark["peak_mb"],
                     "note": f"Python peak; JVM RSS at the end {spark['jvm_mb']:.0f} MB"})
        for case in CASES:
            s = spark["cases"][case]
            name = case.removesuffix(", raw events")
            d = run_child("analysis", name, folder, repeat, "raw" if case != name else "")
            if "error" in s:
                rows.append({"bench": "spark", "size": label, "events": events,
                             "case": f"{case}: spark", "note": f"FAILED: {s['error']}"})
            else:
                rows.append({"bench": "spark", "size": label, "events": events,
                             "case": f"{case}: spark", "seconds": s["seconds"],
                             "first": s["first"], "note": f"first {s['first']:.2f} s"})
            if "error" not in d:
                rows.append({"bench": "spark", "size": label, "events": events,
                             "case": f"{case}: duckdb", "seconds": d["seconds"],
                             "first": d["first"], "peak_mb": d["peak_mb"],
                             "note": f"first {d['first']:.2f} s"})
            if "error" not in s and "error" not in d:
                agree = s["check"] == d["check"]
                ratio = s["seconds"] / d["seconds"]
                rows.append({"bench": "spark", "size": label, "events": events,
                             "case": f"{case}: ratio spark / duckdb", "ratio": ratio,
                             "note": f"x{ratio:.1f} warm, x{s['first'] / d['first']:.1f} "
                                     f"first; results {'agree' if agree else 'DIFFER'}"})
            for r in rows[-3:]:
                print(f"   {r['case']}: {r.get('seconds')} {r['note']}", flush=True)
    return rows


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]))
    else:
        sys.path.insert(0, str(ROOT))
        from benchmarks.__main__ import main

        sys.exit(main(["--only", "spark", *sys.argv[1:]]))
