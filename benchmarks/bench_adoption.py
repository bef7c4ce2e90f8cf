"""Product adoption: every analysis from the load-time rollups, beside raw events and SQL.

Runs on the cached demo workspaces of :mod:`benchmarks.demo_cache` (``--sizes`` = demo
accounts, e.g. ``100k``; default 3k, ``--quick`` 600; ``<data-dir>/demo-<N>/``), cases
selected with ``--cases TEXT``:

- ``rollup build``: the load-time rollups rebuilt on a temporary copy of the workspace
  (:func:`cs_analysis.workspace._build_rollups`), i.e. what the rollups add to a load,
  with the rows of each rollup;
- ``<analysis> ibis+rollup``: :func:`~cs_analysis.adoption.feature_adoption` (by
  segment, 90 days), :func:`~cs_analysis.adoption.usage_trend` (12 weeks),
  :func:`~cs_analysis.adoption.stickiness` (weeks), :func:`~cs_analysis.adoption.seat_utilisation`,
  :func:`~cs_analysis.adoption.time_to_first_use` (``integrations``) and
  :func:`~cs_analysis.adoption.features_and_retention` reading the rollups: first call,
  warm call (``seconds``), and a filter change (``ws.where(segment="SMB")``, warm);
- ``ibis, raw events``: feature adoption and usage trend with the rollups hidden (the
  warehouse path);
- ``duckdb sql``: a hand-written DuckDB SQL query over the raw ``usage_events`` table
  computing the same numbers (adoption per segment × feature; weekly active users per
  account-week for the trend, whose Theil-Sen fit is not SQL). ``ratio`` rows divide the
  rollup path's warm seconds by the SQL query's.

Each case runs in its own Python process and reports wall time, peak RSS (``VmHWM``),
``base_mb`` (the process after its imports) and the load average when it ran. Each case
returns a checksum (adopting accounts summed over cells; weeks observed summed over
accounts) so the run fails if the paths disagree.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_retention import _peak_mb  # peak RSS (VmHWM), one definition

SIZES = (3000,)
QUICK_SIZES = (600,)
AS_OF = dt.date(2026, 10, 31)  # the demo's as-of date (checked against the workspace)
TARGET_SECONDS, TARGET_MB, TARGET_FILTER, TARGET_BUILD = 0.5, 600.0, 0.1, 10.0


def workspace(size: int, data_dir: Path) -> Path:
    """The cached demo workspace of ``size`` accounts (:mod:`benchmarks.demo_cache`)."""
    from benchmarks.demo_cache import demo_workspace

    return demo_workspace(size, data_dir) / "workspace.duckdb"


# -- the cases (each in its own process) -------------------------------------------------
def _fa_checksum(res) -> int:
    return int(res.features["adopting_accounts"].sum())


def _sql_feature_adoption(con) -> int:
    lo = AS_OF - dt.timedelta(days=89)
    q = f"""
        WITH ev AS (
            SELECT account_id, user_id, feature, CAST(event_at AS DATE) AS day
            FROM usage_events
            WHERE event_at >= TIMESTAMP '{lo}' AND event_at < TIMESTAMP '{AS_OF}' + INTERVAL 1 DAY
        ), active AS (
            SELECT e.account_id, coalesce(a.segment, '(missing)') AS segment
            FROM (SELECT DISTINCT account_id FROM ev) e
            JOIN accounts a USING (account_id) WHERE a.signup_date <= DATE '{AS_OF}'
        ), used AS (
            SELECT DISTINCT account_id, feature FROM ev WHERE feature IS NOT NULL
        )
        SELECT a.segment, u.feature, count(*) AS adopting,
               (SELECT count(*) FROM active b WHERE b.segment = a.segment) AS active
        FROM used u JOIN active a USING (account_id)
        GROUP BY 1, 2 ORDER BY 1, 2"""
    rows = con.execute(q).fetchall()
    return int(sum(r[2] for r in rows))


def _sql_weekly_users(con) -> int:
    from cs_analysis.time import last_observable, period_end, period_start

    last = last_observable(AS_OF, "week")
    lo, hi = period_start(last - 23, "week"), period_end(last, "week")
    q = f"""
        SELECT account_id, date_trunc('week', CAST(event_at AS DATE)) AS week,
               count(DISTINCT user_id) AS wau
        FROM usage_events
        WHERE event_at >= TIMESTAMP '{lo}' AND event_at < TIMESTAMP '{hi}' + INTERVAL 1 DAY
        GROUP BY 1, 2"""
    return int(con.execute(f"SELECT sum(wau) FROM ({q})").fetchone()[0])


def case(name: str, path: str) -> dict:
    """Run one case in this process; returns seconds (first, warm, filter), memory, check."""
    import ibis  # noqa: F401 - counted in base_mb

    from cs_analysis import adoption  # noqa: F401 - counted in base_mb
    from cs_analysis.workspace import ROLLUPS, _build_rollups, open_workspace

    base = _peak_mb()
    out: dict = {}
    if name == "rollup build":
        import resource
        import tempfile

        import duckdb

        tmp = Path(tempfile.mkdtemp(prefix="bench-adoption-"))
        try:
            copy = tmp / "rebuild.duckdb"
            shutil.copy(path, copy)
            con = duckdb.connect(str(copy))
            ru = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            _build_rollups(con, "UTC")
            out["seconds"] = time.perf_counter() - t0
            ru2 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = ru2.ru_utime + ru2.ru_stime - ru.ru_utime - ru.ru_stime
            rows = {r: con.execute(f'SELECT count(*) FROM "{r}"').fetchone()[0]
                    for r in ROLLUPS}
            events = con.execute("SELECT count(*) FROM usage_events").fetchone()[0]
            con.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        out["check"] = 0
        out["note"] = f"cpu {cpu:.0f} s; {events:,} events -> " + ", ".join(
            f"{k}: {v:,}" for k, v in rows.items())
    elif name.startswith("duckdb sql"):
        import duckdb

        con = duckdb.connect(path, read_only=True)
        fn = _sql_feature_adoption if "feature" in name else _sql_weekly_users
        t0 = time.perf_counter()
        out["check"] = fn(con)
        out["first"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn(con)
        out["seconds"] = time.perf_counter() - t0
    else:
        ws = open_workspace(path)
        if ws.as_of != AS_OF:
            raise RuntimeError(f"the workspace's as-of date is {ws.as_of}, not {AS_OF}")
        if "raw" in name:
            ws._available = ws._available - set(ROLLUPS)
        fn = ANALYSES[name.split(" ")[0]]
        t0 = time.perf_counter()
        out["check"] = fn(ws)
        out["first"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn(ws)
        out["seconds"] = time.perf_counter() - t0
        fn(ws.where(segment="Enterprise"))  # a scope's first query compiles once
        t0 = time.perf_counter()
        fn(ws.where(segment="SMB"))
        out["filter_seconds"] = time.perf_counter() - t0
    out["peak_mb"] = _peak_mb()
    out["base_mb"] = base
    out["load"] = os.getloadavg()[0]
    return out


def _analyses() -> dict:
    from cs_analysis import adoption as A

    return {
        "feature_adoption": lambda w: _fa_checksum(A.feature_adoption(w, by="segment",
                                                                      as_of=AS_OF)),
        "usage_trend": lambda w: int(A.usage_trend(w, as_of=AS_OF)["weeks"].sum()),
        "stickiness": lambda w: int(A.stickiness(w, "week", as_of=AS_OF)
                                    .accounts["active_users"].sum()),
        "seat_utilisation": lambda w: int(A.seat_utilisation(w, as_of=AS_OF)
                                          .accounts["active_users"].sum()),
        "time_to_first_use": lambda w: int(A.time_to_first_use(
            w, "integrations", as_of=AS_OF).accounts["used"].sum()),
        "features_and_retention": lambda w: int(A.features_and_retention(
            w, 60, as_of=AS_OF).features["users"].sum()),
    }


class _Lazy(dict):
    def __missing__(self, key):
        self.update(_analyses())
        return dict.__getitem__(self, key)


ANALYSES = _Lazy()


CASES = ("rollup build", "feature_adoption ibis+rollup", "feature_adoption ibis, raw events",
         "duckdb sql feature_adoption", "usage_trend ibis+rollup",
         "usage_trend ibis, raw events", "duckdb sql weekly users",
         "stickiness ibis+rollup", "seat_utilisation ibis+rollup",
         "time_to_first_use ibis+rollup", "features_and_retention ibis+rollup")
RATIOS = {"feature_adoption ibis+rollup": "duckdb sql feature_adoption",
          "usage_trend ibis+rollup": "duckdb sql weekly users"}


def run(args) -> list[dict]:
    """Every (selected) case at every size, each in a fresh process."""
    from benchmarks.bench_core import parse_size

    sizes = QUICK_SIZES if args.quick else SIZES
    if args.sizes:
        sizes = tuple(parse_size(s) for s in args.sizes.split(","))
    only = getattr(args, "cases", None)
    cases = [c for c in CASES if not only or any(o in c for o in only)]
    rows = []
    for size in sizes:
        path = workspace(size, args.data_dir)
        got: dict[str, dict] = {}
        for name in cases:
            proc = subprocess.run(
                [sys.executable, "-c",
                 "import json, sys; from benchmarks.bench_adoption import case; "
                 f"print(json.dumps(case({name!r}, {str(path)!r})))"],
                capture_output=True, text=True, check=False)
            if proc.returncode:
                raise RuntimeError(f"{name} failed:\n{proc.stderr[-2000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            got[name] = r
            note = r.get("note", "")
            if "first" in r:
                note = f"first {r['first']:.3f} s" + (
                    f", filter {r['filter_seconds']:.3f} s" if "filter_seconds" in r else "")
            note += f"; load {r['load']:.1f}"
            target = ""
            if size >= 100_000 and "ibis+rollup" in name and name.split(" ")[0] in (
                    "feature_adoption", "usage_trend"):
                ok = (r["seconds"] <= TARGET_SECONDS and r["peak_mb"] <= TARGET_MB
                      and r["filter_seconds"] <= TARGET_FILTER)
                target = (f"{'met' if ok else 'NOT met'} <= {TARGET_SECONDS} s, "
                          f"{TARGET_MB:.0f} MB, filter <= {TARGET_FILTER} s")
            elif size >= 100_000 and name == "rollup build":
                target = (f"{'met' if r['seconds'] <= TARGET_BUILD else 'NOT met'} "
                          f"<= {TARGET_BUILD} s")
            rows.append({"bench": "adoption", "case": name, "size": f"{size} accounts",
                         "seconds": r["seconds"], "peak_mb": r["peak_mb"],
                         "base_mb": r["base_mb"], "note": note, "check": r["check"],
                         "target": target})
            print(f"  {size} {name}: {r['seconds']:.3f} s, {r['peak_mb']:.0f} MB "
                  f"(check {r['check']}) {note} {target}", flush=True)
        for mine, base in RATIOS.items():
            if mine in got and base in got:
                ratio = got[mine]["seconds"] / got[base]["seconds"]
                rows.append({"bench": "adoption", "case": f"ratio {mine} / {base}",
                             "size": f"{size} accounts", "ratio": ratio,
                             "note": f"time x{ratio:.3f}, memory "
                                     f"x{got[mine]['peak_mb'] / got[base]['peak_mb']:.2f}"})
                print(f"  {size} {rows[-1]['case']}: {rows[-1]['note']}", flush=True)
        for prefix in ("feature_adoption", "usage_trend"):
            checks = {c: got[c]["check"] for c in got
                      if c.startswith(prefix) and "sql" not in c}
            if len(set(checks.values())) > 1:
                raise RuntimeError(f"{prefix} paths disagree: {checks}")
    return rows
