"""Read exports, map them onto the data contract, validate them, and load a workspace.

A CS analyst's exports (CRM, billing, product analytics, survey tool, help desk) are
mapped onto the canonical tables of :mod:`cs_analysis.contract` by a **mapping file**
written once, then checked with :func:`validate` (``cs-analysis validate``) and turned
into a workspace with :func:`load` (``cs-analysis load``).

The mapping file (YAML)
-----------------------
::

    workspace:                      # optional settings stored in the workspace
      timezone: Asia/Tokyo          # naive timestamps are read in this zone, stored as UTC
      currency: JPY
      as_of: 2026-10-31             # optional; default derived from the data
      survey_scales: {csat: [1, 5], ces: [1, 7]}
    tables:
      accounts:
        file: exports/顧客一覧.csv   # relative to the mapping file's folder
        encoding: cp932             # optional; detected otherwise
        columns:                    # canonical name: source header
          account_id: 顧客ID
          signup_date: 契約開始日
          segment: セグメント
        values:                     # source words mapped onto the contract's / team's words
          segment: {中小企業: SMB, 中堅企業: Mid-Market, 大企業: Enterprise}
        date_format: "%Y/%m/%d"     # optional; otherwise the formats listed below
      subscriptions: {...}

Keys of a table entry:

``file`` (required)
    A path, a glob pattern (``exports/events_*.csv``; files are read in name order) or a
    list of paths, relative to the mapping file's folder. ``.csv`` / ``.tsv`` / ``.txt``
    are CSV, ``.xlsx`` / ``.xlsm`` Excel, ``.parquet`` / ``.pq`` Parquet; ``format:
    csv|xlsx|parquet`` overrides the extension.
``columns``
    ``canonical_name: source header``. A header that already is the canonical name needs
    no entry (so a table exported from a workspace maps itself); headers are matched
    exactly, then ignoring surrounding spaces and full-/half-width differences. Source
    columns that are not mapped are ignored. ``attr_*`` driver ratings of
    ``survey_responses`` may be mapped too.
``values``
    Per canonical column, ``source text: canonical value``; applied to the cell text
    before parsing and before the vocabulary checks. Cells not listed keep their text.
    A target of ``null`` turns that text into a missing value (e.g. ``9999/12/31: null``
    for an ``end_date`` meaning "no end"). Quote keys such as ``"yes"`` and ``"no"``
    (YAML would read them as booleans).
``encoding``
    CSV only; detected otherwise (see below). ``shift_jis`` (or ``sjis``) is read as
    ``cp932``, the superset Excel actually writes.
``sheet``
    Excel only: sheet name (default: the first sheet).
``delimiter``
    CSV only: default ``,`` (a tab for ``.tsv``).
``header_row``
    Line (CSV) or sheet row (Excel) holding the headers, default 1, for exports with
    title lines above the header.
``date_format``
    A :func:`~datetime.datetime.strptime` format, a list of them, or a mapping
    ``column: format(s)``, tried before the default formats (which stay accepted: they
    are all year-first, so never ambiguous with a format such as ``%m/%d/%Y``).

The ``workspace`` section accepts ``timezone`` (an IANA name, default ``UTC``),
``currency`` (default ``USD``), ``as_of`` (a date) and ``survey_scales``
(``name: [low, high]``; NPS is always 0–10). Unknown keys, tables or columns are errors
that name the mapping file and the entry.

Reading
-------
- **Encodings.** An explicit ``encoding:`` wins. Otherwise: a UTF-8 byte-order mark means
  UTF-8 with BOM; text that decodes as UTF-8 is UTF-8; otherwise charset-normalizer
  guesses, and any Shift_JIS-family guess, or a guess it cannot make on text that decodes
  as CP932 into Japanese characters, is read as ``cp932`` (decoding Excel's Japanese CSVs
  as ``shift_jis_2004`` silently turns 髙 into 郄 and 﨑 into 粼). The encoding used is
  shown in the report.
- **Text.** Every CSV cell is read as text (``00042`` stays ``00042``); surrounding
  spaces are trimmed and empty cells are null. Rows whose cells are all empty (blank
  lines, the ``,,,`` rows Excel leaves) are skipped and counted in the report. A CSV row
  with more cells than the header is reported (an unquoted delimiter inside a value
  shifts every column after it).
- **Dates and timestamps.** Accepted: ``2024-04-01``, ``2024/04/01``, ``2024/4/1``,
  ``2024年4月1日``, each optionally followed by a time (``9:05``, ``09:05:07``,
  ``09:05:07.123``, separated by a space or ``T``) and, for timestamps, an offset
  (``Z``, ``+09:00``, ``+0900``); ``20240401``; and Excel serial dates of five digits
  (``45383`` is 2024-04-01, a fraction is the time of day, rounded to the millisecond).
  Full-width digits are read as digits. Month-first (``4/1/2024``), day-first and
  two-digit years are never guessed: name them with ``date_format``. Years before 1900
  are errors. Excel cells holding dates, and Parquet date/timestamp columns, are used as
  they are.
- **A ``*_date`` column given a timestamp keeps the date as written** (``2024/4/1 23:30``
  is 2024-04-01, whatever the offset or time zone).
- **Timestamps** without an offset are local times in the workspace time zone and are
  stored as naive UTC; those with an offset (or tz-aware Parquet columns) are converted to
  UTC. In the hour repeated when clocks go back, a local time is read as its first
  (summer-time) occurrence; a local time in the hour skipped when clocks go forward is
  moved forward by the gap (such times cannot happen).
- **Numbers.** ``1200``, ``-3.5``, ``1.2e3``, and thousands separators in the strict form
  ``1,200`` / ``12,345,678.9`` (groups of exactly three digits; the point is always the
  decimal separator, so ``1,20`` is an error, never 1.2). ``nan``, ``inf``, currency
  symbols and units are errors. **Whole numbers** (``int`` columns) must be integral:
  ``3`` and ``3.0`` are 3, ``3.5`` is an error.
- Large files are read in chunks of :data:`CHUNK_ROWS` rows; each validated chunk is
  written to a temporary Parquet folder that :func:`cs_analysis.workspace.write_workspace`
  reads with a glob, so memory stays bounded. Source files are only ever opened for
  reading.

Validation
----------
Each broken rule yields a :class:`Problem` naming the file, the row(s) as the user sees
them (CSV: the line number, the header being line 1, counted correctly across cells that
contain line breaks; Excel: the sheet row; Parquet: the row, first row 1), the source
header and canonical column, the bad value and what was expected. Problems are grouped by
table, rule and column; the first ``max_examples`` (default 5) of each group are kept,
with the group's total. Nothing is coerced or dropped silently. The rules, all derived
from :data:`cs_analysis.contract.TABLES`:

- the mapping: unknown tables, keys or canonical columns, headers not in the file, a
  required column not mapped, an unreadable file;
- a required column null (``missing value``);
- unparseable date, timestamp, number or whole number;
- duplicate unique keys (every row involved is listed);
- ranges (``mrr`` ≥ 0, ``employees`` ≥ 0, ``influence`` 1–5, ``sentiment`` −2…2,
  ``csm_rating`` 1–5, ticket ``csat`` 1–5) and survey ``score`` within its survey's scale
  (NPS 0–10; CSAT and CES from ``survey_scales`` or the contract's defaults; other
  surveys unchecked);
- closed vocabularies (``touch_model``, ``domain``, ``decision_style``, ``status``,
  ``channel``) after ``values:`` is applied;
- date order (``end_date`` before ``start_date``, ``resolved_at`` or
  ``first_response_at`` before ``opened_at``);
- an ``account_id`` of a child table not in ``accounts``: an error, unless
  ``drop_unknown_accounts=True``, which drops those rows (their other problems are then
  not checked) and reports the count dropped per table.

The column checks (missing values, ranges, vocabularies) run as a pandera schema built
from the contract; parsing, date order, survey scales, uniqueness (DuckDB over the staged
keys) and account references are checked here.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import glob as globlib
import io
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cs_analysis.contract import DEFAULT_SURVEY_SCALES, TABLE_NAMES, TABLES, Column, survey_scale

__all__ = [
    "CHUNK_ROWS",
    "LoadError",
    "MappingError",
    "Problem",
    "ProblemGroup",
    "Report",
    "detect_encoding",
    "load",
    "read_mapping",
    "validate",
]

#: Rows read, parsed and validated at a time (bounded memory for large event files).
CHUNK_ROWS = 500_000
#: Problems kept per (table, rule, column) group; the group keeps the total count.
MAX_EXAMPLES = 5
#: Rows listed per duplicated key or unknown account id (the total is always given).
MAX_ROWS_PER_VALUE = 20

TABLE_KEYS = ("file", "format", "encoding", "sheet", "delimiter", "header_row", "columns",
              "values", "date_format")
WORKSPACE_KEYS = ("timezone", "currency", "as_of", "survey_scales")
FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx",
           ".parquet": "parquet", ".pq": "parquet"}

# Rule names (the ``rule`` of a Problem).
R_MAPPING = "mapping"
R_UNREADABLE = "unreadable file"
R_HEADER = "header not found"
R_MISSING_COLUMN = "missing column"
R_EXTRA_CELLS = "extra cells"
R_NULL = "missing value"
R_PARSE = {"date": "unparseable date", "timestamp": "unparseable timestamp",
           "float": "unparseable number", "int": "unparseable whole number"}
R_DUPLICATE = "duplicate key"
R_RANGE = "out of range"
R_SCALE = "outside survey scale"
R_VOCAB = "not in vocabulary"
R_ORDER = "date order"
R_UNKNOWN_ACCOUNT = "unknown account"
#: Rules about the mapping or a file as a whole (counted in entries, not rows).
_ENTRY_RULES = (R_MAPPING, R_UNREADABLE, R_HEADER, R_MISSING_COLUMN)

EXPECT = {
    "date": "a date such as 2024-04-01, 2024/04/01 or 2024/4/1 (a time such as 9:05 may "
            "follow), 20240401, or an Excel serial date such as 45383; year 1900 or later",
    "timestamp": "a timestamp such as 2024-04-01 09:05, 2024/4/1 9:05, "
                 "2024-04-01T09:05:00+09:00, or an Excel serial date such as 45383.38; "
                 "year 1900 or later",
    "float": "a number such as 1200, -3.5 or 1,200 (point as the decimal separator)",
    "int": "a whole number such as 12",
}


# ----------------------------------------------------------------------------------------
# Problems and the report
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One broken rule at one place in a source file (or the mapping file).

    Parameters
    ----------
    rule : str
        Short rule name (``"unparseable date"``, ``"duplicate key"``, ...).
    table : str or None
        Canonical table (None for problems of the mapping file as a whole).
    file : str or None
        The file as named in the mapping (relative to its folder), or the mapping file.
    column : str or None
        Canonical column.
    source_column : str or None
        The header in the source file.
    rows : tuple of int
        Rows as the user sees them: CSV line numbers (header = line 1), Excel sheet rows,
        Parquet rows (first row 1). Possibly truncated: see ``n_rows``.
    row_label : str
        ``"line"`` (CSV) or ``"row"``.
    value : object
        The bad value, as found in the file.
    expected : str
        What was expected.
    n_rows : int
        Number of rows involved (``len(rows)`` unless truncated).
    entry : str or None
        The mapping entry concerned (``tables.accounts.columns.signup_date``).
    """

    rule: str
    table: str | None
    file: str | None
    column: str | None = None
    source_column: str | None = None
    rows: tuple[int, ...] = ()
    row_label: str = "line"
    value: Any = None
    expected: str = ""
    n_rows: int = 0
    entry: str | None = None

    def where(self) -> str:
        """Where the problem is: file, rows and column, as one phrase."""
        parts = [self.file or "?"]
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows)
            label = self.row_label + ("s" if len(self.rows) > 1 else "")
            more = self.n_rows - len(self.rows)
            parts.append(f"{label} {shown}" + (f" (+{more} more)" if more > 0 else ""))
        if self.entry:
            parts.append(f"entry {self.entry}")
        if self.column:
            src = (f" ({self.source_column})"
                   if self.source_column and self.source_column != self.column else "")
            parts.append(f"column {self.column}{src}")
        return ", ".join(parts)

    def __str__(self) -> str:
        value = "" if self.value is None else f": {_show(self.value)}"
        return f"{self.where()}{value} — {self.rule}; expected {self.expected}"


