"""Japanese and English labels (cs_analysis.i18n): the catalogue, the language setting,
numbers and dates, and the dashboards in Japanese.

Expectations are written out by hand (the Japanese a reader should see), not read back
from the catalogue the code uses.
"""

from __future__ import annotations

import datetime as dt
import re
import string

import altair as alt
import pytest

from cs_analysis import i18n
from cs_analysis.dashboard import ALL, base, landing_html
from cs_analysis.formatting import fmt_count, fmt_date, fmt_money, fmt_month


# -- the catalogue -------------------------------------------------------------------------
def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_label_has_a_japanese_translation_and_no_key_is_unused():
    """Babel's extraction of the code (plus the dashboards' header cells) must equal the
    catalogue: a label added without its Japanese, or a stale entry, fails here."""
    found = i18n.extract()
    table = i18n.catalogue("ja")
    missing = sorted(set(found) - set(table))
    unused = sorted(set(table) - set(found))
    assert not missing, "labels without a Japanese translation (add them to " \
        f"{i18n.catalogue_path('ja')}): " + "; ".join(f"{m!r} at {found[m][0]}" for m in missing)
    assert not unused, f"catalogue entries no code uses: {unused}"
    assert len(found) > 150  # the framework, retention, onboarding, charts, headers


def test_translations_keep_the_placeholders_and_are_not_english():
    for message, text in i18n.catalogue("ja").items():
        assert _fields(text) == _fields(message), message
        words = re.sub(r"\{[^}]*\}", "", message)
        if re.search(r"[A-Za-z]{4,}", words):
            # something a Japanese reader reads: at least one kana or kanji
            assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text), (message, text)


def test_catalogue_is_a_babel_po_file_read_without_fuzzy_entries(tmp_path, monkeypatch):
    po = tmp_path / "ja" / "LC_MESSAGES" / "cs_analysis.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
                  'msgid "Grain"\nmsgstr "集計単位"\n\n#, fuzzy\nmsgid "Month"\nmsgstr "月"\n\n'
                  'msgid "Quarter"\nmsgstr ""\n', encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.catalogue.cache_clear()
    i18n._translator.cache_clear()
    try:
        t = i18n.translator("ja")
        assert t("Grain") == "集計単位"
        assert t("Month") == "Month" and t("Quarter") == "Quarter"  # fuzzy / empty: English
    finally:
        i18n.catalogue.cache_clear()
        i18n._translator.cache_clear()


def test_translator_fills_fields_and_english_is_the_source():
    en, ja = i18n.translator("en"), i18n.translator("ja")
    assert en("{n:,} customers in scope", n=1234) == "1,234 customers in scope"
    assert ja("{n:,} customers in scope", n=1234) == "対象顧客 1,234社"
    assert ja("a label nobody translated") == "a label nobody translated"
    assert i18n.translator("ja-JP") is ja  # one translator per language, looked up once


# -- which language -------------------------------------------------------------------------
@pytest.mark.parametrize("code, expected", [
    ("ja", "ja"), ("JA", "ja"), ("ja_JP.UTF-8", "ja"), ("ja-JP", "ja"), ("en-US", "en"),
    ("fr", None), ("", None), (None, None)])
def test_normalize(code, expected):
    assert i18n.normalize(code) == expected


class _WS:
    def __init__(self, language=None):
        self.config = {"language": language} if language else {}


def test_language_precedence_url_then_server_then_workspace(monkeypatch):
    monkeypatch.delenv(i18n.ENV, raising=False)
    assert i18n.resolve_language() == "en"
    assert i18n.resolve_language(ws=_WS("ja")) == "ja"          # workspace default
    monkeypatch.setenv(i18n.ENV, "en")
    assert i18n.resolve_language(ws=_WS("ja")) == "en"          # server beats workspace
    assert i18n.resolve_language("ja", ws=_WS("en")) == "ja"    # the page's ?lang= wins
    assert i18n.resolve_language("xx", ws=_WS("ja")) == "en"    # a typo is skipped
    assert i18n.language_from_query("lang=ja&x=1") == "ja"
    assert i18n.language_from_query("?x=1") is None
    monkeypatch.setenv("QUERY_STRING", "lang=ja")
    assert base._url_language() == "ja"


