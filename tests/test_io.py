"""Tests of cs_analysis.io: reading, mapping, validating and loading exports.

Every expected value is computed here independently (datetime / zoneinfo arithmetic,
hand-written rows), never copied from the code under test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io as stdio
import zoneinfo
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import cs_analysis.io as csio
from cs_analysis import workspace as wsmod
from cs_analysis.contract import TABLES
from cs_analysis.io import LoadError, MappingError, detect_encoding, load, read_mapping, validate
from cs_analysis.workspace import open_workspace, write_workspace

UTC = dt.UTC


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def base_tables() -> dict[str, pd.DataFrame]:
    """A small valid export set covering every table (all cells as text)."""
    t = {
        "accounts": [
            {"account_id": "A1", "signup_date": "2024-01-01", "segment": "SMB",
             "employees": "10", "touch_model": "high"},
            {"account_id": "A2", "signup_date": "2024-02-01", "segment": "Enterprise",
             "employees": "500", "touch_model": "low"},
            {"account_id": "A3", "signup_date": "2024-03-01", "segment": "SMB",
             "employees": "20", "touch_model": "tech"},
        ],
        "subscriptions": [
            {"account_id": "A1", "start_date": "2024-01-01", "end_date": "2024-06-01",
             "mrr": "100"},
            {"account_id": "A2", "start_date": "2024-02-01", "end_date": "", "mrr": "900.5"},
            {"account_id": "A3", "start_date": "2024-03-01", "end_date": "", "mrr": "0"},
        ],
        "usage_events": [
            {"account_id": "A1", "event_at": "2024-01-02 10:00"},
            {"account_id": "A2", "event_at": "2024-02-03 11:00"},
            {"account_id": "A3", "event_at": "2024-03-04 12:00"},
        ],
        "onboarding_milestones": [
            {"account_id": "A1", "milestone": "setup", "completed_at": "2024-01-05 09:00"},
            {"account_id": "A2", "milestone": "setup", "completed_at": "2024-02-09 09:00"},
        ],
        "survey_responses": [
            {"response_id": "R1", "account_id": "A1", "survey": "nps", "score": "9",
             "responded_at": "2024-04-01 09:00"},
            {"response_id": "R2", "account_id": "A2", "survey": "csat", "score": "4",
             "responded_at": "2024-04-02 09:00"},
            {"response_id": "R3", "account_id": "A3", "survey": "ces", "score": "6",
             "responded_at": "2024-04-03 09:00"},
        ],
        "support_tickets": [
            {"ticket_id": "T1", "account_id": "A1", "opened_at": "2024-01-10 09:00",
             "first_response_at": "2024-01-10 10:00", "resolved_at": "2024-01-11 09:00",
             "csat": "5"},
            {"ticket_id": "T2", "account_id": "A2", "opened_at": "2024-02-10 09:00",
             "first_response_at": "", "resolved_at": "", "csat": ""},
        ],
        "stakeholders": [
            {"account_id": "A1", "person_id": "P1", "role": "sponsor", "domain": "business",
             "influence": "5", "sentiment": "2", "decision_style": "top_down"},
            {"account_id": "A2", "person_id": "P2", "role": "admin", "domain": "technical",
             "influence": "1", "sentiment": "-2", "decision_style": "bottom_up"},
        ],
        "health_inputs": [
            {"account_id": "A1", "as_of": "2024-03-31", "csm_rating": "4"},
            {"account_id": "A2", "as_of": "2024-03-31", "csm_rating": "1"},
        ],
        "cs_activities": [
            {"account_id": "A1", "activity": "kickoff", "occurred_at": "2024-01-03 10:00",
             "channel": "high"},
            {"account_id": "A3", "activity": "webinar", "occurred_at": "2024-03-05 10:00",
             "channel": "tech"},
        ],
        "feature_requests": [
            {"request_id": "F1", "account_id": "A1", "title": "SSO",
             "created_at": "2024-02-01 10:00", "status": "open"},
            {"request_id": "F2", "account_id": "A2", "title": "API",
             "created_at": "2024-02-02 10:00", "status": "shipped"},
        ],
    }
    return {k: pd.DataFrame(v, dtype=object) for k, v in t.items()}


def src_header(column: str) -> str:
    return f"Src {column}"


def write_exports(folder: Path, tables: dict[str, pd.DataFrame], *, encoding="utf-8",
                  workspace=None, extra=None, rename=True) -> Path:
    """Write each table as ``<table>.csv`` with headers ``Src <column>`` and a mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    mapping = {"tables": {}}
    if workspace:
        mapping["workspace"] = workspace
    for name, df in tables.items():
        out = df.rename(columns=src_header) if rename else df
        (folder / f"{name}.csv").write_bytes(out.to_csv(index=False).encode(encoding))
        entry = {"file": f"{name}.csv"}
        if rename:
            entry["columns"] = {c: src_header(c) for c in df.columns}
        entry.update((extra or {}).get(name, {}))
        mapping["tables"][name] = entry
    path = folder / "mapping.yml"
    path.write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(folder: Path) -> dict[str, str]:
    return {str(p): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def only_group(report, table, rule, column):
    groups = [g for g in report.groups if (g.table, g.rule, g.column) == (table, rule, column)]
    assert len(groups) == 1, report.summary()
    return groups[0]


def loaded(path: Path, table: str) -> pd.DataFrame:
    return open_workspace(path).table(table).to_pandas()


# ----------------------------------------------------------------------------------------
# the happy path
# ----------------------------------------------------------------------------------------
def test_valid_exports_validate_and_load(tmp_path):
    mapping = write_exports(tmp_path / "x", base_tables())
    report = validate(mapping)
    assert report.ok, report.summary()
    assert report.rows == {k: len(v) for k, v in base_tables().items()}
    text = report.summary()
    assert "all 10 tables valid" in text
    for name in base_tables():
        assert name in text and f"{name}.csv" in text
    out = tmp_path / "w.duckdb"
    report = load(mapping, out)
    assert report.ok
    ws = open_workspace(out)
    assert ws.tables == list(TABLES)
    subs = ws.subscriptions.to_pandas()
    assert subs.mrr.tolist() == [100.0, 900.5, 0.0]
    assert subs.end_date.isna().tolist() == [False, True, True]


# ----------------------------------------------------------------------------------------
# every rule: a failing input and the message content
# ----------------------------------------------------------------------------------------
RULES = [
    # table, row, column, bad value, rule, fragment of "expected"
    ("accounts", 1, "signup_date", "", "missing value", "a value"),
    ("usage_events", 2, "account_id", "", "missing value", "a value"),
    ("accounts", 1, "signup_date", "2024-13-01", "unparseable date", "2024/4/1"),
    ("accounts", 0, "signup_date", "next week", "unparseable date", "45383"),
    ("usage_events", 1, "event_at", "yesterday", "unparseable timestamp", "2024/4/1 9:05"),
    ("subscriptions", 2, "mrr", "12abc", "unparseable number", "1,200"),
    ("subscriptions", 0, "mrr", "1,20", "unparseable number", "decimal separator"),
    ("accounts", 2, "employees", "12.5", "unparseable whole number", "whole number"),
    ("subscriptions", 1, "mrr", "-5", "out of range", "≥ 0"),
    ("accounts", 0, "employees", "-1", "out of range", "≥ 0"),
    ("stakeholders", 0, "influence", "6", "out of range", "from 1 to 5"),
    ("stakeholders", 1, "sentiment", "-3", "out of range", "from -2 to 2"),
    ("health_inputs", 1, "csm_rating", "0", "out of range", "from 1 to 5"),
    ("support_tickets", 0, "csat", "6", "out of range", "from 1 to 5"),
    ("survey_responses", 0, "score", "11", "outside survey scale", "nps score from 0 to 10"),
    ("survey_responses", 1, "score", "6", "outside survey scale", "csat score from 1 to 5"),
    ("survey_responses", 2, "score", "8", "outside survey scale", "ces score from 1 to 7"),
    ("accounts", 1, "touch_model", "medium", "not in vocabulary", "high / low / tech"),
    ("stakeholders", 0, "domain", "legal", "not in vocabulary", "business / technical"),
    ("stakeholders", 1, "decision_style", "consensus", "not in vocabulary", "top_down"),
    ("feature_requests", 0, "status", "wip", "not in vocabulary", "open / planned"),
    ("cs_activities", 1, "channel", "email", "not in vocabulary", "high / low / tech"),
]


@pytest.mark.parametrize(("table", "row", "column", "bad", "rule", "fragment"), RULES,
                         ids=[f"{r[0]}.{r[2]}={r[3]!r}" for r in RULES])
def test_each_rule_names_file_line_column_value_and_expectation(tmp_path, table, row, column,
                                                                 bad, rule, fragment):
    tables = base_tables()
    tables[table].loc[row, column] = bad
    report = validate(write_exports(tmp_path / "x", tables))
    assert not report.ok
    assert len(report.groups) == 1, report.summary()
    g = only_group(report, table, rule, column)
    assert g.total == 1
    (p,) = g.examples
    line = row + 2  # header is line 1
    assert p.file == f"{table}.csv"
    assert p.rows == (line,) and p.row_label == "line"
    assert p.column == column and p.source_column == src_header(column)
    assert fragment in p.expected
    if rule == "missing value":
        assert p.value is None
    else:
        assert str(p.value).startswith(bad)
    text = report.summary()
    for needle in (f"{table}.csv line {line}", src_header(column), column, rule, fragment):
        assert needle in text, (needle, text)
    if bad:
        assert repr(bad) in text
    assert f"line {line}" in str(p) and src_header(column) in str(p)
    # the same input cannot be loaded
    with pytest.raises(LoadError) as err:
        load(write_exports(tmp_path / "y", tables), tmp_path / "w.duckdb")
    assert f"{table}.csv line {line}" in str(err.value)
    assert err.value.report.groups[0].rule == rule
    assert not (tmp_path / "w.duckdb").exists()


@pytest.mark.parametrize(("table", "earlier", "later", "bad"), [
    ("subscriptions", "start_date", "end_date", "2023-12-31"),
    ("support_tickets", "opened_at", "resolved_at", "2024-01-10 08:59"),
    ("support_tickets", "opened_at", "first_response_at", "2024-01-09 09:00"),
])
def test_date_order(tmp_path, table, earlier, later, bad):
    tables = base_tables()
    tables[table].loc[0, later] = bad
    report = validate(write_exports(tmp_path / "x", tables))
    g = only_group(report, table, "date order", later)
    (p,) = g.examples
    assert p.rows == (2,) and p.source_column == src_header(later)
    assert bad in p.value and tables[table].loc[0, earlier] in p.value
    assert f"{later} on or after {earlier}" in p.expected
    assert src_header(earlier) in p.expected


def test_equal_dates_are_in_order(tmp_path):
    tables = base_tables()
    tables["subscriptions"].loc[0, "end_date"] = tables["subscriptions"].loc[0, "start_date"]
    assert validate(write_exports(tmp_path / "x", tables)).ok


@pytest.mark.parametrize(("table", "column"), [
    ("accounts", "account_id"), ("survey_responses", "response_id"),
    ("support_tickets", "ticket_id"), ("feature_requests", "request_id"),
])
def test_duplicate_unique_keys_report_every_row(tmp_path, table, column):
    tables = base_tables()
    df = tables[table]
    tables[table] = pd.concat([df, df.iloc[[0]], df.iloc[[0]]], ignore_index=True)
    report = validate(write_exports(tmp_path / "x", tables))
    g = only_group(report, table, "duplicate key", column)
    (p,) = g.examples
    n = len(df)
    assert p.value == df.loc[0, column]
    assert p.rows == (2, n + 2, n + 3)  # the original row and both copies
    assert g.total == 3 and "1 duplicated value" in g.detail
    assert "lines 2, " in report.summary()


def test_unknown_accounts_stop_the_load_with_ids_and_rows(tmp_path):
    tables = base_tables()
    ev = tables["usage_events"]
    extra = pd.DataFrame({"account_id": ["ZZ9", "ZZ9", "ZZ8"],
                          "event_at": ["2024-05-01 10:00"] * 3}, dtype=object)
    tables["usage_events"] = pd.concat([ev, extra], ignore_index=True)
    tables["health_inputs"].loc[1, "account_id"] = "ZZ9"
    mapping = write_exports(tmp_path / "x", tables)
    report = validate(mapping)
    g = only_group(report, "usage_events", "unknown account", "account_id")
    assert g.total == 3 and "2 distinct" in g.detail
    by_value = {p.value: p.rows for p in g.examples}
    n = len(ev)
    assert by_value == {"ZZ9": (n + 2, n + 3), "ZZ8": (n + 4,)}
    h = only_group(report, "health_inputs", "unknown account", "account_id")
    assert [(p.value, p.rows) for p in h.examples] == [("ZZ9", (3,))]
    with pytest.raises(LoadError, match="ZZ9"):
        load(mapping, tmp_path / "w.duckdb")

    # with drop: rows dropped, counted per table, and the load goes through
    report = validate(mapping, drop_unknown_accounts=True)
    assert report.ok
    assert report.dropped == {"usage_events": 3, "health_inputs": 1}
    assert set(report.dropped_ids["usage_events"]) == {"ZZ9", "ZZ8"}
    assert "dropped 3 rows of usage_events" in report.summary()
    out = tmp_path / "w.duckdb"
    report = load(mapping, out, drop_unknown_accounts=True)
    assert report.rows["usage_events"] == n
    assert sorted(loaded(out, "usage_events").account_id) == sorted(ev.account_id)
    assert loaded(out, "health_inputs").account_id.tolist() == ["A1"]


def test_survey_scales_from_config_and_unknown_surveys(tmp_path):
    tables = base_tables()
    extra = pd.DataFrame({"response_id": ["R4", "R5", "R6"], "account_id": ["A1"] * 3,
                          "survey": ["csat", "csat", "pulse"], "score": ["9", "11", "99"],
                          "responded_at": ["2024-05-01 10:00"] * 3}, dtype=object)
    tables["survey_responses"] = pd.concat([tables["survey_responses"], extra],
                                           ignore_index=True)
    mapping = write_exports(tmp_path / "x", tables,
                            workspace={"survey_scales": {"csat": [1, 10]}})
    report = validate(mapping)
    g = only_group(report, "survey_responses", "outside survey scale", "score")
    # csat 9 passes on the configured 1-10 scale; 11 does not; "pulse" has no range
    assert [(p.value, p.rows) for p in g.examples] == [("11", (6,))]
    assert "csat score from 1 to 10" in g.expected


def test_values_mapping_applies_before_vocabulary(tmp_path):
    tables = base_tables()
    tables["accounts"]["touch_model"] = ["ハイタッチ", "ロータッチ", "ミドルタッチ"]
    extra = {"accounts": {"values": {"touch_model": {"ハイタッチ": "high",
                                                     "ロータッチ": "low"}}}}
    report = validate(write_exports(tmp_path / "x", tables, extra=extra))
    g = only_group(report, "accounts", "not in vocabulary", "touch_model")
    assert [(p.value, p.rows) for p in g.examples] == [("ミドルタッチ", (4,))]
    tables["accounts"].loc[2, "touch_model"] = "ハイタッチ"
    out = tmp_path / "w.duckdb"
    load(write_exports(tmp_path / "y", tables, extra=extra), out)
    assert loaded(out, "accounts").touch_model.tolist() == ["high", "low", "high"]


def test_values_mapping_to_null_and_numbers(tmp_path):
    tables = base_tables()
    tables["subscriptions"].loc[1, "end_date"] = "9999/12/31"
    tables["survey_responses"].loc[1, "score"] = "満足"
    extra = {"subscriptions": {"values": {"end_date": {"9999/12/31": None}}},
             "survey_responses": {"values": {"score": {"満足": 5}}}}
    out = tmp_path / "w.duckdb"
    load(write_exports(tmp_path / "x", tables, extra=extra), out)
    assert loaded(out, "subscriptions").end_date.isna().tolist() == [False, True, True]
    assert loaded(out, "survey_responses").score.tolist() == [9.0, 5.0, 6.0]


# ----------------------------------------------------------------------------------------
# several problems at once; first-N truncation with totals
# ----------------------------------------------------------------------------------------
def test_several_problems_are_reported_together(tmp_path):
    tables = base_tables()
    tables["accounts"].loc[0, "signup_date"] = "bad"
    tables["accounts"].loc[1, "employees"] = "-3"
    tables["subscriptions"].loc[2, "mrr"] = "-1"
    tables["stakeholders"].loc[0, "domain"] = "sales"
    tables["support_tickets"].loc[0, "resolved_at"] = "2020-01-01 00:00"
    report = validate(write_exports(tmp_path / "x", tables))
    got = {(g.table, g.rule, g.column) for g in report.groups}
    assert got == {("accounts", "unparseable date", "signup_date"),
                   ("accounts", "out of range", "employees"),
                   ("subscriptions", "out of range", "mrr"),
                   ("stakeholders", "not in vocabulary", "domain"),
                   ("support_tickets", "date order", "resolved_at")}
    assert "5 problems of 5 kinds in 4 tables" in report.summary()
    frame = report.to_frame()
    assert len(frame) == 5 and set(frame.table) == {"accounts", "subscriptions",
                                                     "stakeholders", "support_tickets"}


def test_first_n_per_rule_and_column_with_totals(tmp_path):
    n = 12
    accounts = pd.DataFrame({"account_id": [f"{i:03d}" for i in range(n)],
                             "signup_date": ["2024-02-30"] * n,
                             "employees": ["x"] * 3 + ["1"] * (n - 3)}, dtype=object)
    mapping = write_exports(tmp_path / "x", {"accounts": accounts})
    report = validate(mapping)
    dates = only_group(report, "accounts", "unparseable date", "signup_date")
    assert dates.total == n
    assert [p.rows for p in dates.examples] == [(i + 2,) for i in range(5)]
    ints = only_group(report, "accounts", "unparseable whole number", "employees")
    assert ints.total == 3 and len(ints.examples) == 3
    text = report.summary()
    assert "unparseable date in signup_date (source column 'Src signup_date'): 12 rows, " \
           "first 5 shown" in text
    assert "3 rows" in text
    short = validate(mapping, max_examples=2)
    assert len(only_group(short, "accounts", "unparseable date", "signup_date").examples) == 2
    assert only_group(short, "accounts", "unparseable date", "signup_date").total == n


def test_unparseable_is_not_also_reported_as_missing(tmp_path):
    tables = base_tables()
    tables["usage_events"].loc[0, "event_at"] = "soon"
    report = validate(write_exports(tmp_path / "x", tables))
    assert [(g.rule, g.column) for g in report.groups] == [("unparseable timestamp",
                                                            "event_at")]


# ----------------------------------------------------------------------------------------
# mapping-file errors name the mapping file and the entry
# ----------------------------------------------------------------------------------------
def _mapping(tmp_path, tables_entry, workspace=None, name="m.yml") -> Path:
    folder = tmp_path / "x"
    folder.mkdir(exist_ok=True)
    (folder / "acc.csv").write_text("顧客ID,開始日,会社名\n001,2024/4/1,髙橋\n", encoding="utf-8")
    data = {"tables": tables_entry}
    if workspace is not None:
        data["workspace"] = workspace
    path = folder / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


ACC = {"file": "acc.csv", "columns": {"account_id": "顧客ID", "signup_date": "開始日"}}


def test_valid_small_mapping(tmp_path):
    out = tmp_path / "w.duckdb"
    load(_mapping(tmp_path, {"accounts": ACC}), out)
    acc = loaded(out, "accounts")
    assert acc.account_id.tolist() == ["001"]
    assert acc.signup_date.tolist() == [pd.Timestamp("2024-04-01")]


@pytest.mark.parametrize(("tables", "workspace", "entry", "fragments"), [
    ({"accounts": ACC, "customers": {"file": "acc.csv"}}, None, "tables.customers",
     ["a table of the contract", "subscriptions"]),
    ({"accounts": {**ACC, "columns": {**ACC["columns"], "acount_name": "会社名"}}}, None,
     "tables.accounts.columns.acount_name", ["a column of accounts", "account_name"]),
    ({"accounts": {**ACC, "colums": {}}}, None, "tables.accounts.colums",
     ["one of the keys", "columns"]),
    ({"accounts": ACC}, {"timezone": "Tokyo"}, "workspace.timezone", ["IANA"]),
    ({"accounts": ACC}, {"survey_scales": {"nps": [1, 5]}}, "workspace.survey_scales.nps",
     ["NPS is always 0–10"]),
    ({"accounts": ACC}, {"as_of": "last week"}, "workspace.as_of", ["a date"]),
    ({"accounts": {**ACC, "file": "missing.csv"}}, None, "tables.accounts.file",
     ["an existing file", "acc.csv"]),
    ({"subscriptions": {"file": "acc.csv"}}, None, "tables.accounts",
     ["an accounts table"]),
    ({"accounts": {**ACC, "values": {"touch_model": {"yes": "high"}}}}, None,
     "tables.accounts.values.touch_model", ["quoted words"]),
])
def test_mapping_errors_name_the_mapping_file_and_entry(tmp_path, tables, workspace, entry,
                                                        fragments):
    path = _mapping(tmp_path, tables, workspace)
    if "yes" in str(tables):  # YAML reads an unquoted yes as True
        path.write_text(path.read_text(encoding="utf-8").replace("'yes'", "yes"),
                        encoding="utf-8")
    report = validate(path)
    assert not report.ok
    entries = [p.entry for p in report.problems]
    assert entry in entries, report.summary()
    text = report.summary()
    assert str(path) in text and entry in text
    for f in fragments:
        assert f in text, (f, text)
    with pytest.raises(MappingError, match="m.yml"):
        read_mapping(path)
    with pytest.raises(LoadError):
        load(path, tmp_path / "w.duckdb")


def test_header_not_found_lists_the_headers_that_are_there(tmp_path):
    tables = {"accounts": {**ACC, "columns": {"account_id": "顧客ID", "signup_date": "契約開始日"}}}
    report = validate(_mapping(tmp_path, tables))
    g = only_group(report, "accounts", "header not found", "signup_date")
    (p,) = g.examples
    assert p.value == "契約開始日" and p.file == "acc.csv"
    assert p.entry == "tables.accounts.columns.signup_date"
    assert "顧客ID, 開始日, 会社名" in p.expected


def test_missing_required_column(tmp_path):
    tables = {"accounts": {"file": "acc.csv", "columns": {"account_id": "顧客ID"}}}
    report = validate(_mapping(tmp_path, tables))
    g = only_group(report, "accounts", "missing column", "signup_date")
    assert g.examples[0].entry == "tables.accounts.columns"
    assert "signup_date: <header>" in g.expected and "開始日" in g.expected


def test_headers_match_ignoring_width_and_spaces(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "acc.csv").write_text(" 顧客ＩＤ ,開始日\n001,2024/4/1\n", encoding="utf-8")
    (folder / "m.yml").write_text(yaml.safe_dump({"tables": {"accounts": ACC}},
                                                 allow_unicode=True), encoding="utf-8")
    assert validate(folder / "m.yml").ok


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("acc.xlsx", b"not a zip file", "Excel .xlsx"),
    ("acc.xls", b"\xd0\xcf\x11\xe0", ".xlsx or CSV"),
    ("acc.parquet", b"PAR1 broken", "Parquet"),
    ("acc.csv", b"", "header on line 1"),
])
def test_unreadable_files_are_reported(tmp_path, name, content, fragment):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / name).write_bytes(content)
    path = folder / "m.yml"
    path.write_text(yaml.safe_dump({"tables": {"accounts": {**ACC, "file": name}}},
                                   allow_unicode=True), encoding="utf-8")
    report = validate(path)
    (g,) = report.groups
    assert g.rule in ("unreadable file",) and g.table == "accounts"
    assert g.examples[0].file.startswith(name) and fragment in g.expected
    assert "tables.accounts.file" in report.summary()