@dataclass
class ProblemGroup:
    """The problems of one rule on one column of one table.

    Parameters
    ----------
    table, rule, column, source_column, expected
        As in :class:`Problem`.
    total : int
        How many rows (or entries) break the rule.
    examples : list of Problem
        The first ones, in file order.
    detail : str
        Extra counts (e.g. how many distinct values are duplicated).
    """

    table: str | None
    rule: str
    column: str | None
    source_column: str | None
    expected: str
    total: int = 0
    examples: list[Problem] = field(default_factory=list)
    detail: str = ""


@dataclass
class Report:
    """What validation found, readable by an analyst (:meth:`summary`).

    Attributes
    ----------
    mapping : str
        The mapping file (or ``"<mapping>"`` for an in-memory mapping).
    groups : list of ProblemGroup
        Problems grouped by table, rule and column.
    rows : dict
        Rows per table that are (or would be) loaded.
    dropped : dict
        Rows dropped per table because their ``account_id`` is not in ``accounts``
        (only with ``drop_unknown_accounts=True``).
    dropped_ids : dict
        The first few dropped account ids per table.
    skipped_blank : dict
        Rows skipped per table because every cell was empty.
    sources : dict
        Per table, how each file was read (kind, encoding).
    settings : dict
        Workspace settings from the mapping file.
    notes : list of str
        Observations that are not errors (e.g. a survey named ``NPS`` rather than
        ``nps``, which gets no scale check and which analyses will not find as NPS).
    """

    mapping: str
    groups: list[ProblemGroup] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_ids: dict[str, list[str]] = field(default_factory=dict)
    skipped_blank: dict[str, int] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no rule is broken."""
        return not self.groups

    @property
    def problems(self) -> list[Problem]:
        """The problems kept (the first few of each group), group by group."""
        return [p for g in self.groups for p in g.examples]

    @property
    def totals(self) -> dict[tuple[str | None, str, str | None], int]:
        """Total count per ``(table, rule, column)``."""
        return {(g.table, g.rule, g.column): g.total for g in self.groups}

    def to_frame(self) -> pd.DataFrame:
        """The problems kept, one row each, with their group's total."""
        rows = []
        for g in self.groups:
            for p in g.examples:
                rows.append({"table": p.table, "rule": p.rule, "file": p.file,
                             "rows": ", ".join(map(str, p.rows)), "column": p.column,
                             "source_column": p.source_column,
                             "value": None if p.value is None else _show(p.value),
                             "expected": p.expected, "group_total": g.total})
        cols = ["table", "rule", "file", "rows", "column", "source_column", "value",
                "expected", "group_total"]
        return pd.DataFrame(rows, columns=cols)

    def summary(self) -> str:
        """The report as text: the problems, or "all N tables valid" with rows per table."""
        out = []
        if self.ok:
            out.append(f"{self.mapping}: all {len(self.rows)} tables valid")
        else:
            n = sum(g.total for g in self.groups)
            tables = len({g.table for g in self.groups})
            out.append(f"{self.mapping}: {_plural(n, 'problem')} of "
                       f"{_plural(len(self.groups), 'kind')} in {_plural(tables, 'table')}; "
                       "nothing can be loaded until they are fixed")
        for g in self.groups:
            out.append("")
            head = f"[{g.table or 'mapping file'}] {g.rule}"
            if g.column:
                src = (f" (source column {g.source_column!r})"
                       if g.source_column and g.source_column != g.column else "")
                head += f" in {g.column}{src}"
            counts = []
            if g.rule not in _ENTRY_RULES:
                counts.append(_plural(g.total, "row"))
            if g.detail:
                counts.append(g.detail)
            listed = sum(max(p.n_rows, 1) for p in g.examples)
            if g.rule not in _ENTRY_RULES and g.total > listed:
                counts.append(f"first {len(g.examples)} shown")
            out.append(head + (f": {', '.join(counts)}" if counts else ""))
            out.append(f"    expected {g.expected}")
            for p in g.examples:
                out.append("    " + _example_line(p))
        if self.rows:
            out.append("")
            out.append("rows per table:" if self.ok else "rows read per table:")
            width = max(len(t) for t in self.rows)
            for t, n in self.rows.items():
                src = "; ".join(self.sources.get(t, []))
                out.append(f"  {t:<{width}}  {n:>11,}  {src}")
        for t, n in self.dropped.items():
            ids = self.dropped_ids.get(t, [])
            more = ", …" if len(ids) >= MAX_ROWS_PER_VALUE else ""
            out.append(f"dropped {_plural(n, 'row')} of {t} whose account_id is not in "
                       f"accounts (ids: {', '.join(ids)}{more})")
        for t, n in self.skipped_blank.items():
            out.append(f"skipped {_plural(n, 'empty row')} in {t}")
        for note in self.notes:
            out.append(f"note: {note}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.summary()


class LoadError(RuntimeError):
    """A load stopped because validation found problems; nothing was written.

    ``str()`` is the full report; the :class:`Report` is in ``.report``.
    """

    def __init__(self, report: Report):
        super().__init__(report.summary())
        self.report = report


class MappingError(ValueError):
    """The mapping file is invalid; ``str()`` lists every problem, ``.report`` holds them."""

    def __init__(self, report: Report):
        super().__init__(report.summary())
        self.report = report


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' * (n != 1)}"


def _show(v) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, pd.Timestamp | dt.datetime):
        return str(v)
    return repr(v) if not isinstance(v, int | float) else str(v)