def test_cli_and_serve_pass_the_language_to_the_kernels(monkeypatch):
    from cs_analysis import cli, serve

    parser = cli.build_parser()
    args = parser.parse_args(["serve", "--lang", "ja"])
    assert args.lang == "ja"
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--lang", "fr"])
    assert serve.language_env("ja") == {i18n.ENV: "ja"} and serve.language_env(None) == {}
    with pytest.raises(serve.ServeError):
        serve.language_env("fr")


# -- numbers and dates ----------------------------------------------------------------------
def test_dates_numbers_and_money_follow_the_language():
    d = dt.date(2026, 4, 1)
    assert fmt_date(d, "ja") == "2026年4月1日" and fmt_date(d, "en") == "1 Apr 2026"
    assert fmt_date(dt.datetime(2026, 12, 31, 23, 59), "ja") == "2026年12月31日"
    assert fmt_month(d, "ja") == "2026年4月" and fmt_month(d) == "Apr 2026"
    assert base.month_label(2026 * 12 + 3, "ja") == "2026年4月"
    assert base.date_text(d, "ja") == "2026年4月1日"
    assert fmt_count(1234, "accounts", "ja") == "1,234社"
    assert fmt_count(1234, "accounts") == "1,234 accounts"
    assert fmt_money(1234567.6, "JPY", "ja") == "¥1,234,568"     # yen: no decimals
    assert fmt_money(-5000, "JPY", "ja") == "-¥5,000"
    assert fmt_money(1234567, "JPY") == "¥1.2M"
    assert fmt_money(1234567, "USD", "ja") == "$1.2M"
    assert fmt_date(None, "ja") == "–"


# -- the framework in Japanese ------------------------------------------------------------
def test_landing_page_in_japanese_carries_the_language_into_every_link():
    page = landing_html(lang="ja")
    assert "カスタマーサクセス ダッシュボード" in page
    assert "継続率と売上" in page and "オンボーディングと価値到達までの時間" in page
    hrefs = re.findall(r'class="cs-card" href="([^"]+)"', page)
    assert hrefs and all(h.endswith(".ipynb?lang=ja") for h in hrefs)
    assert 'href="?lang=en"' in page and 'href="?lang=ja"' in page  # the switch
    english = landing_html(lang="en")
    assert "Customer Success dashboards" in english and "継続率" not in english


def test_landing_widget_relabels_without_a_new_kernel():
    w = base.landing(lang="en")
    assert "Retention and revenue" in w.value
    w.set_language("ja")
    assert "継続率と売上" in w.value and w.lang == "ja"
    w.set_language("xx")  # unknown: left as is
    assert w.lang == "ja"


def test_friendly_errors_in_japanese():
    from cs_analysis.workspace import WorkspaceError

    msg, hint = base.friendly_error(RuntimeError("boom"), i18n.translator("ja"))
    assert msg == "この画面の計算中に問題が発生しました (RuntimeError)。"
    assert hint == "詳細はダッシュボードサーバーのログにあります。"
    _, hint = base.friendly_error(WorkspaceError("no table usage_events"),
                                  i18n.translator("ja"))
    assert "cs-analysis load" in hint and "CS アナリスト" in hint
    panel = base.ErrorPanel("x", lang="ja")
    assert "このダッシュボードを開けません" in panel.widget.children[0].value


