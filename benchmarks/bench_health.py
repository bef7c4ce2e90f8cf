"""Health (issue 16): scores, a 12-snapshot backtest, and the dashboards' slider changes.

Sizes are demo accounts (``--sizes``; default 1k and 10k, ``--quick``: 1k; the targets
are set at 100k), cached by :mod:`benchmarks.demo_cache`. Each case runs in a fresh
process like :mod:`benchmarks.bench_core` (``first``: the first call; ``seconds``: the
best of ``--repeat`` warm calls; ``peak_mb``: the process's VmHWM):

- ``health_scores``: :func:`cs_analysis.health.health_scores` with the default model
  (target <= 2 s and <= 800 MB at 100k accounts);
- ``backtest 12 snapshots``: :func:`cs_analysis.health.backtest` at 12 quarter ends
  with 200 bootstrap resamples (target <= 15 s at 100k);
- ``slider change``: the ``account_health`` dashboard built on the demo, its data
  warmed (:meth:`AccountHealthDashboard.warm_up`, what a preheated kernel has done),
  then five weight-slider moves, each re-scoring today's book and the pooled snapshots,
  re-running the backtest AUC and redrawing KPIs, charts and the risk table in the
  kernel (target <= 0.3 s on the demo). The browser's own drawing of the new Vega
  specs is not included; ``benchmarks/bench_dashboards.py`` measures filter changes in
  a real browser;
- ``capacity slider change``: the same for the ``capacity_planning`` dashboard (hours,
  utilisation, growth and scenario moves: arithmetic on frames computed once; target
  <= 0.3 s on the demo, issue 17).

The slider cases replace the timing bounds the unit tests had: speed targets are
measured here, the tests check what a slider move computes.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.bench_core import parse_size, run_module_child, timed
from benchmarks.bench_retention import _peak_mb

DEFAULT_SIZES = (1_000, 10_000)
QUICK_SIZES = (1_000,)
TARGETS = {"health_scores": (2.0, 800.0), "backtest 12 snapshots": (15.0, None),
           "slider change": (0.3, None), "capacity slider change": (0.3, None)}
SLIDER_MOVES = {
    "slider change": (("w_csm_rating", 0.0), ("w_usage_trend", 5.0),
                      ("qualitative_share", 0.6), ("w_nps", 3.0), ("w_csm_rating", 2.0)),
    "capacity slider change": (("hours_high", 8.0), ("utilisation", 0.6), ("growth", 50.0),
                               ("hours_high", 4.0), ("growth", 0.0)),
}


def _scores(ws):
    from cs_analysis import health

    return health.health_scores(ws)


def _backtest(ws):
    from cs_analysis import health

    return health.backtest(ws, snapshots=12, n_boot=200)


def case(name: str, folder: Path, repeat: int) -> dict:
    from cs_analysis.workspace import open_workspace

    ws = open_workspace(folder / "workspace.duckdb")
    ws.as_of  # noqa: B018 - reads the settings once, as a warm workspace has
    base = _peak_mb()
    if name in SLIDER_MOVES:
        return _slider(ws, base, name)
    fn = {"health_scores": _scores, "backtest 12 snapshots": _backtest}[name]
    result, first, best = timed(fn, ws, repeat)
    check = (f"{len(result.accounts)} accounts" if name == "health_scores"
             else f"auc {result.auc:.4f}")
    return {"seconds": best, "first": first, "peak_mb": _peak_mb(), "base_mb": base,
            "check": check}


def _slider(ws, base: float, case_name: str) -> dict:
    from cs_analysis.dashboard import AccountHealthDashboard, CapacityPlanningDashboard

    t0 = time.perf_counter()
    if case_name == "slider change":
        app = AccountHealthDashboard(ws)
        app.warm_up()
        kpi = "Backtest AUC"
    else:
        app = CapacityPlanningDashboard(ws)
        kpi = "CSMs needed"
    first = time.perf_counter() - t0
    if app.error:
        return {"error": app.error}
    took = []
    for name, value in SLIDER_MOVES[case_name]:
        t0 = time.perf_counter()
        app.filters[name].value = value
        took.append(time.perf_counter() - t0)
        if app.error:
            return {"error": app.error}
    return {"seconds": statistics.median(took), "first": first, "peak_mb": _peak_mb(),
            "base_mb": base, "max": max(took), "check": app.kpi(kpi).value}


def run_child(name: str, folder: Path, repeat: int, timeout: float) -> dict:
    return run_module_child("benchmarks.bench_health", [name, str(folder), str(repeat)],
                            timeout)


def _target(name: str, size: int, r: dict) -> str:
    s, m = TARGETS[name]
    ok = r["seconds"] <= s and (m is None or r["peak_mb"] <= m)
    where = "on the demo" if name in SLIDER_MOVES else "at 100k"
    if name not in SLIDER_MOVES and size < 100_000:
        return "" if ok else f"(NOT met already) <= {s} s {where}"
    mb = f", {m:.0f} MB" if m else ""
    return f"{'met' if ok else 'NOT met'} <= {s} s{mb} {where}"


def run(args) -> list[dict]:
    from benchmarks.demo_cache import demo_workspace

    sizes = ([parse_size(s) for s in args.sizes.split(",")] if args.sizes
             else list(QUICK_SIZES if args.quick else DEFAULT_SIZES))
    only = getattr(args, "cases", None)
    rows = []
    # the slider on the demo's size (3,000 accounts; --quick: the smallest size)
    plan = [(size, ["health_scores", "backtest 12 snapshots"]) for size in sizes]
    plan.append((min(sizes) if args.quick else 3000, list(SLIDER_MOVES)))
    for size, names in plan:
        folder = demo_workspace(size, args.data_dir)
        for name in names:
            if only and not any(c in name for c in only):
                continue
            r = run_child(name, folder, max(1, args.repeat),
                          getattr(args, "case_timeout", 1800))
            row = {"bench": "health", "size": f"{size:,} accounts", "case": name,
                   "seconds": r.get("seconds"), "first": r.get("first"),
                   "peak_mb": r.get("peak_mb"), "base_mb": r.get("base_mb"),
                   "check": r.get("check")}
            if "error" in r:
                row["note"] = f"FAILED: {r['error']}"
                print(f"   {name}: FAILED {r['error']}", flush=True)
            else:
                extra = f", max {r['max']:.3f} s" if "max" in r else ""
                row["note"] = f"first {r['first']:.3f} s{extra}"
                row["target"] = _target(name, size, r)
                print(f"   {size:,} {name}: {r['seconds']:.3f} s ({row['note']}), "
                      f"{r['peak_mb']:.0f} MB peak, {r.get('check')}", flush=True)
            rows.append(row)
    return rows


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        print("RESULT " + json.dumps(case(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])),
                                     default=str))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from benchmarks.__main__ import main

        sys.exit(main(["--only", "health", *sys.argv[1:]]))