def _example_line(p: Problem) -> str:
    loc = p.file or ""
    if p.rows:
        label = p.row_label + ("s" if len(p.rows) > 1 else "")
        more = p.n_rows - len(p.rows)
        loc += f" {label} {', '.join(map(str, p.rows))}" + (f" (+{more} more)" if more > 0
                                                             else "")
    if p.entry:
        loc += f" [{p.entry}]"
    return loc + ("" if p.value is None else f": {_show(p.value)}")


# ----------------------------------------------------------------------------------------
# The mapping file
# ----------------------------------------------------------------------------------------
@dataclass
class TableMapping:
    """One ``tables.<name>`` entry of a mapping file, resolved.

    Attributes
    ----------
    name : str
        Canonical table.
    files : list of (Path, str)
        Each source file and how to show it (as written, relative to the mapping folder).
    format, encoding, sheet, delimiter, header_row
        Reading options (None: from the extension / detected / defaults).
    columns : dict
        ``canonical: source header`` as written.
    values : dict
        ``canonical: {source text: value}``.
    date_formats : dict
        ``canonical: [formats]``; key ``"*"`` applies to every date/timestamp column.
    """

    name: str
    files: list[tuple[Path, str]]
    format: str | None = None
    encoding: str | None = None
    sheet: str | int | None = None
    delimiter: str | None = None
    header_row: int = 1
    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    date_formats: dict[str, list[str]] = field(default_factory=dict)

    def formats_for(self, column: str) -> list[str] | None:
        """Explicit date formats for ``column`` (None: the default formats)."""
        return self.date_formats.get(column) or self.date_formats.get("*")


@dataclass
class MappingFile:
    """A parsed mapping file.

    Attributes
    ----------
    path : Path or None
        The YAML file (None for an in-memory mapping).
    shown : str
        How to name it in messages.
    base_dir : Path
        Folder that relative ``file`` entries are relative to.
    settings : dict
        The ``workspace`` section, checked.
    tables : dict
        ``name: TableMapping``, in the contract's table order.
    """

    path: Path | None
    shown: str
    base_dir: Path
    settings: dict[str, Any]
    tables: dict[str, TableMapping]


def read_mapping(config, base_dir=None) -> MappingFile:
    """Read and check a mapping file.

    Parameters
    ----------
    config : str, Path or mapping
        Path of the YAML mapping file, or its content as a dict.
    base_dir : str or Path, optional
        Folder for relative ``file`` entries (default: the mapping file's folder, or the
        current folder for a dict).

    Returns
    -------
    MappingFile

    Raises
    ------
    MappingError
        Listing every problem of the mapping (unknown tables, keys or columns, bad
        settings, files that do not exist).
    """
    col = _Collector(MAX_EXAMPLES)
    mf = _parse_mapping(config, base_dir, col)
    if col.groups:
        raise MappingError(col.report(mf.shown if mf else str(config), {}))
    return mf


def _parse_mapping(config, base_dir, col: _Collector) -> MappingFile | None:
    import yaml

    if isinstance(config, Mapping):
        path, shown, data = None, "<mapping>", dict(config)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        path = Path(config).expanduser()
        shown = str(config)
        base = Path(base_dir) if base_dir is not None else path.resolve().parent

        def fail(expected, value=None):
            col.add_one(R_MAPPING, None, shown, expected=expected, value=value)

        if not path.is_file():
            fail("an existing mapping file (YAML)", value=str(path))
            return None
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            fail(f"a readable UTF-8 YAML file ({_one_line(exc)})")
            return None
    mf = MappingFile(path, shown, base, {}, {})

    def bad(entry, expected, value=None, table=None):
        col.add_one(R_MAPPING, table, shown, entry=entry, expected=expected, value=value)

    if not isinstance(data, Mapping):
        bad("(top level)", "a mapping with `tables:` (and optionally `workspace:`)")
        return mf
    for key in data:
        if key not in ("workspace", "tables"):
            bad(str(key), "only the top-level keys `workspace` and `tables`", value=key)
    mf.settings = _parse_settings(data.get("workspace") or {}, bad)
    tables = data.get("tables")
    if not isinstance(tables, Mapping) or not tables:
        bad("tables", "a mapping of canonical table names to their source files")
        return mf
    parsed = {}
    for name, entry in tables.items():
        where = f"tables.{name}"
        if name not in TABLES:
            bad(where, f"a table of the contract: {', '.join(TABLE_NAMES)}", value=name)
            continue
        tm = _parse_table(str(name), entry, base, where, bad)
        if tm is not None:
            parsed[name] = tm
    if "accounts" not in tables:
        bad("tables.accounts", "an accounts table: every other table refers to it")
    mf.tables = {n: parsed[n] for n in TABLE_NAMES if n in parsed}
    return mf


