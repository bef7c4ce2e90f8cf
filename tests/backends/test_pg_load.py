"""``cs-analysis load --out postgres://…?schema=…``: one transaction, same workspace as DuckDB.

Against the session's throwaway PostgreSQL server (``conftest.pg_server``):

- a load writes every table, the usage rollups (cut in the workspace zone) and the
  settings, and ``open_workspace(url)`` reads back the workspace a DuckDB load of the same
  exports gives: tables, rollups and analyses equal;
- a load that fails midway (PostgreSQL refusing a value late, the connection killed, a
  failure after the old tables were dropped, a Python error, invalid exports) leaves the
  schema's tables byte-equal (per-row hashes), and the next load works;
- errors are one line and never show the password.

Marked ``backends``: ``make test`` and CI run it; ``make test-fast`` skips it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import yaml
from serving import free_port

from cs_analysis import adoption, retention, surveys
from cs_analysis.cli import main
from cs_analysis.io import LoadError, load
from cs_analysis.io import postgres as pgio
from cs_analysis.io.report import OutputError
from cs_analysis.workspace import META_TABLE, ROLLUPS, open_workspace
from tests.backends.test_backends import _frames, _normalise

pytestmark = pytest.mark.backends
psycopg = pytest.importorskip("psycopg")

SECRET = "s3cret-pw"


# -- data ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The 90-account demo exported to CSV, with a Tokyo mapping (mapping A)."""
    from cs_analysis.demo import build_demo

    root = tmp_path_factory.mktemp("pgload")
    src = build_demo(root / "src.duckdb", accounts=90, seed=11, progress=False)
    ws = open_workspace(src)
    folder = root / "csv"
    folder.mkdir()
    mapping = {"workspace": {"timezone": "Asia/Tokyo", "currency": "JPY"}, "tables": {}}
    for t in ws.tables:
        ws.table(t).to_pandas().to_csv(folder / f"{t}.csv", index=False)
        mapping["tables"][t] = {"file": f"{t}.csv"}
    ws.con.disconnect()
    (folder / "a.yml").write_text(yaml.safe_dump(mapping), encoding="utf-8")
    # the same files read in UTC: other timestamps, rollups and settings than mapping A
    mapping["workspace"] = {"timezone": "UTC"}
    (folder / "a_utc.yml").write_text(yaml.safe_dump(mapping), encoding="utf-8")
    return folder


LA = "America/Los_Angeles"
#: UTC instants minutes either side of Los Angeles midnights and month ends (PST/PDT).
LA_EVENTS = [
    ("A1", "u1", "2024-03-01T07:59:00Z"),  # Feb 29 23:59 PST
    ("A1", "u1", "2024-03-01T08:01:00Z"),  # Mar 1 00:01 PST
    ("A1", "u2", "2024-04-01T06:58:00Z"),  # Mar 31 23:58 PDT
    ("A1", "u2", "2024-04-01T07:02:00Z"),  # Apr 1 00:02 PDT
    ("A2", "u3", "2024-01-01T07:30:00Z"),  # Dec 31 23:30 PST (2023!)
    ("A2", "", "2024-01-01T08:30:00Z"),    # Jan 1 00:30 PST, no user
    ("A2", "u3", "2024-01-01T08:45:00Z"),
]


@pytest.fixture(scope="module")
def la_mapping(exports):
    """Mapping B: two accounts in Los Angeles, events around local midnights."""
    folder = exports.parent / "la"
    folder.mkdir()
    pd.DataFrame({"account_id": ["A1", "A2"], "signup_date": ["2023-12-01", "2023-12-15"]}
                 ).to_csv(folder / "acc.csv", index=False)
    pd.DataFrame(LA_EVENTS, columns=["account_id", "user_id", "event_at"]).to_csv(
        folder / "ev.csv", index=False)
    m = {"workspace": {"timezone": LA},
         "tables": {"accounts": {"file": "acc.csv"}, "usage_events": {"file": "ev.csv"}}}
    (folder / "b.yml").write_text(yaml.safe_dump(m), encoding="utf-8")
    return folder / "b.yml"


@pytest.fixture(scope="module")
def duck_a(exports, tmp_path_factory):
    """Mapping A loaded into DuckDB: the reference."""
    path = tmp_path_factory.mktemp("duck") / "a.duckdb"
    load(exports / "a.yml", path)
    return path


def _url(pg, schema, *, password=SECRET, user="cs"):
    auth = f"{user}:{password}" if password else user
    return f"postgres://{auth}@127.0.0.1:{pg.port}/cs?schema={schema}"


@pytest.fixture(scope="module")
def pg_a(pg_server, exports):
    """Mapping A loaded into schema ``acme`` through the CLI (URL with a password)."""
    url = _url(pg_server, "acme")
    assert main(["load", "--config", str(exports / "a.yml"), "--out", url, "--quiet"]) == 0
    return url


