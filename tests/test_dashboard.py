"""The dashboard framework (cs_analysis.dashboard) and the server set-up (cs_analysis.serve).

Dashboards are driven here the way a viewer drives them in the browser: by setting filter
widget values. What they show is checked against brute-force pandas on the same data.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re

import altair as alt
import nbformat
import numpy as np
import pandas as pd
import pytest

import cs_analysis
from cs_analysis import dashboard as dash
from cs_analysis.dashboard import (
    ALL,
    KPI,
    Dashboard,
    DashboardSpecError,
    ErrorPanel,
    Panel,
    View,
    account_filters,
    base,
    csv_data_uri,
    discover,
    landing,
    landing_html,
    read_info,
)
from cs_analysis.workspace import WorkspaceError, write_workspace


# -- helpers ------------------------------------------------------------------------------
def write_nb(path, first_markdown: str | None, code: str = "1 + 1"):
    nb = nbformat.v4.new_notebook()
    cells = [nbformat.v4.new_markdown_cell(first_markdown)] if first_markdown is not None else []
    cells.append(nbformat.v4.new_code_cell(code))
    nb.cells = cells
    nbformat.write(nb, str(path))
    return path


HEADER = "# Onboarding\n**Question:** Who is stuck?\n**For:** CS managers\n\nMore text."


def decode_csv(uri: str) -> pd.DataFrame:
    prefix = "data:text/csv;charset=utf-8;base64,"
    assert uri.startswith(prefix)
    raw = base64.b64decode(uri[len(prefix):]).decode("utf-8")
    assert raw.startswith("\ufeff")  # BOM so Excel reads UTF-8 (Japanese) correctly
    return pd.read_csv(io.StringIO(raw[1:]), dtype=str, keep_default_na=False)


class CountsDashboard(Dashboard):
    """A small dashboard over accounts: counts, MRR and a chart, for testing the base."""

    fallback_title = "Counts"

    def __init__(self, ws, **kwargs):
        self.calls = 0
        super().__init__(ws, **kwargs)

    def make_filters(self):
        return account_filters(self.ws, ("segment", "plan", "region"))

    def compute(self, params):
        self.calls += 1
        ws = self.scoped(params)
        acc = ws.table("accounts").to_pandas()
        subs = ws.table("subscriptions").to_pandas()
        table = (acc.groupby("plan", as_index=False).size()
                 .rename(columns={"size": "accounts"}).sort_values("plan"))
        chart = alt.Chart(table).mark_bar().encode(x="plan:N", y="accounts:Q")
        return View(
            kpis=[KPI("Accounts", len(acc), format=dash.fmt_int, n=len(acc)),
                  KPI("MRR", subs["mrr"].sum(), format=dash.fmt_money, n=len(subs),
                      n_label="subscriptions")],
            panels=[Panel("plans", "Accounts by plan", chart if len(table) else None)],
            table=table.reset_index(drop=True),
            table_title="Accounts by plan",
            csv_name="accounts.csv",
            scope=f"{len(acc)} accounts",
        )


@pytest.fixture
def counts(tiny_ws):
    return CountsDashboard(tiny_ws)


# -- header cells, discovery, landing -----------------------------------------------------------
def test_read_info_parses_the_first_markdown_cell(tmp_path):
    info = read_info(write_nb(tmp_path / "onboarding.ipynb", HEADER))
    assert (info.name, info.title, info.question, info.audience) == (
        "onboarding", "Onboarding", "Who is stuck?", "CS managers")
    assert info.href == "onboarding.ipynb"


@pytest.mark.parametrize("first, missing", [
    (None, "first cell must be a markdown cell"),
    ("# T\n**For:** x", "**Question:** ..."),
    ("**Question:** q?\n**For:** x", "# Title"),
    ("# T\n**Question:** q?", "**For:** ..."),
])
def test_read_info_names_the_file_and_what_is_missing(tmp_path, first, missing):
    path = write_nb(tmp_path / "bad.ipynb", first)
    with pytest.raises(DashboardSpecError) as err:
        read_info(path)
    assert str(path) in str(err.value) and missing in str(err.value)


def test_discover_lists_every_notebook_but_the_landing_page(tmp_path):
    write_nb(tmp_path / "b.ipynb", HEADER.replace("Onboarding", "Bee"))
    write_nb(tmp_path / "a.ipynb", HEADER.replace("Onboarding", "Ay"))
    write_nb(tmp_path / "index.ipynb", HEADER)
    assert [i.name for i in discover(tmp_path)] == ["a", "b"]


def test_every_served_dashboard_has_a_valid_header():
    folder = dash.dashboards_dir()
    names = sorted(p.stem for p in folder.glob("*.ipynb") if p.name != dash.LANDING)
    assert [i.name for i in discover()] == names
    assert (folder / dash.LANDING).exists()


def test_dashboards_dir_is_found_from_the_package_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("CS_ANALYSIS_DASHBOARDS", raising=False)
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    assert dash.dashboards_dir() == (
        __import__("pathlib").Path(cs_analysis.__file__).resolve().parent.parent / "dashboards")
    monkeypatch.setenv("CS_ANALYSIS_DASHBOARDS", str(tmp_path))
    assert dash.dashboards_dir() == tmp_path.resolve()


def test_landing_lists_each_dashboard_with_its_question_escaped(tmp_path):
    write_nb(tmp_path / "a.ipynb", "# A & B\n**Question:** Is <b>x</b> real?\n**For:** VPs")
    write_nb(tmp_path / "c.ipynb", HEADER)
    page = landing(tmp_path).value
    hrefs = re.findall(r'class="cs-card" href="([^"]+)"', page)
    assert hrefs == ["a.ipynb?lang=en", "c.ipynb?lang=en"]  # the page's language carries
    assert "A &amp; B" in page and "Is &lt;b&gt;x&lt;/b&gt; real?" in page
    assert "<b>x</b>" not in page
    assert "Who is stuck?" in page


def test_landing_shows_a_friendly_error_for_a_malformed_dashboard(tmp_path):
    write_nb(tmp_path / "broken.ipynb", "no header here")
    page = landing(tmp_path).value
    assert 'class="cs-error"' in page and "broken.ipynb" in page
    assert "Traceback" not in page


def test_landing_html_with_no_dashboards_says_so():
    assert "No dashboards" in landing_html([])


# -- KPI tiles and CSV --------------------------------------------------------------------
def test_kpi_tile_shows_value_interval_sample_and_escapes():
    k = KPI("Logo <retention>", 0.7349, detail="95% CI 70%–77%", n=1234,
            warning="small sample")
    tile = k.html()
    assert 'class="cs-kpi"' in tile and "73%" in tile and "1,234 accounts" in tile
    assert "Logo &lt;retention&gt;" in tile and "95% CI 70%–77%" in tile
    assert "small sample" in tile
    assert KPI("x", float("nan")).text == "–" and KPI("x", None).text == "–"


def test_formatters():
    assert dash.fmt_pct(0.1234, 1) == "12.3%"
    assert dash.fmt_int(1234567.4) == "1,234,567"
    assert dash.fmt_money(1_234_567, "USD") == "$1.2M"
    assert dash.fmt_money(350_000, "JPY") == "¥350.0K"
    assert dash.fmt_money(950, "CHF") == "950 CHF"


def test_csv_data_uri_round_trips_japanese_text():
    frame = pd.DataFrame({"account_id": ["00042", "00043"],
                          "account_name": ["株式会社髙橋", "Acme, Inc."], "mrr": ["1.5", "2"]})
    back = decode_csv(csv_data_uri(frame))
    pd.testing.assert_frame_equal(back, frame)


PAYLOADS = ["=HYPERLINK(\"http://x\")", "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3",
            "\t=1+1", "\r=1+1"]


def test_csv_exports_are_formula_safe_and_keep_negative_numbers():
    frame = pd.DataFrame({"comment": PAYLOADS, "mrr_change": [-120.5, 3, -2, 0, 1, -1],
                          "name": ["a-b", "Señor", "=x", "ok", "株式会社", "-"]})
    back = decode_csv(csv_data_uri(frame))
    # every payload is read back as text starting with a quote, never as a formula
    assert all(v.startswith("'") for v in back["comment"])
    assert back["comment"].str[1:].str.strip().tolist() == [p.strip() for p in PAYLOADS]
    # numbers stay numbers, harmless text is untouched
    assert back["mrr_change"].astype(float).tolist() == [-120.5, 3, -2, 0, 1, -1]
    assert back["name"].tolist() == ["a-b", "Señor", "'=x", "ok", "株式会社", "'-"]


# -- a dashboard driven through its filters --------------------------------------------------
def brute_force(tables, **filters):
    acc = tables["accounts"]
    for col, value in filters.items():
        acc = acc[acc[col] == value]
    subs = tables["subscriptions"]
    subs = subs[subs["account_id"].isin(acc["account_id"])]
    return acc, subs


def test_filters_offer_the_workspace_values_and_skip_absent_columns(counts, tiny_tables):
    assert set(counts.filters) == {"segment", "plan"}  # tiny accounts have no region
    seg = counts.filters["segment"]
    assert list(seg.options) == [ALL, *sorted(tiny_tables["accounts"]["segment"].unique())]
    assert "cs-filter" in seg._dom_classes and "cs-filter-segment" in seg._dom_classes


def test_setting_a_filter_changes_kpis_and_table_like_pandas(counts, tiny_tables):
    def check(**filters):
        acc, subs = brute_force(tiny_tables, **filters)
        assert counts.kpi("Accounts").value == len(acc)
        assert counts.kpi("MRR").value == pytest.approx(subs["mrr"].sum())
        expected = acc.groupby("plan").size().sort_index()
        got = counts.table.set_index("plan")["accounts"]
        assert dict(got) == dict(expected)
        csv = decode_csv(counts.csv_href)
        assert list(csv["plan"]) == list(expected.index)
        assert counts.error is None

    check()
    counts.filters["segment"].value = "SMB"
    check(segment="SMB")
    counts.filters["plan"].value = "Pro"
    check(segment="SMB", plan="Pro")
    counts.filters["segment"].value = ALL
    check(plan="Pro")


def test_views_are_cached_per_filter_values(counts):
    assert counts.calls == 1
    counts.filters["segment"].value = "SMB"
    counts.filters["segment"].value = ALL
    counts.filters["segment"].value = "SMB"
    assert counts.calls == 2


def test_chart_widgets_are_reused_across_refreshes(counts):
    first = counts._chart_widgets["plans"]
    counts.filters["segment"].value = "Enterprise"
    assert counts._chart_widgets["plans"] is first
    assert first.chart is counts.charts["plans"]


class TranslatedCountsDashboard(CountsDashboard):
    """Counts with filter labels in the dashboard's language, as the real dashboards have."""

    def make_filters(self):
        return account_filters(self.ws, ("segment", "plan"), t=self.t)