def _parse_settings(ws, bad) -> dict[str, Any]:
    import zoneinfo

    out: dict[str, Any] = {}
    if not isinstance(ws, Mapping):
        bad("workspace", "a mapping of settings (timezone, currency, as_of, survey_scales)")
        return out
    for key, value in ws.items():
        entry = f"workspace.{key}"
        if key not in WORKSPACE_KEYS:
            bad(entry, f"one of the settings {', '.join(WORKSPACE_KEYS)}", value=key)
        elif key == "timezone":
            try:
                zoneinfo.ZoneInfo(str(value))
                out["timezone"] = str(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                bad(entry, "an IANA time zone such as Asia/Tokyo or UTC", value=value)
        elif key == "currency":
            out["currency"] = str(value)
        elif key == "as_of":
            try:
                out["as_of"] = (value if isinstance(value, dt.date)
                                else dt.date.fromisoformat(str(value))).isoformat()
            except ValueError:
                bad(entry, "a date such as 2026-10-31", value=value)
        elif key == "survey_scales":
            if not isinstance(value, Mapping):
                bad(entry, "a mapping such as {csat: [1, 5], ces: [1, 7]}", value=value)
                continue
            scales = {}
            for survey, rng in value.items():
                ok = (isinstance(rng, list | tuple) and len(rng) == 2
                      and all(isinstance(x, int | float) and not isinstance(x, bool)
                              for x in rng) and rng[0] < rng[1])
                if not ok:
                    bad(f"{entry}.{survey}", "[low, high] with low < high", value=rng)
                elif str(survey) == "nps" and tuple(rng) != DEFAULT_SURVEY_SCALES["nps"]:
                    bad(f"{entry}.nps", "NPS is always 0–10 (leave it out)", value=rng)
                else:
                    scales[str(survey)] = [rng[0], rng[1]]
            out["survey_scales"] = scales
    return out


def _parse_table(name, entry, base, where, bad) -> TableMapping | None:
    spec = TABLES[name]
    if isinstance(entry, str):
        entry = {"file": entry}
    if not isinstance(entry, Mapping):
        bad(where, "a mapping with at least `file:`", value=entry, table=name)
        return None
    for key in entry:
        if key not in TABLE_KEYS:
            bad(f"{where}.{key}", f"one of the keys {', '.join(TABLE_KEYS)}", value=key,
                table=name)
    files = _resolve_files(entry.get("file"), base, f"{where}.file", bad, name)
    tm = TableMapping(name, files or [])
    fmt = entry.get("format")
    if fmt is not None and fmt not in ("csv", "xlsx", "parquet"):
        bad(f"{where}.format", "csv, xlsx or parquet", value=fmt, table=name)
    tm.format = fmt
    if entry.get("encoding") is not None:
        enc = str(entry["encoding"])
        try:
            codecs.lookup(enc)
            tm.encoding = enc
        except LookupError:
            bad(f"{where}.encoding", "an encoding name such as cp932, utf-8 or utf-8-sig",
                value=enc, table=name)
    tm.sheet = entry.get("sheet")
    if entry.get("delimiter") is not None:
        delim = str(entry["delimiter"])
        if len(delim) != 1:
            bad(f"{where}.delimiter", "a single character such as , or ; or a tab",
                value=delim, table=name)
        tm.delimiter = delim
    hr = entry.get("header_row", 1)
    if not isinstance(hr, int) or isinstance(hr, bool) or hr < 1:
        bad(f"{where}.header_row", "a line / row number, 1 or more", value=hr, table=name)
    else:
        tm.header_row = hr
    columns = entry.get("columns") or {}
    if not isinstance(columns, Mapping):
        bad(f"{where}.columns", "a mapping `canonical_name: source header`", value=columns,
            table=name)
        columns = {}
    for canon, header in columns.items():
        canon = str(canon)
        if canon not in spec:
            bad(f"{where}.columns.{canon}",
                f"a column of {name}: {', '.join(spec.names())}"
                + (f" (or {spec.extra_prefix}*)" if spec.extra_prefix else ""),
                value=canon, table=name)
        elif header is None or isinstance(header, Mapping | list):
            bad(f"{where}.columns.{canon}", "the header of a column of the source file",
                value=header, table=name)
        else:
            tm.columns[canon] = str(header)
    values = entry.get("values") or {}
    if not isinstance(values, Mapping):
        bad(f"{where}.values", "a mapping `column: {source text: value}`", value=values,
            table=name)
        values = {}
    for canon, mapping in values.items():
        canon = str(canon)
        e = f"{where}.values.{canon}"
        if canon not in spec:
            bad(e, f"a column of {name}: {', '.join(spec.names())}", value=canon, table=name)
            continue
        if not isinstance(mapping, Mapping):
            bad(e, "a mapping `source text: value`", value=mapping, table=name)
            continue
        clean = {}
        for k, v in mapping.items():
            if isinstance(k, bool) or isinstance(v, bool):
                bad(e, "quoted words (YAML reads yes/no/true/false/on/off as booleans)",
                    value=f"{k}: {v}", table=name)
                continue
            clean[_text_key(k)] = None if v is None else _text_key(v)
        tm.values[canon] = clean
    df = entry.get("date_format")
    if df is not None:
        if isinstance(df, str | list):
            df = {"*": df}
        if not isinstance(df, Mapping):
            bad(f"{where}.date_format", "a format such as \"%Y/%m/%d\", a list of formats, "
                "or a mapping column: format", value=df, table=name)
        else:
            for canon, fmts in df.items():
                canon = str(canon)
                e = f"{where}.date_format" + ("" if canon == "*" else f".{canon}")
                if canon != "*" and (canon not in spec
                                     or spec[canon].dtype not in ("date", "timestamp")):
                    bad(e, f"a date or timestamp column of {name}", value=canon, table=name)
                    continue
                fmts = [fmts] if isinstance(fmts, str) else fmts
                if not isinstance(fmts, list) or not fmts or not all(
                        isinstance(f, str) and "%" in f for f in fmts):
                    bad(e, "strptime formats such as \"%Y/%m/%d %H:%M\"", value=fmts,
                        table=name)
                    continue
                tm.date_formats[canon] = fmts
    return tm


def _text_key(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _resolve_files(value, base: Path, entry, bad, table) -> list[tuple[Path, str]]:
    if value is None:
        bad(entry, "the path of the export file (relative to the mapping file)", table=table)
        return []
    items = value if isinstance(value, list) else [value]
    out: list[tuple[Path, str]] = []
    for item in items:
        text = str(item)
        path = Path(text).expanduser()
        full = path if path.is_absolute() else base / path
        if any(ch in text for ch in "*?["):
            matches = sorted(globlib.glob(str(full)))
            if not matches:
                bad(entry, f"files matching this pattern in {base}", value=text, table=table)
            for m in matches:
                mp = Path(m)
                try:
                    shown = str(mp.relative_to(base))
                except ValueError:
                    shown = m
                out.append((mp, shown))
        elif not full.is_file():
            hint = ""
            if full.parent.is_dir():
                near = sorted(p.name for p in full.parent.iterdir() if p.is_file())[:12]
                hint = f"; files in {full.parent}: {', '.join(near) or 'none'}"
            bad(entry, f"an existing file (looked for {full}{hint})", value=text, table=table)
        else:
            out.append((full, text))
    return out


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


# ----------------------------------------------------------------------------------------
# Encodings
# ----------------------------------------------------------------------------------------
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff5e]")


def detect_encoding(path) -> str:
    """Guess the text encoding of a CSV export.

    Parameters
    ----------
    path : str or Path
        The file (only read).

    Returns
    -------
    str
        ``"utf-8-sig"`` (UTF-8 with a byte-order mark), ``"utf-8"``, ``"cp932"`` (any
        Shift_JIS-family guess: Excel on Japanese Windows writes CP932, and decoding it
        as ``shift_jis_2004`` silently turns 髙 into 郄), or charset-normalizer's guess.

    Raises
    ------
    ValueError
        When no encoding can be guessed; name it with ``encoding:`` in the mapping.
    """
    return _detect_encoding(Path(path))[0]


def _detect_encoding(path: Path) -> tuple[str, str]:
    with open(path, "rb") as f:
        head = f.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig", "byte-order mark"
        if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            return "utf-16", "byte-order mark"
        f.seek(0)
        window = b""
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            m = re.search(rb"[\x80-\xff]", block)
            if m:
                start = block.rfind(b"\n", 0, m.start()) + 1
                window = block[start:] + f.read(1 << 20)
                break
    if not window:
        return "utf-8", "ASCII only"
    cut = window.rfind(b"\n")
    if cut > 0:
        window = window[:cut]
    try:
        window.decode("utf-8")
        return "utf-8", "detected"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(window).best()
    guess = best.encoding.lower().replace("-", "_") if best is not None else None
    if guess and (guess.startswith("shift_jis") or guess in ("cp932", "ms932", "sjis")):
        return "cp932", "detected"
    try:
        text = window.decode("cp932")
        non_ascii = [ch for ch in text if ord(ch) > 127]
        japanese = sum(1 for ch in non_ascii if _JAPANESE.match(ch))
        if non_ascii and japanese >= 0.5 * len(non_ascii):
            return "cp932", "detected"
    except UnicodeDecodeError:
        pass
    if guess:
        return codecs.lookup(guess).name, "detected"
    raise ValueError("cannot guess the encoding; name it with `encoding:` (e.g. cp932)")


# ----------------------------------------------------------------------------------------
# Sources: one file of one table
# ----------------------------------------------------------------------------------------
@dataclass
class _Source:
    index: int
    table: str
    path: Path
    shown: str
    kind: str
    header_row: int = 1
    encoding: str | None = None
    encoding_how: str = ""
    delimiter: str = ","
    sheet: str | None = None
    headers: list[str] = field(default_factory=list)
    has_quotes: bool = False
    data_offset: int = 0
    used: dict[str, int] = field(default_factory=dict)

    @property
    def row_label(self) -> str:
        return "line" if self.kind == "csv" else "row"

    @property
    def display(self) -> str:
        return f"{self.shown} [{self.sheet}]" if self.kind == "xlsx" and self.sheet else \
            self.shown

    def describe(self) -> str:
        if self.kind == "csv":
            how = f", {self.encoding_how}" if self.encoding_how else ""
            return f"{self.display} (csv, {self.encoding}{how})"
        return f"{self.display} ({self.kind})"

    def rows_of(self, recs) -> dict[int, int]:
        """User-visible row numbers of 0-based data record indices."""
        recs = sorted(set(int(r) for r in recs))
        if self.kind == "parquet":
            return {r: r + 1 for r in recs}
        if self.kind == "csv" and self.has_quotes and recs:
            return _csv_lines(self, recs)
        return {r: self.header_row + 1 + r for r in recs}


def _csv_lines(src: _Source, recs: list[int]) -> dict[int, int]:
    """Line where each record starts, counting quoted line breaks (one pass, stops early)."""
    need, last = set(recs), recs[-1]
    out: dict[int, int] = {}
    # errors="replace": counting lines needs no exact text, and a file that cannot be
    # decoded further on (reported separately) must not break the report
    with open(src.path, encoding=src.encoding, errors="replace", newline="") as f:
        for _ in range(src.header_row - 1):
            f.readline()
        reader = csv.reader(f, delimiter=src.delimiter)
        next(reader, None)
        prev = reader.line_num
        for rec, _row in enumerate(reader):
            if rec in need:
                out[rec] = src.header_row - 1 + prev + 1
            prev = reader.line_num
            if rec >= last:
                break
    for r in recs:  # should not happen; fall back to the simple count
        out.setdefault(r, src.header_row + 1 + r)
    return out


def _open_source(index, tm: TableMapping, path: Path, shown: str, col: _Collector,
                 entry: str) -> _Source | None:
    kind = tm.format or FORMATS.get(path.suffix.lower())
    if kind is None:
        col.add_one(R_UNREADABLE, tm.name, shown, entry=entry,
                    expected="a .csv, .tsv, .txt, .xlsx or .parquet file (or set `format:`)"
                    + ("; save .xls files as .xlsx or CSV" if path.suffix.lower() == ".xls"
                       else ""), value=path.suffix)
        return None
    src = _Source(index, tm.name, path, shown, kind, header_row=tm.header_row)
    try:
        if kind == "csv":
            _open_csv(src, tm)
        elif kind == "xlsx":
            _open_xlsx(src, tm)
        else:
            import pyarrow.parquet as pq

            src.headers = list(pq.ParquetFile(path).schema_arrow.names)
    except Exception as exc:  # any reader failure is reported, not raised
        expected = {"csv": "a CSV file", "xlsx": "an Excel .xlsx workbook",
                    "parquet": "a Parquet file"}[kind]
        if isinstance(exc, UnicodeDecodeError):
            expected = (f"text in {src.encoding} ({_one_line(exc)}); set `encoding:` in the "
                        "mapping (cp932, utf-8, utf-8-sig)")
        elif isinstance(exc, _SourceError):
            expected = str(exc)
        else:
            expected += f" that can be read ({type(exc).__name__}: {_one_line(exc)})"
        col.add_one(R_UNREADABLE, tm.name, src.display, entry=entry, expected=expected)
        return None
    return src


class _SourceError(ValueError):
    pass


def _open_csv(src: _Source, tm: TableMapping) -> None:
    if tm.encoding and codecs.lookup(tm.encoding).name == "shift_jis":
        # Excel's "Shift_JIS" is CP932, a superset that also decodes 髙, 﨑, ①, ㈱ ...
        src.encoding, src.encoding_how = "cp932", f"{tm.encoding} in the mapping, read as cp932"
    elif tm.encoding:
        src.encoding, src.encoding_how = tm.encoding, "from the mapping"
    else:
        try:
            src.encoding, src.encoding_how = _detect_encoding(src.path)
        except ValueError as exc:
            raise _SourceError(str(exc)) from None
    src.delimiter = tm.delimiter or ("\t" if src.path.suffix.lower() == ".tsv" else ",")
    with open(src.path, encoding=src.encoding, newline="") as f:
        for _ in range(src.header_row - 1):
            f.readline()
        header = next(csv.reader(f, delimiter=src.delimiter), None)
    if not header:
        raise _SourceError(f"a header on line {src.header_row} (the file is empty there)")
    src.headers = [h.strip().lstrip("\ufeff") for h in header]
    if codecs.lookup(src.encoding).name.startswith(("utf-16", "utf-32")):
        raise _SourceError("a CSV in UTF-8 or CP932 (save it again as \"CSV UTF-8\")")
    with open(src.path, "rb") as f:
        head = f.read(1 << 20)
        newline = b"\n" if b"\n" in head or b"\r" not in head else b"\r"
        offset, seen = 0, 0
        f.seek(0)
        while seen < src.header_row:
            block = f.read(1 << 20)
            if not block:
                offset = f.tell()
                break
            pos = -1
            while seen < src.header_row:
                pos = block.find(newline, pos + 1)
                if pos < 0:
                    break
                seen += 1
            if seen == src.header_row:
                offset = f.tell() - len(block) + pos + 1
            if b'"' in block:
                src.has_quotes = True
        src.data_offset = offset
        while not src.has_quotes and (block := f.read(1 << 20)):
            src.has_quotes = b'"' in block


def _open_xlsx(src: _Source, tm: TableMapping) -> None:
    import openpyxl

    wb = openpyxl.load_workbook(src.path, read_only=True, data_only=True)
    try:
        if tm.sheet is None:
            ws = wb.worksheets[0]
        elif str(tm.sheet) in wb.sheetnames:
            ws = wb[str(tm.sheet)]
        else:
            raise _SourceError(f"a sheet named {tm.sheet!r}; the workbook's sheets are: "
                               f"{', '.join(wb.sheetnames)}")
        src.sheet = ws.title
        header = next(ws.iter_rows(min_row=src.header_row, max_row=src.header_row,
                                   values_only=True), None)
    finally:
        wb.close()
    if not header or all(h is None for h in header):
        raise _SourceError(f"a header on sheet row {src.header_row} (it is empty)")
    src.headers = ["" if h is None else _cell_text(h).strip() for h in header]


def _match_headers(src: _Source, tm: TableMapping, col: _Collector,
                   entry: str) -> dict[str, int] | None:
    """Canonical column -> position in the source file, reporting what is missing."""
    spec = TABLES[tm.name]
    headers = src.headers
    positions: dict[str, list[int]] = {}
    for i, h in enumerate(headers):
        positions.setdefault(h, []).append(i)
    norm: dict[str, list[int]] = {}
    for i, h in enumerate(headers):
        norm.setdefault(_norm_header(h), []).append(i)
    listing = ", ".join(h for h in headers if h) or "(none)"
    used: dict[str, int] = {}
    ok = True
    for canon, header in tm.columns.items():
        hits = positions.get(header) or positions.get(header.strip())
        if not hits:
            hits = norm.get(_norm_header(header))
        if not hits:
            col.add_one(R_HEADER, tm.name, src.display, column=canon, source_column=header,
                        entry=f"{entry}.columns.{canon}", value=header,
                        expected=f"one of the file's headers: {listing}")
            ok = False
        elif len(hits) > 1:
            col.add_one(R_HEADER, tm.name, src.display, column=canon, source_column=header,
                        entry=f"{entry}.columns.{canon}", value=header,
                        expected=f"a header that appears once (it is in columns "
                                 f"{', '.join(str(h + 1) for h in hits)})")
            ok = False
        else:
            used[canon] = hits[0]
    taken = set(used.values())
    for i, h in enumerate(headers):
        if h in spec and h not in used and h not in tm.columns and i not in taken \
                and len(positions[h]) == 1:
            used[h] = i
    missing = [c for c in spec.required if c not in used and c not in tm.columns]
    for c in missing:
        col.add_one(R_MISSING_COLUMN, tm.name, src.display, column=c,
                    entry=f"{entry}.columns",
                    expected=f"a mapping `{c}: <header>` (a required column of {tm.name}); "
                             f"the file's headers: {listing}")
    return used if ok and not missing else None


def _norm_header(h: str) -> str:
    return unicodedata.normalize("NFKC", h).strip().casefold()


# ----------------------------------------------------------------------------------------
# Reading chunks
# ----------------------------------------------------------------------------------------
def _iter_chunks(src: _Source, bar=None) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Yield ``(raw cells, 0-based record indices)`` of the columns ``src.used`` needs.

    The frame's columns are the source positions (ints), plus :data:`_OVERFLOW` for CSV.
    """
    positions = sorted(set(src.used.values()))
    if src.kind == "csv":
        yield from _csv_chunks(src, positions, bar)
    elif src.kind == "xlsx":
        yield from _xlsx_chunks(src, positions, bar)
    else:
        yield from _parquet_chunks(src, positions, bar)


_OVERFLOW = -1


class _AfterHeader(io.RawIOBase):
    """A CSV file seen from its data rows, behind a synthetic header ``c0,…,cN``.

    The synthetic header has one column more than the real one, so pandas reads every
    row's first extra cell into it (a row with too many cells is reported, not shifted).
    """

    def __init__(self, prefix: bytes, f, offset: int):
        self._prefix, self._f = prefix, f
        f.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._f.read(len(b))
        b[: len(data)] = data
        return len(data)


def _csv_chunks(src, positions, bar):
    n = len(src.headers)
    header = src.delimiter.join(f"c{i}" for i in range(n + 1)) + "\n"
    start = 0
    with open(src.path, "rb") as raw_file:
        stream = io.BufferedReader(_AfterHeader(header.encode("ascii"), raw_file,
                                                src.data_offset))
        reader = pd.read_csv(
            stream, encoding=src.encoding, sep=src.delimiter, header=0,
            usecols=positions + [n], dtype=str, na_filter=False,
            keep_default_na=False, skip_blank_lines=False, index_col=False,
            chunksize=CHUNK_ROWS, engine="c",
        )
        with reader:
            for chunk in reader:
                recs = np.arange(start, start + len(chunk), dtype=np.int64)
                start += len(chunk)
                chunk.columns = [int(c[1:]) if int(c[1:]) < n else _OVERFLOW
                                 for c in chunk.columns]
                chunk.index = recs
                if bar is not None:
                    bar.update(raw_file.tell() - bar.n)
                yield chunk, recs


def _xlsx_chunks(src, positions, bar):
    import openpyxl

    wb = openpyxl.load_workbook(src.path, read_only=True, data_only=True)
    try:
        ws = wb[src.sheet]
        cols = idx = positions
        rows: list[tuple] = []
        start = 0

        def frame(rows, start):
            recs = np.arange(start, start + len(rows), dtype=np.int64)
            data = {c: pd.Series([r[k] for r in rows], index=recs, dtype=object)
                    for k, c in enumerate(cols)}
            return pd.DataFrame(data, index=recs, columns=cols), recs

        for values in ws.iter_rows(min_row=src.header_row + 1, values_only=True):
            rows.append(tuple(values[i] if i < len(values) else None for i in idx))
            if len(rows) >= CHUNK_ROWS:
                out = frame(rows, start)
                start += len(rows)
                rows = []
                if bar is not None:
                    bar.update(len(out[1]))
                yield out
        if rows:
            out = frame(rows, start)
            if bar is not None:
                bar.update(len(out[1]))
            yield out
    finally:
        wb.close()


def _parquet_chunks(src, positions, bar):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(src.path)
    names = [src.headers[i] for i in positions]
    start = 0
    for batch in pf.iter_batches(batch_size=CHUNK_ROWS, columns=names):
        df = batch.to_pandas(date_as_object=False)
        df.columns = positions
        for c in df.columns:
            if isinstance(df[c].dtype, pd.CategoricalDtype):
                df[c] = df[c].astype(object)
        recs = np.arange(start, start + len(df), dtype=np.int64)
        start += len(df)
        df.index = recs
        if bar is not None:
            bar.update(len(df))
        yield df, recs


# ----------------------------------------------------------------------------------------
# Parsing cells
# ----------------------------------------------------------------------------------------
def _cell_text(v) -> str:
    """One non-text cell (Excel / Parquet) as the text a CSV would hold."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool | np.bool_):
        return str(bool(v)).lower()
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    if isinstance(v, pd.Timestamp | dt.datetime):
        ts = pd.Timestamp(v)
        return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _is_null(v) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip() == ""
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _nullify(s: pd.Series) -> pd.Series:
    """Trim text, turn empty cells into nulls; typed columns pass unchanged."""
    if s.dtype == object:
        return s.map(lambda v: None if _is_null(v) else (v.strip() if isinstance(v, str)
                                                            else v))
    if pd.api.types.is_string_dtype(s.dtype):
        t = s.astype("str").str.strip()
        return t.mask(t == "")
    return s


def _apply_values(s: pd.Series, mapping: dict[str, Any]) -> pd.Series:
    if not mapping:
        return s
    if s.dtype == object:
        return s.map(lambda v: mapping.get(v, v) if isinstance(v, str) else v)
    if pd.api.types.is_string_dtype(s.dtype):
        hit = s.isin(list(mapping))
        if not hit.any():
            return s
        out = s.astype(object)
        out[hit.to_numpy()] = s[hit].map(mapping).to_numpy()
        return out.astype("str")
    text = s.map(lambda v: None if _is_null(v) else _cell_text(v))
    hit = text.isin(list(mapping))
    if not hit.any():
        return s
    out = s.astype(object)
    out[hit.to_numpy()] = text[hit].map(mapping).to_numpy()
    return out


def _as_text(s: pd.Series) -> pd.Series:
    """A column as trimmed text (``str`` dtype), nulls kept."""
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        return s.astype("str")
    vals = [None if _is_null(v) else _cell_text(v).strip() for v in s.to_numpy()]
    return pd.Series(vals, index=s.index, dtype="str")


def _kinds(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks (text, number, datetime) of an object column's non-null cells."""
    vals = s.to_numpy()
    text = np.fromiter((isinstance(v, str) for v in vals), bool, len(vals))
    num = np.fromiter((isinstance(v, int | float | np.integer | np.floating)
                       and not isinstance(v, bool | np.bool_) and not _is_null(v)
                       for v in vals), bool, len(vals))
    when = np.fromiter((isinstance(v, dt.date | pd.Timestamp | np.datetime64)
                        and not _is_null(v) for v in vals), bool, len(vals))
    return text, num, when


def _normalize_digits(t: pd.Series) -> pd.Series:
    """Full-width digits and signs to ASCII (only when the column has non-ASCII text)."""
    if bool(t.dropna().str.isascii().all()):
        return t
    t = t.str.normalize("NFKC").str.replace("\u2212", "-", regex=False)
    return t


# ``[0-9]`` and ``[ ]`` rather than ``\d`` and ``\s``: pandas then runs the patterns in
# pyarrow's RE2 instead of Python's ``re`` (about 20 times faster on large columns).
_NUM_RE = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_THOUSANDS_RE = r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?"


def _parse_number_text(t: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Text to float: (values with NaN for null or bad, bad mask)."""
    present = t.notna().to_numpy()
    out = np.full(len(t), np.nan)
    if not present.any():
        return out, np.zeros(len(t), bool)
    t = _normalize_digits(t)
    plain = t.str.fullmatch(_NUM_RE).fillna(False).to_numpy(bool)
    grouped = ~plain & present & t.str.fullmatch(_THOUSANDS_RE).fillna(False).to_numpy(bool)
    if plain.any():
        out[plain] = pd.to_numeric(t[plain]).to_numpy(float)
    if grouped.any():
        out[grouped] = pd.to_numeric(t[grouped].str.replace(",", "", regex=False)
                                     ).to_numpy(float)
    bad = present & ~(plain | grouped)
    return out, bad


def _parse_number(s: pd.Series, whole: bool) -> tuple[pd.Series, np.ndarray]:
    n = len(s)
    if pd.api.types.is_bool_dtype(s.dtype):
        values, bad = np.full(n, np.nan), s.notna().to_numpy()
    elif pd.api.types.is_numeric_dtype(s.dtype):
        values, bad = s.to_numpy(dtype=float, na_value=np.nan), np.zeros(n, bool)
    elif s.dtype == object:
        text, num, _ = _kinds(s)
        values, bad = np.full(n, np.nan), ~(text | num) & ~s.map(_is_null).to_numpy(bool)
        if num.any():
            values[num] = s[num].astype(float).to_numpy()
        if text.any():
            v, b = _parse_number_text(s[text].astype("str"))
            values[text], bad[text] = v, b
    else:
        values, bad = _parse_number_text(s.astype("str"))
    values = values.copy()
    if whole:
        ok = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2**53)
        bad = bad | (~np.isnan(values) & ~ok)
        values[bad] = np.nan
        return pd.Series(values, index=s.index).astype("Int64"), bad
    bad = bad | np.isinf(values)
    values[bad] = np.nan
    return pd.Series(values, index=s.index, dtype="float64"), bad


_DEFAULT_FORMATS = [
    "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M",
]
_OFFSET_FORMATS = [f + "%z" for f in _DEFAULT_FORMATS[1:]]
_OFFSET_RE = (r".*[0-9]:[0-9][0-9](?::[0-9][0-9](?:\.[0-9]+)?)?"  # a time, then an offset
              r"[ ]*(?:Z|z|[+-][0-9][0-9](?::?[0-9][0-9])?)")
_SERIAL_RE = r"[0-9]{5}(?:\.[0-9]+)?"
_EXCEL_EPOCH = np.datetime64("1899-12-30T00:00:00", "us")
_MIN_YEAR = 1900


def _strptime_cascade(t: pd.Series, formats: list[str], memo: list[str] | None, *,
                      utc: bool = False) -> np.ndarray:
    """Parse text with the first format that fits each value (NaT when none does).

    ``memo`` remembers which format worked last so a uniform column costs one pass.
    """
    out = np.full(len(t), np.datetime64("NaT", "us"))
    todo = t.notna().to_numpy().copy()
    order = list(formats)
    if memo:
        order = [f for f in memo if f in order] + [f for f in order if f not in memo]
    for fmt in order:
        if not todo.any():
            break
        idx = np.flatnonzero(todo)
        parsed = pd.to_datetime(t.iloc[idx], format=fmt, errors="coerce", utc=utc)
        if utc:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        vals = parsed.to_numpy(dtype="datetime64[us]")
        ok = ~np.isnat(vals)
        if ok.any():
            out[idx[ok]] = vals[ok]
            todo[idx[ok]] = False
            if memo is not None:
                if fmt in memo:
                    memo.remove(fmt)
                memo.insert(0, fmt)
    return out


def _parse_when_text(t: pd.Series, kind: str, formats: list[str] | None,
                     memo: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Text to datetimes: (local naive values, values already in UTC, mask of the latter)."""
    n = len(t)
    local = np.full(n, np.datetime64("NaT", "us"))
    in_utc = np.zeros(n, bool)
    if not t.notna().any():
        return local, local.copy(), in_utc
    if formats:  # the mapping's formats first, then the default ones
        has_z = any("%z" in f for f in formats)
        utcv = local.copy()
        if has_z and kind == "timestamp":
            utcv = _strptime_cascade(t, [f for f in formats if "%z" in f], None, utc=True)
            in_utc = ~np.isnat(utcv)
            local = _strptime_cascade(t.mask(pd.Series(in_utc, index=t.index)),
                                      [f for f in formats if "%z" not in f], None)
        else:
            plain = [f.replace("%z", "") for f in formats] if kind == "date" else formats
            t_plain = t
            if kind == "date" and has_z:
                t_plain = t.str.replace(r"\s*(?:Z|z|[+-]\d\d(?::?\d\d)?)$", "", regex=True)
            local = _strptime_cascade(t_plain, [f for f in plain if f], None)
        rest = np.isnat(local) & ~in_utc & t.notna().to_numpy()
        if rest.any():
            idx = np.flatnonzero(rest)
            lv, uv, iu = _parse_when_text(t.iloc[idx], kind, None, memo)
            local[idx], utcv[idx], in_utc[idx] = lv, uv, iu
        return local, utcv, in_utc
    t = _normalize_digits(t)
    if not bool(t.dropna().str.isascii().all()):
        t = (t.str.replace(r"^(\d{4})年(\d{1,2})月(\d{1,2})日", r"\1-\2-\3", regex=True))
    t = t.str.replace("/", "-", regex=False)
    utcv = np.full(n, np.datetime64("NaT", "us"))
    offset = t.str.fullmatch(_OFFSET_RE).fillna(False).to_numpy(bool)
    if offset.any():
        sub = t[offset].str.replace(r"\s+(?=[Zz+-][\d:]*$)", "", regex=True)
        if kind == "timestamp":
            vals = _strptime_cascade(sub, _OFFSET_FORMATS, None, utc=True)
            utcv[offset] = vals
            in_utc = offset & ~np.isnat(utcv)
            t = t.mask(pd.Series(offset, index=t.index))
        else:  # a date keeps the date as written
            t = t.copy()
            t[offset] = sub.str.replace(r"(?:Z|z|[+-]\d\d(?::?\d\d)?)$", "", regex=True)
    local = _strptime_cascade(t, _DEFAULT_FORMATS, memo)
    rest = np.isnat(local) & t.notna().to_numpy()
    if rest.any():
        sub = t[rest]
        serial = sub.str.fullmatch(_SERIAL_RE).fillna(False).to_numpy(bool)
        if serial.any():
            idx = np.flatnonzero(rest)[serial]
            local[idx] = _from_serial(pd.to_numeric(sub[serial]).to_numpy(float))
        compact = sub.str.fullmatch(r"[0-9]{8}").fillna(False).to_numpy(bool)
        if compact.any():
            idx = np.flatnonzero(rest)[compact]
            local[idx] = _strptime_cascade(sub[compact], ["%Y%m%d"], None)
    return local, utcv, in_utc


def _from_number(x: np.ndarray) -> np.ndarray:
    """Numbers to dates: 5-digit Excel serials and 8-digit yyyymmdd; NaT otherwise."""
    out = np.full(len(x), np.datetime64("NaT", "us"))
    serial = (x >= 10_000) & (x < 100_000)
    out[serial] = _from_serial(x[serial])
    compact = (x >= 19_000_101) & (x <= 99_991_231) & (np.floor(x) == x)
    if compact.any():
        text = pd.Series(x[compact].astype("int64").astype(str))
        out[compact] = pd.to_datetime(text, format="%Y%m%d", errors="coerce").to_numpy(
            "datetime64[us]")
    return out


def _from_serial(x: np.ndarray) -> np.ndarray:
    ms = np.round(x * 86_400_000).astype("int64")
    return _EXCEL_EPOCH + ms.astype("timedelta64[ms]").astype("timedelta64[us]")


def _parse_when(s: pd.Series, kind: str, formats: list[str] | None, tz: str,
                memo: list[str]) -> tuple[pd.Series, np.ndarray]:
    """Cells to naive datetimes: dates (midnight) or timestamps in UTC; (values, bad)."""
    n = len(s)
    local = np.full(n, np.datetime64("NaT", "us"))
    utcv = np.full(n, np.datetime64("NaT", "us"))
    in_utc = np.zeros(n, bool)
    present = ~s.map(_is_null).to_numpy(bool) if s.dtype == object else s.notna().to_numpy()
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        if kind == "timestamp":
            utcv = s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]")
            in_utc = present.copy()
        else:
            local = s.dt.tz_localize(None).to_numpy("datetime64[us]")
    elif pd.api.types.is_datetime64_dtype(s.dtype):
        local = s.to_numpy("datetime64[us]")
    elif pd.api.types.is_bool_dtype(s.dtype):
        pass
    elif pd.api.types.is_numeric_dtype(s.dtype):
        local = _from_number(s.to_numpy(dtype=float, na_value=np.nan))
    elif s.dtype == object:
        text, num, when = _kinds(s)
        if when.any():
            vals = s[when]
            aware = np.fromiter((getattr(v, "tzinfo", None) is not None for v in vals),
                                bool, len(vals))
            idx = np.flatnonzero(when)
            if aware.any():
                ts = pd.to_datetime(vals[aware], utc=True).tz_localize(None)
                if kind == "timestamp":
                    utcv[idx[aware]] = ts.to_numpy("datetime64[us]")
                    in_utc[idx[aware]] = True
                else:
                    local[idx[aware]] = np.array(
                        [pd.Timestamp(v).tz_localize(None) for v in vals[aware]],
                        dtype="datetime64[us]")
            if (~aware).any():
                local[idx[~aware]] = pd.to_datetime(list(vals[~aware])).to_numpy(
                    "datetime64[us]")
        if num.any():
            local[np.flatnonzero(num)] = _from_number(s[num].astype(float).to_numpy())
        if text.any():
            lv, uv, iu = _parse_when_text(s[text].astype("str"), kind, formats, memo)
            idx = np.flatnonzero(text)
            local[idx], utcv[idx], in_utc[idx] = lv, uv, iu
    else:
        local, utcv, in_utc = _parse_when_text(s.astype("str"), kind, formats, memo)
    if kind == "date":
        values = local.astype("datetime64[D]").astype("datetime64[us]")
    else:
        values = np.where(in_utc, utcv, _localize(local, tz))
    parsed = ~np.isnat(values)
    years = values.astype("datetime64[Y]").astype("int64") + 1970
    early = parsed & (years < _MIN_YEAR)
    bad = present & (~parsed | early)
    values = values.copy()
    values[bad] = np.datetime64("NaT")
    return pd.Series(values, index=s.index, dtype="datetime64[us]"), bad


def _localize(local: np.ndarray, tz: str) -> np.ndarray:
    """Local naive times in ``tz`` to naive UTC (first occurrence; skipped hour shifted)."""
    if tz in ("UTC", "Etc/UTC", "GMT") or not (~np.isnat(local)).any():
        return local
    idx = pd.DatetimeIndex(local).tz_localize(tz, ambiguous=np.ones(len(local), bool),
                                              nonexistent="shift_forward")
    return idx.tz_convert("UTC").tz_localize(None).to_numpy("datetime64[us]")


# ----------------------------------------------------------------------------------------
# Collecting problems
# ----------------------------------------------------------------------------------------
@dataclass
class _Example:
    src: _Source | None
    file: str | None
    recs: tuple[int, ...]
    value: Any
    n_rows: int
    entry: str | None = None


class _Collector:
    """Problems grouped by (table, rule, column): first N examples and the totals."""

    def __init__(self, limit: int):
        self.limit = limit
        self.groups: dict[tuple, dict] = {}

    def _group(self, table, rule, column, source_column, expected) -> dict:
        key = (table, rule, column)
        if key not in self.groups:
            self.groups[key] = {"source_column": source_column, "expected": expected,
                                "total": 0, "examples": [], "detail": ""}
        return self.groups[key]

    def add_one(self, rule, table, file, *, column=None, source_column=None, entry=None,
                value=None, expected=""):
        # mapping problems each have their own expectation: group them by entry
        key_col = column if rule not in (R_MAPPING, R_UNREADABLE) else (entry or column
                                                                        or file)
        g = self._group(table, rule, key_col, source_column, expected)
        g["total"] += 1
        g["examples"].append((_Example(None, file, (), value, 0, entry), expected, column,
                              source_column))

    def add_rows(self, table, rule, column, source_column, expected, src, recs, values):
        g = self._group(table, rule, column, source_column, expected)
        g["total"] += len(recs)
        room = self.limit - len(g["examples"])
        for r, v in zip(recs[:max(room, 0)], values[:max(room, 0)], strict=True):
            g["examples"].append((_Example(src, src.display, (int(r),), v, 1), expected,
                                  column, source_column))

    def add_value(self, table, rule, column, source_column, expected, src, recs, value,
                  n_rows):
        """One value spanning several rows (a duplicated key, an unknown account)."""
        g = self._group(table, rule, column, source_column, expected)
        g["examples"].append((_Example(src, src.display, tuple(int(r) for r in recs), value,
                                       n_rows), expected, column, source_column))

    def set_total(self, table, rule, column, total, detail=""):
        g = self.groups[(table, rule, column)]
        g["total"], g["detail"] = total, detail

    def report(self, mapping: str, settings: dict) -> Report:
        needed: dict[int, tuple[_Source, set[int]]] = {}
        for g in self.groups.values():
            for ex, *_ in g["examples"]:
                if ex.src is not None:
                    needed.setdefault(id(ex.src), (ex.src, set()))[1].update(ex.recs)
        rows = {k: src.rows_of(recs) for k, (src, recs) in needed.items()}
        groups = []
        for (table, rule, key_col), g in self.groups.items():
            examples = []
            for ex, expected, column, source_column in g["examples"]:
                vis = tuple(rows[id(ex.src)][r] for r in ex.recs) if ex.src else ()
                examples.append(Problem(
                    rule=rule, table=table, file=ex.file, column=column,
                    source_column=source_column, rows=vis,
                    row_label=ex.src.row_label if ex.src else "line", value=ex.value,
                    expected=expected, n_rows=max(ex.n_rows, len(vis)), entry=ex.entry))
            column = key_col if rule not in (R_MAPPING, R_UNREADABLE) else None
            groups.append(ProblemGroup(table, rule, column, g["source_column"], g["expected"],
                                       g["total"], examples, g["detail"]))
        return Report(mapping, groups=groups, settings=settings)


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
        self.sources: list[_Source] = []
        self.memo: dict[str, list[str]] = {}
        self.unknown: dict[str, list] = {}  # id -> [n, [(src, rec), ...]]
        self.unknown_overflow = 0
        self.account_ids: list[pd.Series] = []

    # -- the table ---------------------------------------------------------------------
    def run(self) -> None:
        ctx, tm = self.ctx, self.tm
        entry = f"tables.{tm.name}"
        for path, shown in tm.files:
            src = _open_source(len(ctx.sources), tm, path, shown, ctx.col, f"{entry}.file")
            if src is None:
                continue
            ctx.sources.append(src)
            used = _match_headers(src, tm, ctx.col, entry)
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

    def _read(self, src: _Source) -> None:
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
        chunks = _iter_chunks(src, bar)
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
                                    f"({_one_line(exc)}); set `encoding:` in the mapping")
                    else:
                        expected = f"a well-formed {src.kind} file ({_one_line(exc)})"
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
    def _chunk(self, src: _Source, raw: pd.DataFrame, recs: np.ndarray) -> None:
        ctx, spec, tm = self.ctx, self.spec, self.tm
        col = ctx.col
        headers = {c: src.headers[i] for c, i in src.used.items()}
        overflow = raw[_OVERFLOW] if _OVERFLOW in raw.columns else None
        raw = pd.DataFrame({c: _nullify(raw[src.used[c]]) for c in self.columns}, index=recs)
        blank = raw.isna().all(axis=1).to_numpy()
        if overflow is not None:
            extra = (overflow.fillna("").str.strip() != "").to_numpy() & ~blank
            if extra.any():
                col.add_rows(tm.name, R_EXTRA_CELLS, None, None,
                             f"at most {len(src.headers)} cells per row, as in the header "
                             "(quote values that contain the delimiter)",
                             src, recs[extra], overflow[extra].tolist())
        if blank.any():
            self.blank += int(blank.sum())
            raw, recs = raw[~blank], recs[~blank]
        for c, mapping in tm.values.items():
            if c in raw.columns:
                raw[c] = _apply_values(raw[c], mapping)
        # parse
        typed = {}
        bad_parse: dict[str, np.ndarray] = {}
        for c in raw.columns:
            colspec = spec[c]
            s = raw[c]
            if colspec.dtype == "string":
                typed[c] = _as_text(s)
                continue
            if colspec.dtype in ("float", "int"):
                values, bad = _parse_number(s, whole=colspec.dtype == "int")
                expected = EXPECT[colspec.dtype]
            else:
                fmts = tm.formats_for(c)
                values, bad = _parse_when(s, colspec.dtype, fmts, ctx.timezone,
                                          self.memo.setdefault(c, []))
                expected = (f"a {colspec.dtype} in the format {' or '.join(fmts)} (from the "
                            f"mapping), or {EXPECT[colspec.dtype]}" if fmts
                            else EXPECT[colspec.dtype])
            typed[c] = values
            if bad.any():
                bad_parse[c] = bad
                col.add_rows(tm.name, R_PARSE[colspec.dtype], c, headers[c], expected, src,
                             recs[bad], s[bad].tolist())
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
                    values = [f"{_cell_text(b)} < {earlier} {_cell_text(a)}" for a, b in
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
            by_src: dict[int, tuple[_Source, list[int]]] = {}
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
    col: _Collector
    stage: Path
    stage_data: bool
    drop_unknown_accounts: bool
    progress: bool
    timezone: str = "UTC"
    scales: dict = field(default_factory=dict)
    account_ids: pd.Index | None = None
    sources: list[_Source] = field(default_factory=list)
    schema_cache: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _run(config, base_dir, *, drop_unknown_accounts, max_examples, stage: Path,
         stage_data: bool, progress: bool) -> tuple[Report, dict[str, str]]:
    col = _Collector(max_examples)
    mf = _parse_mapping(config, base_dir, col)
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
        The workspace file to write (``.duckdb``).
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
    from cs_analysis.workspace import write_workspace

    out = Path(out)
    parent = out.parent if out.parent.is_dir() else None
    stage = Path(tempfile.mkdtemp(prefix=f".{out.stem}-staging-", dir=parent))
    try:
        report, tables = _run(config, base_dir, drop_unknown_accounts=drop_unknown_accounts,
                              max_examples=max_examples, stage=stage, stage_data=True,
                              progress=progress)
        if not report.ok:
            raise LoadError(report)
        write_workspace(out, tables, config=report.settings, progress=progress)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report

