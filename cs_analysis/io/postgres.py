"""Loading a workspace into a PostgreSQL schema (``cs-analysis load --out postgres://…``).

A team moves its workspace to a shared server by loading its exports into a schema:

    cs-analysis load --config mapping.yml --out "postgres://me@db.example:5432/cs?schema=acme"

and everyone opens it with ``open_workspace("postgres://…/cs?schema=acme")`` (Ibis'
Postgres backend; ``postgres://…/cs/acme`` is the same schema). Without ``schema`` the
load writes to ``public``.

The load is all or nothing:

1. the exports are validated first with the same code as a DuckDB load (nothing is sent
   to the server when a rule is broken);
2. then ONE transaction creates every table under a staging name in the target schema,
   streams the rows with ``COPY`` (DuckDB reads the staged Parquet, psycopg writes CSV),
   builds the usage rollups in the schema with the same Ibis definitions as DuckDB's
   (:func:`cs_analysis.workspace.month_rollup_expr` and friends, cut in the workspace
   zone), writes the settings table (:data:`cs_analysis.workspace.META_TABLE`), and only
   then drops the previous workspace tables and renames the new ones in their place.

PostgreSQL DDL is transactional, so a failure at any point (an insert that fails, the
connection killed, the server stopping) rolls everything back: the schema is exactly as
it was, and readers keep reading the old tables until the final swap. Two loads of the
same schema wait for each other (an advisory lock).

A password in the URL is never printed: messages show ``postgres://user:***@host/…``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from cs_analysis.io.report import OutputError, one_line

#: URL schemes a load (and :func:`cs_analysis.workspace.open_workspace`) treats as Postgres.
SCHEMES = ("postgres", "postgresql")
#: Prefix of the tables a load builds before swapping them in (inside its transaction).
STAGING_PREFIX = "_cs_load_"
#: Rows per ``COPY`` chunk (one Arrow batch turned into CSV).
BATCH_ROWS = 100_000

#: Contract dtype -> PostgreSQL type (the same kinds as DuckDB's ``SQL_TYPES``).
PG_TYPES = {
    "string": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "float": "DOUBLE PRECISION",
    "int": "BIGINT",
}
#: Ibis dtype (of a rollup column) -> PostgreSQL type.
_IBIS_PG = {"string": "VARCHAR", "date": "DATE", "int32": "INTEGER", "int64": "BIGINT",
            "float64": "DOUBLE PRECISION", "timestamp": "TIMESTAMP"}
_IBIS_OF = {"string": "string", "date": "date", "timestamp": "timestamp",
            "float": "float64", "int": "int64"}


def is_postgres_url(target) -> bool:
    """Whether ``target`` is a ``postgres://`` or ``postgresql://`` URL."""
    if not isinstance(target, str):
        return False
    return target.split("://", 1)[0].lower() in SCHEMES and "://" in target


def shown_url(url: str) -> str:
    """``url`` with its password (and a ``password=`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)
    netloc = parts.netloc
    if "@" in netloc:
        creds, host = netloc.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        netloc = f"{creds}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() == "password" for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() == "password" else v)
                               for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class PgTarget:
    """Where a load writes: connection parameters, the schema, and a printable URL."""

    conninfo: dict
    schema: str
    shown: str
    secrets: tuple[str, ...] = ()

    def scrub(self, text: str) -> str:
        """``text`` without any of the URL's secrets (drivers may echo parameters)."""
        for s in self.secrets:
            if s:
                text = text.replace(s, "***")
        return text