# -- helpers ---------------------------------------------------------------------------
def _sql(pg, query, params=(), *, user="cs"):
    with psycopg.connect(host="127.0.0.1", port=pg.port, dbname="cs", user=user,
                         autocommit=True) as con:
        cur = con.execute(query, params)
        return cur.fetchall() if cur.description else None


def snapshot(pg, schema) -> dict:
    """Every table of ``schema``: column names and types, row count, hash of its rows."""
    out = {}
    tables = [r[0] for r in _sql(pg, "SELECT c.relname FROM pg_class c JOIN pg_namespace n "
                                     "ON n.oid = c.relnamespace WHERE n.nspname = %s "
                                     "AND c.relkind = 'r' ORDER BY 1", (schema,))]
    for t in tables:
        cols = _sql(pg, "SELECT a.attname, format_type(a.atttypid, a.atttypmod) "
                        "FROM pg_attribute a WHERE a.attrelid = %s::regclass "
                        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                    (f'"{schema}"."{t}"',))
        rows = _sql(pg, f'SELECT count(*), md5(coalesce(string_agg(h, \'\' ORDER BY h), \'\')) '
                        f'FROM (SELECT md5(x::text) AS h FROM "{schema}"."{t}" x) s')
        out[t] = (tuple(cols), *rows[0])
    return out


def _one_line(capsys, *fragments) -> str:
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "Traceback" not in captured.err
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1, captured.err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return _normalise(frame)


# -- a load ----------------------------------------------------------------------------
def test_load_writes_the_same_tables_rollups_and_settings_as_duckdb(pg_a, duck_a, pg_server):
    ref, got = open_workspace(duck_a), open_workspace(pg_a)
    assert SECRET not in repr(got) and SECRET not in got.source
    assert got.tables == ref.tables
    assert got.config == ref.config
    assert got.timezone == "Asia/Tokyo" and got.currency == "JPY"
    assert got.config["rollup_timezone"] == "Asia/Tokyo"
    assert got.as_of == ref.as_of
    names = set(got.con.list_tables())
    assert set(ROLLUPS) <= names and META_TABLE in names
    assert not [n for n in names if n.startswith(pgio.STAGING_PREFIX)]
    for t in [*ref.tables, *ROLLUPS, META_TABLE]:
        a, b = ref.con.table(t), got.con.table(t)
        assert a.columns == b.columns, t
        pd.testing.assert_frame_equal(_sorted(a.to_pandas()), _sorted(b.to_pandas()),
                                      check_dtype=False, obj=t)
    # column types on the server follow the contract (DOUBLE -> double precision)
    types = dict(snapshot(pg_server, "acme")["subscriptions"][0])
    assert types["mrr"] == "double precision" and types["start_date"] == "date"
    assert dict(snapshot(pg_server, "acme")["usage_events"][0])["event_at"] == \
        "timestamp without time zone"


ANALYSES = {
    "cohort_retention": lambda ws: retention.cohort_retention(ws, grain="month"),
    "cohort_retention activity": lambda ws: retention.cohort_retention(
        ws, grain="month", basis="activity", by="segment"),
    "revenue_retention": lambda ws: retention.revenue_retention(ws, grain="quarter"),
    "nps": lambda ws: surveys.nps(ws, by="segment"),
    "feature_adoption": lambda ws: adoption.feature_adoption(ws, by="segment"),
    "usage_trend": lambda ws: adoption.usage_trend(ws, weeks=12),
}


@pytest.mark.parametrize("name", list(ANALYSES))
def test_analyses_on_the_loaded_schema_equal_duckdb(pg_a, duck_a, name):
    ref, got = open_workspace(duck_a), open_workspace(pg_a)
    assert got.usage_rollup() is not None and got.usage_user_months() is not None
    a, b = _frames(ANALYSES[name](ref)), _frames(ANALYSES[name](got))
    assert a.keys() == b.keys()
    for key in a:
        assert len(a[key]) > 0 or key
        pd.testing.assert_frame_equal(_normalise(a[key]), _normalise(b[key]),
                                      check_dtype=False, check_exact=False, rtol=1e-9,
                                      atol=1e-9, obj=f"{name} {key}")