def test_explicit_shift_jis_is_read_as_cp932(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "acc.csv").write_bytes("顧客ID,開始日,会社名\n001,2024/4/1,髙橋㈱\n".encode("cp932"))
    (folder / "m.yml").write_text(yaml.safe_dump(
        {"tables": {"accounts": {**ACC, "encoding": "shift_jis",
                                 "columns": {**ACC["columns"], "account_name": "会社名"}}}},
        allow_unicode=True), encoding="utf-8")
    out = tmp_path / "w.duckdb"
    report = load(folder / "m.yml", out)
    assert "read as cp932" in report.sources["accounts"][0]
    assert loaded(out, "accounts").account_name.tolist() == ["髙橋㈱"]


def test_wrong_explicit_encoding_is_reported(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "acc.csv").write_bytes("顧客ID,開始日\n001,2024/4/1\n002,2024/4/2\n"
                                     .encode("cp932"))
    (folder / "m.yml").write_text(yaml.safe_dump(
        {"tables": {"accounts": {**ACC, "encoding": "utf-8"}}}, allow_unicode=True),
        encoding="utf-8")
    report = validate(folder / "m.yml")
    (g,) = report.groups
    assert g.rule == "unreadable file" and "utf-8" in g.expected and "encoding" in g.expected


def test_missing_or_broken_mapping_file(tmp_path):
    report = validate(tmp_path / "nope.yml")
    assert not report.ok and "nope.yml" in report.summary()
    bad = tmp_path / "bad.yml"
    bad.write_text("tables: [unclosed", encoding="utf-8")
    report = validate(bad)
    assert not report.ok and "YAML" in report.summary()