def test_relabel_chart_translates_titles_but_not_data():
    import pandas as pd

    data = pd.DataFrame({"period": [0, 1], "rate": [1.0, 0.8], "segment": ["SMB", "SMB"]})
    chart = alt.Chart(data).mark_line().encode(
        x=alt.X("period:Q", title="Periods since signup"),
        y=alt.Y("rate:Q", axis=alt.Axis(title="rate")),
        color=alt.Color("segment:N", title="segment"),
        tooltip=[alt.Tooltip("period:Q", title="period")])
    ja = base.relabel_chart(chart, i18n.translator("ja")).to_dict()
    assert ja["encoding"]["x"]["title"] == "契約開始からの期間"
    assert ja["encoding"]["y"]["axis"]["title"] == "継続率"
    assert ja["encoding"]["color"]["title"] == "セグメント"
    assert ja["encoding"]["tooltip"][0]["title"] == "期間"
    assert chart.to_dict()["encoding"]["x"]["title"] == "Periods since signup"  # a copy
    assert base.relabel_chart(chart, i18n.translator("en")) is chart  # English: untouched
    assert ja["encoding"]["color"]["field"] == "segment"  # data keys stay English


# -- two dashboards in Japanese --------------------------------------------------------------
def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html.split("</style>")[-1])


def test_retention_dashboard_in_japanese_then_english(small_demo):
    from cs_analysis.dashboard import RetentionDashboard

    app = RetentionDashboard(small_demo, lang="ja")
    assert app.error is None
    assert [k.label for k in app.kpis] == ["12か月時点のロゴ継続率", "GRR (直近12か月)",
                                           "NRR (直近12か月)", "顧客生存期間の中央値"]
    header = _text(app._header.value)
    assert "継続率と売上" in header and "データ基準日 2026年10月31日" in header
    seg = app.filters["segment"]
    assert seg.description == "セグメント" and seg.label == "すべて" and seg.value == ALL
    assert app.filters["grain"].label == "月"
    assert "n = 195社" in app._kpis.value or re.search(r"n = [\d,]+社", app._kpis.value)
    assert "対象顧客" in app._message.value
    assert "サマリー" in app._table.value and "CSV をダウンロード" in app._table.value
    titles = {p.key: p.title for p in app.view.panels}
    assert titles["triangle"] == "コホート別継続率"
    ja_numbers = [k.text for k in app.kpis]

    app.filters["segment"].value = "SMB"  # a filter change still works
    assert app.error is None and app.filters["segment"].label == "SMB"
    smb_ja = [k.text for k in app.kpis]

    app.set_language("en")
    assert app.lang == "en" and app.filters["segment"].value == "SMB"
    assert app.kpis[0].label == "Logo retention at 12 months"
    assert [k.text for k in app.kpis] == smb_ja[:3] + [app.kpis[3].text]  # same numbers
    assert app.kpis[3].text.endswith("months")
    app.filters["segment"].value = ALL
    assert app.filters["segment"].label == "All"
    assert [k.text for k in app.kpis][:3] == ja_numbers[:3]  # labels differ, numbers not


def test_onboarding_dashboard_in_japanese(small_demo):
    from cs_analysis.dashboard import OnboardingDashboard

    app = OnboardingDashboard(small_demo, lang="ja")
    assert app.error is None
    labels = [k.label for k in app.kpis]
    assert labels == ["価値の実感までの日数 (中央値)", "目標期間内の到達率", "オンボーディング中",
                      "停滞しているオンボーディング"]
    assert app.kpis[0].text.endswith("日")
    assert app.filters["stage"].label == "価値の実感"
    assert "CSM別の停滞オンボーディング (リスクの高い順)" in app._table.value
    assert "<th>停滞の理由</th>" in app._table.value
    assert "stalled_onboardings.csv" in app._table.value
    # the CSV keeps the English column names and data values
    from tests.test_dashboard import decode_csv

    csv = decode_csv(app.csv_href)
    assert "why" in csv.columns and set(csv["why"]) <= {"past target, idle", "past target",
                                                         "idle"}
    app.filters["segment"].value = "SMB"
    assert app.error is None and app.kpis[0].label.startswith("価値の実感")


