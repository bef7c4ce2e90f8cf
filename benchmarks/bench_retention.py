"""Cohort retention on activity at 2M, 20M and 60M usage events.

Compares, in one run and on the same data:

- ``ibis+rollup``: ``cs_analysis.retention.cohort_retention(ws, basis="activity")`` on a
  DuckDB workspace (reads the account x month rollup built at load), first call, warm
  call, and a filter change (``ws.where(segment="SMB")``);
- ``ibis, raw events``: the same function forced to aggregate ``usage_events`` in the
  engine (the path taken on a backend without the rollup);
- ``duckdb sql/parquet``: a straightforward hand-written DuckDB SQL query over the Parquet;
- ``pandas``: a typical pandas implementation (read events, merge, ``to_period``,
  ``drop_duplicates``, pivot).

Each case runs in its own Python process, which reports its wall time and its peak RSS
(``VmHWM`` from ``/proc/self/status``, falling back to ``getrusage``: interpreter,
libraries and DuckDB's native memory included; ``base_mb`` is the same process after
importing its libraries, before any data). Every case also returns a checksum of its
triangle (retained summed over observable cells, and the number of cohorts), so the run
fails loudly if the implementations disagree.

Data: 20,000 accounts signing up over 4 years, each with one subscription and a lifetime
drawn from an exponential distribution; events spread uniformly over each account's
active days. Generated with DuckDB SQL (``range()`` + ``hash()``), cached under
``benchmarks/data/retention-<events>/``.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ACCOUNTS = 20_000
START = dt.date(2022, 1, 1)
AS_OF = dt.date(2025, 12, 31)
SIZES = (2_000_000, 20_000_000, 60_000_000)
QUICK_SIZES = (200_000, 2_000_000)
EVENT_NAMES = ("login", "dashboard_viewed", "search", "report_created", "export")


# -- data ----------------------------------------------------------------------------------
def generate(size: int, data_dir: Path) -> dict[str, Path]:
    """Write (once) accounts, subscriptions and ``size`` events as Parquet, and a workspace."""
    import duckdb

    folder = data_dir / f"retention-{size}"
    paths = {"accounts": folder / "accounts.parquet",
             "subscriptions": folder / "subscriptions.parquet",
             "usage_events": folder / "usage_events.parquet",
             "workspace": folder / "workspace.duckdb"}
    folder.mkdir(parents=True, exist_ok=True)
    timings = {}
    if not paths["usage_events"].exists():
        t0 = time.perf_counter()
        con = duckdb.connect()
        span = (AS_OF - START).days - 30
        con.execute(f"""
            CREATE TABLE acc AS
            SELECT i AS idx,
                   printf('A%06d', i) AS account_id,
                   DATE '{START}' + CAST(hash(i, 1) % {span} AS INTEGER) AS signup_date,
                   ['SMB', 'Mid-Market', 'Enterprise'][1 + CAST(hash(i, 2) % 3 AS INTEGER)]
                       AS segment,
                   -- exponential lifetime, mean 700 days, at least 1 day
                   1 + CAST(-ln((hash(i, 3) % 1000000 + 1) / 1000001.0) * 700 AS INTEGER)
                       AS lifetime_days
            FROM range({ACCOUNTS}) t(i)""")
        con.execute(f"""
            CREATE TABLE acc2 AS
            SELECT *, signup_date + lifetime_days AS end_date,
                   greatest(1, least(lifetime_days, DATE '{AS_OF}' - signup_date + 1))
                       AS active_days
            FROM acc""")
        con.execute(f"""COPY (SELECT account_id, signup_date, segment FROM acc2 ORDER BY idx)
                        TO '{paths["accounts"]}' (FORMAT parquet)""")
        con.execute(f"""COPY (SELECT account_id, signup_date AS start_date,
                                     CASE WHEN end_date <= DATE '{AS_OF}' THEN end_date END
                                         AS end_date,
                                     CAST(50 + hash(idx, 4) % 500 AS DOUBLE) AS mrr
                              FROM acc2 ORDER BY idx)
                        TO '{paths["subscriptions"]}' (FORMAT parquet)""")
        names = "[" + ", ".join(f"'{n}'" for n in EVENT_NAMES) + "]"
        tmp = paths["usage_events"].with_suffix(".tmp")
        con.execute(f"""
            COPY (
              SELECT a.account_id,
                     CAST(a.signup_date AS TIMESTAMP)
                       + to_seconds(CAST(hash(r.i, 5) % (a.active_days * 86400) AS BIGINT))
                       AS event_at,
                     {names}[1 + CAST(hash(r.i, 6) % {len(EVENT_NAMES)} AS INTEGER)]
                       AS event_name
              FROM range({size}) r(i)
              JOIN acc2 a ON a.idx = hash(r.i) % {ACCOUNTS}
            ) TO '{tmp}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)""")
        con.close()
        tmp.rename(paths["usage_events"])
        timings["generate_s"] = time.perf_counter() - t0
    if not paths["workspace"].exists():
        from cs_analysis.workspace import write_workspace

        t0 = time.perf_counter()
        write_workspace(paths["workspace"], {
            "accounts": str(paths["accounts"]),
            "subscriptions": str(paths["subscriptions"]),
            "usage_events": str(paths["usage_events"])}, config={"as_of": AS_OF})
        timings["load_s"] = time.perf_counter() - t0
    if timings:
        meta = folder / "meta.json"
        old = json.loads(meta.read_text()) if meta.exists() else {}
        meta.write_text(json.dumps({**old, **timings}))
    return paths