# ----------------------------------------------------------------------------------------
# reading: encodings, Japanese text, formats
# ----------------------------------------------------------------------------------------
JP_ROWS = [["顧客ID", "会社名", "契約開始日", "セグメント", "担当"],
           ["00042", "髙橋商事", "2024/4/1", "中小企業", "山﨑 花子"],
           ["00043", "山﨑工業", "2024/04/02", "大企業", "髙木 一郎"],
           ["00100", "ｶﾌﾞｼｷｶﾞｲｼｬ テスト～", "2024-4-3", "中堅企業", "渡邊 太郎"]]
JP_MAP = {"columns": {"account_id": "顧客ID", "account_name": "会社名",
                      "signup_date": "契約開始日", "segment": "セグメント", "csm_owner": "担当"},
          "values": {"segment": {"中小企業": "SMB", "中堅企業": "Mid-Market",
                                 "大企業": "Enterprise"}}}


def _jp_csv(rows, encoding, bom=False) -> bytes:
    text = "\r\n".join(",".join(r) for r in rows) + "\r\n"
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding)


@pytest.mark.parametrize(("encoding", "bom", "explicit"), [
    ("cp932", False, False), ("cp932", False, True), ("utf-8", True, False),
    ("utf-8", False, False),
])
def test_japanese_exports_load_through_a_mapping(tmp_path, encoding, bom, explicit):
    folder = tmp_path / "exports"
    folder.mkdir()
    path = folder / "顧客一覧.csv"
    path.write_bytes(_jp_csv(JP_ROWS, encoding, bom))
    entry = {"file": "exports/顧客一覧.csv", **JP_MAP}
    if explicit:
        entry["encoding"] = encoding
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(yaml.safe_dump({"tables": {"accounts": entry}}, allow_unicode=True),
                       encoding="utf-8")
    before = digest(path)
    out = tmp_path / "w.duckdb"
    report = load(mapping, out)
    assert digest(path) == before
    expected_enc = {("cp932", False): "cp932", ("utf-8", True): "utf-8-sig",
                    ("utf-8", False): "utf-8"}[(encoding, bom)]
    assert expected_enc in report.sources["accounts"][0]
    acc = loaded(out, "accounts")
    assert acc.account_id.tolist() == [r[0] for r in JP_ROWS[1:]]
    assert acc.account_name.tolist() == [r[1] for r in JP_ROWS[1:]]
    assert acc.csm_owner.tolist() == [r[4] for r in JP_ROWS[1:]]
    assert acc.segment.tolist() == ["SMB", "Enterprise", "Mid-Market"]
    assert acc.signup_date.dt.date.tolist() == [dt.date(2024, 4, d) for d in (1, 2, 3)]


