"""The workspace: an Ibis connection plus the contract's tables, with scoping filters.

A :class:`Workspace` is what every analysis takes as its first argument. It holds

- an Ibis backend (DuckDB file by default; any Ibis backend such as Postgres or Spark);
- the canonical tables of :mod:`cs_analysis.contract` as Ibis table expressions,
  restricted by the workspace's scoping filters (:meth:`Workspace.where`);
- the as-of date (:attr:`Workspace.as_of`) and workspace settings (time zone, currency,
  survey scales).

Workspaces stored as DuckDB files are written by :func:`write_workspace`, which builds a
new file beside the target and swaps it in only when everything succeeded, so a failed
load leaves an existing workspace byte-for-byte unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ibis

from cs_analysis.contract import AS_OF_SOURCES, TABLE_NAMES, TABLES, create_table_sql
from cs_analysis.errors import CSAnalysisError
from cs_analysis.time import local_date, period_expr, period_of, to_date, zone

#: Table holding the workspace's settings (key → JSON value).
META_TABLE = "cs_workspace_meta"
#: Account × calendar-month activity rollup maintained by :func:`write_workspace`,
#: so analyses and dashboard filters never rescan raw events.
USAGE_ROLLUP = "usage_monthly_rollup"
#: Account × user × local month rollup (``account_id, user_id, month, days, events,
#: last_day``; a null ``user_id`` row holds the events without a user): ``days`` is a
#: bitmask of the local days of the month with an event (bit ``d - 1`` = day ``d``), so
#: the distinct users of any day window are read without rescanning events.
USAGE_USER_MONTH_DAYS_ROLLUP = "usage_user_month_days"
#: Account × feature × local month rollup (``account_id, feature, month, events,
#: first_day, last_day, d01 .. d31``; ``dNN`` = events on local day NN of the month;
#: feature = ``usage_events.feature``, else ``event_name``, null when neither exists or
#: the value is missing): feature use over any day window, first use per feature.
USAGE_FEATURE_MONTH_ROLLUP = "usage_feature_monthly_rollup"
#: Account × local calendar week / month user rollups (``account_id, period, users,
#: user_days, events, last_day``): distinct users (WAU / MAU), user-days (the sum over the
#: period's days of daily active users), events and the last day with an event.
USAGE_USER_WEEK_ROLLUP = "usage_user_weekly_rollup"
USAGE_USER_MONTH_ROLLUP = "usage_user_monthly_rollup"
#: Every rollup :func:`write_workspace` builds (they are cut in the workspace zone).
ROLLUPS = (USAGE_ROLLUP, USAGE_USER_MONTH_DAYS_ROLLUP, USAGE_FEATURE_MONTH_ROLLUP,
           USAGE_USER_WEEK_ROLLUP, USAGE_USER_MONTH_ROLLUP)
#: Rollups of older files (day grain, ~one row per event): dropped on a rebuild.
LEGACY_ROLLUPS = ("usage_user_daily_rollup", "usage_feature_daily_rollup")

#: Scoping filters that select accounts by an ``accounts`` column.
ACCOUNT_FILTERS = ("segment", "plan", "region", "industry", "csm_owner", "touch_model")

DEFAULT_CONFIG: dict[str, Any] = {
    "timezone": "UTC",
    "currency": "USD",
    "language": None,  # labels of dashboards (en, ja); see cs_analysis.i18n
    "as_of": None,
    "survey_scales": {},
}


class WorkspaceError(CSAnalysisError, RuntimeError):
    """A workspace cannot be opened or lacks what an analysis needs."""


def default_data_dir() -> Path:
    """Folder of the demo workspace: ``$CS_ANALYSIS_DATA`` or the project's ``data/``."""
    env = os.environ.get("CS_ANALYSIS_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "data"


def default_workspace_path() -> Path:
    """Path of the embedded demo workspace (``data/demo.duckdb``)."""
    return default_data_dir() / "demo.duckdb"


def month_index(year: int, month: int) -> int:
    """Calendar month as one integer (``year * 12 + month - 1``), the rollup's key.

    The same numbering as :func:`cs_analysis.time.period_of` with ``grain="month"``.
    """
    return period_of(dt.date(year, month, 1), "month")


class Workspace:
    """An Ibis connection plus the contract's tables, optionally scoped.

    Parameters
    ----------
    con : ibis.BaseBackend
        Connection holding tables named as in the contract.
    config : dict, optional
        Settings (``timezone``, ``currency``, ``as_of``, ``survey_scales``); values not
        given come from the workspace's stored settings, then from defaults.
    filters : dict, optional
        Scoping filters (see :meth:`where`).
    source : str, optional
        Where the workspace came from, for messages.
    """

    def __init__(self, con, config: Mapping | None = None, filters: Mapping | None = None,
                 source: str | None = None):
        self.con = con
        self.source = source or getattr(con, "name", "ibis backend")
        self._available = set(con.list_tables())
        stored = self._read_meta()
        self.config = {**DEFAULT_CONFIG, **stored, **{k: v for k, v in (config or {}).items()
                                                      if v is not None}}
        self.filters = dict(filters or {})
        zone(self.config.get("timezone"))  # an unknown zone fails here, not mid-analysis
        self._as_of: dt.date | None = to_date(self.config.get("as_of"))
        self._cache: dict[str, Any] = {}

    # -- settings --------------------------------------------------------------------
    def _read_meta(self) -> dict:
        if META_TABLE not in self._available:
            return {}
        rows = self.con.table(META_TABLE).to_pandas()
        return {k: json.loads(v) for k, v in zip(rows["key"], rows["value"], strict=True)}

    @property
    def as_of(self) -> dt.date:
        """The date up to which the workspace's data is complete (metrics.md, Time).

        Configured per workspace (``as_of`` setting); by default the latest date on which
        something was *observed*: the maximum of ``usage_events.event_at``,
        ``subscriptions.start_date``, ``onboarding_milestones.completed_at``,
        ``survey_responses.responded_at``, ``support_tickets.opened_at`` /
        ``resolved_at`` and ``cs_activities.occurred_at``, timestamps taken as dates in
        the workspace's time zone. Scheduled dates (a contract ``end_date`` or
        ``renewal_date`` in the future) never move it. Computed over the whole
        workspace, not the scoped accounts: completeness is a property of the data.
        """
        if self._as_of is None:
            latest = []
            for table, column in AS_OF_SOURCES:
                if table in self._available:
                    t = self.con.table(table)
                    if column in t.columns:
                        latest.append((t[column].max().name("d"), t[column].type().is_date()))
            if not latest:
                raise WorkspaceError(
                    f"{self.source}: cannot derive the as-of date (no dated tables); "
                    "set `as_of` in the workspace settings"
                )
            values = []
            for expr, is_date in latest:
                v = self.con.execute(expr)
                if not _present(v):
                    continue
                if is_date:
                    values.append(to_date(v))
                else:  # the local date of the latest UTC instant (the shift is monotonic)
                    ts = v.to_pydatetime() if hasattr(v, "to_pydatetime") else v
                    if ts.tzinfo is None:
                        ts = ts.replace(tzinfo=dt.UTC)
                    values.append(ts.astimezone(zone(self.timezone)).date())
            if not values:
                raise WorkspaceError(f"{self.source}: dated tables are empty; set `as_of`")
            self._as_of = max(values)
        return self._as_of

    @property
    def timezone(self) -> str:
        """The workspace's time zone: every calendar operation happens in it (metrics.md).

        Timestamps are stored in UTC; naive source timestamps were read in this zone.
        """
        return self.config.get("timezone") or "UTC"

    @property
    def currency(self) -> str:
        """Workspace currency (one per workspace)."""
        return self.config["currency"]

    @property
    def survey_scales(self) -> dict:
        """Configured survey scales, merged over the contract's defaults by callers."""
        return dict(self.config.get("survey_scales") or {})

    # -- tables ----------------------------------------------------------------------
    @property
    def tables(self) -> list[str]:
        """Canonical tables present in this workspace, in contract order."""
        return [t for t in TABLE_NAMES if t in self._available]

    def has(self, name: str, *columns: str) -> bool:
        """Whether table ``name`` (and each of ``columns``) is present."""
        if name not in self._available:
            return False
        return all(c in self._raw(name).columns for c in columns)

    def _raw(self, name: str):
        if name not in self._cache:
            self._cache[name] = self.con.table(name)
        return self._cache[name]

    def table(self, name: str, *, columns: Iterable[str] = ()) -> ibis.Table:
        """Scoped Ibis table ``name``; a clear error if it (or a needed column) is missing.

        Parameters
        ----------
        name : str
            Canonical table name.
        columns : iterable of str
            Columns the caller needs; a missing one raises :class:`WorkspaceError` that
            names the table, the column and the analysis' need.
        """
        if name not in TABLES and name not in ROLLUPS:
            raise WorkspaceError(f"unknown table {name!r}; expected one of {TABLE_NAMES}")
        if name not in self._available:
            raise WorkspaceError(f"this workspace ({self.source}) has no {name} table")
        t = self._raw(name)
        missing = [c for c in columns if c not in t.columns]
        if missing:
            raise WorkspaceError(
                f"this workspace's {name} table has no column(s) {', '.join(missing)}, "
                "which this analysis needs"
            )
        if not self.filters:
            return t
        if name == "accounts":
            return self._scoped_accounts()
        return t.filter(t.account_id.isin(self._scoped_accounts().account_id))

    def __getattr__(self, name: str):
        if name in TABLES:
            return self.table(name)
        raise AttributeError(name)

    def usage_rollup(self) -> ibis.Table | None:
        """Account × month event counts (``account_id, month, events``), scoped.

        ``month`` is :func:`month_index` of the calendar month of ``event_at`` in the
        workspace's time zone (a rollup built for another zone is not used). Returns
        None when the backend has no rollup (e.g. a warehouse), in which case callers
        aggregate ``usage_events`` themselves.
        """
        if USAGE_ROLLUP not in self._available:
            return None
        if (self.config.get("rollup_timezone") or "UTC") != self.timezone:
            return None
        return self.table(USAGE_ROLLUP)

    def _day_rollup(self, name: str) -> ibis.Table | None:
        if name not in self._available:
            return None
        if (self.config.get("rollup_timezone") or "UTC") != self.timezone:
            return None
        return self.table(name)

    def usage_user_months(self) -> ibis.Table | None:
        """Account × user × local month activity, scoped.

        Columns ``account_id, user_id, month, days, events, last_day``.
        ``month`` as :func:`month_index` of the local month; ``days`` has bit ``d - 1``
        set when the user had an event on local day ``d``; events without a ``user_id``
        are one row per account and month with a null ``user_id``. None when absent (a
        warehouse, an older file) or built for another zone: callers then aggregate
        ``usage_events`` themselves.
        """
        return self._day_rollup(USAGE_USER_MONTH_DAYS_ROLLUP)

    def usage_feature_months(self) -> ibis.Table | None:
        """Account × feature × local month events, scoped.

        Columns ``account_id, feature, month, events, first_day, last_day, d01 .. d31``.
        ``feature`` is ``usage_events.feature`` when the column exists, else
        ``event_name`` (null when missing); ``dNN`` counts the events of local day NN.
        None as for :meth:`usage_user_months`.
        """
        return self._day_rollup(USAGE_FEATURE_MONTH_ROLLUP)

    def usage_user_periods(self, grain: str) -> ibis.Table | None:
        """Account × local week or month users, scoped.

        Columns ``account_id, period, users, user_days, events, last_day``; ``period`` as
        :func:`cs_analysis.time.period_of`. None as for :meth:`usage_user_months`.
        """
        name = {"week": USAGE_USER_WEEK_ROLLUP, "month": USAGE_USER_MONTH_ROLLUP}[grain]
        return self._day_rollup(name)

    # -- scoping ---------------------------------------------------------------------
    def where(self, **filters) -> Workspace:
        """A workspace restricted to some accounts; every analysis respects it.

        Parameters
        ----------
        segment, plan, region, industry, csm_owner, touch_model : str or list of str
            Keep accounts whose column is one of these values. ``None`` or an empty list
            means no filter on that column.
        signup_between : (date, date)
            Keep accounts whose ``signup_date`` is within these dates (inclusive; either
            end may be None).
        accounts : list of str
            Keep these account ids.

        Returns
        -------
        Workspace
            Same connection, settings and as-of date; filters combined with this one's.
        """
        unknown = set(filters) - set(ACCOUNT_FILTERS) - {"signup_between", "accounts"}
        if unknown:
            raise TypeError(
                f"unknown filter(s) {sorted(unknown)}; use {ACCOUNT_FILTERS}, "
                "signup_between or accounts"
            )
        merged = dict(self.filters)
        for key, value in filters.items():
            if value is None or (isinstance(value, list | tuple | set) and len(value) == 0
                                 and key != "signup_between"):
                merged.pop(key, None)
            else:
                merged[key] = value
        ws = Workspace.__new__(Workspace)
        ws.con, ws.source, ws._available = self.con, self.source, self._available
        ws.config, ws._as_of, ws._cache = self.config, self._as_of, self._cache
        ws.filters = merged
        return ws

    def _scoped_accounts(self) -> ibis.Table:
        acc = self._raw("accounts")
        preds = []
        for key, value in self.filters.items():
            if key in ACCOUNT_FILTERS:
                if key not in acc.columns:
                    raise WorkspaceError(f"cannot filter by {key}: accounts has no {key} column")
                values = [value] if isinstance(value, str) else list(value)
                preds.append(acc[key].isin(values))
            elif key == "signup_between":
                lo, hi = value
                if lo is not None:
                    preds.append(acc.signup_date >= to_date(lo))
                if hi is not None:
                    preds.append(acc.signup_date <= to_date(hi))
            elif key == "accounts":
                preds.append(acc.account_id.isin([str(a) for a in value]))
        return acc.filter(*preds) if preds else acc

    def __repr__(self) -> str:
        scope = f", filters={self.filters}" if self.filters else ""
        return f"Workspace({self.source!r}, tables={self.tables}{scope})"


def open_workspace(target=None, *, as_of=None, **config) -> Workspace:
    """Open a workspace.

    Parameters
    ----------
    target : None, str, Path, ibis backend or pyspark SparkSession
        None: ``$CS_WORKSPACE`` if set, else the demo workspace ``data/demo.duckdb``
        (built by ``make demo``, ``cs-analysis demo`` or
        :func:`cs_analysis.demo.demo_workspace`; the data layer never builds it). A
        path to a ``.duckdb`` file (opened read-only so several dashboards can share it).
        An Ibis connection URL (``postgres://user@host:5432/db?schema=acme``, as written
        by ``cs-analysis load --out postgres://…``; ``duckdb://…``), an
        already-made Ibis backend, or a running ``pyspark.sql.SparkSession``, whose tables
        (or temporary views) are named as in the contract. PostgreSQL and Spark are
        tested in CI against DuckDB (``tests/backends``).
    as_of : date or str, optional
        Override the workspace's as-of date.
    **config
        Other settings to override (``timezone``, ``currency``, ``survey_scales``).
    """
    if target is None or target == "":
        target = os.environ.get("CS_WORKSPACE") or None
    if target is None:
        path = default_workspace_path()
        if not path.exists():
            raise WorkspaceError(
                f"no workspace at {path}: build the demo with `make demo` (or "
                f"`cs-analysis demo --out {path}`, or `cs_analysis.demo.demo_workspace()` "
                "in a notebook), or pass the path of your own workspace")
        target = path
    config = {**config, "as_of": as_of}
    if isinstance(target, ibis.BaseBackend):
        return Workspace(target, config=config)
    if type(target).__name__ == "SparkSession":  # a running pyspark session
        return Workspace(ibis.pyspark.connect(target), config=config, source="pyspark session")
    text = str(target)
    if "://" in text:
        from cs_analysis.io.postgres import shown_url

        return Workspace(ibis.connect(text), config=config, source=shown_url(text))
    path = Path(text)
    if not path.exists():
        raise WorkspaceError(
            f"no workspace at {path}: build one with `cs-analysis load --config mapping.yml "
            f"--out {path}` or `cs-analysis demo --out {path}`"
        )
    con = ibis.duckdb.connect(str(path), read_only=True)
    return Workspace(con, config=config, source=str(path))


# -- writing ---------------------------------------------------------------------------
def write_workspace(path, tables: Mapping[str, Any], *, config: Mapping | None = None,
                    progress: bool = False) -> Path:
    """Write a DuckDB workspace atomically.

    Builds a new database file beside ``path``, creates each canonical table with the
    contract's column types (only the columns given; optional ones may be absent),
    inserts the rows, builds the usage rollup and the settings table, then replaces
    ``path`` in one ``os.replace``. If anything fails, ``path`` is untouched.

    Parameters
    ----------
    path : str or Path
        Target ``.duckdb`` file.
    tables : mapping of table name to pandas DataFrame, pyarrow Table, or Parquet path
        Each value is already in canonical column names and types (see
        :mod:`cs_analysis.io` for reading and validating exports). A Parquet path may be
        a glob, so large tables never pass through Python.
    config : mapping, optional
        Workspace settings stored in :data:`META_TABLE`.
    progress : bool
        Show a progress bar per table.
    """
    import duckdb

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".duckdb.tmp", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # duckdb must create the file itself
    tmp = Path(tmp)
    try:
        con = duckdb.connect(str(tmp))
        try:
            # Rows keep the source order (readers and tests see the file's order), at
            # the cost of a higher peak on very large loads. DuckDB's own progress bar
            # shows only when the caller asked for progress.
            con.execute(f"SET enable_progress_bar = {str(bool(progress)).lower()}")
            items = [(n, tables[n]) for n in TABLE_NAMES if n in tables]
            unknown = set(tables) - set(TABLE_NAMES)
            if unknown:
                raise ValueError(f"not contract tables: {sorted(unknown)}")
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(items) + 1, desc="writing workspace", unit="table")
            for name, data in items:
                _insert(con, name, data)
                if bar is not None:
                    bar.set_postfix_str(name)
                    bar.update()
            meta = {**DEFAULT_CONFIG, **(config or {})}
            _build_rollups(con, meta.get("timezone"))
            meta["rollup_timezone"] = meta.get("timezone") or "UTC"
            con.execute(f'CREATE TABLE "{META_TABLE}" (key VARCHAR, value VARCHAR)')
            con.executemany(
                f'INSERT INTO "{META_TABLE}" VALUES (?, ?)',
                [(k, json.dumps(v, default=str)) for k, v in meta.items()],
            )
            con.execute("CHECKPOINT")
            if bar is not None:
                bar.update()
                bar.close()
        finally:
            con.close()
        os.replace(tmp, path)
    except BaseException:
        for leftover in (tmp, Path(str(tmp) + ".wal")):
            if leftover.exists():
                leftover.unlink()
        raise
    return path


