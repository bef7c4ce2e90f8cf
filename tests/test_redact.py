"""Redaction for sharing outside the CS team (cs_analysis.redact, serve --redact)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import re
import stat

import altair as alt
import pandas as pd
import pytest

from cs_analysis import redact as rd
from cs_analysis.dashboard import base as dash
from cs_analysis.dashboard.base import KPI, Dashboard, Panel, View
from cs_analysis.workspace import open_workspace, write_workspace

SECRET = "test-secret"


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv(rd.KEY_ENV, raising=False)
    monkeypatch.delenv(rd.REDACT_ENV, raising=False)
    rd._REDACTORS.clear()
    yield
    rd._REDACTORS.clear()


@pytest.fixture
def people_ws(tmp_path):
    accounts = pd.DataFrame({
        "account_id": ["A1", "A2", "A3"],
        "signup_date": [dt.date(2024, 1, 5)] * 3,
        "account_name": ["Acme Logistics", "株式会社山田商事", "Globex"],
        "segment": ["SMB", "Enterprise", "SMB"],
        "csm_owner": ["Hana Sato", "Ken Ito", "Hana Sato"],
    })
    stakeholders = pd.DataFrame({
        "account_id": ["A1", "A2"], "person_id": ["P1", "P2"], "role": ["owner", "admin"],
        "name": ["Olivia Brennan", "鈴木 一郎"],
    })
    path = write_workspace(tmp_path / "people.duckdb",
                           {"accounts": accounts, "stakeholders": stakeholders})
    return open_workspace(path)


# -- free text ------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("Call me at 03-1234-5678 please", "Call me at [phone] please"),
    ("携帯 090-1234-5678 までご連絡ください", "携帯 [phone] までご連絡ください"),
    ("reach me on +81 90 1234 5678.", "reach me on [phone]."),
    ("US office (415) 555-0100", "US office [phone]"),
    ("or 415-555-0100 / +1 415 555 0100", "or [phone] / [phone]"),
    ("代表 0312345678", "代表 [phone]"),
    ("mail taro.yamada+cs@example.co.jp today", "mail [email] today"),
    ("山田 太郎様より、導入が遅いとのご意見", "[name]様より、導入が遅いとのご意見"),
    ("佐藤さんと田中氏が参加", "[name]さんと[name]氏が参加"),
    ("お客様と担当者様にご案内", "お客様と担当者様にご案内"),
    ("Spoke with Mr. John Smith and Dr Lee", "Spoke with [name] and [name]"),
])
def test_text_masks_contacts_and_names(text, expected):
    assert rd.Redactor(secret=SECRET).text(text) == expected


@pytest.mark.parametrize("text", [
    "MRR 12,000 on 2024-03-01, up 3.5% (1,234 seats)", "renewal 2027-01-31", "id 0012-34",
    "score 9/10 in Q1 2024", "v1.2.3", "¥1,200,000", "2024/03/01 10:00"])
def test_text_leaves_numbers_and_dates(text):
    assert rd.Redactor(secret=SECRET).text(text) == text


# -- frames ---------------------------------------------------------------------------
def test_redact_frame(people_ws):
    frame = pd.DataFrame({
        "account_id": ["A1", "A2", "A3", None],
        "account_name": ["Acme Logistics", "株式会社山田商事", "Globex", None],
        "csm_owner": ["Hana Sato", "Ken Ito", None, "X"],
        "respondent_email": ["a@b.com", None, "c@d.jp", "e@f.org"],
        "comment": ["Olivia Brennan says Acme Logistics is slow; 03-1234-5678",
                    "鈴木 一郎 より", None, "fine"],
        "mrr": [-1200.5, 0.0, 3.0, float("nan")],
        "seats": pd.array([1, None, 3, 4], dtype="Int64"),
        "renewal_date": [dt.date(2027, 1, 1)] * 4,
    })
    out = rd.redact(frame, people_ws)
    r = rd.redactor(people_ws)
    assert list(out.columns) == list(frame.columns) and out.index.equals(frame.index)
    assert out.account_name.tolist()[:3] == [r.alias("A1"), r.alias("A2"), r.alias("A3")]
    assert pd.isna(out.account_name[3])
    assert all(re.fullmatch(r"Account [A-Z2-7]{8}", a) for a in out.account_name[:3])
    assert out.csm_owner.tolist()[:2] == ["[name]", "[name]"] and pd.isna(out.csm_owner[2])
    assert out.respondent_email.tolist()[0] == "[email]"
    assert out.comment[0] == f"[name] says {r.alias('A1')} is slow; [phone]"
    assert out.comment[1] == "[name] より"
    # numbers, dates and ids never change
    pd.testing.assert_series_equal(out.mrr, frame.mrr)
    pd.testing.assert_series_equal(out.seats, frame.seats)
    assert out.renewal_date.tolist() == frame.renewal_date.tolist()
    assert out.account_id.tolist() == frame.account_id.tolist()
    assert frame.account_name[0] == "Acme Logistics"  # the input is not changed


def test_aliases_are_consistent_across_calls_kernels_and_workspace_reopens(people_ws):
    a = rd.redact(pd.DataFrame({"account_id": ["A2"], "account_name": ["株式会社山田商事"]}),
                  people_ws)
    b = rd.redact(pd.DataFrame({"account_name": ["株式会社山田商事", "Globex"]}), people_ws)
    assert a.account_name[0] == b.account_name[0]
    rd._REDACTORS.clear()  # another kernel: same key file beside the workspace
    other = rd.Redactor(open_workspace(people_ws.source))
    assert other.account("株式会社山田商事") == a.account_name[0]
    assert other.account("Globex") == b.account_name[1] != a.account_name[0]
    key = people_ws.source + ".redact-key"
    assert os.path.exists(key) and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    # another secret, other aliases (they are keyed, not a plain hash of the id)
    assert rd.Redactor(secret="other").alias("A2") != a.account_name[0]


def test_redact_needs_a_key():
    from cs_analysis.errors import CSAnalysisError

    with pytest.raises(CSAnalysisError, match="workspace"):
        rd.redact(pd.DataFrame({"x": ["a"]}))


# -- dashboards -----------------------------------------------------------------------
def _decode_csv(html: str) -> pd.DataFrame:
    uri = re.search(r'href="(data:text/csv[^"]+)"', html).group(1)
    raw = base64.b64decode(uri.split("base64,", 1)[1]).decode("utf-8")
    return pd.read_csv(io.StringIO(raw[1:]), dtype=str, keep_default_na=False)


class _AccountsBoard(Dashboard):
    fallback_title = "Accounts"
    column = "account_name"

    def compute(self, params):
        acc = self.ws.accounts.to_pandas().sort_values("account_id")
        table = acc[["account_id", "account_name", "csm_owner", "segment"]].assign(
            note="Olivia Brennan: call 03-1234-5678", mrr=[1200.0, -5.0, 0.0])
        chart = alt.Chart(table).mark_bar().encode(x="account_name:N", y="mrr:Q")
        layered = alt.layer(chart, alt.Chart(table).mark_text().encode(
            x="account_name:N", y="mrr:Q", text="csm_owner:N"))
        return View(kpis=[KPI("Accounts", 3, format=dash.fmt_int)],
                    panels=[Panel("a", "Acme Logistics and the rest", layered)],
                    table=table, scope="3 accounts; top: Globex")


class _OtherBoard(_AccountsBoard):
    fallback_title = "Other"

    def compute(self, params):
        acc = self.ws.accounts.to_pandas()[["account_name"]]  # no id column here
        return View(table=acc.iloc[::-1].reset_index(drop=True))


def test_dashboards_show_redacted_tables_csvs_and_charts(people_ws, monkeypatch):
    monkeypatch.setenv(rd.REDACT_ENV, "1")
    one, two = _AccountsBoard(people_ws), _OtherBoard(people_ws)
    r = rd.redactor(people_ws)
    aliases = [r.alias(i) for i in ("A1", "A2", "A3")]
    shown = one._table.value + one._message.value + one._charts.children[0].children[0].value
    for secret in ("Acme Logistics", "株式会社山田商事", "Globex", "Olivia Brennan",
                   "Hana Sato", "Ken Ito", "1234-5678"):
        assert secret not in shown
    csv = _decode_csv(one._table.value)
    assert csv.account_name.tolist() == aliases
    assert csv.note.unique().tolist() == ["[name]: call [phone]"]
    assert csv.mrr.tolist() == ["1200.0", "-5.0", "0.0"]  # numbers as they were
    chart = one.view.panels[0].chart.to_dict()
    text = repr(chart)
    assert "Acme" not in text and "Hana Sato" not in text and aliases[0] in text
    # the same account has the same alias in another dashboard (no id column there)
    assert _decode_csv(two._table.value).account_name.tolist() == aliases[::-1]
    # refreshing (cached view) redraws the same aliases, never an alias of an alias
    one.refresh()
    assert _decode_csv(one._table.value).account_name.tolist() == aliases


def test_without_the_switch_nothing_is_redacted(people_ws):
    one = _AccountsBoard(people_ws)
    assert "Acme Logistics" in _decode_csv(one._table.value).account_name.tolist()


def test_a_real_dashboard_redacted(small_demo, monkeypatch):
    from cs_analysis.dashboard import RenewalsDashboard

    monkeypatch.setenv(rd.REDACT_ENV, "1")
    app = RenewalsDashboard(small_demo)
    frame = app.view.table
    names = set(small_demo.accounts.to_pandas().account_name.dropna())
    assert "account_name" in frame.columns and len(frame)
    assert not names & set(frame.account_name)
    assert not any(n in app._table.value for n in names)
    if "csm_owner" in frame.columns:
        assert set(frame.csm_owner.dropna()) <= {"[name]"}


# -- serve --redact -------------------------------------------------------------------
def test_serve_redact_sets_the_switch_for_every_kernel(monkeypatch, tmp_path, people_ws):
    from cs_analysis import cli, serve

    seen = {}

    class FakeProc:
        def __init__(self, cmd, env):
            seen["env"] = env

    monkeypatch.setattr(serve.subprocess, "Popen", FakeProc)
    monkeypatch.setattr(serve, "_wait", lambda proc: 0)
    monkeypatch.setenv("CS_ANALYSIS_CACHE", str(tmp_path / "cache"))
    assert cli.main(["serve", "--workspace", people_ws.source, "--redact",
                     "--port", "8999"]) == 0
    assert seen["env"][rd.REDACT_ENV] == "1"
    assert cli.main(["serve", "--workspace", people_ws.source, "--port", "8999"]) == 0
    assert rd.REDACT_ENV not in seen["env"]


def test_filters_listing_people_are_left_out_when_redacting(people_ws, monkeypatch):
    from cs_analysis.dashboard.base import account_filters

    assert set(account_filters(people_ws, ("segment", "csm_owner"))) == {"segment",
                                                                         "csm_owner"}
    monkeypatch.setenv(rd.REDACT_ENV, "1")
    assert set(account_filters(people_ws, ("segment", "csm_owner"))) == {"segment"}