def _from_browser(widget, **state):
    """Deliver ``state`` to ``widget`` the way a comm message from the browser does."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state,
                                             "buffer_paths": []}}, "buffers": []})


def test_relabelling_keeps_the_selection_and_a_later_browser_choice_filters(
        tiny_ws, tiny_tables):
    # A preheated kernel draws in English, then relabels for ?lang=ja (follow_request);
    # the viewer then picks a segment in the relabelled dropdown (issue #20: the browser
    # test saw the unfiltered count; this is the kernel's half of that path).
    app = TranslatedCountsDashboard(tiny_ws, lang="en")
    seg = app.filters["segment"]
    sent = []
    seg._send = lambda msg, buffers=None: sent.append(msg)
    app.set_language("ja")
    assert (seg.description, seg.label, seg.value) == ("セグメント", "すべて", ALL)
    # one state message, labels and selection together: the browser cannot pair the new
    # labels with a stale index
    assert [m["method"] for m in sent] == ["update"]
    assert sent[0]["state"]["_options_labels"][0] == "すべて"
    assert sent[0]["state"]["index"] == seg.index == 0

    choice = seg.options[1][1]  # what the browser sends is the index of the shown label
    _from_browser(seg, index=1)
    acc, _subs = brute_force(tiny_tables, segment=choice)
    assert app.params()["segment"] == choice and app.error is None
    assert app.kpi("Accounts").value == len(acc) and app.view.scope == f"{len(acc)} accounts"
    assert dict(app.table.set_index("plan")["accounts"]) == dict(acc.groupby("plan").size())

    # and back to English with the segment chosen: still the segment's numbers
    sent.clear()
    app.set_language("en")
    assert seg.value == choice and sent[0]["state"]["index"] == seg.index == 1
    assert app.kpi("Accounts").value == len(acc)


def test_header_comes_from_the_info_and_is_escaped(tiny_ws, tmp_path):
    info = read_info(write_nb(tmp_path / "x.ipynb",
                              "# Counts <i>\n**Question:** How many?\n**For:** CSMs & VPs"))
    app = CountsDashboard(tiny_ws, info=info)
    header = app._header.value
    assert 'class="cs-header"' in header and "Counts &lt;i&gt;" in header
    assert "How many?" in header and "CSMs &amp; VPs" in header
    assert "Data as of" in header


def test_table_on_screen_is_capped_but_the_csv_has_every_row(tiny_ws):
    class Many(Dashboard):
        max_table_rows = 5

        def compute(self, params):
            return View(table=pd.DataFrame({"i": range(12)}))

    app = Many(tiny_ws)
    assert "Showing 5 of 12 rows" in app._table.value
    assert len(decode_csv(app.csv_href)) == 12


# -- errors are friendly, never tracebacks ----------------------------------------------------
class SurveyDashboard(Dashboard):
    def compute(self, params):
        t = self.ws.table("survey_responses", columns=["score"])
        return View(table=t.to_pandas())


def test_missing_table_shows_a_friendly_error(tiny_ws, capfd):
    app = SurveyDashboard(tiny_ws)
    assert app.error is not None and "has no survey_responses table" in app.error
    shown = app._message.value
    assert 'class="cs-error"' in shown and "survey_responses" in shown
    assert "Traceback" not in shown
    assert app.kpis == [] and app.table.empty
    assert app._kpis.layout.display == "none" and app._charts.layout.display == "none"
    # an explained error goes to the server log (the kernel's real stderr) as one line,
    # not as a traceback, and never to the page
    err = capfd.readouterr().err
    assert "has no survey_responses table" in err and "Traceback" not in err


def test_an_error_clears_when_a_filter_change_succeeds(tiny_ws):
    class Flaky(CountsDashboard):
        def compute(self, params):
            if params["segment"] == "Enterprise":
                raise ValueError("boom <script>")
            return super().compute(params)

    app = Flaky(tiny_ws)
    app.filters["segment"].value = "Enterprise"
    assert "ValueError" in app.error and "<script>" not in app._message.value
    assert "boom" not in app._message.value  # internals stay in the log
    app.filters["segment"].value = "SMB"
    assert app.error is None and app.kpi("Accounts").value == 2
    assert app._kpis.layout.display is None


def test_launch_reports_a_missing_workspace_without_a_traceback(tmp_path):
    panel = CountsDashboard.launch(str(tmp_path / "nope.duckdb"))
    assert isinstance(panel, ErrorPanel)
    assert "no workspace at" in panel.error
    html = panel.widget.children[0].value
    assert 'class="cs-error"' in html and "cs-app" in panel.widget._dom_classes


def test_launch_reports_a_missing_table(tiny_ws):
    app = SurveyDashboard.launch(tiny_ws)
    assert "has no survey_responses table" in app.error


def test_launch_opens_a_workspace_path(tmp_path, tiny_tables):
    path = write_workspace(tmp_path / "w.duckdb", tiny_tables)
    app = CountsDashboard.launch(str(path))
    assert isinstance(app, CountsDashboard)
    assert app.kpi("Accounts").value == len(tiny_tables["accounts"])
    bundle = app._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_friendly_error_messages():
    msg, hint = dash.friendly_error(WorkspaceError("this workspace (x) has no t table"))
    assert msg == "this workspace (x) has no t table" and "cs-analysis load" in hint
    msg, hint = dash.friendly_error(KeyError("secret internals"))
    assert "KeyError" in msg and "secret" not in msg and "log" in hint
    # any explained package error (a criteria file's line, a bad parameter) is shown as is
    from cs_analysis.config import read_yaml
    from cs_analysis.errors import ArgumentError, CSAnalysisError

    class FileError(CSAnalysisError, ValueError):
        pass

    try:
        read_yaml("stages: 1\nstages: 2\n", "onboarding criteria", "criteria.yml", FileError)
    except FileError as exc:
        msg, hint = dash.friendly_error(exc)
    assert msg.startswith("onboarding criteria criteria.yml, line 2: duplicate key 'stages'")
    assert "Something went wrong" not in msg and "file" in hint
    msg, _ = dash.friendly_error(ArgumentError("alpha=1.5 must be a number between 0 and 1"))
    assert msg == "alpha=1.5 must be a number between 0 and 1"


def test_unexpected_errors_keep_their_traceback_in_the_log(capfd):
    try:
        {}["internals"]
    except KeyError as exc:
        base._log_exception(exc)
    assert "Traceback" in capfd.readouterr().err


def test_scoped_applies_account_filters_and_signup_range(tiny_ws, tiny_tables):
    app = CountsDashboard(tiny_ws)
    ws = app.scoped({"segment": "SMB", "plan": ALL,
                     "signup_between": (dt.date(2024, 2, 1), dt.date(2024, 2, 29))})
    ids = sorted(ws.table("accounts").to_pandas()["account_id"])
    acc = tiny_tables["accounts"]
    expected = acc[(acc.segment == "SMB") & (acc.signup_date >= dt.date(2024, 2, 1))
                   & (acc.signup_date <= dt.date(2024, 2, 29))]
    assert ids == sorted(expected["account_id"])
    assert app.scoped({"segment": ALL}) is tiny_ws


# -- serving ------------------------------------------------------------------------------
def test_voila_config_keeps_everything_local_and_preheated():
    from cs_analysis.serve import voila_config

    cfg = voila_config(port=9001, host="127.0.0.1", token=None, pool_size=2)
    assert cfg["Voila"]["ip"] == "127.0.0.1" and cfg["Voila"]["port"] == 9001
    assert cfg["Voila"]["port_retries"] == 0 and cfg["Voila"]["token"] == ""
    vc = cfg["VoilaConfiguration"]
    assert vc["template"] == "cs" and vc["preheat_kernel"] is True
    assert vc["show_tracebacks"] is False and vc["strip_sources"] is True
    pools = cfg["VoilaKernelManager"]["kernel_pools_config"]
    # only the landing page's pool starts with the server; DashboardVoila fills the
    # others (pool_size each) once it is ready
    assert pools["default"]["pool_size"] == 0 and pools[dash.LANDING]["pool_size"] == 1
    limits = cfg["DashboardVoila"]
    assert limits["pool_size"] == 2 and limits["landing"] == dash.LANDING
    assert limits["max_kernels"] == 12 and limits["max_kernels_per_dashboard"] == 6
    cull = cfg["MappingKernelManager"]
    assert cull["cull_idle_timeout"] == 600 and cull["cull_connected"] is False
    assert "MappingKernelManager" not in voila_config(cull_idle=0)
    cold = voila_config(preheat=False, token="s3cret")
    assert cold["VoilaConfiguration"]["preheat_kernel"] is False
    assert "VoilaKernelManager" not in cold and cold["Voila"]["token"] == "s3cret"


@pytest.mark.parametrize("host, local", [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True),
    ("0.0.0.0", False), ("192.168.1.5", False), ("myhost.example", False),
])
def test_is_loopback(host, local):
    from cs_analysis.serve import is_loopback

    assert is_loopback(host) is local


def test_serve_refuses_a_public_address_without_a_token(monkeypatch, capsys):
    from cs_analysis import serve as srv

    monkeypatch.delenv("CS_ANALYSIS_TOKEN", raising=False)
    started = []
    monkeypatch.setattr(srv.subprocess, "Popen", lambda *a, **k: started.append(a))
    assert srv.serve(host="0.0.0.0", port=9) == 2
    assert "refusing" in capsys.readouterr().err and not started


@pytest.mark.parametrize("token", [" ", "x", "short-token-15c"])
def test_serve_refuses_a_weak_token_on_a_public_address(monkeypatch, capsys, token):
    from cs_analysis import serve as srv

    started = []
    monkeypatch.setattr(srv.subprocess, "Popen", lambda *a, **k: started.append(a))
    assert srv.serve(host="0.0.0.0", port=9, token=token) == 2
    err = capsys.readouterr().err
    assert "refusing" in err and not started
    if token.strip():
        assert "at least 16 characters" in err


def test_serve_passes_workspace_template_and_token_to_voila(monkeypatch, tmp_path,
                                                          tiny_tables, capsys):
    from cs_analysis import serve as srv

    path = write_workspace(tmp_path / "w.duckdb", tiny_tables)
    seen = {}

    class FakeProc:
        def __init__(self, cmd, env):
            seen["cmd"], seen["env"] = cmd, env
            conf_dir = cmd[-1].split("=", 1)[1]
            seen["config"] = json.loads((__import__("pathlib").Path(conf_dir)
                                         / "voila.json").read_text())

        def wait(self):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(srv.subprocess, "Popen", FakeProc)
    monkeypatch.setenv("CS_ANALYSIS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    rc = srv.serve(workspace=str(path.name), host="0.0.0.0", port=9123,
                   token="s3cret-long-enough-token")
    assert rc == 0
    assert seen["env"]["CS_WORKSPACE"] == str(path.resolve())  # absolute for kernels
    jupyter_path = seen["env"]["JUPYTER_PATH"].split(":")
    assert jupyter_path[:2] == [str(srv.template_root()), str(tmp_path / "cache" / "jupyter")]
    bundle = seen["env"][srv.CHART_BUNDLE_ENV]
    assert bundle.startswith("templates/cs/static/jupyterchart-")
    assert (tmp_path / "cache" / "jupyter" / "voila" / bundle).exists()
    assert seen["cmd"][1:3] == ["-m", "cs_analysis.voila_app"]
    assert seen["cmd"][3] == str(dash.dashboards_dir())
    assert "s3cret" not in " ".join(seen["cmd"])  # never on a command line
    assert seen["config"]["Voila"]["token"] == "s3cret-long-enough-token"
    assert seen["config"]["VoilaConfiguration"]["resources"]["cs_chart_bundle"] == bundle
    assert seen["config"]["Voila"]["ip"] == "0.0.0.0"
    assert "http://127.0.0.1:9123/" in capsys.readouterr().out


def test_serve_reports_a_missing_workspace(capsys, tmp_path):
    from cs_analysis.serve import serve

    assert serve(workspace=str(tmp_path / "missing.duckdb")) == 2
    assert "no workspace at" in capsys.readouterr().err


def test_template_makes_no_external_requests():
    from cs_analysis.serve import template_root

    folder = template_root() / "voila" / "templates" / "cs"
    files = sorted(p.name for p in folder.iterdir())
    assert {"conf.json", "index.html.j2", "page.html", "tree.html"} <= set(files)
    for p in folder.iterdir():
        text = p.read_text()
        assert not re.search(r"(src|href)=[\"']https?://", text), p
        assert "cdn." not in text.replace("cdn.jsdelivr.net (the", ""), p


def test_cli_serve_options():
    from cs_analysis.cli import build_parser

    args = build_parser().parse_args(
        ["serve", "--host", "0.0.0.0", "--token", "t", "--allow-no-token", "--pool-size", "2"])
    assert (args.host, args.token, args.allow_no_token, args.pool_size) == (
        "0.0.0.0", "t", True, 2)


def test_table_html_escapes_formats_and_aligns_numbers():
    frame = pd.DataFrame({"name": ["<b>A</b>", None], "rate": [0.5, float("nan")],
                          "accounts": [1200, 3], "day": [dt.date(2024, 1, 5), None]})
    out = dash.table_html(frame, {"rate": dash.fmt_pct})
    assert "&lt;b&gt;A&lt;/b&gt;" in out and "<b>A</b>" not in out
    assert '<td class="cs-num">50%</td>' in out and '<td class="cs-num">1,200</td>' in out
    assert "<td>2024-01-05</td>" in out and out.count(">–<") == 3
    assert '<th class="cs-num">rate</th>' in out and "<th>name</th>" in out


class Staged(CountsDashboard):
    """Shows the account count first, MRR (the 'slow' part) in a second stage."""

    def __init__(self, ws, **kwargs):
        self.drawn = []
        super().__init__(ws, **kwargs)

    def stages(self, params):
        full = self.compute(params)
        first = View(kpis=[full.kpis[0], KPI("MRR", None, pending=True)],
                     panels=[Panel("plans", "Accounts by plan", pending=True)],
                     table=full.table)
        yield first
        yield full

    def _draw(self, view):
        self.drawn.append(view)
        super()._draw(view)


def test_stages_draw_fast_parts_first_and_cache_the_complete_view(tiny_ws, tiny_tables):
    app = Staged(tiny_ws)
    assert len(app.drawn) == 2 and app.drawn[0].kpis[1].pending
    assert 'cs-kpi cs-pending' in app.drawn[0].kpis[1].html()
    assert app.drawn[0].kpis[1].text == "…"
    assert not any(k.pending for k in app.kpis)  # what stays on screen is complete
    chart_box = app._panel_boxes["plans"]
    assert "cs-pending" not in chart_box._dom_classes
    first_chart = app._chart_widgets["plans"]

    app.drawn.clear()
    app.filters["segment"].value = "SMB"
    assert len(app.drawn) == 2
    assert app.kpi("Accounts").value == (tiny_tables["accounts"].segment == "SMB").sum()
    assert app._chart_widgets["plans"] is first_chart  # pending kept the widget
    app.drawn.clear()
    app.filters["segment"].value = ALL
    assert len(app.drawn) == 1 and not app.drawn[0].kpis[1].pending  # from the cache


def test_a_large_csv_is_prepared_on_request_not_carried_in_the_page(tiny_ws, tiny_tables):
    class Big(CountsDashboard):
        max_inline_csv = 10  # every table is "large" here

    app = Big(tiny_ws)
    assert app.csv_href == "" and "data:text/csv" not in app._table.value
    assert app._prepare.layout.display is None and "rows" in app._prepare.description
    app._prepare.click()
    csv = decode_csv(app.csv_href)
    assert [int(x) for x in csv["accounts"]] == list(app.table["accounts"])
    assert app._prepare.layout.display == "none"
    app.filters["segment"].value = "SMB"  # a new table: the old link goes
    assert app.csv_href == "" and app._prepare.layout.display is None
    app._prepare.click()
    assert decode_csv(app.csv_href)["accounts"].astype(int).sum() == (
        tiny_tables["accounts"].segment == "SMB").sum()


def test_an_error_hides_the_download_of_the_previous_view(tiny_ws):
    class BigFlaky(CountsDashboard):
        max_inline_csv = 10

        def compute(self, params):
            if params["segment"] == "Enterprise":
                raise ValueError("boom")
            return super().compute(params)

    app = BigFlaky(tiny_ws)
    app._prepare.click()
    assert app.csv_href
    app.filters["segment"].value = "Enterprise"
    assert app.error and app.csv_href == "" and app._prepare.layout.display == "none"


class Lazy(CountsDashboard):
    """The same view with its chart and table built lazily (Panel.build, callable table)."""

    def __init__(self, ws, **kwargs):
        self.drawn, self.built = [], 0
        super().__init__(ws, **kwargs)

    def compute(self, params):
        full = super().compute(params)

        def build():
            self.built += 1
            return full.panels[0].chart

        return View(kpis=full.kpis, panels=[
            Panel("plans", "Accounts by plan", build=build, caption="per plan"),
            Panel("again", "Again", build=build)],
            table=lambda: full.table, table_title=full.table_title, scope=full.scope)

    def _draw(self, view):
        self.drawn.append(view)
        super()._draw(view)


def test_lazy_panels_draw_the_first_chart_before_the_others(tiny_ws, tiny_tables):
    app = Lazy(tiny_ws)
    first, last = app.drawn
    assert first.panels[0].chart is not None and first.panels[1].pending
    assert first.table is None  # the table arrives with the complete view
    assert app.built == 2  # each chart built once, none twice
    assert all(p.chart is not None and p.build is None for p in app.view.panels)
    assert isinstance(app.table, pd.DataFrame) and len(app.table)
    assert "per plan" in app._panel_boxes["plans"].children[0].value
    app.filters["segment"].value = "SMB"
    assert app.kpi("Accounts").value == (tiny_tables["accounts"].segment == "SMB").sum()
    app.filters["segment"].value = ALL  # from the cache: complete, nothing rebuilt
    assert app.built == 4 and all(p.chart is not None for p in app.view.panels)


def test_a_stages_override_passing_lazy_panels_on_still_draws_them(tiny_ws):
    class Override(Lazy):
        def stages(self, params):
            yield self.compute(params)  # the documented override, with lazy panels

    app = Override(tiny_ws)
    assert all(p.chart is not None for p in app.view.panels)
    assert isinstance(app.table, pd.DataFrame) and len(app.table)
    app.filters["segment"].value = "SMB"
    app.filters["segment"].value = ALL
    assert all(p.chart is not None for p in app._cache[next(reversed(app._cache))].panels)


# -- the retention dashboard, against brute force on the small demo ----------------------------
def _month(d) -> int:
    d = pd.Timestamp(d)
    return d.year * 12 + d.month - 1


def _month_end(m: int) -> pd.Timestamp:
    return pd.Timestamp(year=m // 12, month=m % 12 + 1, day=1) + pd.offsets.MonthEnd(0)


def _quarter(d) -> int:
    d = pd.Timestamp(d)
    return d.year * 4 + (d.month - 1) // 3


def _quarter_end(q: int) -> pd.Timestamp:
    return pd.Timestamp(year=q // 4, month=(q % 4) * 3 + 1, day=1) + pd.offsets.QuarterEnd(0)


class Raw:
    """The small demo's tables in pandas, and the metrics computed by brute force."""

    def __init__(self, ws):
        self.as_of = pd.Timestamp(ws.as_of)
        self.acc = ws.con.table("accounts").to_pandas()
        self.subs = ws.con.table("subscriptions").to_pandas()
        self.events = ws.con.table("usage_events").select("account_id", "event_at").to_pandas()

    def accounts(self, segment=None, signup=None):
        acc = self.acc[pd.to_datetime(self.acc["signup_date"]) <= self.as_of]
        if segment:
            acc = acc[acc["segment"] == segment]
        if signup:
            s = pd.to_datetime(acc["signup_date"])
            acc = acc[(s >= pd.Timestamp(signup[0])) & (s <= pd.Timestamp(signup[1]))]
        return acc

    def covered(self, ids, day) -> set:
        s = self.subs[self.subs["account_id"].isin(ids)]
        start, end = pd.to_datetime(s["start_date"]), pd.to_datetime(s["end_date"])
        ok = (start <= day) & (end.isna() | (day < end))
        return set(s.loc[ok, "account_id"])

    def mrr_at(self, ids, day) -> pd.Series:
        s = self.subs[self.subs["account_id"].isin(ids)]
        start, end = pd.to_datetime(s["start_date"]), pd.to_datetime(s["end_date"])
        ok = (start <= day) & (end.isna() | (day < end))
        return s[ok].groupby("account_id")["mrr"].sum().reindex(list(ids), fill_value=0.0)

    def logo_12(self, acc, grain="month", basis="contract"):
        """Bounded retention at month 12 / quarter 4, pooled over observable cohorts."""
        period, end = (_month, _month_end) if grain == "month" else (_quarter, _quarter_end)
        k = 12 if grain == "month" else 4
        accounts = retained = 0
        for _, a in acc.iterrows():
            target = period(a["signup_date"]) + k
            if end(target) > self.as_of:
                continue  # not observable: censored, not counted
            accounts += 1
            if basis == "contract":
                retained += a["account_id"] in self.covered([a["account_id"]], end(target))
            else:
                ev = self.events[self.events["account_id"] == a["account_id"]]["event_at"]
                retained += bool((ev.map(period) == target).any())
        return retained / accounts, accounts

    def trailing(self, acc):
        m = _month(self.as_of) if _month_end(_month(self.as_of)) <= self.as_of \
            else _month(self.as_of) - 1
        ids = list(acc["account_id"])
        start = self.mrr_at(ids, _month_end(m - 12))
        end = self.mrr_at(ids, _month_end(m))
        paying = start[start > 0].index
        s, e = start[paying], end[paying]
        return (np.minimum(s, e).sum() / s.sum(), e.sum() / s.sum(), len(paying))

    def median_lifetime(self, acc):
        times, events = [], []
        for _, a in acc.iterrows():
            s = self.subs[(self.subs["account_id"] == a["account_id"])]
            start, end = pd.to_datetime(s["start_date"]), pd.to_datetime(s["end_date"])
            s = s[(start <= self.as_of) & (end.isna() | (end > start))]
            if s.empty:
                continue  # never a customer
            end = pd.to_datetime(s["end_date"])
            alive = (end.isna() | (end > self.as_of)).any()
            stop = self.as_of if alive else end.max()
            times.append(max((stop - pd.Timestamp(a["signup_date"])).days, 0))
            events.append(0 if alive else 1)
        # Kaplan-Meier by hand: S(t) = prod over event times t_i <= t of (1 - d_i / n_i);
        # the median is the first event time where S(t) <= 0.5 (cs_analysis.survival's
        # textbook rule; 1e-12 absorbs the rounding of a product that is exactly 1/2).
        t, e = np.array(times), np.array(events)
        surv = 1.0
        for ti in np.unique(t[e == 1]):
            n_at_risk = (t >= ti).sum()
            d = ((t == ti) & (e == 1)).sum()
            surv *= 1 - d / n_at_risk
            if surv <= 0.5 + 1e-12:
                return float(ti), len(t)
        return float("nan"), len(t)


