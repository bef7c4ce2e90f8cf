"""Validating tables chunk by chunk, staging them, and loading a workspace.

:func:`validate` runs every rule of :mod:`cs_analysis.io` and writes nothing;
:func:`load` stages the validated rows as Parquet and builds the workspace atomically.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cs_analysis.contract import DEFAULT_SURVEY_SCALES, TABLES, Column, survey_scale
from cs_analysis.io.mapping import TableMapping, parse_mapping
from cs_analysis.io.readers import OVERFLOW, Source, iter_chunks, match_headers, open_source
from cs_analysis.io.report import (
    EXPECT,
    MAX_EXAMPLES,
    MAX_ROWS_PER_VALUE,
    R_DUPLICATE,
    R_EXTRA_CELLS,
    R_FORMULA,
    R_MAPPING,
    R_NULL,
    R_ORDER,
    R_PARSE,
    R_RANGE,
    R_SCALE,
    R_UNKNOWN_ACCOUNT,
    R_UNREADABLE,
    R_VOCAB,
    Collector,
    LoadError,
    OutputError,
    Report,
    one_line,
)
from cs_analysis.io.values import (
    apply_values,
    as_text,
    cell_text,
    nullify,
    parse_number,
    parse_when,
)


# ----------------------------------------------------------------------------------------
# Validating one table
# ----------------------------------------------------------------------------------------
def _arrow_type(dtype: str):
    import pyarrow as pa

    return {"string": pa.string(), "date": pa.date32(), "timestamp": pa.timestamp("us"),
            "float": pa.float64(), "int": pa.int64()}[dtype]


def _schema(spec, columns: list[str]):
    """The pandera schema of the contract's column rules (nulls, ranges, vocabularies)."""
    import pandera.pandas as pa

    cols = {}
    for c in columns:
        colspec = spec[c]
        checks = []
        if colspec.min is not None and colspec.max is not None:
            checks.append(pa.Check.in_range(colspec.min, colspec.max))
        elif colspec.min is not None:
            checks.append(pa.Check.ge(colspec.min))
        elif colspec.max is not None:
            checks.append(pa.Check.le(colspec.max))
        if colspec.allowed:
            checks.append(pa.Check.isin(list(colspec.allowed)))
        cols[c] = pa.Column(nullable=not colspec.required, checks=checks, required=False)
    return pa.DataFrameSchema(cols)


def _rule_of_check(check: str) -> str:
    if check == "not_nullable":
        return R_NULL
    if check.startswith("isin"):
        return R_VOCAB
    return R_RANGE


def _expected_for(rule: str, colspec: Column) -> str:
    if rule == R_NULL:
        return f"a value (required column, {colspec.dtype})"
    if rule == R_VOCAB:
        return f"one of {' / '.join(colspec.allowed)} (map other words with `values:`)"
    lo, hi = colspec.min, colspec.max
    fmt = lambda x: str(int(x)) if float(x).is_integer() else str(x)  # noqa: E731
    if lo is not None and hi is not None:
        return f"a value from {fmt(lo)} to {fmt(hi)}"
    return f"a value ≥ {fmt(lo)}" if lo is not None else f"a value ≤ {fmt(hi)}"