def test_detect_encoding_reads_shift_jis_guesses_as_cp932(tmp_path):
    # Japanese only after more than a megabyte of ASCII, and only a few characters:
    # charset-normalizer alone guesses a Western code page for such text
    rows = ["id,name"] + [f"{i:07d},abc" for i in range(130_000)] + ["9999999,髙橋 山﨑"]
    path = tmp_path / "big.csv"
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("cp932"))
    assert path.stat().st_size > 1 << 20
    assert detect_encoding(path) == "cp932"
    small = tmp_path / "small.csv"
    small.write_bytes(_jp_csv(JP_ROWS, "cp932"))
    assert detect_encoding(small) == "cp932"
    # decoding as shift_jis_2004 would silently corrupt: make sure cp932 round-trips
    assert small.read_bytes().decode(detect_encoding(small)).count("髙") == 2
    u = tmp_path / "u.csv"
    u.write_bytes(_jp_csv(JP_ROWS, "utf-8", bom=True))
    assert detect_encoding(u) == "utf-8-sig"
    u.write_bytes(_jp_csv(JP_ROWS, "utf-8"))
    assert detect_encoding(u) == "utf-8"


def _one_column(tmp_path, table, column, values, workspace=None, extra=None, base=None):
    """Load ``values`` into one column of a minimal table; return (report, loaded column)."""
    tables = base or base_tables()
    df = tables[table].iloc[[0] * len(values)].reset_index(drop=True)
    df[column] = values
    key = {"accounts": "account_id", "survey_responses": "response_id",
           "support_tickets": "ticket_id"}.get(table)
    if key:
        df[key] = [f"{key[0]}{i}" for i in range(len(values))]
    if table == "accounts":
        tables = {"accounts": df}
    else:
        tables = {"accounts": tables["accounts"], table: df}
        if key is None:
            tables[table]["account_id"] = "A1"
    mapping = write_exports(tmp_path / "x", tables, workspace=workspace, extra=extra)
    out = tmp_path / "w.duckdb"
    report = validate(mapping)
    if not report.ok:
        return report, None
    load(mapping, out)
    return report, loaded(out, table)[column]


DATE_CASES = [
    ("2024-04-01", dt.date(2024, 4, 1)),
    ("2024/04/01", dt.date(2024, 4, 1)),
    ("2024/4/1", dt.date(2024, 4, 1)),
    ("2024/4/1 9:05", dt.date(2024, 4, 1)),
    ("2024/4/1 23:30", dt.date(2024, 4, 1)),        # a date keeps the date as written
    ("2024-04-01T23:30:00-05:00", dt.date(2024, 4, 1)),
    ("45383", dt.date(1899, 12, 30) + dt.timedelta(days=45383)),
    ("20240401", dt.date(2024, 4, 1)),
    ("2024年4月1日", dt.date(2024, 4, 1)),
    ("２０２４/４/１", dt.date(2024, 4, 1)),
    ("  2024-12-31 ", dt.date(2024, 12, 31)),
]


def test_date_formats(tmp_path):
    values = [v for v, _ in DATE_CASES]
    report, got = _one_column(tmp_path, "accounts", "signup_date", values,
                              workspace={"timezone": "Asia/Tokyo"})
    assert report.ok, report.summary()
    assert got.dt.date.tolist() == [d for _, d in DATE_CASES]
    assert dt.date(1899, 12, 30) + dt.timedelta(days=45383) == dt.date(2024, 4, 1)


@pytest.mark.parametrize("bad", ["2024-02-30", "0024-01-01", "4/1/2024", "24/4/1", "2024.04.01",
                                 "1234", "2024-04-01 25:00", "２０２４年"])
def test_bad_dates(tmp_path, bad):
    report, _ = _one_column(tmp_path, "accounts", "signup_date", ["2024-01-01", bad])
    g = only_group(report, "accounts", "unparseable date", "signup_date")
    assert [(p.value, p.rows) for p in g.examples] == [(bad.strip(), (3,))]


def _utc(y, mo, d, h=0, mi=0, s=0, us=0, tz="UTC"):
    local = dt.datetime(y, mo, d, h, mi, s, us, tzinfo=zoneinfo.ZoneInfo(tz))
    return pd.Timestamp(local.astimezone(UTC).replace(tzinfo=None))


def test_timestamps_are_localized_then_stored_as_utc(tmp_path):
    cases = [
        ("2024/4/1 9:05", _utc(2024, 4, 1, 9, 5, tz="Asia/Tokyo")),
        ("2024-04-01 09:05:07", _utc(2024, 4, 1, 9, 5, 7, tz="Asia/Tokyo")),
        ("2024-04-01T09:05:07.250", _utc(2024, 4, 1, 9, 5, 7, 250_000, tz="Asia/Tokyo")),
        ("2024-04-01", _utc(2024, 4, 1, tz="Asia/Tokyo")),
        ("2024-04-01T09:05:00+09:00", _utc(2024, 4, 1, 0, 5)),
        ("2024-04-01T09:05:00Z", _utc(2024, 4, 1, 9, 5)),
        ("2024-04-01 09:05:00 -0500", _utc(2024, 4, 1, 14, 5)),
        ("45383.5", _utc(2024, 4, 1, 12, tz="Asia/Tokyo")),
    ]
    report, got = _one_column(tmp_path, "usage_events", "event_at", [v for v, _ in cases],
                              workspace={"timezone": "Asia/Tokyo"})
    assert report.ok, report.summary()
    assert got.tolist() == [t for _, t in cases]


def test_daylight_saving_gaps_and_repeats(tmp_path):
    ny = "America/New_York"
    cases = [
        # the repeated hour: first (summer-time) occurrence, fold=0
        ("2024-11-03 01:30", _utc(2024, 11, 3, 1, 30, tz=ny)),
        # the skipped hour: moved forward by the gap, to 03:00 EDT
        ("2024-03-10 02:30", _utc(2024, 3, 10, 3, 0, tz=ny)),
        ("2024-07-01 12:00", _utc(2024, 7, 1, 12, tz=ny)),
        ("2024-01-01 12:00", _utc(2024, 1, 1, 12, tz=ny)),
    ]
    report, got = _one_column(tmp_path, "usage_events", "event_at", [v for v, _ in cases],
                              workspace={"timezone": ny})
    assert report.ok, report.summary()
    assert got.tolist() == [t for _, t in cases]
    assert cases[0][1] == pd.Timestamp("2024-11-03 05:30")
    assert cases[1][1] == pd.Timestamp("2024-03-10 07:00")


def test_explicit_date_format(tmp_path):
    extra = {"accounts": {"date_format": {"signup_date": "%m/%d/%Y"}}}
    report, got = _one_column(tmp_path, "accounts", "signup_date",
                              ["04/01/2024", "12/31/2024", "2024-04-02"], extra=extra)
    assert report.ok
    # the mapping's format first; year-first defaults stay accepted (never ambiguous)
    assert got.dt.date.tolist() == [dt.date(2024, 4, 1), dt.date(2024, 12, 31),
                                    dt.date(2024, 4, 2)]
    report, _ = _one_column(tmp_path, "accounts", "signup_date", ["04/01/2024", "13/01/2024"],
                            extra=extra)
    g = only_group(report, "accounts", "unparseable date", "signup_date")
    assert g.examples[0].value == "13/01/2024" and "%m/%d/%Y" in g.expected


def test_table_wide_date_format_leaves_timestamps_readable(tmp_path):
    extra = {"usage_events": {"date_format": "%d.%m.%Y %H:%M"}}
    report, got = _one_column(tmp_path, "usage_events", "event_at",
                              ["01.04.2024 09:05", "2024/4/2 10:00"], extra=extra)
    assert report.ok, report.summary()
    assert got.tolist() == [pd.Timestamp("2024-04-01 09:05"), pd.Timestamp("2024-04-02 10:00")]


def test_survey_names_that_differ_only_in_case_get_a_note(tmp_path):
    tables = base_tables()
    tables["survey_responses"].loc[0, "survey"] = "NPS"
    tables["survey_responses"].loc[0, "score"] = "42"
    report = validate(write_exports(tmp_path / "x", tables))
    assert report.ok  # another survey name is allowed ...
    assert any("'NPS'" in n and "values:" in n for n in report.notes)  # ... but flagged
    assert "note: survey_responses: survey 'NPS'" in report.summary()


def test_numbers(tmp_path):
    cases = [("1200", 1200.0), ("1,200", 1200.0), ("12,345,678.5", 12_345_678.5),
             ("-0.0", 0.0), ("+.5", 0.5), ("1e3", 1000.0), ("１，２００", 1200.0),
             ("0", 0.0), (" 7 ", 7.0), ("", None)]
    report, got = _one_column(tmp_path, "subscriptions", "mrr", [v for v, _ in cases])
    assert not report.ok  # the empty mrr is a required value ...
    g = only_group(report, "subscriptions", "missing value", "mrr")
    assert g.examples[0].rows == (len(cases) + 1,)
    report, got = _one_column(tmp_path, "subscriptions", "mrr", [v for v, _ in cases[:-1]])
    assert report.ok, report.summary()
    assert got.tolist() == [x for _, x in cases[:-1]]


@pytest.mark.parametrize("bad", ["1,20", "1,2000", "12abc", "nan", "inf", "¥100", "1.2.3",
                                 "1 200", "--1"])
def test_bad_numbers(tmp_path, bad):
    report, _ = _one_column(tmp_path, "subscriptions", "mrr", ["5", bad])
    g = only_group(report, "subscriptions", "unparseable number", "mrr")
    assert [(p.value, p.rows) for p in g.examples] == [(bad, (3,))]


def test_whole_numbers(tmp_path):
    report, got = _one_column(tmp_path, "accounts", "employees", ["3", "3.0", "1,200", ""])
    assert report.ok
    assert got.tolist()[:3] == [3, 3, 1200] and pd.isna(got.tolist()[3])
    report, _ = _one_column(tmp_path, "accounts", "employees", ["3", "3.5"])
    g = only_group(report, "accounts", "unparseable whole number", "employees")
    assert g.examples[0].value == "3.5"