def test_rollups_are_cut_on_the_los_angeles_calendar(pg_server, la_mapping, capsys):
    """Independent reference: pandas tz_convert of the UTC instants, then group."""
    url = _url(pg_server, "la")
    assert main(["load", "--config", str(la_mapping), "--out", url, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    assert f"workspace written to schema la on postgres://cs:***@127.0.0.1:{pg_server.port}" \
        in out
    ws = open_workspace(url)
    ev = pd.DataFrame(LA_EVENTS, columns=["account_id", "user_id", "at"])
    local = pd.to_datetime(ev["at"], utc=True).dt.tz_convert(LA)
    ev["day"] = local.dt.date
    ev["month"] = local.dt.year * 12 + local.dt.month - 1
    months = ev.groupby(["account_id", "month"]).size().rename("events").reset_index()
    got = ws.usage_rollup().to_pandas().sort_values(["account_id", "month"])
    assert got[["account_id", "month", "events"]].astype({"month": "int64"}).values.tolist() \
        == months.values.tolist()
    assert (2023 * 12 + 11) in got["month"].tolist()  # Dec 2023 in LA, Jan 2024 in UTC
    ev["user_id"] = ev["user_id"].replace("", None).fillna("")
    ev["bit"] = [1 << (d.day - 1) for d in ev["day"]]
    users = ev.groupby(["account_id", "user_id", "month"]).agg(
        days=("bit", lambda b: int(np.bitwise_or.reduce(sorted(set(b))))),
        events=("bit", "size"), last_day=("day", "max")).reset_index()
    got_users = ws.usage_user_months().to_pandas()
    key = lambda f: sorted(  # noqa: E731
        (r.account_id, r.user_id if isinstance(r.user_id, str) else "", int(r.month),
         int(r.days), int(r.events), pd.Timestamp(r.last_day).date())
        for r in f.itertuples())
    assert key(got_users) == key(users)
    # Feb 29 (leap day) in LA: bit 28 of February 2024
    feb = got_users[got_users["month"].astype(int) == 2024 * 12 + 1]
    assert any(int(d) >> 28 & 1 for d in feb["days"])


# -- failed loads change nothing --------------------------------------------------------
def _kill_own_backend(pg):
    """Patch: before copying usage_events, terminate the load's connection (server side)."""
    original = pgio._copy_table

    def copy(con, schema, name, data):
        if name == "usage_events":
            _sql(pg, "SELECT pg_terminate_backend(%s)", (con.info.backend_pid,))
        return original(con, schema, name, data)
    return copy


def _fail_after_swap():
    """Patch: drop the old tables and rename the new ones, then fail before COMMIT."""
    original = pgio._swap

    def swap(cur, schema, names):
        original(cur, schema, names)
        cur.execute("SELECT 1 / 0")
    return swap


def _python_error():
    original = pgio._copy_table

    def copy(con, schema, name, data):
        if name == "support_tickets":
            raise RuntimeError("boom while inserting support_tickets")
        return original(con, schema, name, data)
    return copy


FAILURES = ["late bad value", "connection killed", "fails after the swap", "python error",
            "invalid exports"]


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_load_leaves_the_schema_as_it_was(pg_server, exports, la_mapping, failure,
                                                   monkeypatch, capsys):
    schema = "ws_" + failure.replace(" ", "_")
    url = _url(pg_server, schema)
    load(exports / "a.yml", url)
    # a view of a team member on the workspace, outside the tables a load replaces
    _sql(pg_server, f'CREATE TABLE "{schema}".notes (t text)')
    _sql(pg_server, f"INSERT INTO \"{schema}\".notes VALUES ('keep me')")
    before = snapshot(pg_server, schema)
    assert len(before) == 10 + len(ROLLUPS) + 2

    # a load that would change every table if it got through (failures after the swap
    # must not leave the new tables behind)
    config, expect = exports / "a_utc.yml", OutputError
    if failure == "late bad value":
        # valid for the contract, refused by PostgreSQL at COPY time (text with NUL)
        bad = exports.parent / "nul"
        bad.mkdir(exist_ok=True)
        acc = pd.read_csv(exports / "accounts.csv", dtype=str)
        acc.loc[acc.index[-1], "account_name"] = "Acme\x00Corp"
        acc.to_csv(bad / "accounts.csv", index=False)
        m = yaml.safe_load((exports / "a_utc.yml").read_text())
        m["tables"] = {t: {"file": str(exports / e["file"])} for t, e in m["tables"].items()}
        m["tables"]["accounts"] = {"file": "accounts.csv"}
        config = bad / "m.yml"
        config.write_text(yaml.safe_dump(m), encoding="utf-8")
    elif failure == "connection killed":
        monkeypatch.setattr(pgio, "_copy_table", _kill_own_backend(pg_server))
    elif failure == "fails after the swap":
        monkeypatch.setattr(pgio, "_swap", _fail_after_swap())
    elif failure == "python error":
        monkeypatch.setattr(pgio, "_copy_table", _python_error())
        expect = RuntimeError
    else:
        bad = exports.parent / "invalid"
        bad.mkdir(exist_ok=True)
        (bad / "acc.csv").write_text("account_id,signup_date\nA1,not a date\n")
        (bad / "m.yml").write_text("tables:\n  accounts:\n    file: acc.csv\n")
        config, expect = bad / "m.yml", LoadError

    with pytest.raises(expect) as err:
        load(config, url)
    assert SECRET not in str(err.value)
    if expect is OutputError:
        assert "unchanged" in str(err.value) and len(str(err.value).splitlines()) == 1
    if failure == "connection killed":
        assert "connection was lost" in str(err.value)
    assert snapshot(pg_server, schema) == before

    # through the CLI: one line, no password, the schema unchanged
    if expect is not RuntimeError:
        assert main(["load", "--config", str(config), "--out", url, "--quiet"]) == 1
        captured = capsys.readouterr()
        assert SECRET not in captured.out + captured.err
        assert "unchanged" in captured.err
        assert snapshot(pg_server, schema) == before

    # the next load works: B replaces the workspace tables; the team's notes stay
    monkeypatch.undo()
    load(la_mapping, url)
    after = snapshot(pg_server, schema)
    assert after["notes"] == before["notes"]
    assert "support_tickets" not in after and after["accounts"][1] == 2
    ws = open_workspace(url)
    assert ws.timezone == LA and ws.usage_rollup() is not None


# -- one-line errors, never a password -------------------------------------------------
def test_connection_refused_is_one_line(exports, capsys):
    url = f"postgres://cs:{SECRET}@127.0.0.1:{free_port()}/cs?schema=x"
    assert main(["load", "--config", str(exports / "a.yml"), "--out", url, "--quiet"]) == 1
    _one_line(capsys, "cannot connect to postgres://cs:***@127.0.0.1", "connection refused")


def test_authentication_failure_is_one_line(pg_server, exports, capsys):
    url = _url(pg_server, "x", user="ghost")
    assert main(["load", "--config", str(exports / "a.yml"), "--out", url, "--quiet"]) == 1
    _one_line(capsys, "authentication failed", 'role "ghost" does not exist',
              "postgres://ghost:***@")


def test_schema_not_writable_is_one_line(pg_server, pg_a, exports, capsys):
    _sql(pg_server, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                    "'reader') THEN CREATE ROLE reader LOGIN; END IF; END $$")
    _sql(pg_server, "GRANT USAGE ON SCHEMA acme TO reader")
    before = snapshot(pg_server, "acme")
    for schema, fragment in (("acme", "no CREATE privilege on the schema"),
                             ("brand_new", "may not create schemas")):
        url = _url(pg_server, schema, user="reader")
        assert main(["load", "--config", str(exports / "a.yml"), "--out", url,
                     "--quiet"]) == 1
        _one_line(capsys, "permission denied", fragment, "postgres://reader:***@")
    assert snapshot(pg_server, "acme") == before
    # readers read the workspace (open_workspace) with SELECT only
    _sql(pg_server, "GRANT SELECT ON ALL TABLES IN SCHEMA acme TO reader")
    ws = open_workspace(_url(pg_server, "acme", user="reader"))
    assert len(surveys.nps(ws)) == 1


def test_a_schema_that_is_not_a_workspace_is_refused(pg_server, exports, capsys):
    _sql(pg_server, "CREATE SCHEMA IF NOT EXISTS crm")
    _sql(pg_server, "CREATE TABLE IF NOT EXISTS crm.accounts (id int)")
    before = snapshot(pg_server, "crm")
    url = _url(pg_server, "crm")
    assert main(["load", "--config", str(exports / "a.yml"), "--out", url, "--quiet"]) == 1
    _one_line(capsys, "schema crm holds tables but is not a cs-analysis workspace")
    assert snapshot(pg_server, "crm") == before
    # the Python API refuses too, under the load's lock
    with pytest.raises(OutputError, match="not a cs-analysis workspace"):
        pgio.write_postgres(url, {"accounts": pd.DataFrame(
            {"account_id": ["A"], "signup_date": [dt.date(2024, 1, 1)]})})
    assert snapshot(pg_server, "crm") == before


def test_urls_are_shown_without_passwords():
    assert pgio.shown_url("postgres://u:p%40ss@h:5/db?schema=s") == \
        "postgres://u:***@h:5/db?schema=s"
    assert "hunter2" not in pgio.shown_url("postgresql://u@h/db?password=hunter2&schema=s")
    t = pgio.parse_target("postgresql://u:p%40ss@h:5/db/s2")
    assert (t.schema, t.conninfo["password"], t.conninfo["port"]) == ("s2", "p@ss", 5)
    assert pgio.parse_target("postgres://u@h/db").schema == "public"
    with pytest.raises(OutputError, match="names no database"):
        pgio.parse_target(f"postgres://u:{SECRET}@h:5/")


def test_without_psycopg_the_load_says_how_to_install_it(exports, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    url = f"postgres://cs:{SECRET}@127.0.0.1:5432/cs?schema=x"
    assert main(["load", "--config", str(exports / "a.yml"), "--out", url, "--quiet"]) == 1
    _one_line(capsys, "needs psycopg", ".[postgres]")