def contract_source(con, name: str, data) -> tuple[str, list[str]]:
    """Where DuckDB reads ``data`` for table ``name``, and the columns to keep.

    ``data`` is a Parquet path (read with ``read_parquet``) or a frame / Arrow table
    (registered on ``con`` as ``_incoming``; the caller unregisters it). The columns are
    the contract's, in its order, then any others sorted; a column the contract does
    not know is a ``ValueError``. Shared by the DuckDB and the PostgreSQL writers.
    """
    spec = TABLES[name]
    if isinstance(data, str | Path):
        src = "read_parquet('" + str(data).replace("'", "''") + "')"
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
    else:
        con.register("_incoming", data)
        src = "_incoming"
        cols = list(data.columns) if hasattr(data, "columns") else data.column_names
    unknown = [c for c in cols if c not in spec]
    if unknown:
        raise ValueError(f"{name}: columns not in the contract: {unknown}")
    keep = [c for c in spec.names() if c in cols] + sorted(
        c for c in cols if c not in spec.names())
    return src, keep


def contract_select(name: str, keep: list[str]) -> str:
    """``CAST(col AS <contract type>) AS col, ...`` for the columns ``keep`` of ``name``."""
    spec = TABLES[name]
    return ", ".join(f'CAST("{c}" AS {spec[c].sql_type}) AS "{c}"' for c in keep)