def test_ids_keep_leading_zeros_and_text_is_trimmed(tmp_path):
    tables = base_tables()
    tables["accounts"]["account_id"] = ["00042", " 007", "0"]
    tables["accounts"]["segment"] = ["  SMB ", "", "Mid"]
    for t in tables:
        if t != "accounts" and "account_id" in tables[t]:
            tables[t]["account_id"] = "00042"
    out = tmp_path / "w.duckdb"
    load(write_exports(tmp_path / "x", tables), out)
    acc = loaded(out, "accounts")
    assert acc.account_id.tolist() == ["00042", "007", "0"]
    assert acc.segment.tolist()[0] == "SMB" and pd.isna(acc.segment.tolist()[1])


def test_blank_rows_are_skipped_and_counted(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "acc.csv").write_text("顧客ID,開始日,会社名\n001,2024/4/1,a\n\n,,\n002,2024/4/2,b\n"
                                    "002x,bad,c\n", encoding="utf-8")
    (folder / "m.yml").write_text(yaml.safe_dump({"tables": {"accounts": ACC}},
                                                 allow_unicode=True), encoding="utf-8")
    report = validate(folder / "m.yml")
    assert report.skipped_blank == {"accounts": 2}
    assert "skipped 2 empty rows in accounts" in report.summary()
    g = only_group(report, "accounts", "unparseable date", "signup_date")
    assert g.examples[0].rows == (6,)  # blank lines still count as lines
    assert report.rows["accounts"] == 3


def test_rows_with_extra_cells_are_reported(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "acc.csv").write_text("顧客ID,開始日,会社名\n001,2024/4/1,a\n002,2024/4/2,1,200\n"
                                    "003,2024/4/3,c,\n", encoding="utf-8")
    (folder / "m.yml").write_text(yaml.safe_dump({"tables": {"accounts": ACC}},
                                                 allow_unicode=True), encoding="utf-8")
    report = validate(folder / "m.yml")
    (g,) = report.groups
    assert g.rule == "extra cells" and g.examples[0].rows == (3,)
    assert g.examples[0].value == "200" and "at most 3 cells" in g.expected


def test_header_below_title_lines_and_quoted_line_breaks(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "acc.csv").write_text(
        'Export of 2024-04-30\n"generated by ""CRM""\non two lines"\n顧客ID,開始日,会社名\n'
        '001,2024/4/1,"a\nb"\n002,2024/4/31,c\n', encoding="utf-8")
    (folder / "m.yml").write_text(yaml.safe_dump(
        {"tables": {"accounts": {**ACC, "header_row": 4}}}, allow_unicode=True),
        encoding="utf-8")
    report = validate(folder / "m.yml")
    g = only_group(report, "accounts", "unparseable date", "signup_date")
    # lines: 1 title, 2-3 quoted note, 4 header, 5-6 first record, 7 second record
    assert g.examples[0].rows == (7,)


def test_tab_separated_files(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "acc.tsv").write_text("顧客ID\t開始日\n001\t2024/4/1\n002\t1,200\n",
                                    encoding="utf-8")
    (folder / "m.yml").write_text(yaml.safe_dump(
        {"tables": {"accounts": {**ACC, "file": "acc.tsv"}}}, allow_unicode=True),
        encoding="utf-8")
    report = validate(folder / "m.yml")
    g = only_group(report, "accounts", "unparseable date", "signup_date")
    assert (g.examples[0].rows, g.examples[0].value) == ((3,), "1,200")


def test_line_numbers_count_line_breaks_inside_cells(tmp_path):
    tables = base_tables()
    sr = tables["survey_responses"]
    sr["comment"] = ["first line\nsecond line\nthird", "ok", "x"]
    sr.loc[2, "score"] = "99"  # CES out of range, on the record after the multi-line one
    report = validate(write_exports(tmp_path / "x", tables))
    g = only_group(report, "survey_responses", "outside survey scale", "score")
    # header line 1, R1 lines 2-4, R2 line 5, R3 line 6
    assert g.examples[0].rows == (6,)
    text = (tmp_path / "x" / "survey_responses.csv").read_text(encoding="utf-8")
    assert text.splitlines()[5].startswith("R3,")