@pytest.fixture(scope="module")
def raw(small_demo):
    return Raw(small_demo)


@pytest.fixture(scope="module")
def retention_app(small_demo):
    from cs_analysis.dashboard import RetentionDashboard

    return RetentionDashboard(small_demo)


def check_retention_kpis(app, raw, segment=None, signup=None, grain="month",
                         basis="contract"):
    acc = raw.accounts(segment, signup)
    assert app.error is None
    rate, n = raw.logo_12(acc, grain, basis)
    logo = app.kpi("Logo retention at 12 months")
    assert logo.value == pytest.approx(rate) and logo.n == n
    grr, nrr, paying = raw.trailing(acc)
    assert app.kpi("GRR").value == pytest.approx(grr)
    assert app.kpi("NRR").value == pytest.approx(nrr)
    assert app.kpi("GRR").n == paying == app.kpi("NRR").n
    median, customers = raw.median_lifetime(acc)
    life = app.kpi("Median customer lifetime")
    assert life.n == customers
    if median == median:
        assert life.value == pytest.approx(median)
    assert not any(k.pending for k in app.kpis)


def test_retention_dashboard_matches_brute_force_as_filters_change(retention_app, raw):
    app = retention_app
    assert {"segment", "plan", "region", "cohorts", "grain", "basis",
            "compare"} <= set(app.filters)
    check_retention_kpis(app, raw)
    app.filters["segment"].value = "SMB"
    check_retention_kpis(app, raw, segment="SMB")
    app.filters["grain"].value = "quarter"
    check_retention_kpis(app, raw, segment="SMB", grain="quarter")
    app.filters["grain"].value = "month"
    app.filters["basis"].value = "activity"
    check_retention_kpis(app, raw, segment="SMB", basis="activity")
    app.filters["basis"].value = "contract"
    app.filters["segment"].value = ALL
    months = [v for _, v in app.filters["cohorts"].options]
    app.filters["cohorts"].value = (months[6], months[17])
    lo, hi = _month_end(months[6]) - pd.offsets.MonthBegin(1), _month_end(months[17])
    check_retention_kpis(app, raw, signup=(lo, hi))
    app.filters["cohorts"].value = (months[0], months[-1])
    check_retention_kpis(app, raw)


