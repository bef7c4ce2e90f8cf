"""The mapping file: which export feeds which canonical table, and how to read it.

See :mod:`cs_analysis.io` for the file's keys; :func:`read_mapping` checks a mapping and
lists every problem in one :class:`~cs_analysis.io.MappingError`.
"""

from __future__ import annotations

import codecs
import datetime as dt
import glob as globlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from cs_analysis import config as cfg
from cs_analysis.config import YamlContext, path_text, read_text, read_yaml
from cs_analysis.contract import DEFAULT_SURVEY_SCALES, TABLE_NAMES, TABLES
from cs_analysis.errors import CSAnalysisError
from cs_analysis.io.report import MAX_EXAMPLES, R_MAPPING, Collector, MappingError, one_line
from cs_analysis.time import TimeZoneError, zone

TABLE_KEYS = ("file", "format", "encoding", "sheet", "delimiter", "header_row", "columns",
              "values", "date_format")
_Number = StrictInt | StrictFloat
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
    col = Collector(MAX_EXAMPLES)
    mf = parse_mapping(config, base_dir, col)
    if col.groups:
        raise MappingError(col.report(mf.shown if mf else str(config), {}))
    return mf


class _MappingFileError(CSAnalysisError, ValueError):
    """One problem of a mapping file (collected into a :class:`MappingError`)."""


class _Context(YamlContext):
    """A :class:`~cs_analysis.config.YamlContext` whose errors also carry path and line.

    The mapping reader lists every problem of a file (not only the first), so each error
    is turned into a :class:`~cs_analysis.io.Problem` with its entry and line.
    """

    def error(self, path: tuple, message: str, *, key_line: bool = False) -> Exception:
        exc = super().error(path, message, key_line=key_line)
        exc.path, exc.detail, exc.line = path, message, self.line_of(path, key_line)
        return exc

    def line_of(self, path: tuple, key_line: bool = True) -> int | None:
        """Line of the key (or value) at ``path``, else of its nearest enclosing value."""
        line = (self.keys.get(path) if key_line else None) or self.lines.get(path)
        p = path
        while line is None and p:
            p = p[:-1]
            line = self.lines.get(p)
        return line


