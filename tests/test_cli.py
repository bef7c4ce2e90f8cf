"""Tests of the ``cs-analysis`` command (through ``cli.main``)."""

from __future__ import annotations

import datetime as dt
import filecmp
import hashlib
import importlib.util
import shutil
import zoneinfo
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from cs_analysis.cli import main
from cs_analysis.workspace import open_workspace

# -- validate / load (cs_analysis.io) --------------------------------------------------------
MAPPINGS = Path(__file__).resolve().parent.parent / "data" / "mappings"
JP = MAPPINGS / "jp_example" / "mapping.yml"
EN = MAPPINGS / "en_example" / "mapping.yml"


def _digests(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _make_examples():
    spec = importlib.util.spec_from_file_location("make_examples",
                                                  MAPPINGS / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mapping", [JP, EN], ids=["jp_example", "en_example"])
def test_validate_example_mappings(mapping, capsys):
    before = _digests(mapping.parent)
    assert main(["validate", "--config", str(mapping)]) == 0
    out = capsys.readouterr().out
    assert "tables valid" in out
    assert _digests(mapping.parent) == before


def test_load_japanese_cp932_example(tmp_path, capsys):
    before = _digests(JP.parent)
    out_path = tmp_path / "jp.duckdb"
    assert main(["load", "--config", str(JP), "--out", str(out_path), "--quiet"]) == 0
    assert f"workspace written to {out_path}" in capsys.readouterr().out
    assert _digests(JP.parent) == before
    ws = open_workspace(out_path)
    assert ws.timezone == "Asia/Tokyo" and ws.currency == "JPY"
    acc = ws.accounts.to_pandas()
    # the generator writes these rows; read them back independently from the CP932 file
    raw = pd.read_csv(JP.parent / "exports" / "顧客一覧.csv", encoding="cp932", dtype=str)
    assert acc.account_id.tolist() == raw["顧客ID"].tolist()
    assert acc.account_id.iloc[0] == "00001"
    assert acc.account_name.tolist() == raw["会社名"].tolist()
    assert "髙橋商事" in set(acc.account_name) and "山﨑工業" in set(acc.account_name)
    assert {"髙木 真理", "山﨑 翔"} <= set(acc.csm_owner)
    seg = {"中小企業": "SMB", "中堅企業": "Mid-Market", "大企業": "Enterprise"}
    assert acc.segment.tolist() == [seg[s] for s in raw["セグメント"]]
    assert acc.employees.tolist() == [int(x.replace(",", "")) for x in raw["従業員数"]]
    y, m, d = (int(x) for x in raw["契約開始日"].iloc[1].split("/"))
    assert acc.signup_date.iloc[1].date() == dt.date(y, m, d)
    # 9999/12/31 is mapped to "no end date"
    subs = ws.subscriptions.to_pandas()
    raw_subs = pd.read_csv(JP.parent / "exports" / "契約一覧.csv", encoding="cp932", dtype=str)
    open_ended = raw_subs["終了日"].isna() | (raw_subs["終了日"] == "9999/12/31")
    assert subs.end_date.isna().tolist() == open_ended.tolist()
    assert subs.mrr.tolist() == [float(x.replace(",", "")) for x in raw_subs["月額(円)"]]
    # the optional renewal columns: next renewal, term, seats (blank cells stay missing)
    assert [None if pd.isna(d) else d.date() for d in subs.renewal_date] == [
        None if pd.isna(x) else dt.datetime.strptime(x, "%Y/%m/%d").date()
        for x in raw_subs["次回更新日"]]
    assert subs.term_months.tolist() == [int(x) for x in raw_subs["契約期間(月)"]]
    assert [None if pd.isna(x) else int(x) for x in subs.seats] == [
        None if pd.isna(x) else int(x.replace(",", "")) for x in raw_subs["ライセンス数"]]
    assert subs.seats.notna().any() and subs.renewal_date.notna().any()
    # Tokyo wall-clock times are stored as UTC
    ev = ws.usage_events.to_pandas()
    raw_ev = pd.read_csv(JP.parent / "exports" / "利用ログ.csv", encoding="cp932", dtype=str)
    first = dt.datetime.strptime(raw_ev["日時"].iloc[0], "%Y/%m/%d %H:%M").replace(
        tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert ev.event_at.iloc[0] == pd.Timestamp(first.astimezone(dt.UTC).replace(tzinfo=None))
    # the two-line survey comment survives
    comments = ws.survey_responses.to_pandas().comment.dropna().tolist()
    assert any("\n" in c for c in comments)
    st = ws.stakeholders.to_pandas()
    assert set(st.domain) == {"business", "technical"}


def test_load_english_mixed_example(tmp_path):
    out_path = tmp_path / "en.duckdb"
    assert main(["load", "--config", str(EN), "--out", str(out_path), "--quiet"]) == 0
    ws = open_workspace(out_path)
    assert set(ws.tables) == {"accounts", "subscriptions", "usage_events",
                              "onboarding_milestones", "survey_responses", "health_inputs",
                              "cs_activities", "feature_requests"}
    acc = ws.accounts.to_pandas()
    raw = pd.read_csv(EN.parent / "exports" / "crm_accounts.csv", encoding="utf-8-sig",
                      dtype=str)
    assert acc.signup_date.dt.date.tolist() == [
        dt.datetime.strptime(x, "%m/%d/%Y").date() for x in raw["Close Date"]]
    # Parquet: tz-aware UTC timestamps stay as they are
    ev = ws.usage_events.to_pandas()
    src = pq.read_table(EN.parent / "exports" / "product_events.parquet").to_pandas()
    assert ev.event_at.tolist() == src.ts.dt.tz_localize(None).tolist()
    # xlsx: a header under a title row, Excel dates and serial numbers
    subs = ws.subscriptions.to_pandas()
    assert len(subs) > len(acc) and subs.start_date.notna().all()
    import openpyxl

    sheet = openpyxl.load_workbook(EN.parent / "exports" / "billing.xlsx")["Subscriptions"]
    rows = [r for r in sheet.iter_rows(min_row=4, values_only=True) if r[0]]
    assert [None if pd.isna(d) else d.date() for d in subs.renewal_date] == [
        None if r[6] is None else r[6].date() for r in rows]
    assert subs.term_months.tolist() == [r[7] for r in rows]
    assert [None if pd.isna(x) else int(x) for x in subs.seats] == [r[8] for r in rows]
    health = ws.health_inputs.to_pandas()
    assert health.as_of.notna().all() and set(health.csm_rating) <= set(range(1, 6))
    sr = ws.survey_responses.to_pandas()
    assert {"attr_ease_of_use", "attr_support"} <= set(sr.columns)
    assert set(sr.survey) == {"nps", "csat", "ces"}


def test_validate_and_load_report_problems(tmp_path, capsys):
    folder = tmp_path / "jp"
    shutil.copytree(JP.parent, folder)
    path = folder / "exports" / "顧客一覧.csv"
    lines = path.read_bytes().decode("cp932").split("\r\n")
    cells = lines[2].split(",")
    cells[2] = "2024/2/30"
    lines[2] = ",".join(cells)
    path.write_bytes("\r\n".join(lines).encode("cp932"))
    mapping = folder / "mapping.yml"
    assert main(["validate", "--config", str(mapping)]) == 1
    out = capsys.readouterr().out
    assert "exports/顧客一覧.csv line 3: '2024/2/30'" in out
    assert "契約開始日" in out and "signup_date" in out
    existing = tmp_path / "acme.duckdb"
    assert main(["load", "--config", str(JP), "--out", str(existing), "--quiet"]) == 0
    before = hashlib.sha256(existing.read_bytes()).hexdigest()
    capsys.readouterr()
    assert main(["load", "--config", str(mapping), "--out", str(existing), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "line 3" in err and f"nothing was written; {existing} is unchanged" in err
    assert hashlib.sha256(existing.read_bytes()).hexdigest() == before


def test_drop_unknown_accounts_flag(tmp_path, capsys):
    folder = tmp_path / "jp"
    shutil.copytree(JP.parent, folder)
    path = folder / "exports" / "利用ログ.csv"
    text = path.read_bytes().decode("cp932")
    path.write_bytes((text + "99999,u,2024/5/1 9:00,ログイン,連携\r\n").encode("cp932"))
    mapping = folder / "mapping.yml"
    assert main(["validate", "--config", str(mapping)]) == 1
    assert "'99999'" in capsys.readouterr().out
    assert main(["validate", "--config", str(mapping), "--drop-unknown-accounts"]) == 0
    assert "dropped 1 row of usage_events" in capsys.readouterr().out
    out_path = tmp_path / "w.duckdb"
    assert main(["load", "--config", str(mapping), "--out", str(out_path), "--quiet",
                 "--drop-unknown-accounts"]) == 0
    assert "99999" not in set(open_workspace(out_path).usage_events.to_pandas().account_id)


def test_committed_examples_match_their_generator(tmp_path):
    written = _make_examples().write_examples(tmp_path)
    assert set(written) == {"jp_example", "en_example"}
    for name in written:
        ours, theirs = MAPPINGS / name, tmp_path / name
        files = sorted(p.relative_to(theirs) for p in theirs.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(ours) for p in ours.rglob("*") if p.is_file())
        for rel in files:
            if rel.suffix == ".xlsx":  # zip entries carry write times: compare cells
                import openpyxl

                a = openpyxl.load_workbook(ours / rel)
                b = openpyxl.load_workbook(theirs / rel)
                assert a.sheetnames == b.sheetnames
                for s in a.sheetnames:
                    assert list(a[s].values) == list(b[s].values)
            elif rel.suffix == ".parquet":
                assert pq.read_table(ours / rel).equals(pq.read_table(theirs / rel))
            else:
                assert filecmp.cmp(ours / rel, theirs / rel, shallow=False), rel


def test_japanese_example_is_cp932_not_shift_jis():
    data = (JP.parent / "exports" / "顧客一覧.csv").read_bytes()
    assert "髙橋商事".encode("cp932") in data
    with pytest.raises(UnicodeEncodeError):
        "髙".encode("shift_jis")


# -- --out: never an input, never a file that is not a workspace, one-line errors ----------
def _small(tmp_path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "acc.csv").write_text("account_id,signup_date\nA1,2024-01-01\n", encoding="utf-8")
    (folder / "m.yml").write_text("tables:\n  accounts:\n    file: acc.csv\n", encoding="utf-8")
    return folder / "m.yml"


def _one_line_error(capsys, *fragments) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


@pytest.mark.parametrize("target", ["source", "mapping", "notes", "plain_duckdb"])
def test_load_refuses_an_out_that_is_an_input_or_not_a_workspace(tmp_path, capsys, target):
    import duckdb

    mapping = _small(tmp_path)
    notes = tmp_path / "notes.duckdb"
    notes.write_text("my notes, not a workspace\n", encoding="utf-8")
    plain = tmp_path / "other.duckdb"
    con = duckdb.connect(str(plain))
    con.execute("CREATE TABLE t AS SELECT 1 AS x")
    con.close()
    out = {"source": mapping.parent / "acc.csv", "mapping": mapping, "notes": notes,
           "plain_duckdb": plain}[target]
    before = _digests(tmp_path)
    assert main(["load", "--config", str(mapping), "--out", str(out), "--quiet"]) == 1
    _one_line_error(capsys, str(out))
    assert _digests(tmp_path) == before
    # a workspace is replaced as before; the same path given relative also counts as input
    ws = tmp_path / "w.duckdb"
    assert main(["load", "--config", str(mapping), "--out", str(ws), "--quiet"]) == 0
    assert main(["load", "--config", str(mapping), "--out", str(ws), "--quiet"]) == 0
    # a new folder is created
    assert main(["load", "--config", str(mapping), "--out",
                 str(tmp_path / "new" / "deeper" / "w.duckdb"), "--quiet"]) == 0
    capsys.readouterr()


def test_load_out_as_a_folder_under_a_file_or_unwritable_is_one_line(tmp_path, capsys):
    mapping = _small(tmp_path)
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    for out, fragment in [(tmp_path, "is a folder"),
                          (tmp_path / "afile" / "w.duckdb", "is a file, not a folder"),
                          (Path("/proc/cs-analysis-no-such-dir/w.duckdb"), "w.duckdb")]:
        assert main(["load", "--config", str(mapping), "--out", str(out), "--quiet"]) == 1
        _one_line_error(capsys, fragment)


def test_load_out_in_a_read_only_folder(tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    mapping = _small(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["load", "--config", str(mapping), "--out", str(locked / "w.duckdb"),
                     "--quiet"]) == 1
        _one_line_error(capsys, "no permission")
    finally:
        locked.chmod(0o700)


def test_bad_date_format_in_the_mapping_is_reported_not_raised(tmp_path, capsys):
    mapping = _small(tmp_path)
    mapping.write_text("tables:\n  accounts:\n    file: acc.csv\n"
                       "    date_format: \"%Y-%m-%Q\"\n", encoding="utf-8")
    assert main(["validate", "--config", str(mapping)]) == 1
    out = capsys.readouterr().out
    assert "m.yml line 4 [tables.accounts.date_format]" in out and "%Q" in out
    assert main(["load", "--config", str(mapping), "--out", str(tmp_path / "w.duckdb"),
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "date_format" in err


def test_full_disk_is_one_line_and_keeps_the_old_workspace(tmp_path, capsys, monkeypatch):
    import errno

    from cs_analysis import workspace as wsmod

    mapping = _small(tmp_path)
    out = tmp_path / "w.duckdb"
    assert main(["load", "--config", str(mapping), "--out", str(out), "--quiet"]) == 0
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    capsys.readouterr()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wsmod, "_insert", full)
    assert main(["load", "--config", str(mapping), "--out", str(out), "--quiet"]) == 1
    _one_line_error(capsys, "No space left on device", "w.duckdb is unchanged")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "w.duckdb"]


def test_next_load_removes_what_an_interrupted_load_left(tmp_path, capsys):
    mapping = _small(tmp_path)
    out = tmp_path / "w.duckdb"
    stale = [tmp_path / ".w-abcd1234.duckdb.tmp", tmp_path / ".w-abcd1234.duckdb.tmp.wal",
             tmp_path / ".w-staging-zz_k9x0q"]
    stale[0].write_bytes(b"\0" * 4096)
    stale[1].write_bytes(b"\0" * 16)
    (stale[2] / "data" / "accounts").mkdir(parents=True)
    (stale[2] / "data" / "accounts" / "part-000000.parquet").write_bytes(b"PAR1")
    others = [tmp_path / ".w-x-abcd1234.duckdb.tmp", tmp_path / ".other-abcd1234.duckdb.tmp",
              tmp_path / ".w-abcd1234.keep"]
    for p in others:
        p.write_text("not ours", encoding="utf-8")
    assert main(["load", "--config", str(mapping), "--out", str(out), "--quiet"]) == 0
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)
    hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert hidden == sorted(p.name for p in others)