def parse_target(url: str) -> PgTarget:
    """Parse ``postgres://user:pw@host:port/db[/schema][?schema=…&sslmode=…]``.

    Raises
    ------
    OutputError
        One line (password masked) when the URL has no database or a bad schema name.
    """
    shown = shown_url(url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise OutputError(f"--out {shown} is not a postgres:// URL")
    path = [unquote(p) for p in parts.path.lstrip("/").split("/", 1)]
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    schema = params.pop("schema", None) or (path[1] if len(path) > 1 else None) or "public"
    database = path[0] if path and path[0] else None
    if database is None:
        raise OutputError(f"--out {shown} names no database; write "
                          "postgres://user@host:5432/DATABASE?schema=SCHEMA")
    if len(schema.encode()) > 63 or "\x00" in schema:
        raise OutputError(f"--out {shown}: schema name {schema!r} is longer than "
                          "PostgreSQL's 63 bytes")
    info: dict[str, Any] = {"dbname": database}
    if parts.username:
        info["user"] = unquote(parts.username)
    if parts.password:
        info["password"] = unquote(parts.password)
    if parts.hostname:
        info["host"] = parts.hostname
    try:
        if parts.port:
            info["port"] = parts.port
    except ValueError:
        raise OutputError(f"--out {shown}: the port is not a number") from None
    info.update(params)  # sslmode, connect_timeout, ... as libpq parameters
    info.setdefault("connect_timeout", 10)
    secrets = tuple(s for s in (info.get("password"), parts.password) if s)
    return PgTarget(info, schema, shown, secrets)


# -- errors ----------------------------------------------------------------------------
def _reason(exc: BaseException, target: PgTarget) -> str:
    """A one-line reason for a psycopg error, password-free."""
    import psycopg

    text = target.scrub(one_line(exc))
    low = text.lower()
    if "connection refused" in low:
        return ("connection refused (is the server running and accepting TCP connections "
                "on that host and port?)")
    if ("password authentication failed" in low or "no password supplied" in low
            or "authentication failed" in low or "pg_hba.conf" in low
            or re.search(r'role ".*" does not exist', low)
            or "not permitted to log in" in low):
        return f"authentication failed ({_driver_message(text)})"
    if re.search(r'database ".*" does not exist', low):
        return _driver_message(text)
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"permission denied ({_driver_message(text)})"
    if "timeout expired" in low:
        return "the server did not answer in time (connect_timeout)"
    return _driver_message(text)


def _driver_message(text: str) -> str:
    # libpq: 'connection failed: connection to server at "h" (ip), port p failed: FATAL: …'
    m = re.search(r".*failed: (?:FATAL:\s*)?(.*)$", text)
    return (m.group(1) if m else text).strip()


def _psycopg():
    """The psycopg module, or a one-line error saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise OutputError("writing to PostgreSQL needs psycopg: install the client with "
                          "`pip install -e \".[postgres]\"`") from None
    return psycopg


def _connect(target: PgTarget):
    psycopg = _psycopg()

    try:
        return psycopg.connect(**target.conninfo, autocommit=True)
    except psycopg.Error as exc:
        raise OutputError(f"cannot connect to {target.shown}: {_reason(exc, target)}") from None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _workspace_names() -> set[str]:
    from cs_analysis.contract import TABLE_NAMES
    from cs_analysis.workspace import META_TABLE, ROLLUPS

    return set(TABLE_NAMES) | set(ROLLUPS) | {META_TABLE}


def check_target(target: PgTarget) -> None:
    """Refuse a schema a load must not write, before reading any export.

    The server must answer and accept the login; the schema must be new, empty, or a
    cs-analysis workspace (it holds :data:`~cs_analysis.workspace.META_TABLE`), and the
    user must be allowed to create tables in it (or to create it) and own the workspace
    tables it replaces.

    Raises
    ------
    OutputError
        One line naming the URL (password masked) and what is wrong.
    """
    psycopg = _psycopg()

    from cs_analysis.workspace import META_TABLE

    con = _connect(target)
    try:
        cur = con.cursor()
        exists = cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                             (target.schema,)).fetchone() is not None
        where = f"schema {target.schema} on {target.shown}"
        if not exists:
            if not cur.execute("SELECT has_database_privilege(current_database(), 'CREATE')"
                               ).fetchone()[0]:
                raise OutputError(f"cannot create {where}: permission denied (the user may "
                                  "not create schemas in this database; create it and grant "
                                  "CREATE on it)")
            return
        if not cur.execute("SELECT has_schema_privilege(%s, 'CREATE')",
                           (target.schema,)).fetchone()[0]:
            raise OutputError(f"cannot write {where}: permission denied (no CREATE "
                              "privilege on the schema)")
        rows = cur.execute(
            "SELECT c.relname, pg_has_role(c.relowner, 'USAGE') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'f')", (target.schema,)).fetchall()
        names = {r[0] for r in rows}
        if names and META_TABLE not in names:
            raise OutputError(f"--out {target.shown}: schema {target.schema} holds tables "
                              f"but is not a cs-analysis workspace (no {META_TABLE}); a load "
                              "replaces only workspaces: choose a new or empty schema")
        foreign = sorted(r[0] for r in rows if r[0] in _workspace_names() and not r[1])
        if foreign:
            raise OutputError(f"cannot write {where}: permission denied (the user does not "
                              f"own {', '.join(foreign[:3])}, which a load replaces)")
    except psycopg.Error as exc:
        raise OutputError(f"cannot check {target.shown}: {_reason(exc, target)}") from None
    finally:
        con.close()


# -- writing ---------------------------------------------------------------------------
def write_postgres(target: PgTarget | str, tables: Mapping[str, Any], *,
                   config: Mapping | None = None, progress: bool = False) -> None:
    """Write a workspace into a PostgreSQL schema in one transaction.

    The counterpart of :func:`cs_analysis.workspace.write_workspace`: the same tables
    (contract column types, only the columns given), the same usage rollups cut in the
    workspace time zone, the same settings table. See the module docstring for the
    transaction; on any failure the schema is left as it was.

    Parameters
    ----------
    target : PgTarget or str
        Where to write (a ``postgres://`` URL or :func:`parse_target`'s result).
    tables : mapping of table name to pandas DataFrame, pyarrow Table, or Parquet path
        Canonical names and types, as for ``write_workspace`` (a Parquet path may be a
        glob).
    config : mapping, optional
        Workspace settings stored in the settings table.
    progress : bool
        Show a progress bar per table.

    Raises
    ------
    OutputError
        One line (password masked): connection refused, authentication failed,
        permission denied, connection lost; the schema is unchanged.
    """
    psycopg = _psycopg()

    from cs_analysis.contract import TABLE_NAMES
    from cs_analysis.workspace import DEFAULT_CONFIG

    if isinstance(target, str):
        target = parse_target(target)
    unknown = set(tables) - set(TABLE_NAMES)
    if unknown:
        raise ValueError(f"not contract tables: {sorted(unknown)}")
    items = [(n, tables[n]) for n in TABLE_NAMES if n in tables]
    meta = {**DEFAULT_CONFIG, **(config or {})}
    meta["rollup_timezone"] = meta.get("timezone") or "UTC"
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items) + 1, desc="writing workspace", unit="table")
    con = _connect(target)
    committing = False
    try:
        with con.transaction():
            cur = con.cursor()
            _begin(cur, target.schema)
            columns: dict[str, list[str]] = {}
            for name, data in items:
                columns[name] = _copy_table(con, target.schema, name, data)
                if bar is not None:
                    bar.set_postfix_str(name)
                    bar.update()
            built = _build_rollups(cur, target.schema, columns.get("usage_events"),
                                   meta.get("timezone"))
            _write_meta(cur, target.schema, meta)
            _swap(cur, target.schema, [*columns, *built, _meta_name()])
            committing = True
        if bar is not None:
            bar.update()
    except psycopg.Error as exc:
        lost = con.broken or isinstance(exc, psycopg.OperationalError)
        if committing and lost:
            raise OutputError(
                f"the connection to {target.shown} was lost while committing the load of "
                f"schema {target.schema}: {_reason(exc, target)}; open the schema to see "
                "whether the load is there") from None
        what = "the connection was lost" if lost else "the load failed"
        raise OutputError(f"cannot write schema {target.schema} on {target.shown}: {what}: "
                          f"{_reason(exc, target)}; the schema is unchanged "
                          "(the transaction was rolled back)") from None
    finally:
        if bar is not None:
            bar.close()
        con.close()


def _meta_name() -> str:
    from cs_analysis.workspace import META_TABLE

    return META_TABLE


def _begin(cur, schema: str) -> None:
    """Session settings, the per-schema lock, the schema, no leftover staging tables."""
    cur.execute("SET LOCAL timezone = 'UTC'")
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"cs_analysis load {schema}",))
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(schema)}")
    cur.execute("SELECT set_config('search_path', %s, true)", (_q(schema),))
    # again under the lock (check_target ran before validation; write_postgres is public)
    names = {r[0] for r in cur.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')", (schema,))}
    if names and _meta_name() not in names:
        raise OutputError(f"schema {schema} holds tables but is not a cs-analysis workspace "
                          f"(no {_meta_name()}); a load replaces only workspaces: choose a "
                          "new or empty schema")
    for name in _workspace_names():
        cur.execute(f"DROP TABLE IF EXISTS {_q(schema)}.{_q(STAGING_PREFIX + name)}")


def _copy_table(con, schema: str, name: str, data) -> list[str]:
    """Create the staging table of ``name`` and ``COPY`` the rows in; return its columns."""
    import duckdb
    import pyarrow.csv as pacsv

    from cs_analysis.contract import TABLES
    from cs_analysis.workspace import contract_select, contract_source

    spec = TABLES[name]
    dcon = duckdb.connect()
    try:
        src, keep = contract_source(dcon, name, data)
        staged = f"{_q(schema)}.{_q(STAGING_PREFIX + name)}"
        defs = ", ".join(f"{_q(c)} {PG_TYPES[spec[c].dtype]}" for c in keep)
        cur = con.cursor()
        cur.execute(f"CREATE TABLE {staged} ({defs})")
        res = dcon.execute(f"SELECT {contract_select(name, keep)} FROM {src}")
        # duckdb >= 1.4 names it to_arrow_reader; older versions fetch_record_batch
        reader = getattr(res, "to_arrow_reader", None) or res.fetch_record_batch
        reader = reader(BATCH_ROWS)
        opts = pacsv.WriteOptions(include_header=False)
        collist = ", ".join(_q(c) for c in keep)
        with cur.copy(f"COPY {staged} ({collist}) FROM STDIN (FORMAT csv)") as copy:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                buf = io.BytesIO()
                # Nulls are written as empty fields, empty strings as "" (CSV's distinction)
                pacsv.write_csv(batch, buf, opts)
                copy.write(buf.getvalue())
        cur.execute(f"ANALYZE {staged}")
        return keep
    finally:
        dcon.close()


def _ibis_table(columns: list[str], name: str, table: str):
    import ibis

    from cs_analysis.contract import TABLES

    spec = TABLES[table]
    return ibis.table({c: _IBIS_OF[spec[c].dtype] for c in columns}, name=name)


def _create_as(cur, schema: str, name: str, expr) -> None:
    """``CREATE TABLE`` with the expression's column types, then insert its rows."""
    import ibis

    staged = f"{_q(schema)}.{_q(STAGING_PREFIX + name)}"
    sch = expr.schema()
    defs = ", ".join(f"{_q(c)} {_IBIS_PG[str(t).lstrip('!')]}" for c, t in sch.items())
    cur.execute(f"CREATE TABLE {staged} ({defs})")
    # SUM of BIGINT is NUMERIC on PostgreSQL: the table's types cast it back to BIGINT.
    cur.execute(f"INSERT INTO {staged} SELECT * FROM ({ibis.to_sql(expr, dialect='postgres')})"
                " AS q")
    cur.execute(f"ANALYZE {staged}")


def _build_rollups(cur, schema: str, event_columns: list[str] | None,
                   timezone: str | None) -> list[str]:
    """The usage rollups of :func:`cs_analysis.workspace._build_rollups`, on PostgreSQL.

    Same Ibis definitions (months and days cut in the workspace's zone by
    :func:`cs_analysis.time.period_expr` / :func:`cs_analysis.time.local_date`), compiled
    for PostgreSQL and run on the staged ``usage_events``. Returns the names built.
    """
    from cs_analysis.workspace import rollup_exprs

    if event_columns is None:
        return []
    import ibis

    ev = _ibis_table(event_columns, STAGING_PREFIX + "usage_events", "usage_events")
    built: dict[str, ibis.Table] = {}

    def staged(name: str):  # a rollup built earlier in this transaction
        return built[name]

    for name, expr in rollup_exprs(ev, timezone, staged):
        _create_as(cur, schema, name, expr)
        built[name] = ibis.table(expr.schema(), name=STAGING_PREFIX + name)
    return list(built)


def _write_meta(cur, schema: str, meta: Mapping) -> None:
    staged = f"{_q(schema)}.{_q(STAGING_PREFIX + _meta_name())}"
    cur.execute(f"CREATE TABLE {staged} (key VARCHAR, value VARCHAR)")
    cur.executemany(f"INSERT INTO {staged} VALUES (%s, %s)",
                    [(k, json.dumps(v, default=str)) for k, v in meta.items()])


def _swap(cur, schema: str, names: list[str]) -> None:
    """Drop the previous workspace tables and rename the staged ones in their place."""
    existing = {r[0] for r in cur.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')", (schema,)).fetchall()}
    for name in sorted(_workspace_names() & existing):
        cur.execute(f"DROP TABLE {_q(schema)}.{_q(name)}")
    for name in names:
        cur.execute(f"ALTER TABLE {_q(schema)}.{_q(STAGING_PREFIX + name)} "
                    f"RENAME TO {_q(name)}")


# -- the load --------------------------------------------------------------------------
def load_postgres(config, url: str, drop_unknown_accounts: bool = False,
                  progress: bool = False, *, max_examples: int | None = None,
                  base_dir=None):
    """Validate exports, then write them into a PostgreSQL schema (all or nothing).

    The same validation as :func:`cs_analysis.io.load`; then :func:`write_postgres`.
    The target is checked first (server, login, schema writable and a workspace or new),
    so a wrong URL fails before the exports are read.

    Returns
    -------
    Report
        Rows loaded per table, rows dropped, files read.

    Raises
    ------
    LoadError
        Validation found problems; nothing was sent to the server.
    OutputError
        The target cannot be written (one line, password masked); the schema is unchanged.
    """
    import shutil
    import tempfile

    from cs_analysis.io.loader import _run
    from cs_analysis.io.report import MAX_EXAMPLES, LoadError

    target = parse_target(url)
    check_target(target)
    stage = Path(tempfile.mkdtemp(prefix="cs-analysis-pgload-"))
    try:
        report, tables = _run(config, base_dir, drop_unknown_accounts=drop_unknown_accounts,
                              max_examples=max_examples or MAX_EXAMPLES, stage=stage,
                              stage_data=True, progress=progress)
        if not report.ok:
            raise LoadError(report)
        write_postgres(target, tables, config=report.settings, progress=progress)
    except OSError as exc:  # the local staging folder (a full temporary disk)
        raise OutputError(f"cannot stage the exports for {target.shown} ({one_line(exc)}); "
                          "the schema is unchanged") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report