# -- the schema (pydantic, through cs_analysis.config.validate) --------------------------
class _Settings(BaseModel):
    """The ``workspace`` section."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = None
    currency: StrictStr | None = None
    as_of: Any = None
    survey_scales: dict[str, tuple[_Number, _Number]] | None = None

    @field_validator("timezone", mode="before")
    @classmethod
    def _zone(cls, v):
        if v is None:
            return v
        try:
            if not isinstance(v, str):
                raise TimeZoneError(v)
            zone(v)
        except (TimeZoneError, OSError):  # OSError: a name too long for a file name
            raise ValueError("expected an IANA time zone such as Asia/Tokyo or UTC") from None
        return str(v)

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of(cls, v):
        if v is None:
            return v
        if isinstance(v, dt.datetime):
            v = v.date()
        if isinstance(v, dt.date):
            return v.isoformat()
        try:
            return dt.date.fromisoformat(str(v)).isoformat()
        except ValueError:
            raise ValueError("expected a date such as 2026-10-31") from None


class _Table(BaseModel):
    """One ``tables.<name>`` entry (the contract-dependent checks follow the schema)."""

    model_config = ConfigDict(extra="forbid")

    file: StrictStr | list[StrictStr]
    format: Literal["csv", "xlsx", "parquet"] | None = None
    encoding: StrictStr | None = None
    sheet: StrictStr | StrictInt | None = None
    delimiter: StrictStr | None = None
    header_row: StrictInt = 1
    columns: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    date_format: StrictStr | list[StrictStr] | dict[str, Any] | None = None

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v):
        if v is not None:
            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError("expected an encoding name such as cp932, utf-8, "
                                 "cp1252 or latin-1") from None
        return v

    @field_validator("header_row")
    @classmethod
    def _header_row(cls, v):
        if v < 1:
            raise ValueError("expected a line / row number, 1 or more")
        return v

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, v):
        if v is not None and len(v) != 1:
            raise ValueError("expected a single character such as , or ; or a tab")
        return v

    @field_validator("file", mode="before")
    @classmethod
    def _file(cls, v):
        if v is None or v == [] or v == "":
            raise ValueError("expected the path of the export file (relative to the mapping "
                             "file)")
        return v


def parse_mapping(config, base_dir, col: Collector) -> MappingFile | None:
    """Parse and check a mapping, adding every problem to ``col`` (None: no file to read)."""
    if isinstance(config, Mapping):
        path, shown, data = None, "<mapping>", dict(config)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        ctx = _Context("mapping", shown, {}, {}, _MappingFileError)
    else:
        path = Path(config).expanduser()
        shown = str(config)
        base = Path(base_dir) if base_dir is not None else path.resolve().parent

        def fail(expected, value=None, line=None):
            col.add_one(R_MAPPING, None, shown, expected=expected, value=value,
                        lines=(line,) if line else ())

        if not path.is_file():
            fail("an existing mapping file (YAML)", value=str(path))
            return None
        try:
            text = read_text(path, "mapping", _MappingFileError)
            data, c = read_yaml(text, "mapping", shown, _MappingFileError)
        except _MappingFileError as exc:
            detail = str(exc).removeprefix(f"mapping {shown}").lstrip(":, ")
            line = re.match(r"line (\d+)", detail)
            fail(f"a readable UTF-8 YAML file ({detail})", line=int(line[1]) if line else None)
            return None
        ctx = _Context(c.label, c.source, c.lines, c.keys, _MappingFileError)
    mf = MappingFile(path, shown, base, {}, {})

    def bad(entry, expected, value=None, table=None):
        at = tuple(entry.split(".")) if entry and entry != "(top level)" else ()
        line = ctx.line_of(at)
        col.add_one(R_MAPPING, table, shown, entry=entry, expected=expected, value=value,
                    lines=(line,) if line else ())

    def check(model, value: dict, at, table=None):
        """Validate with the schema; every wrong key is reported (then left out, retried)."""
        value, failed = dict(value), False
        for _ in range(len(value) + 1):
            try:
                model_ = cfg.validate(model, value, ctx, at=at)
                return None if failed else model_
            except _MappingFileError as exc:
                failed = True
                col.add_one(R_MAPPING, table, shown, entry=path_text(exc.path) or "(top level)",
                            expected=_expected_text(exc.detail),
                            lines=(exc.line,) if exc.line else ())
                key = exc.path[len(at)] if len(exc.path) > len(at) else None
                field_ = model.model_fields.get(key) if isinstance(key, str) else None
                if key not in value or (field_ is not None and field_.is_required()):
                    return None
                del value[key]
        return None

    if not isinstance(data, Mapping):
        bad("(top level)", "a mapping with `tables:` (and optionally `workspace:`)")
        return mf
    for key in data:
        if key not in ("workspace", "tables"):
            bad(str(key), "only the top-level keys `workspace` and `tables`", value=key)
    ws = data.get("workspace") or {}
    if not isinstance(ws, Mapping):
        bad("workspace", "a mapping of settings (timezone, currency, as_of, survey_scales)",
            value=ws)
    else:
        settings = check(_Settings, ws, ("workspace",))
        if settings is not None:
            mf.settings = _settings(settings, bad)
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
        if isinstance(entry, str):
            entry = {"file": entry}
        if not isinstance(entry, Mapping):
            bad(where, "a mapping with at least `file:`", value=entry, table=name)
            continue
        model = check(_Table, dict(entry), ("tables", name), table=name)
        if model is not None:
            parsed[name] = _parse_table(str(name), model, base, where, bad)
    if "accounts" not in tables:
        bad("tables.accounts", "an accounts table: every other table refers to it")
    mf.tables = {n: parsed[n] for n in TABLE_NAMES if n in parsed}
    return mf


def _expected_text(detail: str) -> str:
    """A schema message (:func:`cs_analysis.config.validate`) as the report's "expected"."""
    unknown = re.fullmatch(r"unknown key (.*?); the allowed keys are (.*)", detail)
    if unknown:
        return f"one of the keys {unknown[2]} (found {unknown[1]})"
    if detail.endswith(" is required"):
        return f"a {detail.removesuffix(' is required')} entry (required)"
    for prefix in ("expected ", "input should be "):
        if detail.startswith(prefix):
            return detail.removeprefix(prefix)
    return detail