def test_retention_summary_table_has_a_row_per_group_and_the_counts(retention_app, raw):
    app = retention_app
    app.filters["compare"].value = "segment"
    table = app.table
    groups = sorted(raw.accounts()["segment"].dropna().unique())
    assert list(table["segment"]) == [*groups, "All accounts"]
    per, total = table[table["segment"] != "All accounts"], table.iloc[-1]
    assert per["customers"].sum() == total["customers"]
    assert per["paying_at_start"].sum() == total["paying_at_start"]
    assert total["logo_retention_12m"] == pytest.approx(app.kpi("Logo retention").value)
    assert total["grr_12m"] == pytest.approx(app.kpi("GRR").value)
    for seg in groups:
        row = table[table["segment"] == seg].iloc[0]
        rate, n = raw.logo_12(raw.accounts(seg))
        assert row["logo_retention_12m"] == pytest.approx(rate) and row["accounts_at_12m"] == n
        assert row["logo_ci_lower"] <= rate <= row["logo_ci_upper"]
    csv = decode_csv(app.csv_href)
    assert list(csv.columns) == list(table.columns) and len(csv) == len(table)
    app.filters["compare"].value = "plan"
    assert list(app.table["plan"])[-1] == "All accounts"
    assert app.table["customers"].iloc[-1] == total["customers"]
    app.filters["compare"].value = "segment"