# -- the cases (each runs in a child process) ------------------------------------------------
def _peak_mb() -> float:
    """Peak resident memory of this process, in MB.

    ``VmHWM`` of ``/proc/self/status`` where available: ``ru_maxrss`` is unreliable in a
    child process on Linux, since it starts from the parent's peak at fork time.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _checksum_ibis(frame) -> dict:
    obs = frame[frame["observable"]]
    return {"retained": int(obs["retained"].sum()), "cohorts": int(frame["cohort"].nunique())}


def case_ibis(paths: dict, repeat: int, rollup: bool) -> list[dict]:
    from cs_analysis.retention import cohort_retention
    from cs_analysis.workspace import open_workspace

    ws = open_workspace(paths["workspace"])
    if not rollup:
        ws.usage_rollup = lambda: None   # the path of a backend without the rollup
        ws_where = ws.where(segment="SMB")
        ws_where.usage_rollup = lambda: None
    else:
        ws_where = ws.where(segment="SMB")
    label = "ibis+rollup" if rollup else "ibis, raw events"
    t0 = time.perf_counter()
    frame = cohort_retention(ws, basis="activity")
    first = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        frame = cohort_retention(ws, basis="activity")
        warm.append(time.perf_counter() - t0)
    check = _checksum_ibis(frame)
    t0 = time.perf_counter()
    cohort_retention(ws_where, basis="activity")
    filter_first = time.perf_counter() - t0
    filter_warm = []
    for segment in ("Mid-Market", "Enterprise", "SMB")[:max(repeat, 1)]:
        t0 = time.perf_counter()
        cohort_retention(ws.where(segment=segment) if rollup else ws_where, basis="activity")
        filter_warm.append(time.perf_counter() - t0)
    peak = _peak_mb()
    return [
        {"case": f"{label} (first call)", "seconds": first, "check": check},
        {"case": f"{label} (warm)", "seconds": min(warm), "check": check},
        {"case": f"{label} filter change", "seconds": min(filter_warm),
         "note": f"first filtered call {filter_first:.3f}s"},
        {"case": f"{label} peak", "peak_mb": peak},
    ]


def case_rollup_build(paths: dict, repeat: int) -> list[dict]:
    import shutil
    import tempfile

    import duckdb

    from cs_analysis.workspace import _build_rollups

    with tempfile.TemporaryDirectory(dir=paths["workspace"].parent) as tmp:
        copy = Path(tmp) / "copy.duckdb"
        shutil.copy(paths["workspace"], copy)
        con = duckdb.connect(str(copy))
        t0 = time.perf_counter()
        _build_rollups(con)
        seconds = time.perf_counter() - t0
        rows = con.execute("SELECT count(*) FROM usage_monthly_rollup").fetchone()[0]
        con.close()
    return [{"case": "rollup build (at load)", "seconds": seconds, "peak_mb": _peak_mb(),
             "note": f"{rows:,} account-month rows"}]


def _p(d: dt.date) -> int:
    return d.year * 12 + d.month - 1


def case_duckdb_sql(paths: dict, repeat: int) -> list[dict]:
    import duckdb

    p_obs = _p(AS_OF)
    sql = f"""
        WITH acc AS (
            SELECT account_id, year(signup_date) * 12 + month(signup_date) - 1 AS c
            FROM read_parquet('{paths["accounts"]}')
            WHERE signup_date <= DATE '{AS_OF}'),
        act AS (
            SELECT DISTINCT account_id, year(event_at) * 12 + month(event_at) - 1 AS p
            FROM read_parquet('{paths["usage_events"]}')
            WHERE event_at < TIMESTAMP '{AS_OF + dt.timedelta(days=1)}'),
        sizes AS (SELECT c, count(*) AS accounts FROM acc GROUP BY c)
        SELECT s.c, x.k, s.accounts, coalesce(x.retained, 0) AS retained
        FROM sizes s LEFT JOIN (
            SELECT acc.c, act.p - acc.c AS k, count(*) AS retained
            FROM act JOIN acc USING (account_id)
            WHERE act.p >= acc.c AND act.p <= {p_obs}
            GROUP BY ALL) x USING (c)"""
    times = []
    for _ in range(max(repeat, 1)):
        con = duckdb.connect()
        t0 = time.perf_counter()
        df = con.execute(sql).df()
        df["rate"] = df["retained"] / df["accounts"]
        times.append(time.perf_counter() - t0)
        con.close()
    check = {"retained": int(df["retained"].sum()), "cohorts": int(df["c"].nunique())}
    return [{"case": "duckdb sql/parquet", "seconds": min(times), "peak_mb": _peak_mb(),
             "check": check, "note": f"first {times[0]:.3f}s"}]


def case_pandas(paths: dict, repeat: int) -> list[dict]:
    import pandas as pd

    t0 = time.perf_counter()
    events = pd.read_parquet(paths["usage_events"], columns=["account_id", "event_at"])
    accounts = pd.read_parquet(paths["accounts"], columns=["account_id", "signup_date"])
    df = events.merge(accounts, on="account_id")
    df = df[df["event_at"] < pd.Timestamp(AS_OF + dt.timedelta(days=1))]
    df["period"] = df["event_at"].dt.to_period("M")
    df["cohort"] = pd.to_datetime(df["signup_date"]).dt.to_period("M")
    df = df[["account_id", "cohort", "period"]].drop_duplicates()
    df["k"] = (df["period"] - df["cohort"]).map(lambda off: off.n)
    df = df[df["k"] >= 0]
    counts = df.pivot_table(index="cohort", columns="k", values="account_id", aggfunc="count")
    sizes = pd.to_datetime(accounts["signup_date"]).dt.to_period("M").value_counts()
    rates = counts.div(sizes, axis=0)
    seconds = time.perf_counter() - t0
    check = {"retained": int(counts.fillna(0).to_numpy().sum()), "cohorts": int(len(sizes))}
    assert rates.shape[0] == len(counts)
    return [{"case": "pandas", "seconds": seconds, "peak_mb": _peak_mb(), "check": check}]


CASES = {"ibis_rollup": lambda p, r: case_ibis(p, r, True),
         "ibis_events": lambda p, r: case_ibis(p, r, False),
         "rollup_build": case_rollup_build,
         "duckdb_sql": case_duckdb_sql,
         "pandas": case_pandas}


def _child(case: str, paths_json: str, repeat: int) -> None:
    paths = {k: Path(v) for k, v in json.loads(paths_json).items()}
    # the libraries every case needs, so base_mb is "Python + libraries, no data yet"
    import duckdb  # noqa: F401
    import ibis  # noqa: F401
    import pandas  # noqa: F401

    base = _peak_mb()
    rows = CASES[case](paths, repeat)
    for row in rows:
        if "peak_mb" in row:
            row["base_mb"] = round(base, 1)
    print("RESULT " + json.dumps(rows))


def _run_child(case: str, paths: dict, repeat: int, timeout: float = 3600) -> list[dict]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case,
           json.dumps({k: str(v) for k, v in paths.items()}), str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark case {case} failed:\n{proc.stderr[-3000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line.removeprefix("RESULT "))


# -- entry point -----------------------------------------------------------------------------
def run(args) -> list[dict]:
    """Run every case at every size; return one row per measurement."""
    if args.sizes:
        sizes = [int(float(s)) for s in args.sizes.split(",")]
    else:
        sizes = list(QUICK_SIZES if args.quick else SIZES)
    rows = []
    for size in sizes:
        print(f"-- {size:,} events: generating / loading (cached)", flush=True)
        paths = generate(size, args.data_dir)
        meta = paths["workspace"].parent / "meta.json"
        cases = ["rollup_build", "ibis_rollup", "ibis_events", "duckdb_sql", "pandas"]
        if args.skip_pandas_above is not None and size > args.skip_pandas_above:
            cases.remove("pandas")
        checks = {}
        for case in cases:
            print(f"   {case} ...", flush=True)
            for row in _run_child(case, paths, args.repeat):
                row.update(bench="retention", size=size)
                if "check" in row:
                    checks[row["case"]] = row.pop("check")
                rows.append(row)
        if meta.exists():
            for key, value in json.loads(meta.read_text()).items():
                rows.append({"bench": "retention", "size": size, "case": key.removesuffix("_s"),
                             "seconds": value, "note": "one-off, when the cache was built"})
        distinct = {json.dumps(c, sort_keys=True) for c in checks.values()}
        if len(distinct) != 1:
            raise AssertionError(f"implementations disagree at {size:,} events: {checks}")
        rows.append({"bench": "retention", "size": size, "case": "all implementations agree",
                     "note": next(iter(distinct))})
    return rows


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        from benchmarks.__main__ import main

        sys.exit(main(["--only", "retention", *sys.argv[1:]]))