def _insert(con, name: str, data) -> None:
    src, keep = contract_source(con, name, data)
    con.execute(create_table_sql(name, keep))
    con.execute(f'INSERT INTO "{name}" SELECT {contract_select(name, keep)} FROM {src}')
    if src == "_incoming":
        con.unregister("_incoming")


def _build_rollups(con, timezone: str | None = None) -> None:
    """(Re)build the usage rollups from ``usage_events``, cut in the workspace's zone.

    - :data:`USAGE_ROLLUP`: account × month event counts;
    - :data:`USAGE_USER_MONTH_DAYS_ROLLUP`: account × user × local month, with the
      bitmask of active days (distinct users of any day window);
    - :data:`USAGE_FEATURE_MONTH_ROLLUP`: account × feature × local month, with events
      per day of the month (events and adoption of any day window, first use);
    - :data:`USAGE_USER_WEEK_ROLLUP` / :data:`USAGE_USER_MONTH_ROLLUP`: users, user-days,
      events and last day per account and local week / month.

    Each grain is at most a few rows per account and month or week: no table keeps one
    row per user and day (at 53.8M demo events that was 50M rows, as many as events).
    Months, weeks and days are cut in the workspace's time zone with
    :func:`cs_analysis.time.period_expr` / :func:`cs_analysis.time.local_date`, the same
    expressions the analyses use on raw events when a rollup is absent.
    """
    for name in (*ROLLUPS, *LEGACY_ROLLUPS):
        con.execute(f'DROP TABLE IF EXISTS "{name}"')
    tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    if "usage_events" not in tables:
        return
    icon = ibis.duckdb.from_connection(con)
    ev = icon.table("usage_events")

    def create(name, expr):
        # sums come back from DuckDB as HUGEINT, which pandas receives as Python
        # Decimals (seconds per million rows): store them as BIGINT
        sql = ibis.to_sql(expr, dialect="duckdb")
        cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE ({sql})").fetchall()]
        select = ", ".join(f'CAST("{c}" AS BIGINT) AS "{c}"' if t == "HUGEINT" else f'"{c}"'
                           for c, t in cols)
        con.execute(f'CREATE TABLE "{name}" AS SELECT {select} FROM ({sql})')

    for name, expr in rollup_exprs(ev, timezone, icon.table):
        create(name, expr)