def test_retention_dashboard_draws_every_chart(retention_app):
    import altair as alt

    charts = retention_app.charts
    assert set(charts) == {"triangle", "curves", "survival", "bridge", "trend"}
    for key, chart in charts.items():
        assert isinstance(chart, alt.TopLevelMixin), key
        spec = chart.to_dict()
        assert "title" not in spec  # the panel shows the title
    assert "Log-rank" in retention_app._panel_boxes["survival"].children[0].value


def test_combined_groups_equal_the_ungrouped_analyses(small_demo):
    from cs_analysis import retention as rt
    from cs_analysis.dashboard import combine_bridge, combine_cohort_cells, combine_trailing

    cells = combine_cohort_cells(rt.cohort_retention(small_demo, by="segment"), "segment")
    direct = rt.cohort_retention(small_demo)
    pd.testing.assert_frame_equal(cells, direct[cells.columns], check_dtype=False)
    rev_by = rt.revenue_retention(small_demo, by="segment")
    rev = rt.revenue_retention(small_demo)
    t = combine_trailing(rev_by.trailing, "segment")
    pd.testing.assert_frame_equal(t, rev.trailing[t.columns], check_dtype=False)
    start = sorted(rev.bridge["period"].unique())[-12]
    b = combine_bridge(rev_by.window_bridge(start=start), "segment")
    direct_b = rev.window_bridge(start=start)
    assert list(b["component"]) == list(direct_b["component"])
    assert b["mrr"].to_numpy() == pytest.approx(direct_b["mrr"].to_numpy())


