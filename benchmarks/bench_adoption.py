"""Product adoption: ``feature_adoption`` and ``usage_trend`` from the rollups vs raw events.

Compares, in one run and on the same demo workspace (:func:`cs_analysis.demo.build_demo`,
``--sizes`` = numbers of accounts, default 3,000; ``--quick`` 600):

- ``rollup build``: the load-time rollups rebuilt on a copy of the workspace
  (:func:`cs_analysis.workspace._build_rollups`: account × month, account × user × day,
  account × feature × day), i.e. what the rollups add to a load;
- ``ibis+rollup``: :func:`cs_analysis.adoption.feature_adoption` (by segment, 90 days)
  and :func:`~cs_analysis.adoption.usage_trend` (12 weeks) reading the rollups, first
  call, warm call, and a filter change (``ws.where(segment="SMB")``, warm);
- ``ibis, raw events``: the same functions with the rollups hidden (the warehouse path);
- ``duckdb sql``: a hand-written DuckDB SQL query over the raw ``usage_events`` table
  computing the same numbers (adoption per segment × feature; weekly active users per
  account-week for the trend, whose Theil-Sen fit is not SQL).

Each case runs in its own Python process and reports wall time and peak RSS (``VmHWM``);
``base_mb`` is the process after its imports. Each case returns a checksum (adopting
accounts summed over cells; weekly active users summed over the window) so the run fails
if the paths disagree.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_retention import _peak_mb  # peak RSS (VmHWM), one definition

SIZES = (3000,)
QUICK_SIZES = (600,)
AS_OF = dt.date(2026, 10, 31)


def workspace(size: int, data_dir: Path) -> Path:
    """The demo workspace of ``size`` accounts (built once, cached)."""
    from cs_analysis.demo import build_demo

    path = data_dir / f"adoption-{size}" / "workspace.duckdb"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        build_demo(path, accounts=size, seed=42, as_of=AS_OF)
    return path


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

    from cs_analysis import adoption
    from cs_analysis.workspace import ROLLUPS, _build_rollups, open_workspace

    base = _peak_mb()
    out: dict = {}
    if name == "rollup build":
        import duckdb

        copy = Path(path).with_name("rebuild.duckdb")
        shutil.copy(path, copy)
        con = duckdb.connect(str(copy))
        t0 = time.perf_counter()
        _build_rollups(con, "UTC")
        out["seconds"] = time.perf_counter() - t0
        rows = {r: con.execute(f'SELECT count(*) FROM "{r}"').fetchone()[0] for r in ROLLUPS}
        events = con.execute("SELECT count(*) FROM usage_events").fetchone()[0]
        con.close()
        copy.unlink()
        out["check"] = 0
        out["note"] = f"{events:,} events -> " + ", ".join(
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
        if "raw" in name:
            ws._available = ws._available - set(ROLLUPS)
        if "feature" in name:
            def fn(w):
                return _fa_checksum(adoption.feature_adoption(w, by="segment", as_of=AS_OF))
        else:
            def fn(w):
                return int(adoption.usage_trend(w, as_of=AS_OF)["weeks"].sum())
        t0 = time.perf_counter()
        out["check"] = fn(ws)
        out["first"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn(ws)
        out["seconds"] = time.perf_counter() - t0
        smb = ws.where(segment="SMB")
        fn(smb)  # the scope's first query compiles once
        t0 = time.perf_counter()
        fn(ws.where(segment="SMB"))
        out["filter_seconds"] = time.perf_counter() - t0
    out["peak_mb"] = _peak_mb()
    out["base_mb"] = base
    return out


CASES = ("rollup build", "feature_adoption ibis+rollup", "feature_adoption ibis, raw events",
         "duckdb sql feature_adoption", "usage_trend ibis+rollup",
         "usage_trend ibis, raw events", "duckdb sql weekly users")


def run(args) -> list[dict]:
    """Every case at every size, each in a fresh process."""
    sizes = QUICK_SIZES if args.quick else SIZES
    if args.sizes:
        sizes = tuple(int(float(s)) for s in args.sizes.split(","))
    rows = []
    for size in sizes:
        path = workspace(size, args.data_dir)
        for name in CASES:
            proc = subprocess.run(
                [sys.executable, "-c",
                 "import json, sys; from benchmarks.bench_adoption import case; "
                 f"print(json.dumps(case({name!r}, {str(path)!r})))"],
                capture_output=True, text=True, check=False)
            if proc.returncode:
                raise RuntimeError(f"{name} failed:\n{proc.stderr[-2000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            note = r.get("note", "")
            if "first" in r:
                note = f"first {r['first']:.3f} s" + (
                    f", filter {r['filter_seconds']:.3f} s" if "filter_seconds" in r else "")
            rows.append({"bench": "adoption", "case": name, "size": f"{size} accounts",
                         "seconds": r["seconds"], "peak_mb": r["peak_mb"],
                         "base_mb": r["base_mb"], "note": note, "check": r["check"]})
            print(f"  {size} {name}: {r['seconds']:.3f} s, {r['peak_mb']:.0f} MB "
                  f"(check {r['check']}) {note}", flush=True)
        checks = {r["case"]: r["check"] for r in rows if r["size"] == f"{size} accounts"}
        fa = {checks[c] for c in CASES if c.startswith("feature_adoption")}
        if len(fa) != 1:
            raise RuntimeError(f"feature_adoption paths disagree: {checks}")
        tr = {checks[c] for c in CASES if c.startswith("usage_trend")}
        if len(tr) != 1:
            raise RuntimeError(f"usage_trend paths disagree: {checks}")
    return rows