def rollup_exprs(ev, timezone: str | None, built):
    """Every rollup as ``(name, Ibis expression)``, in build order, for any backend.

    ``ev`` is the ``usage_events`` table; ``built(name)`` returns a rollup already
    built (the monthly user summary reads the account × user × month table). Shared by
    :func:`_build_rollups` (DuckDB) and :mod:`cs_analysis.io.postgres`, so both
    backends cut the same calendar.
    """
    yield USAGE_ROLLUP, month_rollup_expr(ev, timezone)
    yield USAGE_USER_MONTH_DAYS_ROLLUP, user_month_expr(ev, timezone)
    yield USAGE_FEATURE_MONTH_ROLLUP, feature_month_expr(ev, timezone)
    yield USAGE_USER_WEEK_ROLLUP, user_week_expr(ev, timezone)
    yield USAGE_USER_MONTH_ROLLUP, user_month_summary_expr(built(USAGE_USER_MONTH_DAYS_ROLLUP))


def _user_col(ev):
    return (ev.user_id if "user_id" in ev.columns else ibis.null("string")).cast("string")


def _feature_col(ev):
    col = "feature" if "feature" in ev.columns else (
        "event_name" if "event_name" in ev.columns else None)
    return ibis.null("string") if col is None else ev[col].cast("string")