class _TableRun:
    """Reads, parses, validates and stages one table, chunk by chunk."""

    def __init__(self, tm: TableMapping, ctx: _Run):
        self.tm, self.ctx, self.spec = tm, ctx, TABLES[tm.name]
        self.rows = 0
        self.dropped = 0
        self.dropped_ids: list[str] = []
        self.blank = 0
        self.parts = 0
        self.columns: list[str] | None = None
        self.sources: list[Source] = []
        self.memo: dict[str, list[str]] = {}
        self.unknown: dict[str, list] = {}  # id -> [n, [(src, rec), ...]]
        self.unknown_overflow = 0
        self.account_ids: list[pd.Series] = []

    # -- the table ---------------------------------------------------------------------
    def run(self) -> None:
        ctx, tm = self.ctx, self.tm
        entry = f"tables.{tm.name}"
        for path, shown in tm.files:
            src = open_source(len(ctx.sources), tm, path, shown, ctx.col, f"{entry}.file")
            if src is None:
                continue
            ctx.sources.append(src)
            used = match_headers(src, tm, ctx.col, entry)
            if used is None:
                continue
            src.used = used
            if self.columns is None:
                self.columns = self._ordered(used)
            elif set(used) != set(self.columns):
                ctx.col.add_one(R_MAPPING, tm.name, src.display, entry=f"{entry}.file",
                                expected="the same mapped columns in every file of the table "
                                         f"({', '.join(self.columns)})",
                                value=", ".join(self._ordered(used)))
                continue
            self.sources.append(src)
            self._read(src)
        if self.columns is None:
            return
        self._check_unique()
        self._report_unknown()
        if ctx.stage_data and self.parts == 0:
            self._stage(pd.DataFrame({c: pd.Series([], dtype=object) for c in self.columns}))

    def _ordered(self, used) -> list[str]:
        names = self.spec.names()
        return [c for c in names if c in used] + sorted(c for c in used if c not in names)

    def _read(self, src: Source) -> None:
        bar = None
        if self.ctx.progress:
            from tqdm.auto import tqdm

            total = src.path.stat().st_size if src.kind == "csv" else None
            if src.kind == "parquet":
                import pyarrow.parquet as pq

                total = pq.ParquetFile(src.path).metadata.num_rows
            bar = tqdm(total=total, desc=f"{self.tm.name}: {src.shown}",
                       unit="B" if src.kind == "csv" else " rows",
                       unit_scale=src.kind == "csv", leave=False)
        chunks = iter_chunks(src, bar)
        try:
            while True:
                try:
                    raw, recs = next(chunks)
                except StopIteration:
                    break
                except (UnicodeDecodeError, ValueError, csv.Error, OSError, EOFError) as exc:
                    # only reading errors land here (pandas' ParserError, pyarrow's
                    # ArrowInvalid are ValueErrors); validation runs outside this try
                    if isinstance(exc, UnicodeDecodeError):
                        expected = (f"text in {src.encoding} throughout the file "
                                    f"({one_line(exc)}); set `encoding:` in the mapping")
                    else:
                        expected = f"a well-formed {src.kind} file ({one_line(exc)})"
                    self.ctx.col.add_one(R_UNREADABLE, self.tm.name, src.display,
                                         entry=f"tables.{self.tm.name}.file",
                                         expected=expected)
                    break
                self._chunk(src, raw, recs)
        finally:
            chunks.close()
            if bar is not None:
                bar.close()

    # -- one chunk -----------------------------------------------------------------------
    def _chunk(self, src: Source, raw: pd.DataFrame, recs: np.ndarray) -> None:
        ctx, spec, tm = self.ctx, self.spec, self.tm
        col = ctx.col
        headers = {c: src.headers[i] for c, i in src.used.items()}
        overflow = raw[OVERFLOW] if OVERFLOW in raw.columns else None
        raw = pd.DataFrame({c: nullify(raw[src.used[c]]) for c in self.columns}, index=recs)
        blank = raw.isna().all(axis=1).to_numpy().copy()
        no_value = self._formulas(src, recs, headers) if src.formulas else {}
        for mask in no_value.values():
            blank &= ~mask
        if overflow is not None:
            extra = (overflow.fillna("").str.strip() != "").to_numpy() & ~blank
            if extra.any():
                col.add_rows(tm.name, R_EXTRA_CELLS, None, None,
                             f"at most {len(src.headers)} cells per row, as in the header "
                             "(quote values that contain the delimiter)",
                             src, recs[extra], overflow[extra].tolist())
        blank_rows = blank if blank.any() else None
        if blank.any():
            self.blank += int(blank.sum())
            raw, recs = raw[~blank], recs[~blank]
        for c, mapping in tm.values.items():
            if c in raw.columns:
                raw[c] = apply_values(raw[c], mapping)
        # parse
        typed = {}
        bad_parse: dict[str, np.ndarray] = {}
        for c in raw.columns:
            colspec = spec[c]
            s = raw[c]
            if colspec.dtype == "string":
                typed[c] = as_text(s)
                continue
            if colspec.dtype in ("float", "int"):
                values, bad = parse_number(s, whole=colspec.dtype == "int")
                expected = EXPECT[colspec.dtype]
            else:
                fmts = tm.formats_for(c)
                values, bad = parse_when(s, colspec.dtype, fmts, ctx.timezone,
                                          self.memo.setdefault(c, []))
                expected = (f"a {colspec.dtype} in the format {' or '.join(fmts)} (from the "
                            f"mapping), or {EXPECT[colspec.dtype]}" if fmts
                            else EXPECT[colspec.dtype])
            typed[c] = values
            if bad.any():
                bad_parse[c] = bad
                col.add_rows(tm.name, R_PARSE[colspec.dtype], c, headers[c], expected, src,
                             recs[bad], s[bad].tolist())
        for c, mask in no_value.items():  # reported already: not also a missing value
            mask = mask[~blank_rows] if blank_rows is not None else mask
            bad_parse[c] = bad_parse[c] | mask if c in bad_parse else mask
        typed = pd.DataFrame(typed, index=recs)
        # account references
        if spec.references_accounts and "account_id" in typed and ctx.account_ids is not None:
            ids = typed["account_id"]
            unknown = (ids.notna() & ~ids.isin(ctx.account_ids)).to_numpy()
            if unknown.any():
                self._unknown(src, ids[unknown], recs[unknown])
                if ctx.drop_unknown_accounts:
                    keep = ~unknown
                    typed, raw, recs = typed[keep], raw[keep], recs[keep]
                    bad_parse = {c: b[keep] for c, b in bad_parse.items()}
        # contract column rules (pandera)
        self._column_rules(src, typed, raw, recs, headers, bad_parse)
        self._order_rules(src, typed, raw, recs, headers)
        if tm.name == "survey_responses":
            self._survey_scale(src, typed, raw, recs, headers)
        if tm.name == "accounts" and "account_id" in typed:
            self.account_ids.append(typed["account_id"].dropna())
        self.rows += len(typed)
        if ctx.stage_data:
            self._stage(typed)
        for c in self.spec.unique:
            if c in typed:
                self._stage_keys(src, c, typed[c], recs)

    def _formulas(self, src, recs: np.ndarray, headers) -> dict[str, np.ndarray]:
        """Report Excel formula cells without a saved result; their masks per column."""
        first, last = int(recs[0]), int(recs[-1])
        column_of = {i: c for c, i in src.used.items() if c in self.columns}
        found: dict[str, list[tuple[int, str]]] = {}
        for r in sorted(r for r in src.formulas if first <= r <= last):
            for i, text in src.formulas.pop(r):
                if i in column_of:
                    found.setdefault(column_of[i], []).append((r, text))
        masks = {}
        for c, cells in found.items():
            rows = np.array([r for r, _ in cells], dtype=np.int64)
            self.ctx.col.add_rows(
                self.tm.name, R_FORMULA, c, headers[c],
                "a value: the cell holds a formula whose result was never calculated and "
                "saved (open the workbook in Excel and save it, or paste the values)",
                src, rows, [t for _, t in cells])
            masks[c] = np.isin(recs, rows)
        return masks

    def _column_rules(self, src, typed, raw, recs, headers, bad_parse) -> None:
        import pandera.pandas as pa

        if self.ctx.schema_cache.get(self.tm.name) is None:
            self.ctx.schema_cache[self.tm.name] = _schema(self.spec, list(typed.columns))
        schema = self.ctx.schema_cache[self.tm.name]
        try:
            schema.validate(typed, lazy=True)
            return
        except pa.errors.SchemaErrors as exc:
            fc = exc.failure_cases
        fc = fc[fc["index"].notna() & fc["column"].isin(typed.columns)]
        pos = pd.Series(np.arange(len(recs)), index=recs)
        for (column, check), cases in fc.groupby(["column", "check"], sort=False):
            rule = _rule_of_check(str(check))
            rows = cases["index"].astype("int64").to_numpy()
            if rule == R_NULL and column in bad_parse:  # already reported as unparseable
                skip = set(recs[bad_parse[column]].tolist())
                rows = np.array([r for r in rows if r not in skip], dtype=np.int64)
            if len(rows) == 0:
                continue
            rows = np.sort(rows)
            values = raw[column].iloc[pos[rows].to_numpy()].tolist()
            if rule == R_NULL:
                values = [None] * len(rows)
            self.ctx.col.add_rows(self.tm.name, rule, column, headers[column],
                                  _expected_for(rule, self.spec[column]), src, rows, values)

    def _order_rules(self, src, typed, raw, recs, headers) -> None:
        for earlier, later in self.spec.ordered:
            if earlier in typed and later in typed:
                bad = (typed[later] < typed[earlier]).fillna(False).to_numpy(bool)
                if bad.any():
                    values = [f"{cell_text(b)} < {earlier} {cell_text(a)}" for a, b in
                              zip(raw[earlier][bad], raw[later][bad], strict=True)]
                    self.ctx.col.add_rows(
                        self.tm.name, R_ORDER, later, headers[later],
                        f"{later} on or after {earlier} ({headers[earlier]})", src,
                        recs[bad], values)

    def _survey_scale(self, src, typed, raw, recs, headers) -> None:
        if "survey" not in typed or "score" not in typed:
            return
        surveys = typed["survey"]
        score = typed["score"].to_numpy(float)
        for name in pd.unique(surveys.dropna()):
            rng = survey_scale(str(name), self.ctx.scales)
            if rng is None:
                known = {**DEFAULT_SURVEY_SCALES, **self.ctx.scales}
                lower = str(name).strip().lower()
                note = (f"survey_responses: survey {name!r} gets no scale check and is not "
                        f"{lower!r} to the analyses; if it is {lower.upper()}, map it with "
                        f"`values: {{survey: {{{name}: {lower}}}}}`")
                if lower in known and note not in self.ctx.notes:
                    self.ctx.notes.append(note)
                continue
            lo, hi = rng
            bad = (surveys == name).to_numpy(bool) & ((score < lo) | (score > hi))
            if bad.any():
                fmt = lambda x: str(int(x)) if float(x).is_integer() else str(x)  # noqa: E731
                self.ctx.col.add_rows(
                    self.tm.name, R_SCALE, "score", headers["score"],
                    f"a {name} score from {fmt(lo)} to {fmt(hi)}"
                    + ("" if name == "nps" else " (set `survey_scales` in the mapping's "
                       "workspace section)"),
                    src, recs[bad], raw["score"][bad].tolist())

    def _unknown(self, src, ids: pd.Series, recs: np.ndarray) -> None:
        if self.ctx.drop_unknown_accounts:
            self.dropped += len(ids)
            for v in pd.unique(ids):
                if len(self.dropped_ids) < MAX_ROWS_PER_VALUE and v not in self.dropped_ids:
                    self.dropped_ids.append(str(v))
            return
        for v, r in zip(ids.tolist(), recs.tolist(), strict=True):
            slot = self.unknown.get(v)
            if slot is None:
                if len(self.unknown) >= 10_000:
                    self.unknown_overflow += 1
                    continue
                slot = self.unknown[v] = [0, []]
            slot[0] += 1
            if len(slot[1]) < MAX_ROWS_PER_VALUE:
                slot[1].append((src, r))

    def _report_unknown(self) -> None:
        if not self.unknown:
            return
        col, tm = self.ctx.col, self.tm
        header = self.sources[0].headers[self.sources[0].used["account_id"]]
        expected = ("an account_id present in accounts (or drop these rows with "
                    "--drop-unknown-accounts / drop_unknown_accounts=True)")
        for v, (n, where) in list(self.unknown.items())[: col.limit]:
            by_src: dict[int, tuple[Source, list[int]]] = {}
            for src, r in where:
                by_src.setdefault(src.index, (src, []))[1].append(r)
            for src, rs in by_src.values():
                col.add_value(tm.name, R_UNKNOWN_ACCOUNT, "account_id", header, expected, src,
                              rs, v, n)
        total = sum(n for n, _ in self.unknown.values()) + self.unknown_overflow
        ids = len(self.unknown)
        col.set_total(tm.name, R_UNKNOWN_ACCOUNT, "account_id", total,
                      f"{ids}{'+' if self.unknown_overflow else ''} distinct unknown "
                      f"id{'s' * (ids != 1)}")

    # -- staging -------------------------------------------------------------------------
    def _stage(self, typed: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays, names = [], []
        for c in self.columns:
            t = _arrow_type(self.spec[c].dtype)
            s = typed[c] if c in typed else pd.Series([], dtype=object)
            if len(s) == 0:
                arrays.append(pa.array([], type=t))
            elif self.spec[c].dtype == "date":
                arrays.append(pa.Array.from_pandas(s).cast(pa.date32()))
            else:
                arrays.append(pa.Array.from_pandas(s).cast(t))
            names.append(c)
        folder = self.ctx.stage / "data" / self.tm.name
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(arrays, names=names), folder / f"part-{self.parts:06d}.parquet")
        self.parts += 1

    def _stage_keys(self, src, column, keys: pd.Series, recs) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self.ctx.stage / "keys" / self.tm.name / column
        folder.mkdir(parents=True, exist_ok=True)
        n = len(list(folder.iterdir()))
        table = pa.table({"f": pa.array(np.full(len(recs), src.index, dtype=np.int32)),
                          "r": pa.array(np.asarray(recs, dtype=np.int64)),
                          "k": pa.Array.from_pandas(keys).cast(pa.string())})
        pq.write_table(table, folder / f"part-{n:06d}.parquet")

    def _check_unique(self) -> None:
        import duckdb

        for column in self.spec.unique:
            folder = self.ctx.stage / "keys" / self.tm.name / column
            if not folder.is_dir() or not any(folder.iterdir()):
                continue
            src_glob = str(folder / "*.parquet").replace("'", "''")
            con = duckdb.connect()
            try:
                con.execute(f"""
                    CREATE TEMP VIEW dup AS
                    SELECT k, count(*) AS n, min(f::BIGINT * 4294967296 + r) AS first,
                           list(f ORDER BY f, r) AS fs, list(r ORDER BY f, r) AS rs
                    FROM read_parquet('{src_glob}') WHERE k IS NOT NULL
                    GROUP BY k HAVING count(*) > 1""")
                keys, rows = con.execute("SELECT count(*), coalesce(sum(n), 0) FROM dup"
                                         ).fetchone()
                if not keys:
                    continue
                examples = con.execute(
                    f"SELECT k, n, fs[1:{MAX_ROWS_PER_VALUE}], rs[1:{MAX_ROWS_PER_VALUE}] "
                    f"FROM dup ORDER BY first LIMIT {self.ctx.col.limit}").fetchall()
            finally:
                con.close()
            by_index = {s.index: s for s in self.sources}
            header = self.sources[0].headers[self.sources[0].used[column]]
            expected = f"each {column} only once"
            for k, n, fs, rs in examples:
                per: dict[int, list[int]] = {}
                for f, r in zip(fs, rs, strict=True):
                    per.setdefault(f, []).append(r)
                for f, recs in per.items():
                    self.ctx.col.add_value(self.tm.name, R_DUPLICATE, column, header,
                                           expected, by_index[f], recs, k, n)
            self.ctx.col.set_total(self.tm.name, R_DUPLICATE, column, int(rows),
                                   f"{keys} duplicated value{'s' * (keys != 1)}")