def test_retention_dashboard_without_usage_or_region(tmp_path, tiny_tables):
    from cs_analysis.dashboard import RetentionDashboard

    tables = {k: v for k, v in tiny_tables.items() if k != "usage_events"}
    ws = __import__("cs_analysis").open_workspace(write_workspace(tmp_path / "w.duckdb", tables))
    app = RetentionDashboard(ws)
    assert "region" not in app.filters and app.error is None
    app.filters["basis"].value = "activity"
    assert "has no usage_events table" in app.error
    assert 'class="cs-error"' in app._message.value
    app.filters["basis"].value = "contract"
    assert app.error is None and app.kpis


def test_chart_bundle_is_written_once_and_charts_load_it(tmp_path, monkeypatch):
    import altair as alt

    from cs_analysis.dashboard import use_served_chart_bundle
    from cs_analysis.serve import TEMPLATE, prepare_chart_bundle

    root, name = prepare_chart_bundle(tmp_path)
    path = root / "voila" / "templates" / TEMPLATE / "static" / name
    text = path.read_text()
    assert len(text) > 100_000 and "https://" not in text.split("\n", 1)[0]
    mtime = path.stat().st_mtime_ns
    assert prepare_chart_bundle(tmp_path) == (root, name)  # cached
    assert path.stat().st_mtime_ns == mtime

    saved = (alt.JupyterChart._esm, alt.JupyterChart._is_offline)
    try:
        monkeypatch.delenv("CS_ANALYSIS_CHART_BUNDLE", raising=False)
        assert use_served_chart_bundle() is False
        assert alt.JupyterChart._esm == saved[0]
        monkeypatch.setenv("CS_ANALYSIS_CHART_BUNDLE", f"templates/cs/static/{name}")
        assert use_served_chart_bundle() is True
        chart = alt.JupyterChart(alt.Chart(pd.DataFrame({"x": [1]})).mark_point())
        assert len(chart._esm) < 1000 and f'"templates/cs/static/{name}"' in chart._esm
        assert "import(" in chart._esm and "export default" in chart._esm
    finally:
        alt.JupyterChart._esm, alt.JupyterChart._is_offline = saved


def test_container_width_charts_get_a_fixed_width_in_panels(tiny_ws):
    # vega-embed measures 0 px for width="container" while Voila keeps the page hidden
    class Container(Dashboard):
        def compute(self, params):
            c = alt.Chart(pd.DataFrame({"x": [1, 2]})).mark_bar().encode(x="x:Q")
            return View(panels=[Panel("half", "Half", c.properties(width="container")),
                                Panel("wide", "Wide", c.properties(width="container"),
                                      wide=True),
                                Panel("fixed", "Fixed", c.properties(width=123))])

    app = Container(tiny_ws)
    widths = {k: w.chart.to_dict()["width"] for k, w in app._chart_widgets.items()}
    assert widths == {"half": dash.PANEL_WIDTH, "wide": dash.WIDE_PANEL_WIDTH, "fixed": 123}