def _int32(x):
    """``x`` as a 32-bit integer in the SQL itself.

    Ibis drops a cast to the type an expression already has, but PostgreSQL's EXTRACT
    returns NUMERIC, which its ``<<`` refuses: going through BIGINT keeps the cast.
    """
    return x.cast("int64").cast("int32")


def _popcount(mask):
    """Number of set bits of a non-negative 32-bit integer expression (SWAR, 12 ops)."""
    x = mask.cast("int64")
    x = x - ((x >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    return ((x * 0x01010101) >> 24) & 0xFF


def month_rollup_expr(ev, timezone: str | None):
    """Ibis: ``account_id, month, events`` of usage events ``ev`` (local calendar months).

    ``month`` is :func:`month_index` of the month of ``event_at`` in ``timezone``.
    """
    return (ev.select(account_id=ev.account_id,
                      month=period_expr(ev.event_at, "month", timezone).cast("int32"))
            .group_by(["account_id", "month"]).agg(events=ibis._.count()))


def user_day_expr(ev, timezone: str | None):
    """Ibis: ``account_id, user_id, day, events`` of usage events ``ev`` (local days)."""
    return (ev.select(account_id=ev.account_id, user_id=_user_col(ev),
                      day=local_date(ev.event_at, timezone))
            .group_by(["account_id", "user_id", "day"]).agg(events=ibis._.count()))


def user_period_expr(days, grain: str):
    """Ibis: users, user-days, events and last day per account and local week or month.

    Columns ``account_id, period, users, user_days, events, last_day``, from a
    :func:`user_day_expr` table ``days`` (whose days are already local).
    """
    t = days.mutate(period=period_expr(days.day, grain))
    return t.group_by(["account_id", "period"]).agg(
        users=t.user_id.nunique(), user_days=t.user_id.count(), events=t.events.sum(),
        last_day=t.day.max())


def user_month_expr(ev, timezone: str | None):
    """Ibis: ``account_id, user_id, month, days, events, last_day`` of usage events ``ev``.

    ``days``: bit ``d - 1`` set when the user had an event on local day ``d`` of the
    local month ``month`` (:func:`month_index` numbering).
    """
    day = local_date(ev.event_at, timezone)
    t = ev.select(account_id=ev.account_id, user_id=_user_col(ev), day=day,
                  month=period_expr(ev.event_at, "month", timezone).cast("int32"))
    bit = ibis.literal(1, "int32") << _int32(t.day.day() - 1)
    return t.group_by(["account_id", "user_id", "month"]).agg(
        days=bit.bit_or().cast("int32"), events=ibis._.count(), last_day=t.day.max())


def user_month_summary_expr(months):
    """Ibis: :func:`user_period_expr` by month, from a :func:`user_month_expr` table."""
    named = months.user_id.notnull()
    return months.group_by(["account_id", months.month.cast("int64").name("period")]).agg(
        users=months.user_id.count(),
        user_days=named.ifelse(_popcount(months.days), 0).sum().cast("int64"),
        events=months.events.sum(), last_day=months.last_day.max())


def user_week_expr(ev, timezone: str | None):
    """Ibis: :func:`user_period_expr` by local week, straight from usage events ``ev``.

    One pass: account × user × week with a bitmask of active weekdays (user-days are
    its set bits), then per account and week.
    """
    day = local_date(ev.event_at, timezone)
    t = ev.select(account_id=ev.account_id, user_id=_user_col(ev), day=day)
    t = t.mutate(period=period_expr(t.day, "week"),
                 bit=ibis.literal(1, "int32") << _int32(t.day.day_of_week.index()))
    u = t.group_by(["account_id", "user_id", "period"]).agg(
        days=t.bit.bit_or().cast("int32"), events=ibis._.count(), last_day=t.day.max())
    named = u.user_id.notnull()
    return u.group_by(["account_id", "period"]).agg(
        users=u.user_id.count(), user_days=named.ifelse(_popcount(u.days), 0).sum()
        .cast("int64"), events=u.events.sum(), last_day=u.last_day.max())


def feature_day_expr(ev, timezone: str | None):
    """Ibis: ``account_id, feature, day, events`` of usage events ``ev``; None without one.

    The feature is ``ev.feature`` when present, else ``ev.event_name``.
    """
    if "feature" not in ev.columns and "event_name" not in ev.columns:
        return None
    return (ev.select(account_id=ev.account_id, feature=_feature_col(ev),
                      day=local_date(ev.event_at, timezone))
            .group_by(["account_id", "feature", "day"]).agg(events=ibis._.count()))


def feature_month_expr(ev, timezone: str | None):
    """Ibis: ``account_id, feature, month, events, first_day, last_day, d01 .. d31``.

    Built even without a feature column (feature null): the per-day event counts of
    every account then still answer "events in a window".
    """
    day = local_date(ev.event_at, timezone)
    t = ev.select(account_id=ev.account_id, feature=_feature_col(ev), day=day,
                  month=period_expr(ev.event_at, "month", timezone).cast("int32"))
    t = t.mutate(dom=t.day.day())
    return t.group_by(["account_id", "feature", "month"]).agg(
        events=ibis._.count(), first_day=t.day.min(), last_day=t.day.max(),
        **{f"d{k:02d}": (t.dom == k).ifelse(1, 0).sum().cast("int32") for k in range(1, 32)})


# -- small helpers -----------------------------------------------------------------------
def _present(v) -> bool:
    if v is None:
        return False
    try:
        import pandas as pd

        return not pd.isna(v)
    except (TypeError, ValueError):
        return True