# ----------------------------------------------------------------------------------------
# Running validation (and staging for a load)
# ----------------------------------------------------------------------------------------
@dataclass
class _Run:
    col: Collector
    stage: Path
    stage_data: bool
    drop_unknown_accounts: bool
    progress: bool
    timezone: str = "UTC"
    scales: dict = field(default_factory=dict)
    account_ids: pd.Index | None = None
    sources: list[Source] = field(default_factory=list)
    schema_cache: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _run(config, base_dir, *, drop_unknown_accounts, max_examples, stage: Path,
         stage_data: bool, progress: bool) -> tuple[Report, dict[str, str]]:
    col = Collector(max_examples)
    mf = parse_mapping(config, base_dir, col)
    shown = mf.shown if mf is not None else str(config)
    if mf is None:
        return col.report(shown, {}), {}
    ctx = _Run(col, stage, stage_data, drop_unknown_accounts, progress,
               timezone=mf.settings.get("timezone", "UTC"),
               scales=mf.settings.get("survey_scales", {}))
    runs: dict[str, _TableRun] = {}
    for name, tm in mf.tables.items():
        run = _TableRun(tm, ctx)
        run.run()
        runs[name] = run
        if name == "accounts":
            ctx.account_ids = (pd.Index(pd.unique(pd.concat(run.account_ids)))
                               if run.account_ids else
                               (pd.Index([], dtype="str") if run.columns else None))
    report = col.report(shown, mf.settings)
    report.notes = list(ctx.notes)
    for name, run in runs.items():
        if run.columns is None:
            continue
        report.rows[name] = run.rows
        report.sources[name] = [s.describe() for s in run.sources]
        if run.dropped:
            report.dropped[name] = run.dropped
            report.dropped_ids[name] = run.dropped_ids
        if run.blank:
            report.skipped_blank[name] = run.blank
    tables = {name: str(stage / "data" / name / "*.parquet")
              for name, run in runs.items() if run.columns is not None}
    return report, tables