# ----------------------------------------------------------------------------------------
# xlsx and Parquet inputs
# ----------------------------------------------------------------------------------------
def test_xlsx_input(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Export"
    ws.append(["Customer list"])
    ws.append([])
    ws.append(["ID", "Signup", "Staff", "MRR", "Kickoff"])
    ws.append(["00042", dt.datetime(2024, 4, 1), 12, 1200.5, 45384])
    ws.append([43, dt.date(2024, 4, 2), "3,000", "1,200", "2024/4/3"])
    ws.append([44, "2024/4/5", 2.0, 0, None])
    ws.append([45, "soon", 1.5, -1, "x"])
    wb.create_sheet("Other")
    wb.save(folder / "crm.xlsx")
    mapping = {"tables": {
        "accounts": {"file": "crm.xlsx", "sheet": "Export", "header_row": 3,
                     "columns": {"account_id": "ID", "signup_date": "Signup",
                                 "employees": "Staff", "kickoff_date": "Kickoff"}},
        "subscriptions": {"file": "crm.xlsx", "header_row": 3,
                          "columns": {"account_id": "ID", "start_date": "Signup",
                                      "mrr": "MRR"}}}}
    path = folder / "m.yml"
    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    report = validate(path)
    probs = {(p.table, p.rule, p.column): (p.rows, p.value) for p in report.problems}
    assert probs == {
        ("accounts", "unparseable date", "signup_date"): ((7,), "soon"),
        ("accounts", "unparseable whole number", "employees"): ((7,), 1.5),
        ("accounts", "unparseable date", "kickoff_date"): ((7,), "x"),
        ("subscriptions", "unparseable date", "start_date"): ((7,), "soon"),
        ("subscriptions", "out of range", "mrr"): ((7,), -1),
    }, report.summary()
    assert "crm.xlsx [Export] row 7" in report.summary()
    with pytest.MonkeyPatch.context() as mp:  # the same, read two rows at a time
        mp.setattr(csio, "CHUNK_ROWS", 2)
        chunked = validate(path)
        assert [(p.table, p.rule, p.column, p.rows, p.value) for p in chunked.problems] == \
            [(p.table, p.rule, p.column, p.rows, p.value) for p in report.problems]
    wb = openpyxl.load_workbook(folder / "crm.xlsx")
    wb["Export"].delete_rows(7)
    wb.save(folder / "crm.xlsx")
    out = tmp_path / "w.duckdb"
    load(path, out)
    acc = loaded(out, "accounts")
    assert acc.account_id.tolist() == ["00042", "43", "44"]
    assert acc.signup_date.dt.date.tolist() == [dt.date(2024, 4, 1), dt.date(2024, 4, 2),
                                                dt.date(2024, 4, 5)]
    assert acc.employees.tolist() == [12, 3000, 2]
    assert acc.kickoff_date.dt.date.tolist()[:2] == [dt.date(2024, 4, 2), dt.date(2024, 4, 3)]
    assert loaded(out, "subscriptions").mrr.tolist() == [1200.5, 1200.0, 0.0]


def test_parquet_input(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    pq.write_table(pa.table({
        "id": pa.array([42, 43, 44], pa.int64()),
        "signup": pa.array([dt.date(2024, 4, 1), dt.date(2024, 4, 2), None], pa.date32()),
        "emp": pa.array(["10", "1,000", "x"]),
    }), folder / "acc.parquet")
    aware = [dt.datetime(2024, 4, 1, 9, 0, tzinfo=UTC), dt.datetime(2024, 4, 2, 0, 30,
                                                                     tzinfo=UTC)]
    pq.write_table(pa.table({
        "acct": pa.array(["42", "43"]),
        "ts_aware": pa.array(aware, pa.timestamp("us", tz="UTC")),
    }), folder / "ev.parquet")
    pq.write_table(pa.table({
        "acct": pa.array(["42", "43"]),
        "ts": pa.array([dt.datetime(2024, 4, 1, 9, 0), dt.datetime(2024, 4, 2, 9, 30)],
                       pa.timestamp("us")),
    }), folder / "ms.parquet")
    mapping = {"workspace": {"timezone": "Asia/Tokyo"}, "tables": {
        "accounts": {"file": "acc.parquet", "columns": {"account_id": "id",
                                                        "signup_date": "signup",
                                                        "employees": "emp"}},
        "usage_events": {"file": "ev.parquet", "columns": {"account_id": "acct",
                                                           "event_at": "ts_aware"}},
        "onboarding_milestones": {"file": "ms.parquet", "values": {"milestone": {}},
                                  "columns": {"account_id": "acct", "completed_at": "ts",
                                              "milestone": "acct"}},
    }}
    path = folder / "m.yml"
    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    report = validate(path)
    probs = {(p.table, p.rule, p.column): (p.rows, p.value) for p in report.problems}
    assert probs == {("accounts", "missing value", "signup_date"): ((3,), None),
                     ("accounts", "unparseable whole number", "employees"): ((3,), "x")}
    assert "acc.parquet row 3" in report.summary()
    with pytest.MonkeyPatch.context() as mp:  # the same, read in batches of two rows
        mp.setattr(csio, "CHUNK_ROWS", 2)
        chunked = validate(path)
        assert [(p.table, p.rule, p.column, p.rows, p.value) for p in chunked.problems] == \
            [(p.table, p.rule, p.column, p.rows, p.value) for p in report.problems]
    pq.write_table(pq.read_table(folder / "acc.parquet").slice(0, 2), folder / "acc.parquet")
    out = tmp_path / "w.duckdb"
    load(path, out)
    acc = loaded(out, "accounts")
    assert acc.account_id.tolist() == ["42", "43"] and acc.employees.tolist() == [10, 1000]
    ev = loaded(out, "usage_events")
    assert ev.event_at.tolist() == [pd.Timestamp(a.replace(tzinfo=None)) for a in aware]
    ms = loaded(out, "onboarding_milestones")
    assert ms.completed_at.tolist() == [_utc(2024, 4, 1, 9, tz="Asia/Tokyo"),
                                        _utc(2024, 4, 2, 9, 30, tz="Asia/Tokyo")]


def test_several_files_per_table_by_glob(tmp_path):
    tables = base_tables()
    mapping = write_exports(tmp_path / "x", tables)
    folder = tmp_path / "x"
    ev = tables["usage_events"].rename(columns=src_header)
    ev.iloc[:2].to_csv(folder / "events_2024-01.csv", index=False)
    ev.iloc[2:].to_csv(folder / "events_2024-02.csv", index=False)
    data = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    data["tables"]["usage_events"]["file"] = "events_*.csv"
    dup = tables["feature_requests"].rename(columns=src_header)
    dup.to_csv(folder / "fr_a.csv", index=False)
    dup.iloc[[1]].to_csv(folder / "fr_b.csv", index=False)
    data["tables"]["feature_requests"]["file"] = ["fr_a.csv", "fr_b.csv"]
    mapping.write_text(yaml.safe_dump(data), encoding="utf-8")
    report = validate(mapping)
    g = only_group(report, "feature_requests", "duplicate key", "request_id")
    assert {(p.file, p.rows) for p in g.examples} == {("fr_a.csv", (3,)), ("fr_b.csv", (2,))}
    assert g.total == 2
    data["tables"]["feature_requests"]["file"] = "fr_a.csv"
    mapping.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = tmp_path / "w.duckdb"
    report = load(mapping, out)
    assert report.rows["usage_events"] == 3
    assert len(report.sources["usage_events"]) == 2
    assert loaded(out, "usage_events").account_id.tolist() == ["A1", "A2", "A3"]


# ----------------------------------------------------------------------------------------
# chunked reading of large files
# ----------------------------------------------------------------------------------------
def test_chunked_reading_gives_the_same_result(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    n = 40
    accounts = pd.DataFrame({"account_id": [f"{i:04d}" for i in range(n)],
                             "signup_date": "2024-01-01"}, dtype=object)
    events = pd.DataFrame({
        "account_id": [f"{i:04d}" for i in rng.integers(0, n, 250)],
        "event_at": [f"2024-{m}-{d} {h}:05" for m, d, h in zip(
            rng.integers(1, 13, 250), rng.integers(1, 29, 250), rng.integers(0, 24, 250),
            strict=True)],
        "user_id": [f"u{i}" for i in rng.integers(0, 30, 250)],
    }, dtype=object)
    tables = {"accounts": accounts, "usage_events": events}
    mapping = write_exports(tmp_path / "x", tables)
    whole = tmp_path / "whole.duckdb"
    load(mapping, whole)
    calls = []
    real = wsmod.write_workspace

    def spy(path, tables, **kw):
        calls.append(dict(tables))
        return real(path, tables, **kw)

    monkeypatch.setattr(wsmod, "write_workspace", spy)
    monkeypatch.setattr(csio, "CHUNK_ROWS", 7)
    chunked = tmp_path / "chunked.duckdb"
    load(mapping, chunked)
    # the tables reach write_workspace as Parquet globs, one file per chunk
    assert isinstance(calls[0]["usage_events"], str) and calls[0]["usage_events"].endswith(
        "*.parquet")
    for t in tables:
        a, b = loaded(whole, t), loaded(chunked, t)
        pd.testing.assert_frame_equal(a, b)
    ev = loaded(chunked, "usage_events")
    brute = pd.to_datetime(events.event_at, format="%Y-%m-%d %H:%M")
    assert ev.event_at.tolist() == brute.tolist()  # source order kept across chunks
    # problems found across chunk boundaries: duplicates, and line numbers
    accounts.loc[30, "account_id"] = accounts.loc[2, "account_id"]
    events.loc[200, "event_at"] = "bad"
    report = validate(write_exports(tmp_path / "y", tables))
    g = only_group(report, "accounts", "duplicate key", "account_id")
    assert g.examples[0].rows == (4, 32)
    g = only_group(report, "usage_events", "unparseable timestamp", "event_at")
    assert g.examples[0].rows == (202,)
    # staging folders are cleaned up
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]


# ----------------------------------------------------------------------------------------
# round trip: workspace tables -> CSV -> mapping -> identical tables
# ----------------------------------------------------------------------------------------
def rich_tables() -> dict[str, pd.DataFrame]:
    d = lambda s: dt.date.fromisoformat(s)  # noqa: E731
    ts = lambda s: pd.Timestamp(s)  # noqa: E731
    return {
        "accounts": pd.DataFrame({
            "account_id": ["00042", "007", "A-3"],
            "signup_date": [d("2024-01-05"), d("2024-02-29"), d("2023-12-31")],
            "account_name": ["髙橋商事", "Acme, Inc.", 'Quote "Q" Ltd'],
            "segment": ["SMB", None, "Enterprise"],
            "employees": pd.array([12, None, 5000], dtype="Int64"),
            "kickoff_date": [None, d("2024-03-10"), d("2024-01-02")],
            "touch_model": ["high", "tech", None],
        }),
        "subscriptions": pd.DataFrame({
            "account_id": ["00042", "007", "A-3"],
            "start_date": [d("2024-01-05"), d("2024-02-29"), d("2023-12-31")],
            "mrr": [100.25, 0.1 + 0.2, 1e6],
            "end_date": [d("2024-04-05"), None, None],
            "product": ["core", "core", "add-on"],
        }),
        "usage_events": pd.DataFrame({
            "account_id": ["00042", "00042", "007"],
            "event_at": [ts("2024-01-06 10:00:00.123456"), ts("2024-03-01 00:00"),
                         ts("2024-05-01 08:00:59")],
            "feature": ["レポート", None, "api"],
        }),
        "survey_responses": pd.DataFrame({
            "response_id": ["r1", "r2"], "account_id": ["00042", "007"],
            "survey": ["nps", "csat"], "score": [10.0, 4.0],
            "responded_at": [ts("2024-04-01 09:00"), ts("2024-04-02 10:30")],
            "comment": ["良い\n二行目", None], "attr_ease": [4.0, None],
        }),
        "support_tickets": pd.DataFrame({
            "ticket_id": ["t1"], "account_id": ["A-3"],
            "opened_at": [ts("2024-02-01 09:00")], "resolved_at": [ts("2024-02-02 09:00")],
            "csat": [5.0],
        }),
        "stakeholders": pd.DataFrame({
            "account_id": ["007"], "person_id": ["p1"], "role": ["sponsor"],
            "influence": pd.array([3], dtype="Int64"),
            "sentiment": pd.array([-2], dtype="Int64"),
            "left_at": [ts("2024-06-01 12:00")],
        }),
        "health_inputs": pd.DataFrame({
            "account_id": ["007"], "as_of": [d("2024-03-31")],
            "csm_rating": pd.array([2], dtype="Int64"),
        }),
    }


def _export_workspace_to_csv(ws_path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    ws = open_workspace(ws_path)
    mapping = {"tables": {}}
    for t in ws.tables:
        df = ws.table(t).to_pandas()
        df.to_csv(folder / f"{t}.csv", index=False)
        mapping["tables"][t] = {"file": f"{t}.csv"}  # canonical headers map themselves
    path = folder / "mapping.yml"
    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    return path


def _assert_same_workspace(a: Path, b: Path):
    import duckdb

    wa, wb = open_workspace(a), open_workspace(b)
    assert wa.tables == wb.tables
    for t in wa.tables:
        ca = duckdb.connect(str(a), read_only=True)
        cb = duckdb.connect(str(b), read_only=True)
        try:
            assert ca.execute(f'DESCRIBE "{t}"').fetchall() == \
                cb.execute(f'DESCRIBE "{t}"').fetchall()
        finally:
            ca.close()
            cb.close()
        pd.testing.assert_frame_equal(wa.table(t).to_pandas(), wb.table(t).to_pandas())


def test_round_trip_through_csv(tmp_path):
    original = write_workspace(tmp_path / "a.duckdb", rich_tables())
    mapping = _export_workspace_to_csv(original, tmp_path / "csv")
    again = tmp_path / "b.duckdb"
    load(mapping, again)
    _assert_same_workspace(original, again)


def test_round_trip_of_the_tiny_fixture(tmp_path, tiny_tables):
    original = write_workspace(tmp_path / "a.duckdb", tiny_tables)
    again = tmp_path / "b.duckdb"
    load(_export_workspace_to_csv(original, tmp_path / "csv"), again)
    _assert_same_workspace(original, again)


def test_round_trip_of_demo_tables(tmp_path):
    demo = pytest.importorskip("cs_analysis.demo")
    path = demo.build_demo(tmp_path / "demo.duckdb", accounts=40, seed=11)
    again = tmp_path / "b.duckdb"
    load(_export_workspace_to_csv(path, tmp_path / "csv"), again)
    _assert_same_workspace(path, again)


# ----------------------------------------------------------------------------------------
# sources untouched; failed loads change nothing
# ----------------------------------------------------------------------------------------
def test_source_files_are_never_modified(tmp_path):
    tables = base_tables()
    mapping = write_exports(tmp_path / "x", tables, encoding="cp932")
    before = digests(tmp_path / "x")
    assert validate(mapping).ok
    load(mapping, tmp_path / "w.duckdb", progress=True)
    tables["accounts"].loc[0, "signup_date"] = "bad"
    bad = write_exports(tmp_path / "y", tables)
    bad_before = digests(tmp_path / "y")
    with pytest.raises(LoadError):
        load(bad, tmp_path / "w.duckdb")
    assert digests(tmp_path / "x") == before
    assert digests(tmp_path / "y") == bad_before


def test_failed_load_leaves_existing_workspace_unchanged(tmp_path, monkeypatch):
    out = tmp_path / "w.duckdb"
    good = write_exports(tmp_path / "x", base_tables())
    load(good, out)
    before = digest(out)
    tables = base_tables()
    tables["subscriptions"].loc[0, "mrr"] = "-1"
    with pytest.raises(LoadError) as err:
        load(write_exports(tmp_path / "y", tables), out)
    assert "subscriptions.csv line 2" in str(err.value)
    assert digest(out) == before

    def boom(con, *args):
        raise RuntimeError("disk full while building the rollup")

    monkeypatch.setattr(wsmod, "_build_rollups", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        load(good, out)
    assert digest(out) == before
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert leftovers == []
    assert open_workspace(out).subscriptions.count().execute() == 3


def test_load_error_carries_the_report(tmp_path):
    tables = base_tables()
    tables["accounts"].loc[0, "touch_model"] = "none"
    with pytest.raises(LoadError) as err:
        load(write_exports(tmp_path / "x", tables), tmp_path / "w.duckdb")
    assert str(err.value) == err.value.report.summary()
    assert not err.value.report.ok


def test_workspace_settings_are_stored(tmp_path):
    out = tmp_path / "w.duckdb"
    ws_cfg = {"timezone": "Asia/Tokyo", "currency": "JPY", "as_of": "2024-06-30",
              "survey_scales": {"csat": [1, 7]}}
    load(write_exports(tmp_path / "x", base_tables(), workspace=ws_cfg), out)
    ws = open_workspace(out)
    assert ws.timezone == "Asia/Tokyo" and ws.currency == "JPY"
    assert ws.as_of == dt.date(2024, 6, 30)
    assert ws.survey_scales == {"csat": [1, 7]}


def test_report_frame_and_problem_text(tmp_path):
    tables = base_tables()
    tables["accounts"].loc[2, "employees"] = "many"
    report = validate(write_exports(tmp_path / "x", tables))
    frame = report.to_frame()
    row = frame.iloc[0]
    assert (row.table, row.rule, row.file, row.rows, row.column, row.source_column,
            row.value, row.group_total) == ("accounts", "unparseable whole number",
                                            "accounts.csv", "4", "employees",
                                            "Src employees", "'many'", 1)
    p = report.problems[0]
    assert str(p).startswith("accounts.csv, line 4, column employees (Src employees): 'many'")


def test_progress_bars_do_not_change_results(tmp_path, capsys):
    mapping = write_exports(tmp_path / "x", base_tables())
    load(mapping, tmp_path / "a.duckdb", progress=True)
    load(mapping, tmp_path / "b.duckdb", progress=False)
    _assert_same_workspace(tmp_path / "a.duckdb", tmp_path / "b.duckdb")


def test_validate_with_a_dict_mapping(tmp_path):
    mapping = write_exports(tmp_path / "x", base_tables())
    data = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    assert validate(data, base_dir=tmp_path / "x").ok
    assert not validate(data, base_dir=tmp_path).ok  # files not found from there


def test_csv_export_is_read_as_text_only(tmp_path):
    # a value that looks like a number in a text column stays exactly as written
    tables = base_tables()
    tables["accounts"]["segment"] = ["0012", "1e3", "TRUE"]
    out = tmp_path / "w.duckdb"
    load(write_exports(tmp_path / "x", tables), out)
    assert loaded(out, "accounts").segment.tolist() == ["0012", "1e3", "TRUE"]


def test_stdlib_io_not_shadowed():
    # the module is cs_analysis.io; the standard library's io stays importable
    assert stdio.StringIO("x").read() == "x"


# ----------------------------------------------------------------------------------------
# the mapping file through the schema (cs_analysis.config)
# ----------------------------------------------------------------------------------------
def test_duplicate_keys_in_a_mapping_are_an_error_with_both_lines(tmp_path):
    # account_name mapped twice: a plain YAML loader keeps the last one, and account
    # names silently came from the segment column
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "acc.csv").write_text("顧客ID,開始日,会社名,セグメント\n001,2024/4/1,髙橋,SMB\n",
                                    encoding="utf-8")
    path = folder / "m.yml"
    path.write_text("tables:\n"
                    "  accounts:\n"
                    "    file: acc.csv\n"
                    "    columns:\n"
                    "      account_id: 顧客ID\n"
                    "      signup_date: 開始日\n"
                    "      account_name: 会社名\n"
                    "      account_name: セグメント\n", encoding="utf-8")
    report = validate(path)
    assert not report.ok
    text = report.summary()
    assert "m.yml" in text and "duplicate key 'account_name'" in text
    assert "line 7" in text and "line 8" in text
    with pytest.raises(MappingError, match="line 7.*line 8"):
        read_mapping(path)
    with pytest.raises(LoadError):
        load(path, tmp_path / "w.duckdb")
    assert not (tmp_path / "w.duckdb").exists()


def test_every_schema_problem_of_a_mapping_is_listed_with_its_line(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "acc.csv").write_text("account_id,signup_date\n1,2024-01-01\n", encoding="utf-8")
    path = folder / "m.yml"
    path.write_text("workspace:\n"
                    "  timezone: Tokyo\n"
                    "  as_of: last week\n"
                    "tables:\n"
                    "  accounts:\n"
                    "    file: acc.csv\n"
                    "    colums: {}\n"
                    "    header_row: 0\n"
                    "  subscriptions:\n"
                    "    format: xls\n"
                    "    file: acc.csv\n"
                    "  usage_events: {}\n", encoding="utf-8")
    report = validate(path)
    found = {p.entry: p for p in report.problems}
    expected_lines = {"workspace.timezone": 2, "workspace.as_of": 3,
                      "tables.accounts.colums": 7, "tables.accounts.header_row": 8,
                      "tables.subscriptions.format": 10, "tables.usage_events.file": 12}
    assert {e: found[e].rows for e in expected_lines} == {
        e: (n,) for e, n in expected_lines.items()}, report.summary()
    assert "IANA" in found["workspace.timezone"].expected
    assert "one of the keys" in found["tables.accounts.colums"].expected
    assert "1 or more" in found["tables.accounts.header_row"].expected
    assert "'csv', 'xlsx' or 'parquet'" in found["tables.subscriptions.format"].expected
    assert "required" in found["tables.usage_events.file"].expected


@pytest.mark.parametrize("text", [
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "tables: *i\n",
    "tables:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(200)) + "  " * 201 + "v\n",
])
def test_yaml_bombs_and_deep_nesting_in_a_mapping_are_refused_quickly(tmp_path, text):
    import time

    path = tmp_path / "m.yml"
    path.write_text(text, encoding="utf-8")
    start = time.perf_counter()
    report = validate(path)
    assert time.perf_counter() - start < 5
    assert not report.ok and "m.yml" in report.summary() and "line" in report.summary()


@pytest.mark.parametrize(("fmt", "fragment"), [
    ("%Y/%m/%Q", "%Q is not a strptime directive"),
    ("%Y/%m/%d %", "stray %"),
])
def test_bad_date_format_directives_name_file_and_setting(tmp_path, fmt, fragment):
    tables = {"accounts": {**ACC, "date_format": {"signup_date": fmt}}}
    path = _mapping(tmp_path, tables)
    report = validate(path)
    (p,) = report.problems
    assert p.entry == "tables.accounts.date_format.signup_date" and fragment in p.expected
    assert str(path) in report.summary() and p.rows  # a line number
    with pytest.raises(MappingError, match=fragment):
        read_mapping(path)


# ----------------------------------------------------------------------------------------
# encodings that are not UTF-8 / CP932: never guessed
# ----------------------------------------------------------------------------------------
ENCODING_SAMPLES = [
    ("cp1252", ["Señor Núñez", "Frédéric Légère", "Jørgen Ærø", "Hélène Müller"]),
    ("latin-1", ["Señor Núñez", "Frédéric Légère", "Jørgen Ærø", "STRAßE ÜBER"]),
    ("cp949", ["김민준", "이서연 부산광역시", "박지훈"]),
    ("euc-kr", ["김민준", "이서연 부산광역시", "박지훈"]),
    ("gb18030", ["王伟", "李娜 上海市浦东新区", "张敏"]),
]


def _names_csv(folder, names, encoding):
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["account_id,signup_date,account_name"] + [
        f"A{i},2024-01-0{i + 1},{n}" for i, n in enumerate(names)]
    (folder / "acc.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode(encoding))


@pytest.mark.parametrize(("encoding", "names"), ENCODING_SAMPLES,
                         ids=[e for e, _ in ENCODING_SAMPLES])
def test_other_encodings_are_never_guessed_and_load_when_named(tmp_path, encoding, names):
    folder = tmp_path / "x"
    _names_csv(folder, names, encoding)
    path = folder / "m.yml"
    path.write_text(yaml.safe_dump({"tables": {"accounts": {"file": "acc.csv"}}}),
                    encoding="utf-8")
    report = validate(path)
    (g,) = report.groups
    assert g.rule == "unreadable file" and g.examples[0].file == "acc.csv"
    assert "`encoding:`" in g.expected and "UTF-8 or CP932" in g.expected
    assert "tables.accounts.file" in report.summary()
    with pytest.raises(ValueError, match="encoding:"):
        detect_encoding(folder / "acc.csv")
    # named in the mapping: read exactly
    path.write_text(yaml.safe_dump({"tables": {"accounts": {"file": "acc.csv",
                                                            "encoding": encoding}}}),
                    encoding="utf-8")
    out = tmp_path / "w.duckdb"
    report = load(path, out)
    assert "from the mapping" in report.sources["accounts"][0]
    assert loaded(out, "accounts").account_name.tolist() == names


def test_japanese_detection_still_reads_cp932_and_not_western_text(tmp_path):
    small = tmp_path / "jp.csv"
    small.write_bytes(_jp_csv(JP_ROWS, "cp932"))
    assert detect_encoding(small) == "cp932"
    kanji = tmp_path / "kanji.csv"
    kanji.write_bytes("id,name\n1,株式会社髙橋商事\n2,山﨑工業\n3,渡邊\n".encode("cp932"))
    assert detect_encoding(kanji) == "cp932"
    # French names whose accented letters are followed by a letter decode as CP932 kanji
    western = tmp_path / "fr.csv"
    western.write_bytes("id,name\n1,Hélène\n2,Frédéric\n3,Légère\n".encode("cp1252"))
    with pytest.raises(ValueError, match="encoding"):
        detect_encoding(western)


# ----------------------------------------------------------------------------------------
# Excel formulas without a value; Parquet time zones, lists and decimals
# ----------------------------------------------------------------------------------------
def test_excel_formula_cells_without_a_saved_value_are_named_by_cell(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    wb = openpyxl.Workbook()  # written by a script: formulas have no cached result
    ws = wb.active
    ws.title = "CRM"
    ws.append(["id", "signup", "emp"])
    ws.append(["A1", dt.datetime(2024, 4, 1), 10])
    ws.append(["A2", "=DATE(2024,4,2)", "=5*2"])
    ws.append(["A3", dt.datetime(2024, 4, 3), 7])
    wb.save(folder / "acc.xlsx")
    path = folder / "m.yml"
    path.write_text(yaml.safe_dump({"tables": {"accounts": {
        "file": "acc.xlsx", "columns": {"account_id": "id", "signup_date": "signup",
                                        "employees": "emp"}}}}), encoding="utf-8")
    report = validate(path)
    got = {(p.column, p.rows, p.value) for p in report.problems}
    assert got == {("signup_date", (3,), "B3: =DATE(2024,4,2)"),
                   ("employees", (3,), "C3: =5*2")}, report.summary()
    assert {g.rule for g in report.groups} == {"formula without a value"}
    assert "acc.xlsx [CRM] row 3" in report.summary()
    with pytest.raises(LoadError, match="formula"):
        load(path, tmp_path / "w.duckdb")


@pytest.mark.parametrize(("tz", "instant", "date"), [
    # 15:30 UTC on 31 March is already 1 April in Tokyo
    ("Asia/Tokyo", dt.datetime(2024, 3, 31, 15, 30, tzinfo=UTC), dt.date(2024, 4, 1)),
    ("Asia/Tokyo", dt.datetime(2024, 3, 31, 14, 59, tzinfo=UTC), dt.date(2024, 3, 31)),
    # 06:30 UTC on 1 April is still 31 March in Los Angeles (PDT, UTC-7)
    ("America/Los_Angeles", dt.datetime(2024, 4, 1, 6, 30, tzinfo=UTC), dt.date(2024, 3, 31)),
    ("America/Los_Angeles", dt.datetime(2024, 4, 1, 7, 0, tzinfo=UTC), dt.date(2024, 4, 1)),
    # a column stored in another zone: the instant counts, not its wall time
    ("UTC", dt.datetime(2024, 4, 1, 8, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo")),
     dt.date(2024, 3, 31)),
])
def test_tz_aware_parquet_values_give_workspace_dates_and_utc_instants(tmp_path, tz, instant,
                                                                        date):
    folder = tmp_path / "x"
    folder.mkdir()
    aware = pd.Series([pd.Timestamp(instant)])  # keeps the column's own zone
    pq.write_table(pa.table({
        "id": pa.array(["A1"]),
        "signup": pa.Array.from_pandas(aware).cast(pa.timestamp("us", tz=str(aware.dt.tz))),
    }), folder / "acc.parquet")
    pq.write_table(pa.table({
        "id": pa.array(["A1"]),
        "ts": pa.Array.from_pandas(aware).cast(pa.timestamp("ms", tz=str(aware.dt.tz))),
    }), folder / "ev.parquet")
    assert pq.read_table(folder / "ev.parquet").column("ts").type.tz == str(instant.tzinfo)
    path = folder / "m.yml"
    path.write_text(yaml.safe_dump({"workspace": {"timezone": tz}, "tables": {
        "accounts": {"file": "acc.parquet", "columns": {"account_id": "id",
                                                        "signup_date": "signup"}},
        "usage_events": {"file": "ev.parquet", "columns": {"account_id": "id",
                                                           "event_at": "ts"}}}}),
        encoding="utf-8")
    out = tmp_path / "w.duckdb"
    load(path, out)
    # independent reference: pandas' conversion of the instant into the workspace zone
    ref = pd.Timestamp(instant).tz_convert(tz).date()
    assert ref == date
    assert loaded(out, "accounts").signup_date.dt.date.tolist() == [date]
    utc = instant.astimezone(UTC).replace(tzinfo=None)
    assert loaded(out, "usage_events").event_at.tolist() == [pd.Timestamp(utc)]


def test_parquet_list_column_as_an_id_is_refused(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    pq.write_table(pa.table({
        "id": pa.array([["A1", "A2"], ["A3"]], pa.list_(pa.string())),
        "signup": pa.array([dt.date(2024, 4, 1), dt.date(2024, 4, 2)], pa.date32()),
    }), folder / "acc.parquet")
    path = folder / "m.yml"
    path.write_text(yaml.safe_dump({"tables": {"accounts": {
        "file": "acc.parquet", "columns": {"account_id": "id", "signup_date": "signup"}}}}),
        encoding="utf-8")
    report = validate(path)
    (g,) = report.groups
    assert g.rule == "unsupported column type" and g.column == "account_id"
    assert "acc.parquet" in report.summary() and "list" in g.expected
    with pytest.raises(LoadError):
        load(path, tmp_path / "w.duckdb")


def test_parquet_decimal_money_columns_load(tmp_path):
    from decimal import Decimal

    folder = tmp_path / "x"
    folder.mkdir()
    pq.write_table(pa.table({"id": pa.array(["A1", "A2"]),
                             "signup": pa.array([dt.date(2024, 4, 1)] * 2, pa.date32())}),
                   folder / "acc.parquet")
    mrr = [Decimal("1200.50"), Decimal("99.99")]
    pq.write_table(pa.table({
        "id": pa.array(["A1", "A2"]),
        "start": pa.array([dt.date(2024, 4, 1)] * 2, pa.date32()),
        "mrr": pa.array(mrr, pa.decimal128(12, 2)),
        "seats": pa.array([Decimal("10"), None], pa.decimal128(6, 0)),
    }), folder / "subs.parquet")
    path = folder / "m.yml"
    path.write_text(yaml.safe_dump({"tables": {
        "accounts": {"file": "acc.parquet", "columns": {"account_id": "id",
                                                        "signup_date": "signup"}},
        "subscriptions": {"file": "subs.parquet", "columns": {
            "account_id": "id", "start_date": "start", "mrr": "mrr", "seats": "seats"}}}}),
        encoding="utf-8")
    out = tmp_path / "w.duckdb"
    report = load(path, out)
    assert report.ok
    subs = loaded(out, "subscriptions")
    assert subs.mrr.tolist() == [1200.5, 99.99]
    assert subs.seats.iloc[0] == 10 and pd.isna(subs.seats.iloc[1])


# ----------------------------------------------------------------------------------------
# a load killed part-way: the old workspace stays, the next load cleans up and works
# ----------------------------------------------------------------------------------------
_KILL_DRIVER = """
import sys, time
import cs_analysis.io.loader as L
import cs_analysis.workspace as W
point = sys.argv[3]

def pause(name, orig):
    def wrapper(*args, **kwargs):
        result = orig(*args, **kwargs)
        print("AT", name, flush=True)
        time.sleep(120)
        return result
    return wrapper

if point == "staging":
    L._TableRun._stage = pause(point, L._TableRun._stage)
elif point == "insert":
    W._insert = pause(point, W._insert)
else:
    W._build_rollups = pause(point, W._build_rollups)
L.load(sys.argv[1], sys.argv[2])
"""


@pytest.mark.parametrize("point", ["staging", "insert", "rollup"])
def test_a_killed_load_keeps_the_old_workspace_and_the_next_load_cleans_up(tmp_path, point):
    import os
    import subprocess
    import sys

    out = tmp_path / "w.duckdb"
    first = write_exports(tmp_path / "a", base_tables())
    load(first, out)
    before = digest(out)
    tables = base_tables()
    tables["accounts"].loc[0, "segment"] = "Mid-Market"
    second = write_exports(tmp_path / "b", tables)
    env = {**os.environ, "PYTHONPATH": str(Path(csio.__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_DRIVER, str(second), str(out), point],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == f"AT {point}", proc.stderr.read()
        proc.kill()  # SIGKILL: no finally block, no cleanup
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert digest(out) == before
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert left, "the killed load should have left its staging behind"
    report = load(second, out)
    assert report.ok
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert loaded(out, "accounts").segment.iloc[0] == "Mid-Market"