# -- notebooks say their language ------------------------------------------------------------
def test_curated_notebooks_say_their_language_and_the_japanese_workshop_matches():
    import nbformat

    from tests.test_notebooks import ROOT

    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        first = nbformat.read(path, as_version=4).cells[0].source
        said = re.search(r"^\*\*(?:Language|言語 \(Language\)):\*\*\s*(English|日本語)",
                         first, re.M)
        assert said, f"{path.name}: the first cell does not say its language"
        assert (said.group(1) == "日本語") == path.stem.endswith("_ja"), path.name
    en = nbformat.read(ROOT / "notebooks/05_journey_alignment_workshop.ipynb", as_version=4)
    ja = nbformat.read(ROOT / "notebooks/05_journey_alignment_workshop_ja.ipynb", as_version=4)
    # same calls, cell for cell; only the narrative is translated
    assert [c.source for c in ja.cells if c.cell_type == "code"] == \
        [c.source for c in en.cells if c.cell_type == "code"]
    narrative = [c.source for c in ja.cells if c.cell_type == "markdown"]
    assert len(narrative) == len([c for c in en.cells if c.cell_type == "markdown"])
    for text in narrative:
        assert re.search(r"[\u3040-\u30ff]", text), text[:60]  # kana in every cell
    assert "ファシリテーター" in narrative[0] and "ジャーニーマップ" in narrative[0]


# -- static exports draw Japanese glyphs ------------------------------------------------------
def _title_png(title: str, tmp_path, name: str):
    import numpy as np
    from PIL import Image

    from cs_analysis import charts

    chart = alt.Chart(alt.Data(values=[{"x": 1}])).mark_point(opacity=0).encode(
        x=alt.X("x:Q", axis=None)).properties(
        title=alt.TitleParams(title, fontSize=24), width=320, height=10)
    path = charts.save(chart, tmp_path / f"{name}.png", scale=1)
    pixels = np.asarray(Image.open(path).convert("L"))
    return pixels, int((pixels < 128).sum())


def test_png_export_draws_japanese_glyphs_not_boxes(tmp_path):
    """A Japanese title rendered to PNG has ink, and two different titles of the same
    length differ (missing glyphs are drawn as identical boxes, or nothing)."""
    from cs_analysis import charts

    folders = charts.register_fonts()
    assert folders, f"no Japanese font folder among {charts.FONT_DIRS}: install " \
        "fonts-ipaexfont-gothic (.ci/run does)"
    assert "IPAexGothic" in charts.FONT
    _, blank = _title_png("", tmp_path, "blank")
    a, ink_a = _title_png("継続率と売上", tmp_path, "a")
    b, ink_b = _title_png("顧客生存期間", tmp_path, "b")
    boxes, ink_boxes = _title_png("□□□□□□", tmp_path, "boxes")
    assert blank == 0
    assert ink_a > 300 and ink_b > 300  # six ideographs of 24 px draw hundreds of pixels
    assert a.shape == b.shape and (a != b).sum() > 100
    assert (a != boxes).sum() > 100 and ink_a != ink_boxes


def test_svg_export_names_the_japanese_font(tmp_path):
    from cs_analysis import charts

    chart = alt.Chart(alt.Data(values=[{"x": 1}])).mark_point().encode(
        x=alt.X("x:Q", title="契約開始からの期間")).properties(title="継続率と売上")
    svg = charts.save(chart, tmp_path / "chart.svg").read_text(encoding="utf-8")
    assert "継続率と売上" in svg and "IPAexGothic" in svg


# -- every dashboard in Japanese -------------------------------------------------------------
def _chart_titles(spec) -> list[str]:
    """Every ``title`` string of a chart spec (axes, legends, tooltips), data left out."""
    out = []
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key in ("data", "datasets", "values"):
                continue
            if key == "title" and isinstance(value, str):
                out.append(value)
            else:
                out.extend(_chart_titles(value))
    elif isinstance(spec, list):
        for item in spec:
            out.extend(_chart_titles(item))
    return out


def visible_texts(app) -> list[tuple[str, str]]:
    """(where, text) of every label a person reads on a built dashboard: the header, the
    filters, the KPI tiles, the panels (titles, captions, chart axes / legends / tooltips),
    the table's title and headers, the scope line and the notes."""
    import ipywidgets as widgets

    _ = app.t
    out = [("header", _text(app._header.value))]
    for name, w in app.filters.items():
        out.append((f"filter {name}", w.description))
        if isinstance(w, widgets.Dropdown | widgets.ToggleButtons) and name not in (
                "segment", "plan", "region", "csm_owner", "role", "touchpoint",
                "account"):  # data values
            for opt in w.options:
                if isinstance(opt, tuple):
                    out.append((f"filter {name} option", str(opt[0])))
    view = app.view
    if view is None:
        return out
    for k in view.kpis:
        out += [("kpi", k.label), ("kpi detail", k.detail), ("kpi n", _(k.n_label))]
        if k.warning:
            out.append(("kpi warning", k.warning))
    for p in view.panels:
        p = p.built()
        out += [(f"panel {p.key}", p.title), (f"caption {p.key}", p.caption)]
        if p.chart is None:
            out.append((f"empty {p.key}", _(p.empty)))
        else:
            out += [(f"chart {p.key}", s) for s in _chart_titles(p.chart.to_dict())]
    out.append(("table title", _(view.table_title)))
    table = view.table() if callable(view.table) else view.table
    if table is not None and not table.empty:
        shown = view.table_columns or list(table.columns)
        out += [("table header", view.table_labels.get(c, c))
                for c in shown if c in table.columns]
    out.append(("scope", view.scope))
    out += [("note", n) for n in view.notes]
    return [(w, t) for w, t in out if t]


def _untranslated(texts, ignore=()) -> list[tuple[str, str]]:
    """The texts that are still an English message of the catalogue (a label shown
    without going through the translator): exact ids, and ids with fields filled in."""
    table = i18n.catalogue("ja")
    exact, patterns = set(), []
    for message, text in table.items():
        if text == message:
            continue
        if "{" not in message:
            exact.add(message)
            continue
        parts = [re.escape(lit) + ("(.+?)" if name is not None else "")
                 for lit, name, _, _ in string.Formatter().parse(message)]
        patterns.append(re.compile("".join(parts), re.S))
    return [(w, t) for w, t in texts if w.split(" ")[0] not in ignore
            and (t in exact or any(p.fullmatch(t) for p in patterns))]


def _ja(app, *, ignore=()) -> dict[str, list[str]]:
    """Build ``app``'s view (every panel), check that no English label of the catalogue
    is left, and return its texts by kind ("kpi", "panel", "chart", ...)."""
    assert app.error is None, app.error
    texts = visible_texts(app)
    left = _untranslated(texts, ignore)
    assert not left, f"labels shown in English in Japanese: {left}"
    out: dict[str, list[str]] = {}
    for where, text in texts:
        key = ("table" if where == "table header" else where if where.startswith("kpi")
               else where.split(" ")[0])
        out.setdefault(key, []).append(text)
    return out