def validate(config, drop_unknown_accounts: bool = False, *, max_examples: int = MAX_EXAMPLES,
             base_dir=None) -> Report:
    """Check exports against the data contract through a mapping file; write nothing.

    Parameters
    ----------
    config : str, Path or mapping
        The mapping file (YAML), or its content as a dict (see the module docstring).
    drop_unknown_accounts : bool
        Treat child rows whose ``account_id`` is not in ``accounts`` as rows to drop
        (counted in ``report.dropped``) rather than as problems.
    max_examples : int
        Problems kept per (table, rule, column); totals are always counted.
    base_dir : str or Path, optional
        Folder for relative ``file`` entries (default: the mapping file's folder).

    Returns
    -------
    Report
        ``report.ok`` and ``report.summary()``; every rule of the module docstring.
    """
    stage = Path(tempfile.mkdtemp(prefix="cs-analysis-validate-"))
    try:
        report, _ = _run(config, base_dir, drop_unknown_accounts=drop_unknown_accounts,
                         max_examples=max_examples, stage=stage, stage_data=False,
                         progress=False)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


def load(config, out, drop_unknown_accounts: bool = False, progress: bool = False, *,
         max_examples: int = MAX_EXAMPLES, base_dir=None) -> Report:
    """Validate exports, then build a DuckDB workspace from them (all or nothing).

    Every table is read, parsed and validated first (large files chunk by chunk into a
    temporary Parquet folder). If any rule is broken, :class:`LoadError` is raised and
    nothing is written. Otherwise :func:`cs_analysis.workspace.write_workspace` builds
    the workspace in a new file and swaps it in with one ``os.replace``, so an existing
    workspace at ``out`` is either replaced whole or left byte-for-byte unchanged.

    Parameters
    ----------
    config : str, Path or mapping
        The mapping file (YAML), or its content as a dict.
    out : str or Path
        The workspace file to write (``.duckdb``), or a ``postgres://`` URL whose schema
        (``?schema=``) receives the tables in one transaction
        (:func:`cs_analysis.io.postgres.load_postgres`).
    drop_unknown_accounts : bool
        Drop child rows whose ``account_id`` is not in ``accounts``, reporting the count
        per table (``report.dropped``), instead of stopping.
    progress : bool
        Show progress bars while reading and writing.
    max_examples : int
        Problems kept per (table, rule, column) in the report.
    base_dir : str or Path, optional
        Folder for relative ``file`` entries (default: the mapping file's folder).

    Returns
    -------
    Report
        Rows loaded per table, rows dropped, files read.

    Raises
    ------
    LoadError
        When validation found problems (``str()`` is the full report).
    """
    import duckdb

    from cs_analysis.io.postgres import is_postgres_url, load_postgres
    from cs_analysis.workspace import write_workspace

    if is_postgres_url(out):  # a schema on a PostgreSQL server, in one transaction
        return load_postgres(config, out, drop_unknown_accounts, progress,
                             max_examples=max_examples, base_dir=base_dir)
    out = Path(out).expanduser()
    check_out(out, config, base_dir)
    clean_stale(out)
    unchanged = f"{out} is unchanged" if out.exists() else f"nothing was written to {out}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.stem}-staging-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot write beside {out} ({one_line(exc)})") from None
    try:
        report, tables = _run(config, base_dir, drop_unknown_accounts=drop_unknown_accounts,
                              max_examples=max_examples, stage=stage, stage_data=True,
                              progress=progress)
        if not report.ok:
            raise LoadError(report)
        write_workspace(out, tables, config=report.settings, progress=progress)
    except (OSError, duckdb.IOException) as exc:  # a full disk, a permission, a lost drive
        raise OutputError(f"cannot write the workspace {out} ({one_line(exc)}); "
                          f"{unchanged}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


#: DuckDB files carry this magic number at byte 8.
_DUCKDB_MAGIC = b"DUCK"


def check_out(out, config=None, base_dir=None) -> Path:
    """Refuse a workspace path that a load must not write (before reading anything).

    A load replaces ``out`` whole, so ``out`` must not be the mapping file, one of the
    source files, a folder, or an existing file that is not a workspace (a DuckDB file
    with the workspace settings table); its folder must be creatable and writable.

    Raises
    ------
    OutputError
        One line naming ``out`` and what is wrong.
    """
    from cs_analysis.workspace import META_TABLE

    out = Path(out).expanduser()
    if out.is_dir():
        raise OutputError(f"--out {out} is a folder; give the workspace file to write, "
                          f"such as {out / 'workspace.duckdb'}")
    anc = out.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(f"--out {out} cannot be created: {anc} is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out} cannot be written: no permission to write in {anc}")
    target = out.resolve()
    inputs: list[tuple[Path, str]] = []
    if config is not None and not isinstance(config, Mapping):
        inputs.append((Path(config).expanduser(), "the mapping file"))
    if config is not None:
        mf = parse_mapping(config, base_dir, Collector(1))
        for tm in (mf.tables.values() if mf is not None else ()):
            inputs += [(p, f"a source file of {tm.name}") for p, _ in tm.files]
    for path, what in inputs:
        same = path.resolve() == target
        if not same and out.exists() and path.exists():
            try:
                same = os.path.samefile(path, out)
            except OSError:
                same = False
        if same:
            raise OutputError(f"--out {out} is {what}; a load never overwrites its inputs: "
                              "choose a new .duckdb path")
    if out.exists():
        try:
            with open(out, "rb") as f:
                head = f.read(12)
        except OSError as exc:
            raise OutputError(f"--out {out} cannot be read ({one_line(exc)})") from None
        is_workspace = head[8:12] == _DUCKDB_MAGIC
        if is_workspace:
            import duckdb

            try:
                con = duckdb.connect(str(out), read_only=True)
                try:
                    names = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
                finally:
                    con.close()
                is_workspace = META_TABLE in names
            except duckdb.Error:
                is_workspace = False
        if not is_workspace:
            raise OutputError(f"--out {out} exists and is not a cs-analysis workspace; a load "
                              "replaces only workspaces: move it away or choose another path")
    return out


_STALE = r"\.{stem}-(?:staging-)?[a-z0-9_]{{8}}(?:\.duckdb\.tmp(?:\.wal)?)?"


def clean_stale(out) -> list[Path]:
    """Remove what an interrupted load of ``out`` left beside it; return what was removed.

    A load builds ``.<stem>-staging-XXXXXXXX`` (validated rows) and
    ``.<stem>-XXXXXXXX.duckdb.tmp`` (the new workspace) next to ``out`` and removes them
    when it ends; a load that was killed leaves them, and the next load of the same
    ``out`` removes them first.
    """
    out = Path(out)
    if not out.parent.is_dir():
        return []
    pattern = re.compile(_STALE.format(stem=re.escape(out.stem)))
    removed = []
    for p in out.parent.iterdir():
        if not pattern.fullmatch(p.name):
            continue
        is_stage = "-staging-" in p.name
        if is_stage != p.is_dir() or (not is_stage and ".duckdb.tmp" not in p.name):
            continue
        try:
            shutil.rmtree(p) if is_stage else p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed
