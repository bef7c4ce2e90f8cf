"""The mapping file: which export feeds which canonical table, and how to read it.

See :mod:`cs_analysis.io` for the file's keys; :func:`read_mapping` checks a mapping and
lists every problem in one :class:`~cs_analysis.io.MappingError`.
"""

from __future__ import annotations

import codecs
import datetime as dt
import glob as globlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cs_analysis.contract import DEFAULT_SURVEY_SCALES, TABLE_NAMES, TABLES
from cs_analysis.io.report import MAX_EXAMPLES, R_MAPPING, MappingError, _Collector, _one_line

TABLE_KEYS = ("file", "format", "encoding", "sheet", "delimiter", "header_row", "columns",
              "values", "date_format")
WORKSPACE_KEYS = ("timezone", "currency", "as_of", "survey_scales")
FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx",
           ".parquet": "parquet", ".pq": "parquet"}


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