def test_every_label_is_marked_where_babel_sees_it():
    """Babel extracts ``_("...")`` and ``N_("...")`` only: a literal inside an f-string's
    braces, or passed to ``t(...)`` / ``self.t(...)``, never reaches the catalogue (and
    shows in English). Write ``_ = self.t`` and assign the label to a name first."""
    root = i18n.LOCALE_DIR.parent
    hidden = re.compile(r"""\bf(["']).*\{[^}]*\b_\(\s*["']"""
                        r"""|(?:^|[^\w.])t\(\s*["']|self\.t\(\s*["']""")
    bad = []
    for path in sorted(root.rglob("*.py")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if hidden.search(line):
                bad.append(f"{path.relative_to(root)}:{lineno}")
    assert not bad, bad


def test_renewals_dashboard_in_japanese(small_demo):
    from cs_analysis.dashboard import RenewalsDashboard

    app = RenewalsDashboard(small_demo, lang="ja")
    shown = _ja(app)
    assert "契約更新とサポート" in shown["header"][0]
    assert shown["kpi"][:4] == ["90日以内に更新", "更新対象 MRR", "ロゴ解約率 (四半期累計)",
                                "グロス MRR 解約率 (四半期累計)"]
    assert app.filters["horizon"].description == "対象期間"
    assert ("90日", 90) in app.filters["horizon"].options
    assert "今後90日以内の更新" in shown["panel"]
    assert {"更新週", "更新対象 MRR", "解決時間 (時間)"} <= set(shown["chart"])
    assert {"企業", "更新日", "契約期間 (か月)", "未解決の重大チケット"} <= set(shown["table"])
    assert re.fullmatch(r"90日以内に更新する企業 [\d,]+社 · データ基準日 2026年10月31日",
                        app.view.scope)
    app.filters["horizon"].value = 30  # a filter change still works, in Japanese
    assert app.error is None and app.kpis[0].label == "30日以内に更新"


def test_adoption_dashboard_in_japanese(small_demo):
    from cs_analysis.dashboard import AdoptionDashboard

    app = AdoptionDashboard(small_demo, lang="ja")
    shown = _ja(app)
    assert "プロダクトアダプション" in shown["header"][0]
    assert shown["kpi"] == ["アクティブ企業 (直近90日)", "機能利用の幅 (中央値)",
                            "利用が減っている企業", "席の利用率 (中央値)"]
    assert {"セグメント別の機能定着", "契約席数と利用席数"} <= set(shown["panel"])
    assert {"利用率", "企業数"} <= set(shown["chart"])
    assert {"最終利用からの日数", "更新までの日数"} <= set(shown["table"])
    assert app.filters["csm_owner"].description == "CSM"
    assert "n = " in app.kpis[2].html(app.t) and "社 (契約中)" in app.kpis[2].html(app.t)


def test_capacity_dashboard_in_japanese(small_demo):
    from cs_analysis.dashboard import CapacityPlanningDashboard

    app = CapacityPlanningDashboard(small_demo, lang="ja")
    shown = _ja(app)
    assert "キャパシティプランニング" in shown["header"][0]
    assert shown["kpi"] == ["ピーク時に必要な CSM 数", "計画上の採用数",
                            "同時進行オンボーディングのピーク", "現在過負荷の CSM"]
    assert app.kpis[0].text.endswith("人")
    assert app.filters["hours_high"].description == "ハイタッチ: 企業あたり時間"
    assert app.filters["scenario"].label == "基本ケース" and app.filters["scenario"].value == "base"
    assert {"CSM 数 (フルタイム換算)", "シナリオ"} <= set(shown["chart"])
    assert {"過負荷", "対応可能時間 (h)"} <= set(shown["table"])
    app.filters["utilisation"].value = 0.6
    assert app.error is None and "60%" in app.kpis[3].detail


def test_voice_of_customer_dashboard_in_japanese(small_demo):
    from cs_analysis.dashboard import VoiceOfCustomerDashboard

    app = VoiceOfCustomerDashboard(small_demo, lang="ja")
    shown = _ja(app)
    assert "ボイス・オブ・カスタマー" in shown["header"][0]
    assert shown["kpi"] == ["NPS", "推奨者 (9-10)", "批判者 (0-6)", "前四半期からの変化"]
    assert {"四半期別の NPS", "セグメント別の NPS", "コメントの話題"} <= set(shown["panel"])
    assert "コメントに占める割合" in shown["chart"]
    assert {"日付", "回答者の役割", "コメント"} <= set(shown["table"])
    assert app.filters["search"].description == "コメントを検索"
    assert re.match(r"回答 [\d,]+件 · [\d,]+社", app.view.scope)
    app.filters["survey"].value = "csat"
    shown = _ja(app)
    assert "平均スコア" in shown["kpi"] and "CSAT (上位2段階の割合)" in shown["chart"]


def test_health_dashboards_in_japanese(small_demo):
    from cs_analysis.dashboard import AccountDashboard, AccountHealthDashboard

    app = AccountHealthDashboard(small_demo, lang="ja", snapshots=4, n_boot=20)
    shown = _ja(app, ignore={"note"})  # the analysis's data caveats stay English
    assert shown["kpi"] == ["バックテスト AUC", "レッドの企業", "レッドの企業の MRR",
                            "リスクのある更新 (120日以内)"]
    assert app.filters["w_usage_trend"].description == "利用の傾向"  # the model's labels
    assert {"バンド", "企業の割合", "AUC (0.5 = 偶然と同じ)"} <= set(shown["chart"])
    assert {"理由", "順位", "更新対象 MRR"} <= set(shown["table"])
    assert "&amp;lang=ja" in app._table.value  # account links keep the language

    page = AccountDashboard(small_demo, lang="ja")
    shown = _ja(page)
    assert shown["kpi"] == ["ヘルススコア", "MRR", "次回更新まで", "未解決の重大チケット"]
    assert page.kpis[2].text.endswith("日")
    assert {"点数 (0-100)", "指標"} <= set(shown["chart"])
    assert {"指標", "点数", "寄与"} <= set(shown["table"])
    details = page._details.value
    assert "オンボーディングの段階" in details and "<th>ステージ</th>" in details


def test_journey_dashboards_and_handout_in_japanese(small_demo, tmp_path, monkeypatch):
    from cs_analysis.dashboard import JourneyWorkshopDashboard, SharedGoalsDashboard
    from cs_analysis.journey import handout_html

    monkeypatch.setenv("CS_ANALYSIS_WORKSHOP", str(tmp_path))
    app = JourneyWorkshopDashboard(small_demo, folder=tmp_path, lang="ja")
    shown = _ja(app)
    assert shown["kpi"][0] == "対象企業" and "合意したマップのステージ数" in shown["kpi"]
    assert {"ステージ別の企業", "ステージ間の日数"} <= set(shown["panel"])
    assert "前のステージからの日数 (中央値・四分位)" in shown["chart"]
    assert {"到達企業数", "移行率", "停滞率"} <= set(shown["table"])
    assert app.filters["split"].label == "分割なし"
    assert app._stage.description == "ステージ" and "ペルソナ:" in app._agreed.value
    assert "両方のマップにあるステージ" in app._compare.value  # the two teams' maps compared
    assert "一方のチームのみ" in app._compare.value and "only one team" not in app._compare.value
    buttons = {b.description for row in app._workshop.children
               if hasattr(row, "children") for b in row.children if hasattr(b, "on_click")}
    assert {"名前を変更", "元に戻す", "配布資料を書き出す"} <= buttons
    app.filters["split"].value = "segment"  # the value stays the English key
    assert app.error is None
    app._stage.value = app.session.map.stage_names[0]
    app._name.value = "価値の実感"
    app._on_rename()
    assert "名前変更しました" in app._status.value

    goals = SharedGoalsDashboard(small_demo, lang="ja")
    shown = _ja(goals, ignore={"kpi", "caption"})  # goal names and definitions: the map's
    assert goals.filters["grain"].label == "四半期" and goals.filters["by_segment"].label == "全体"
    assert "目標値 (破線) に対する実績" in shown["chart"]
    assert {"目標", "期間", "目標値"} <= set(shown["table"])

    page = handout_html(app.session.map, getattr(app, "_last_flow", None), lang="ja",
                        as_of=small_demo.as_of)
    assert "<html lang=ja>" in page
    for text in ("ペルソナ", "ジャーニー", "共通目標", "担当チーム", "到達企業数", "移行率",
                 "本人の言葉での成功:", "データ基準日 2026年10月31日", "価値の実感"):
        assert text in page, text
    for english in ("<th>Stage</th>", "<h2>Persona</h2>", "Shared goals", "data as of"):
        assert english not in page
    assert "<th>Stage</th>" in handout_html(app.session.map)  # English stays the default