def _settings(s: _Settings, bad) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if s.timezone is not None:
        out["timezone"] = s.timezone
    if s.currency is not None:
        out["currency"] = s.currency
    if s.as_of is not None:
        out["as_of"] = s.as_of
    if s.survey_scales is not None:
        scales = {}
        for survey, (lo, hi) in s.survey_scales.items():
            entry = f"workspace.survey_scales.{survey}"
            if not lo < hi:
                bad(entry, "[low, high] with low < high", value=[lo, hi])
            elif survey == "nps" and (lo, hi) != tuple(DEFAULT_SURVEY_SCALES["nps"]):
                bad(entry, "NPS is always 0–10 (leave it out)", value=[lo, hi])
            else:
                scales[survey] = [lo, hi]
        out["survey_scales"] = scales
    return out


def _parse_table(name, m: _Table, base, where, bad) -> TableMapping:
    spec = TABLES[name]
    files = _resolve_files(m.file, base, f"{where}.file", bad, name)
    tm = TableMapping(name, files or [], format=m.format, encoding=m.encoding, sheet=m.sheet,
                      delimiter=m.delimiter, header_row=m.header_row)
    for canon, header in (m.columns or {}).items():
        canon = str(canon)
        if canon not in spec:
            bad(f"{where}.columns.{canon}",
                f"a column of {name}: {', '.join(spec.names())}"
                + (f" (or {spec.extra_prefix}*)" if spec.extra_prefix else ""),
                value=canon, table=name)
        elif header is None or isinstance(header, Mapping | list | bool):
            bad(f"{where}.columns.{canon}", "the header of a column of the source file",
                value=header, table=name)
        else:
            tm.columns[canon] = _text_key(header)
    for canon, mapping in (m.values or {}).items():
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
            if isinstance(v, Mapping | list):
                bad(e, "a single value per source text", value=v, table=name)
                continue
            clean[_text_key(k)] = None if v is None else _text_key(v)
        tm.values[canon] = clean
    df = m.date_format
    if df is not None:
        if isinstance(df, str | list):
            df = {"*": df}
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
                bad(e, "strptime formats such as \"%Y/%m/%d %H:%M\"", value=fmts, table=name)
                continue
            wrong = [f for f in fmts if _format_problem(f)]
            if wrong:
                bad(e, f"strptime formats such as \"%Y/%m/%d %H:%M\" ("
                    f"{_format_problem(wrong[0])})", value=wrong[0], table=name)
                continue
            tm.date_formats[canon] = fmts
    return tm


#: strptime directives (Python's, and pandas' ``%f`` / ``%z``); ``%%`` is a literal %.
_DIRECTIVES = set("aAwdbBmyYHIpMSfzZjUWcxXGuV%")


def _format_problem(fmt: str) -> str | None:
    """What is wrong with a strptime format (an unknown directive, a stray %), or None."""
    i = 0
    while i < len(fmt):
        if fmt[i] == "%":
            if i + 1 >= len(fmt):
                return "a stray % at the end; write %% for a literal %"
            if fmt[i + 1] not in _DIRECTIVES:
                return f"%{fmt[i + 1]} is not a strptime directive"
            i += 2
        else:
            i += 1
    import warnings

    import pandas as pd

    try:  # combinations pandas refuses whatever the text (%G without %V, %U without a day)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pd.to_datetime(pd.Series(["2024-01-01"]), format=fmt, errors="coerce")
    except (ValueError, TypeError) as exc:
        return one_line(exc)
    return None


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
