"""The hostile-input corpus (``tests/data/bad/``): each case loads correctly or stops with a
clear error.

A clear error is a :class:`~cs_analysis.errors.CSAnalysisError` or a validation report
whose text names the file and the line (mapping files: the line of the entry; exports:
the line or row of the bad cell, or the mapping entry for a file that cannot be read at
all) and what was expected. No case may raise anything else, run long, or change a file
of the corpus. The corpus is written by ``tests/data/bad/make_corpus.py``; a few cases
that need binary formats (Excel, Parquet) or size are made here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import signal
import time
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from cs_analysis.errors import CSAnalysisError
from cs_analysis.io import load, validate
from cs_analysis.workspace import open_workspace

CORPUS = Path(__file__).resolve().parent / "data" / "bad"
#: Seconds any one case may take (validation and, for correct cases, the load).
LIMIT = 20

# mapping case -> (line named in the report or None, fragments of the report); None: loads
MAPPINGS: dict[str, tuple[int | None, list[str]] | None] = {
    "ok_minimal": None,
    "ok_bom": None,
    "ok_anchors": None,
    "alias_bomb": (1, ["aliases"]),
    "deep_flow_nesting": (1, ["nested deeper than"]),
    "deep_block_nesting": (51, ["nested deeper than"]),
    "duplicate_column_key": (6, ["duplicate key 'account_name'", "first on line 5"]),
    "duplicate_table": (4, ["duplicate key 'accounts'", "first on line 2"]),
    "duplicate_top_key": (4, ["duplicate key 'tables'", "first on line 1"]),
    "not_yaml": (2, ["not valid YAML"]),
    "tab_indent": (2, ["not valid YAML"]),
    "huge_key": (4, ["not valid YAML"]),
    "binary_junk": (None, ["UTF-8"]),
    "utf16": (None, ["UTF-8"]),
    "empty": (None, ["a mapping with `tables:`"]),
    "top_level_list": (1, ["a mapping with `tables:`"]),
    "top_level_scalar": (1, ["a mapping with `tables:`"]),
    "unknown_top_key": (4, ["only the top-level keys", "tabels"]),
    "unknown_table": (4, ["a table of the contract", "customers"]),
    "unknown_table_key": (4, ["one of the keys", "colums"]),
    "unknown_column": (4, ["a column of accounts", "acount_name"]),
    "unknown_setting": (2, ["one of the keys", "timezon"]),
    "missing_file_key": (3, ["`file` entry (required)"]),
    "file_not_found": (3, ["an existing file", "nope.csv"]),
    "glob_no_match": (3, ["files matching this pattern"]),
    "file_is_a_list_of_maps": (3, ["a valid string"]),
    "bad_timezone": (2, ["IANA time zone", "Mars/Olympus"]),
    "bad_as_of": (2, ["a date such as", "yesterday"]),
    "nps_scale": (2, ["NPS is always 0–10"]),
    "scale_reversed": (2, ["low < high"]),
    "scale_text": (2, ["'low'"]),
    "workspace_list": (1, ["a mapping of settings"]),
    "bad_format": (4, ["'csv', 'xlsx' or 'parquet'", "'xls'"]),
    "bad_encoding": (4, ["an encoding name", "klingon"]),
    "long_delimiter": (4, ["a single character"]),
    "header_row_zero": (4, ["1 or more"]),
    "header_row_text": (4, ["a valid integer", "'2'"]),
    "header_row_float": (4, ["a valid integer", "1.5"]),
    "header_row_far_below": (None, ["a header on line 1000000000"]),
    "date_format_q": (4, ["%Q is not a strptime directive"]),
    "date_format_stray": (4, ["a stray %"]),
    "date_format_no_directive": (4, ["strptime formats"]),
    "date_format_iso_year_alone": (4, ["ISO year directive '%G' must be used"]),
    "date_format_week_without_day": (4, ["without day and year"]),
    "date_format_wrong_column": (4, ["a date or timestamp column"]),
    "values_booleans": (5, ["quoted words"]),
    "values_nested": (5, ["a single value per source text"]),
    "values_not_a_map": (5, ["a mapping `source text: value`"]),
    "columns_list": (4, ["a valid dictionary"]),
    "column_header_list": (4, ["the header of a column"]),
    "no_accounts": (2, ["an accounts table"]),
    "tables_empty": (1, ["a mapping of canonical table names"]),
    "tables_null": (1, ["a mapping of canonical table names"]),
    "header_not_in_file": (None, ["header not found", "Customer ID", "account_id, signup_date"]),
}

# export case -> (location named in the report or None, fragments); None: loads
EXPORTS: dict[str, tuple[str | None, list[str]] | None] = {
    "ok.csv": None,
    "ok_crlf.csv": None,
    "ok_bom.csv": None,
    "ok_cp932.csv": None,
    "ok_header_only.csv": None,
    "ok_blank_lines.csv": None,
    "ok_quoted_newline.csv": None,
    "ok_formula_text.csv": None,
    "ok_script_text.csv": None,
    "ok_long_field.csv": None,
    "ok_dates_mixed.csv": None,
    "ok_fullwidth_header.csv": None,
    "nul_byte.csv": None,
    "subscriptions__ok_renewal.csv": None,
    "ok_cr_only.csv": None,
    "ok_wide_header.csv": None,
    "long_line_extra_cells.csv": ("line 2", ["extra cells"]),
    "empty.csv": (None, ["a header on line 1"]),
    "only_newlines.csv": (None, ["a header on line 1"]),
    "missing_required_column.csv": (None, ["missing column", "signup_date: <header>"]),
    "duplicate_header.csv": (None, ["header not found", "appears once (it is in columns 1, 2)"]),
    "bad_date.csv": ("line 3", ["unparseable date", "'2024-13-01'"]),
    "feb_30.csv": ("line 4", ["unparseable date", "'2024-02-30'"]),
    "year_1800.csv": ("line 3", ["unparseable date", "year 1900 or later"]),
    "month_first.csv": ("line 3", ["unparseable date", "'4/1/2024'"]),
    "compact_bad.csv": ("line 3", ["unparseable date", "'20240230'"]),
    "duplicate_id.csv": ("lines 2, 3", ["duplicate key", "'A1'"]),
    "null_id.csv": ("line 3", ["missing value in account_id"]),
    "extra_cells.csv": ("line 3", ["extra cells", "quote values that contain the delimiter"]),
    "unclosed_quote.csv": (None, ["a well-formed csv file", "EOF inside string"]),
    "employees_text.csv": ("line 3", ["unparseable whole number", "'ten'"]),
    "employees_negative.csv": ("line 3", ["out of range in employees", "≥ 0"]),
    "employees_fraction.csv": ("line 3", ["unparseable whole number", "'3.5'"]),
    "employees_nan.csv": ("line 3", ["unparseable whole number", "'nan'"]),
    "employees_inf.csv": ("line 3", ["unparseable whole number", "'inf'"]),
    "employees_huge.csv": ("line 3", ["unparseable whole number", "'1e30'"]),
    "employees_currency.csv": ("line 3", ["unparseable whole number", "'$100'"]),
    "touch_model_vocab.csv": ("line 3", ["not in vocabulary", "'very high'"]),
    "latin1.csv": (None, ["`encoding:`", "UTF-8 or CP932"]),
    "cp1252_french.csv": (None, ["`encoding:`", "UTF-8 or CP932"]),
    "korean.csv": (None, ["`encoding:`", "cp949 (Korean)"]),
    "korean_more.csv": (None, ["`encoding:`", "cp949 (Korean)"]),
    "chinese.csv": (None, ["`encoding:`", "gb18030 (Chinese)"]),
    "utf16.csv": (None, ["CSV UTF-8"]),
    "binary.csv": (None, ["`encoding:`"]),
    "not_a_zip.xlsx": (None, ["an Excel .xlsx workbook that can be read"]),
    "ole_header.xls": (None, ["save .xls files as .xlsx or CSV"]),
    "broken.parquet": (None, ["a Parquet file that can be read"]),
    "subscriptions__unknown_account.csv": ("line 3", ["unknown account", "'ZZ9'"]),
    "subscriptions__end_before_start.csv": ("line 2", ["date order",
                                                       "end_date on or after start_date"]),
    "subscriptions__mrr_yen.csv": ("line 2", ["unparseable number", "'¥100'"]),
    "subscriptions__mrr_comma_decimal.csv": ("line 2", ["unparseable number", "'1,20'"]),
    "subscriptions__seats_negative.csv": ("line 2", ["out of range in seats"]),
    "subscriptions__term_zero.csv": ("line 2", ["out of range in term_months", "≥ 1"]),
    "subscriptions__renewal_bad.csv": ("line 2", ["unparseable date in renewal_date",
                                                  "'next year'"]),
}


def _digests() -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(CORPUS.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus_digests():
    before = _digests()
    yield before
    assert _digests() == before, "a corpus file was changed"


@contextmanager
def bounded(seconds: int = LIMIT):
    """Fail (instead of hanging) when the body runs longer than ``seconds``."""
    def alarm(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    start = time.perf_counter()
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert time.perf_counter() - start < seconds


def _check(mapping: Path, tmp_path: Path, expect, shown: str, where: str | None):
    """Validate (and for correct cases load) one case; only package errors may escape."""
    with bounded():
        try:
            report = validate(mapping)
        except CSAnalysisError as exc:  # a clear, one-message error is fine too
            text, report = str(exc), None
        else:
            text = report.summary()
        if expect is None:
            assert report is not None and report.ok, text
            out = tmp_path / "w.duckdb"
            loaded = load(mapping, out)
            assert loaded.ok
            return open_workspace(out)
    assert report is None or not report.ok
    assert "Traceback" not in text
    assert shown in text, text
    if where:
        assert where in text, (where, text)
    for fragment in expect:
        assert fragment in text, (fragment, text)
    if report is not None:  # every problem says where it is
        for p in report.problems:
            assert p.file and (p.rows or p.entry or p.rule == "mapping"), p
    return None


@pytest.mark.parametrize("case", sorted(MAPPINGS))
def test_mapping_case(case, tmp_path, corpus_digests):
    expect = MAPPINGS[case]
    where = None if expect is None or expect[0] is None else f"line {expect[0]}"
    _check(CORPUS / "mappings" / f"{case}.yml", tmp_path, None if expect is None else expect[1],
           f"{case}.yml", where)


def _export_mapping(tmp_path: Path, name: str, file: Path | None = None) -> Path:
    table = name.split("__")[0] if "__" in name else "accounts"
    source = str(file or CORPUS / "exports" / name)
    tables = {"accounts": {"file": source if table == "accounts"
                           else str(CORPUS / "base" / "accounts.csv")}}
    if table != "accounts":
        tables[table] = {"file": source}
    path = tmp_path / "m.yml"
    path.write_text(yaml.safe_dump({"tables": tables}, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("case", sorted(EXPORTS))
def test_export_case(case, tmp_path, corpus_digests):
    expect = EXPORTS[case]
    ws = _check(_export_mapping(tmp_path, case), tmp_path,
                None if expect is None else expect[1], case,
                None if expect is None else expect[0])
    if ws is not None and case.startswith("ok_") and "__" not in case:
        accounts = ws.accounts.to_pandas()
        assert len(accounts) > 0 or case == "ok_header_only.csv"
        names = accounts.account_name.tolist() if "account_name" in accounts else []
        if case == "ok_formula_text.csv":  # text is kept verbatim (exports neutralise it)
            assert names == ["=cmd|' /C calc'!A0", "@SUM(1+1)", "+1-2"]
        if case == "ok_script_text.csv":
            assert names[1] == "'; DROP TABLE accounts;--" and "\x1b" in names[2]
        if case == "ok_quoted_newline.csv":
            assert names[1] == "two\nlines, and a comma"
        if case == "ok_cp932.csv":
            assert names == ["髙橋商事", "山﨑工業 ㈱"]


def test_the_corpus_is_large_enough_and_fully_listed():
    on_disk_m = {p.stem for p in (CORPUS / "mappings").iterdir()}
    on_disk_e = {p.name for p in (CORPUS / "exports").iterdir()}
    assert on_disk_m == set(MAPPINGS) and on_disk_e == set(EXPORTS)
    assert len(MAPPINGS) + len(EXPORTS) + len(GENERATED) >= 100


# -- cases made here: binary formats, size -----------------------------------------------
def _xlsx_formula(folder: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Accounts"
    ws.append(["account_id", "signup_date"])
    ws.append(["A1", "=TODAY()"])
    wb.save(folder / "formula.xlsx")
    return folder / "formula.xlsx"


def _xlsx_ok(folder: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["account_id", "signup_date", "employees"])
    ws.append(["A1", dt.datetime(2024, 4, 1), 12])
    ws.append([42, 45383, 3.0])  # a numeric id, a serial date, a whole float
    wb.save(folder / "ok.xlsx")
    return folder / "ok.xlsx"


def _xlsx_bad_cells(folder: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["account_id", "signup_date", "employees"])
    ws.append(["A1", "tomorrow", True])
    wb.save(folder / "bad_cells.xlsx")
    return folder / "bad_cells.xlsx"


def _xlsx_far_cell(folder: Path) -> Path:
    wb = openpyxl.Workbook()  # a stray cell on the sheet's last row: a million empty rows
    ws = wb.active
    ws.append(["account_id", "signup_date"])
    ws.append(["A1", dt.datetime(2024, 4, 1)])
    ws.cell(row=1_048_576, column=1).value = "stray"
    wb.save(folder / "far_cell.xlsx")
    return folder / "far_cell.xlsx"


def _xlsx_error_cell(folder: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["account_id", "signup_date", "employees"])
    ws.append(["A1", dt.datetime(2024, 4, 1), "#DIV/0!"])
    wb.save(folder / "error_cell.xlsx")
    return folder / "error_cell.xlsx"


def _parquet(folder: Path, name: str, columns: dict) -> Path:
    pq.write_table(pa.table(columns), folder / name)
    return folder / name


GENERATED = {
    "formula.xlsx": (_xlsx_formula, ("row 2", ["formula without a value", "B2: =TODAY()"])),
    "ok.xlsx": (_xlsx_ok, None),
    "error_cell.xlsx": (_xlsx_error_cell, ("row 2", ["unparseable whole number", "#DIV/0!"])),
    "far_cell.xlsx": (_xlsx_far_cell, ("row 1048576", ["missing value in signup_date"])),
    "bad_cells.xlsx": (_xlsx_bad_cells, ("row 2", ["unparseable date", "'tomorrow'",
                                                   "unparseable whole number"])),
    "list_id.parquet": (lambda f: _parquet(f, "list_id.parquet", {
        "account_id": pa.array([["A1"], ["A2"]], pa.list_(pa.string())),
        "signup_date": pa.array([dt.date(2024, 1, 1)] * 2, pa.date32())}),
        (None, ["unsupported column type", "list<"])),
    "struct_id.parquet": (lambda f: _parquet(f, "struct_id.parquet", {
        "account_id": pa.array([{"x": 1}], pa.struct([("x", pa.int64())])),
        "signup_date": pa.array([dt.date(2024, 1, 1)], pa.date32())}),
        (None, ["unsupported column type", "struct<"])),
    "decimal.parquet": (lambda f: _parquet(f, "decimal.parquet", {
        "account_id": pa.array(["A1"]),
        "signup_date": pa.array([dt.date(2024, 1, 1)], pa.date32()),
        "employees": pa.array([Decimal("12")], pa.decimal128(8, 0))}), None),
    "tz_aware.parquet": (lambda f: _parquet(f, "tz_aware.parquet", {
        "account_id": pa.array(["A1"]),
        "signup_date": pa.array([dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)],
                                pa.timestamp("us", tz="UTC"))}), None),
    "bad_date_text.parquet": (lambda f: _parquet(f, "bad_date_text.parquet", {
        "account_id": pa.array(["A1", "A2"]),
        "signup_date": pa.array(["2024-01-01", "someday"])}),
        ("row 2", ["unparseable date", "'someday'"])),
}


@pytest.mark.parametrize("case", sorted(GENERATED))
def test_generated_case(case, tmp_path):
    make, expect = GENERATED[case]
    folder = tmp_path / "src"
    folder.mkdir()
    file = make(folder)
    before = hashlib.sha256(file.read_bytes()).hexdigest()
    _check(_export_mapping(tmp_path, case, file), tmp_path,
           None if expect is None else expect[1], case, None if expect is None else expect[0])
    assert hashlib.sha256(file.read_bytes()).hexdigest() == before


def test_oversized_mapping_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yml"
    path.write_text("tables:\n" + "# padding\n" * 600_000, encoding="utf-8")
    _check(path, tmp_path, ["at most 5,000,000"], "big.yml", None)


def test_a_folder_given_as_the_mapping(tmp_path):
    _check(tmp_path, tmp_path, ["an existing mapping file"], str(tmp_path), None)


# -- property-based: readers and parsers raise nothing but the package's errors ------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FAST = settings(max_examples=60, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])
_cells = st.one_of(st.none(), st.text(max_size=30), st.integers(), st.floats(),
                   st.booleans(), st.dates(), st.datetimes())


@_FAST
@given(st.lists(_cells, min_size=1, max_size=30), st.sampled_from(["date", "timestamp"]),
       st.sampled_from(["UTC", "Asia/Tokyo", "America/Los_Angeles"]))
def test_date_parser_never_raises(values, kind, tz):
    import numpy as np
    import pandas as pd

    from cs_analysis.io.values import parse_when

    s = pd.Series(values, dtype=object)
    parsed, bad = parse_when(s, kind, None, tz, [])
    assert len(parsed) == len(values) and bad.dtype == np.bool_
    # a cell is either parsed or reported, never both, and null cells are neither
    assert not (parsed.notna().to_numpy() & bad).any()


@_FAST
@given(st.lists(_cells, min_size=1, max_size=30), st.booleans())
def test_number_parser_never_raises(values, whole):
    import pandas as pd

    from cs_analysis.io.values import parse_number

    s = pd.Series(values, dtype=object)
    parsed, bad = parse_number(s, whole)
    assert len(parsed) == len(values)
    assert not (parsed.notna().to_numpy() & bad).any()


@_FAST
@given(st.binary(max_size=400))
def test_csv_reader_reports_any_bytes(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("csv")
    (folder / "acc.csv").write_bytes(b"account_id,signup_date\n" + data)
    mapping = folder / "m.yml"
    mapping.write_text("tables:\n  accounts:\n    file: acc.csv\n", encoding="utf-8")
    with bounded():
        report = validate(mapping)  # only a report: no exception of any kind
    assert report.ok or all(p.file for p in report.problems)


@_FAST
@given(st.text(max_size=300))
def test_mapping_reader_reports_any_text(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("map")
    (folder / "acc.csv").write_bytes(b"account_id,signup_date\nA1,2024-01-01\n")
    mapping = folder / "m.yml"
    mapping.write_text("tables:\n  accounts:\n    file: acc.csv\n" + text, encoding="utf-8")
    with bounded():
        try:
            report = validate(mapping)
        except CSAnalysisError:
            return
    assert report.ok or "m.yml" in report.summary()


_yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=10), st.dates()),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)
_table_keys = st.sampled_from(["file", "format", "encoding", "sheet", "delimiter",
                               "header_row", "columns", "values", "date_format", "other"])


@_FAST
@given(st.dictionaries(_table_keys, _yaml_values, max_size=6),
       st.dictionaries(st.sampled_from(["timezone", "currency", "as_of", "survey_scales",
                                        "x"]), _yaml_values, max_size=4))
def test_mapping_schema_reports_any_structure(tmp_path_factory, entry, workspace):
    folder = tmp_path_factory.mktemp("schema")
    (folder / "acc.csv").write_bytes(b"account_id,signup_date\nA1,2024-01-01\n")
    entry = {"file": "acc.csv", **entry} if "file" not in entry else entry
    data = {"workspace": workspace, "tables": {"accounts": entry}}
    with bounded():
        report = validate(data, base_dir=folder)  # a dict mapping: same checks, no lines
    assert report.ok or all(p.file for p in report.problems)


# -- every other YAML file the package reads ----------------------------------------------
# Written by ``tests/data/bad/make_yaml_corpus.py``: one folder per kind. Each case is
# ``file name -> (line named or None, fragment of the message)``; None: loads correctly.
# The workshop cases are drafts a workshop session finds on start (test below).
YAML_CASES: dict[str, dict[str, tuple[int | None, str] | None]] = {
    "criteria": {
        "alias_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "all_and_any.yml": (4, "stage 'setup_complete' has both `all` an"),
        "at_least_float.yml": (12, 'at_least must be a whole number >= 1, go'),
        "binary_junk.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
        "comments_only.yml": (None, 'expected a mapping with `clock_start` an'),
        "deep_block_nesting.yml": (51, 'nested deeper than 50 levels'),
        "deep_flow_nesting.yml": (1, 'nested deeper than 50 levels'),
        "dup_stage_key.yml": (8, "duplicate key 'all' (first on line 5, ag"),
        "duplicate_stage_name.yml": (8, "duplicate stage name 'setup_complete'; s"),
        "duplicate_top_key.yml": (14, "duplicate key 'clock_start' (first on li"),
        "empty.yml": (None, 'expected a mapping with `clock_start` an'),
        "huge_key.yml": (14, 'not valid YAML (could not find expected'),
        "merge_key_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "mixed_kinds.yml": (7, "unknown key 'events'; the allowed keys a"),
        "no_stages.yml": (2, '`stages` must be a non-empty list of sta'),
        "not_yaml.yml": (3, 'not valid YAML (expected <block end>, bu'),
        "nul_in_text.yml": (1, 'not valid YAML (character #x0000 is not'),
        "ok.yml": None,
        "ok_bom.yml": None,
        "ok_events_single_name.yml": None,
        "python_tag.yml": (14, 'not valid YAML (could not determine a co'),
        "requires_later.yml": (5, "stage 'setup_complete' requires 'value_r"),
        "tab_indent.yml": (2, "not valid YAML (found character '\\t' tha"),
        "target_negative.yml": (7, "stage 'setup_complete': target of 'SMB'"),
        "top_level_list.yml": (1, 'expected a mapping with `clock_start` an'),
        "top_level_scalar.yml": (1, 'expected a mapping with `clock_start` an'),
        "unknown_top_key.yml": (14, "unknown key 'colour'; the allowed keys a"),
        "utf16.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
        "within_days_text.yml": (13, 'within_days must be a whole number >= 1,'),
    },
    "themes": {
        "alias_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "backtracking.yml": (7, "theme 'pricing': pattern '(a+)+$' repeat"),
        "bad_regex.yml": (7, "theme 'pricing': pattern '(unclosed' is"),
        "binary_junk.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
        "comments_only.yml": (None, "the file is empty; expected a 'themes:'"),
        "deep_block_nesting.yml": (51, 'nested deeper than 50 levels'),
        "deep_flow_nesting.yml": (1, 'nested deeper than 50 levels'),
        "duplicate_theme.yml": (10, "duplicate key 'pricing' (first on line 3"),
        "duplicate_top_key.yml": (10, "duplicate key 'description' (first on li"),
        "empty.yml": (None, "the file is empty; expected a 'themes:'"),
        "empty_keyword.yml": (5, "theme 'pricing': an empty entry in keywo"),
        "empty_pattern_match.yml": (7, "theme 'pricing': pattern 'x*' matches em"),
        "huge_key.yml": (10, 'not valid YAML (could not find expected'),
        "huge_pattern.yml": None,
        "keyword_number.yml": (5, 'must be text (put it in quotes), got 42'),
        "keyword_typo.yml": (9, "unknown key 'keyword'; the allowed keys"),
        "merge_key_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "no_keywords.yml": (8, "theme 'support' has no keywords and no p"),
        "not_yaml.yml": (3, 'not valid YAML (expected <block end>, bu'),
        "nul_in_text.yml": (1, 'not valid YAML (character #x0000 is not'),
        "ok.yml": None,
        "ok_bom.yml": None,
        "python_tag.yml": (10, 'not valid YAML (could not determine a co'),
        "tab_indent.yml": (2, "not valid YAML (found character '\\t' tha"),
        "themes_list.yml": (2, 'must be a mapping: one entry per theme ('),
        "top_level_list.yml": (1, "the file must be a mapping with a 'theme"),
        "top_level_scalar.yml": (1, "the file must be a mapping with a 'theme"),
        "unknown_top_key.yml": (10, "unknown key 'colour'; the allowed keys a"),
        "utf16.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
    },
    "expansion": {
        "alias_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "binary_junk.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
        "comments_only.yml": (None, "the file is empty; expected a 'themes:'"),
        "deep_block_nesting.yml": (51, 'nested deeper than 50 levels'),
        "deep_flow_nesting.yml": (1, 'nested deeper than 50 levels'),
        "duplicate_keyword_key.yml": (8, "duplicate key 'keywords' (first on line"),
        "duplicate_top_key.yml": (8, "duplicate key 'description' (first on li"),
        "empty.yml": (None, "the file is empty; expected a 'themes:'"),
        "huge_key.yml": (8, 'not valid YAML (could not find expected'),
        "label_list.yml": (4, "must be text (put it in quotes), got ['a"),
        "merge_key_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "nested_quantifier.yml": (8, "theme 'new_sites': pattern '(\\\\w+\\\\s?)*$"),
        "not_yaml.yml": (3, 'not valid YAML (expected <block end>, bu'),
        "nul_in_text.yml": (1, 'not valid YAML (character #x0000 is not'),
        "ok.yml": None,
        "ok_bom.yml": None,
        "python_tag.yml": (8, 'not valid YAML (could not determine a co'),
        "tab_indent.yml": (2, "not valid YAML (found character '\\t' tha"),
        "top_level_list.yml": (1, "the file must be a mapping with a 'theme"),
        "top_level_scalar.yml": (1, "the file must be a mapping with a 'theme"),
        "unknown_top_key.yml": (8, "unknown key 'colour'; the allowed keys a"),
        "utf16.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
    },
    "journeys": {
        "alias_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "binary_junk.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
        "comments_only.yml": (None, 'expected a mapping with `title`, `team`,'),
        "deep_block_nesting.yml": (51, 'nested deeper than 50 levels'),
        "deep_flow_nesting.yml": (1, 'nested deeper than 50 levels'),
        "duplicate_stage.yml": (11, "stage 'Kickoff': the name or alias 'kick"),
        "duplicate_top_key.yml": (13, "duplicate key 'title' (first on line 1,"),
        "empty.yml": (None, 'expected a mapping with `title`, `team`,'),
        "huge_key.yml": (13, 'not valid YAML (could not find expected'),
        "merge_key_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "missing_title.yml": (1, '`title` is required'),
        "no_stages.yml": (8, '`stages` must be a non-empty list of sta'),
        "not_yaml.yml": (3, 'not valid YAML (expected <block end>, bu'),
        "nul_in_text.yml": (1, 'not valid YAML (character #x0000 is not'),
        "ok.yml": None,
        "ok_bom.yml": None,
        "persona_list.yml": (4, "`persona` must be a mapping, got ['a']"),
        "python_tag.yml": (13, 'not valid YAML (could not determine a co'),
        "signal_two_kinds.yml": (12, "stage 'Set-up': a signal needs exactly o"),
        "stage_typo.yml": (10, "unknown key 'ownr'; the allowed keys are"),
        "tab_indent.yml": (2, "not valid YAML (found character '\\t' tha"),
        "top_level_list.yml": (1, 'expected a mapping with `title`, `team`,'),
        "top_level_scalar.yml": (1, 'expected a mapping with `title`, `team`,'),
        "unknown_role.yml": (6, "'king' is not one of executive sponsor,"),
        "unknown_top_key.yml": (13, "unknown key 'colour'; the allowed keys a"),
        "utf16.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
        "version_float.yml": (3, 'must be a whole number >= 1, got 1.0'),
        "version_zero.yml": (3, 'must be a whole number >= 1, got 0'),
    },
    "workshop": {
        "draft_of_another_kind.yml": (1, '`title` is required'),
        "half_written.yml": (9, 'not valid YAML (expected the node conten'),
        "ok_saved_version.yml": None,
        "truncated_draft.yml": (5, '`domain` is required'),
    },
    "coverage": {
        "alias_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "bad_tier.yml": (8, "input should be 'high', 'low' or 'tech',"),
        "binary_junk.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
        "comments_only.yml": (None, 'expected a mapping with `rules:`, got No'),
        "deep_block_nesting.yml": (51, 'nested deeper than 50 levels'),
        "deep_flow_nesting.yml": (1, 'nested deeper than 50 levels'),
        "default_bad.yml": (11, "input should be 'high', 'low' or 'tech',"),
        "duplicate_rule_name.yml": (7, "rule name 'enterprise' is used twice; na"),
        "duplicate_top_key.yml": (12, "duplicate key 'description' (first on li"),
        "empty.yml": (None, 'expected a mapping with `rules:`, got No'),
        "huge_key.yml": (12, 'not valid YAML (could not find expected'),
        "merge_key_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "not_yaml.yml": (3, 'not valid YAML (expected <block end>, bu'),
        "nul_in_text.yml": (1, 'not valid YAML (character #x0000 is not'),
        "ok.yml": None,
        "ok_bom.yml": None,
        "python_tag.yml": (12, 'not valid YAML (could not determine a co'),
        "range_reversed.yml": (10, 'at_least (20000) must be below `below` ('),
        "range_text.yml": (10, "`at_least` must be a number, got 'lots'"),
        "range_unknown.yml": (10, 'a range takes `at_least` and/or `below`,'),
        "rule_without_name.yml": (8, '`name` is required'),
        "rules_mapping.yml": (2, "input should be a valid list, got {'ente"),
        "tab_indent.yml": (2, "not valid YAML (found character '\\t' tha"),
        "top_level_list.yml": (1, "expected a mapping with `rules:`, got ['"),
        "top_level_scalar.yml": (1, "expected a mapping with `rules:`, got 'j"),
        "unknown_top_key.yml": (12, "unknown key 'colour'; the allowed keys a"),
        "utf16.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
        "when_list.yml": (6, 'input should be a valid dictionary, got'),
    },
    "capacity": {
        "alias_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "binary_junk.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
        "comments_only.yml": (None, 'expected a mapping, got None'),
        "deep_block_nesting.yml": (51, 'nested deeper than 50 levels'),
        "deep_flow_nesting.yml": (1, 'nested deeper than 50 levels'),
        "duplicate_top_key.yml": (66, "duplicate key 'description' (first on li"),
        "empty.yml": (None, 'expected a mapping, got None'),
        "hours_text.yml": (42, "input should be a valid number, got 'lot"),
        "huge_key.yml": (66, 'not valid YAML (could not find expected'),
        "merge_key_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "not_yaml.yml": (3, 'not valid YAML (expected <block end>, bu'),
        "nul_in_text.yml": (29, 'not valid YAML (character #x0000 is not'),
        "ok.yml": None,
        "ok_bom.yml": None,
        "python_tag.yml": (66, 'not valid YAML (could not determine a co'),
        "ramp_float.yml": (44, 'input should be a valid integer, got 3.0'),
        "shares_not_one.yml": (55, 'tier shares must be >= 0 and add up to 1'),
        "tab_indent.yml": (2, "not valid YAML (found character '\\t' tha"),
        "tier_missing.yml": (34, 'hours for tier(s) tech are missing; give'),
        "top_level_list.yml": (1, "expected a mapping, got ['csm']"),
        "top_level_scalar.yml": (1, "expected a mapping, got 'just text'"),
        "unknown_tier_share.yml": (56, "unknown tier 'robot'; expected high, low"),
        "unknown_top_key.yml": (66, "unknown key 'colour'; the allowed keys a"),
        "utf16.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
        "utilisation_negative.yml": (43, 'input should be greater than 0, got -0.7'),
    },
    "pipeline": {
        "alias_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "bad_month.yml": (None, "expected a month like 2027-03, got 'Feb"),
        "binary_junk.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
        "comments_only.yml": (None, 'expected a mapping with `pipeline:`, got'),
        "csv_binary.csv": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
        "csv_empty.csv": (1, 'column(s) month, segment, new_accounts m'),
        "csv_extra_value.csv": (None, 'more values than columns'),
        "csv_formula.csv": None,
        "csv_missing_column.csv": (1, 'column(s) new_accounts missing; expected'),
        "csv_ok.csv": None,
        "csv_text_count.csv": (None, "expected a whole number >= 0, got 'three"),
        "deep_block_nesting.yml": (51, 'nested deeper than 50 levels'),
        "deep_flow_nesting.yml": (1, 'nested deeper than 50 levels'),
        "duplicate_row.yml": (None, '2027-01 / SMB appears twice; give each m'),
        "duplicate_top_key.yml": (4, "duplicate key 'pipeline' (first on line"),
        "empty.yml": (None, 'expected a mapping with `pipeline:`, got'),
        "extra_column.yml": (None, 'expected only month, segment and new_acc'),
        "float_count.yml": (None, 'expected a whole number >= 0, got 4.5'),
        "huge_key.yml": (4, 'not valid YAML (could not find expected'),
        "merge_key_bomb.yml": (1, 'the aliases (*name) expand to more than'),
        "negative.yml": (None, 'expected a whole number >= 0, got -4'),
        "not_yaml.yml": (3, 'not valid YAML (expected <block end>, bu'),
        "nul_in_text.yml": (1, 'not valid YAML (character #x0000 is not'),
        "ok.yml": None,
        "ok_bom.yml": None,
        "python_tag.yml": (4, 'not valid YAML (could not determine a co'),
        "row_not_mapping.yml": (2, 'input should be a valid dictionary, got'),
        "tab_indent.yml": (2, "not valid YAML (found character '\\t' tha"),
        "top_level_list.yml": (1, 'expected a mapping with `pipeline:`, got'),
        "top_level_scalar.yml": (1, 'expected a mapping with `pipeline:`, got'),
        "unknown_top_key.yml": (4, "unknown key 'colour'; the allowed keys a"),
        "utf16.yml": (None, 'not UTF-8 text (UTF-16 at byte 0); save it'),
    },
}


def _yaml_loaders():
    from cs_analysis.capacity import load_model, load_pipeline, load_rules
    from cs_analysis.journey.maps import load_map
    from cs_analysis.onboarding.criteria import load_criteria
    from cs_analysis.surveys.themes import load_themes, read_dictionary

    return {"criteria": load_criteria, "themes": load_themes,
            "expansion": lambda s: read_dictionary(s, label="expansion signals"),
            "journeys": load_map, "workshop": load_map, "coverage": load_rules,
            "capacity": load_model, "pipeline": load_pipeline}


#: Cases that would blow up time or memory without the reader's limits: memory is traced.
_HEAVY = {"alias_bomb.yml", "merge_key_bomb.yml", "deep_flow_nesting.yml",
          "deep_block_nesting.yml", "huge_key.yml", "huge_pattern.yml"}
#: Most memory (bytes) Python may allocate while refusing one case.
_MEMORY = 150_000_000


@pytest.mark.parametrize(("kind", "case"), [(k, c) for k in sorted(YAML_CASES)
                                            for c in sorted(YAML_CASES[k])])
def test_yaml_case(kind, case, corpus_digests):
    import tracemalloc

    path = CORPUS / kind / case
    expect = YAML_CASES[kind][case]
    load_file = _yaml_loaders()[kind]
    heavy = case in _HEAVY
    if heavy:
        tracemalloc.start()
    try:
        with bounded():
            try:
                load_file(path)
            except CSAnalysisError as exc:
                text = str(exc)
            else:
                text = None
    finally:
        if heavy:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    if heavy:
        assert peak < _MEMORY, f"{peak:,} bytes"
    if expect is None:
        assert text is None
        return
    assert text is not None, "loaded, but the case is wrong"
    line, fragment = expect
    assert str(path) in text and "Traceback" not in text and "\n" not in text, text
    assert fragment in text, (fragment, text)
    if line is not None:
        assert f"line {line}" in text, (line, text)


@pytest.mark.parametrize("case", sorted(YAML_CASES["workshop"]))
def test_workshop_session_with_a_hostile_draft(case, tmp_path, corpus_digests):
    """A draft that does not load is moved aside intact and reported; the merge is used."""
    from cs_analysis.journey.workshop import WorkshopSession

    source = CORPUS / "workshop" / case
    draft = tmp_path / "agreed.draft.yml"
    draft.write_bytes(source.read_bytes())
    a, b = CORPUS / "journeys" / "ok.yml", CORPUS / "journeys" / "ok.yml"
    with bounded():
        session = WorkshopSession(a, b, folder=tmp_path)
    if YAML_CASES["workshop"][case] is None:
        assert session.notice == "" and session.map.title == "CS journey"
        return
    line, fragment = YAML_CASES["workshop"][case]
    aside = tmp_path / "agreed.draft.yml.broken-1"
    assert aside.read_bytes() == source.read_bytes()
    assert str(aside) in session.notice and fragment in session.notice
    assert line is None or f"line {line}" in session.notice
    assert session.map.stages  # the merged map of the two teams' maps
    session.autosave()  # and the session goes on: the next draft loads
    assert WorkshopSession(a, b, folder=tmp_path).notice == ""


def test_every_yaml_case_is_listed():
    for kind, cases in YAML_CASES.items():
        assert {p.name for p in (CORPUS / kind).iterdir()} == set(cases), kind
    assert sum(map(len, YAML_CASES.values())) >= 150


# -- property-based: every YAML reader, random text and random structures -----------------
_DEFAULT_YAML = {"criteria": "criteria/ok.yml", "themes": "themes/ok.yml",
                 "expansion": "expansion/ok.yml", "journeys": "journeys/ok.yml",
                 "coverage": "coverage/ok.yml", "capacity": "capacity/ok.yml",
                 "pipeline": "pipeline/ok.yml"}
_structures = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(),
              st.text(max_size=8), st.dates(), st.datetimes()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers(), st.booleans()),
                        inner, max_size=3)),
    max_leaves=12)


def _mutate(data, choices, value):
    """Replace the value at a random path (chosen by ``choices``) of ``data`` by ``value``."""
    node = data
    for pick in choices:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = keys[pick % len(keys)]
        if not isinstance(node[key], dict | list) or pick % 3 == 0:
            node[key] = value
            return data
        node = node[key]
    if isinstance(node, dict):
        node["extra"] = value
    else:
        node.append(value)
    return data


@_FAST
@given(st.sampled_from(sorted(_DEFAULT_YAML)), st.lists(st.integers(0, 50), max_size=6),
       _structures, st.booleans())
def test_yaml_loaders_take_any_structure(tmp_path_factory, kind, choices, value, as_file):
    """Random values at random places of a correct file: a load or a package error."""
    import copy

    base = yaml.safe_load((CORPUS / _DEFAULT_YAML[kind]).read_text(encoding="utf-8"))
    data = _mutate(copy.deepcopy(base), choices, value)
    source = data
    if as_file or kind == "pipeline":
        source = tmp_path_factory.mktemp("y") / "f.yml"
        source.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with bounded():
        try:
            _yaml_loaders()[kind](source)
        except CSAnalysisError as exc:
            assert "Traceback" not in str(exc)


@_FAST
@given(st.sampled_from(sorted(_DEFAULT_YAML)), st.integers(0, 10_000), st.integers(0, 40),
       st.text(max_size=40))
def test_yaml_loaders_take_any_text(tmp_path_factory, kind, at, cut, insert):
    """Random text spliced into a correct file: a load or a package error naming it."""
    text = (CORPUS / _DEFAULT_YAML[kind]).read_text(encoding="utf-8")
    at = at % (len(text) + 1)
    path = tmp_path_factory.mktemp("t") / "f.yml"
    path.write_text(text[:at] + insert + text[at + cut:], encoding="utf-8")
    with bounded():
        try:
            _yaml_loaders()[kind](path)
        except CSAnalysisError as exc:
            assert str(path) in str(exc)


def test_pipeline_given_a_mapping_is_a_clear_error():
    from cs_analysis.capacity import CapacityError, load_pipeline

    with pytest.raises(CapacityError, match="a CSV or YAML file or a DataFrame"):
        load_pipeline({"pipeline": []})
