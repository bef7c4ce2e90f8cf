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
that name the mapping file, the line and the entry.

The file is read by :func:`cs_analysis.config.read_yaml` (duplicate keys are errors naming
both lines, so a column mapped twice never silently takes the last value; alias bombs,
deep nesting and oversized files are refused) and checked with pydantic schemas through
:func:`cs_analysis.config.validate`; every wrong key is listed, not only the first.
``date_format`` directives are checked (``%Q`` or a stray ``%`` is a mapping error).

Reading
-------
- **Encodings.** An explicit ``encoding:`` wins (``cp1252``, ``latin-1``, ``cp949``,
  ``euc-kr``, ``gb18030``, ...). Otherwise only UTF-8 and CP932 are recognised, never
  guessed: a UTF-8 byte-order mark means UTF-8 with BOM; text that decodes as UTF-8 is
  UTF-8; text that decodes as CP932 into Japanese characters (real two-byte characters,
  few half-width katakana, and no Korean/Chinese guess by charset-normalizer) is
  ``cp932`` (decoding Excel's Japanese CSVs as ``shift_jis_2004`` silently turns 髙 into
  郄 and 﨑 into 粼). Any other file (Latin-1 / Windows-1252 names such as Señor,
  Frédéric, Ærø; Korean; Chinese) stops with a request to name its encoding, with
  charset-normalizer's guess to check. The encoding used is shown in the report.
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
  they are. An Excel formula cell whose result was never saved (a workbook written by a
  script) is an error naming the sheet and cell, never an empty value.
- **A ``*_date`` column given a timestamp keeps the date as written** (``2024/4/1 23:30``
  is 2024-04-01, whatever the offset or time zone). A time-zone-aware *value* (a Parquet
  timestamp with a zone, an aware ``datetime``) is an instant: its date is the date in
  the workspace time zone (:func:`cs_analysis.time.local_dates`).
- **Timestamps** without an offset are local times in the workspace time zone and are
  stored as naive UTC; those with an offset (or tz-aware Parquet columns) are converted to
  UTC. In the hour repeated when clocks go back, a local time is read as its first
  (summer-time) occurrence; a local time in the hour skipped when clocks go forward is
  moved forward by the gap (such times cannot happen).
- **Numbers.** ``1200``, ``-3.5``, ``1.2e3``, and thousands separators in the strict form
  ``1,200`` / ``12,345,678.9`` (groups of exactly three digits; the point is always the
  decimal separator, so ``1,20`` is an error, never 1.2). ``nan``, ``inf``, currency
  symbols and units are errors. **Whole numbers** (``int`` columns) must be integral:
  ``3`` and ``3.0`` are 3, ``3.5`` is an error. Parquet ``DECIMAL`` columns are numbers.
- **Parquet columns** of lists, structs, maps or bytes are refused for any canonical
  column (an id must be one value).
- Large files are read in chunks of :data:`CHUNK_ROWS` rows; each validated chunk is
  written to a temporary Parquet folder that :func:`cs_analysis.workspace.write_workspace`
  reads with a glob, so memory stays bounded. Source files are only ever opened for
  reading.

Writing
-------
:func:`load` refuses (:class:`OutputError`, one line, nothing touched) an ``out`` that is
the mapping or a source file, a folder, under a file, in a place that cannot be written,
or an existing file that is not a workspace (a DuckDB file with the settings table). A
write that fails (a full disk) is an :class:`OutputError` too, and the old workspace is
left byte-identical (the new one is built beside it and swapped in with ``os.replace``).
Staging folders and ``.duckdb.tmp`` files that an interrupted load left beside ``out``
are removed by the next load of the same ``out`` (:func:`clean_stale`).

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

Modules
-------
:mod:`~cs_analysis.io.mapping` (the mapping file), :mod:`~cs_analysis.io.readers` (files,
encodings, headers, chunks), :mod:`~cs_analysis.io.values` (parsing cells),
:mod:`~cs_analysis.io.report` (problems and the report), :mod:`~cs_analysis.io.loader`
(validation and the load). Every public name is importable from ``cs_analysis.io``.
"""

from __future__ import annotations

from cs_analysis.io.loader import check_out, clean_stale, load, validate
from cs_analysis.io.mapping import (
    FORMATS,
    TABLE_KEYS,
    WORKSPACE_KEYS,
    MappingFile,
    TableMapping,
    read_mapping,
)
from cs_analysis.io.readers import CHUNK_ROWS, detect_encoding
from cs_analysis.io.report import (
    EXPECT,
    MAX_EXAMPLES,
    MAX_ROWS_PER_VALUE,
    LoadError,
    MappingError,
    OutputError,
    Problem,
    ProblemGroup,
    Report,
)

__all__ = [
    "CHUNK_ROWS",
    "EXPECT",
    "FORMATS",
    "MAX_EXAMPLES",
    "MAX_ROWS_PER_VALUE",
    "TABLE_KEYS",
    "WORKSPACE_KEYS",
    "LoadError",
    "MappingError",
    "OutputError",
    "MappingFile",
    "Problem",
    "ProblemGroup",
    "Report",
    "TableMapping",
    "check_out",
    "clean_stale",
    "detect_encoding",
    "load",
    "read_mapping",
    "validate",
]
