"""The same analyses on PostgreSQL and Spark as on DuckDB (the backend leg).

Each analysis that touches the engine runs on three backends with the same small
workspaces, in UTC and in Asia/Tokyo (whose calendar the engine-side time-zone shift
must get right everywhere): DuckDB (the reference), a throwaway PostgreSQL server and a
``local[2]`` SparkSession through Ibis. Results must be identical up to float tolerance.

Marked ``backends``: ``make test`` and CI run it; ``make test-fast`` skips it.
"""

from __future__ import annotations

import dataclasses
import shutil

import ibis
import pandas as pd
import pytest

from cs_analysis import (
    adoption,
    capacity,
    journey,
    onboarding,
    renewals,
    retention,
    support,
    surveys,
)
from cs_analysis.workspace import Workspace, open_workspace
from tests.backends.servers import require, spark_session

pytestmark = pytest.mark.backends

ZONES = ("UTC", "Asia/Tokyo")


@pytest.fixture(scope="session")
def source_path(tmp_path_factory):
    from cs_analysis.demo import build_demo

    return build_demo(tmp_path_factory.mktemp("backends") / "src.duckdb", accounts=90, seed=11)


@pytest.fixture(scope="session")
def parquet_dir(source_path, tmp_path_factory):
    """Every table of the source workspace as Parquet (how the copies are fed)."""
    out = tmp_path_factory.mktemp("parquet")
    con = ibis.duckdb.connect(str(source_path), read_only=True)
    for name in con.list_tables():
        con.table(name).to_parquet(out / f"{name}.parquet")
    con.disconnect()
    return out


@pytest.fixture(scope="session")
def postgres_con(parquet_dir, pg_server):
    con = ibis.connect(pg_server.url)
    for f in sorted(parquet_dir.glob("*.parquet")):
        con.create_table(f.stem, pd.read_parquet(f), overwrite=True)
    yield con
    con.disconnect()


@pytest.fixture(scope="session")
def spark_con(parquet_dir):
    require(shutil.which("java") is not None, "Java 17 (Debian: openjdk-17-jre-headless)")
    pytest.importorskip("pyspark")
    session = spark_session()
    con = ibis.pyspark.connect(session)
    for f in sorted(parquet_dir.glob("*.parquet")):
        session.read.parquet(str(f)).createOrReplaceTempView(f.stem)
    yield con
    session.stop()


@pytest.fixture(scope="session")
def workspaces(source_path, postgres_con, spark_con):
    """(backend, zone) → Workspace; DuckDB is the reference."""
    out = {}
    for tz in ZONES:
        out[("duckdb", tz)] = open_workspace(source_path, timezone=tz)
        out[("postgres", tz)] = Workspace(postgres_con, config={"timezone": tz})
        out[("pyspark", tz)] = Workspace(spark_con, config={"timezone": tz})
    return out


def _frames(result) -> dict[str, pd.DataFrame]:
    if isinstance(result, pd.DataFrame):
        return {"": result}
    if dataclasses.is_dataclass(result):
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)
                if isinstance(getattr(result, f.name), pd.DataFrame)}
    raise TypeError(type(result))


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.reset_index(drop=True).copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            out[col] = pd.to_datetime(s).astype("datetime64[us]")
        elif s.dtype == object or str(s.dtype) in ("str", "string"):
            out[col] = s.astype("object").where(s.notna(), None)
    sortable = [c for c in out.columns if out[c].map(lambda v: isinstance(v, (list, dict,
                                                                             tuple))).sum() == 0]
    return out.sort_values(sortable, kind="mergesort").reset_index(drop=True)


def _journey():
    return journey.default_maps()[1]


ANALYSES = {
    "cohort_retention contract month": lambda ws: retention.cohort_retention(ws, grain="month"),
    "cohort_retention activity quarter": lambda ws: retention.cohort_retention(
        ws, grain="quarter", basis="activity"),
    "cohort_retention activity unbounded": lambda ws: retention.cohort_retention(
        ws, grain="month", basis="activity", kind="unbounded", by="segment"),
    "revenue_retention": lambda ws: retention.revenue_retention(ws, grain="quarter"),
    "account_lifetimes": lambda ws: retention.account_lifetimes(ws, by="segment"),
    "survival": lambda ws: retention.survival(ws, by="segment"),
    "time_to_value": lambda ws: onboarding.time_to_value(ws),
    "ttv_summary": lambda ws: onboarding.ttv_summary(ws, by="segment"),
    "nps": lambda ws: surveys.nps(ws, by="segment"),
    "responses (deduplicated)": lambda ws: surveys.responses(ws, survey="nps"),
    "stage_flow": lambda ws: journey.stage_flow(ws, _journey(), by="segment"),
    "goal_progress": lambda ws: journey.goal_progress(ws, _journey(), grain="month"),
    "renewal_calendar": lambda ws: renewals.renewal_calendar(ws, horizon_days=120),
    "churn_to_date": lambda ws: renewals.churn_to_date(ws, grain="quarter", by="segment"),
    "ticket_metrics": lambda ws: support.ticket_metrics(ws, by="priority", grain="quarter"),
    "feature_adoption": lambda ws: adoption.feature_adoption(ws, by="segment"),
    "usage_trend": lambda ws: adoption.usage_trend(ws, weeks=12),
    "assign_coverage": lambda ws: capacity.assign_coverage(ws),
}


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("backend", ["postgres", "pyspark"])
@pytest.mark.parametrize("name", list(ANALYSES))
def test_same_result_as_duckdb(workspaces, backend, tz, name):
    fn = ANALYSES[name]
    ref = _frames(fn(workspaces[("duckdb", tz)]))
    got = _frames(fn(workspaces[(backend, tz)]))
    assert ref.keys() == got.keys()
    for key in ref:
        a, b = _normalise(ref[key]), _normalise(got[key])
        assert len(a) > 0 or key, f"{name}: the reference {key or 'frame'} is empty"
        pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False,
                                      rtol=1e-9, atol=1e-9, obj=f"{name} {key} on {backend}")


def test_the_workspace_calendar_is_shifted_on_every_backend(workspaces):
    """Tokyo and UTC disagree on the month of some events; each backend agrees with DuckDB."""
    from cs_analysis.time import period_expr

    counts = {}
    for (backend, tz), ws in workspaces.items():
        ev = ws.table("usage_events")
        m = period_expr(ev.event_at, "month", tz)
        counts[(backend, tz)] = (ev.mutate(m=m).group_by("m").agg(n=ibis._.count())
                                 .order_by("m").to_pandas().astype("int64")
                                 .reset_index(drop=True))
    for backend in ("postgres", "pyspark"):
        for tz in ZONES:
            pd.testing.assert_frame_equal(counts[(backend, tz)], counts[("duckdb", tz)])
    assert not counts[("duckdb", "UTC")].equals(counts[("duckdb", "Asia/Tokyo")])
