"""Japanese and English in a real browser: the landing page and three dashboards in ``ja``,
a filter change in Japanese, and switching back to English, on one running server.

Reuses the session-wide server and Chromium (tests/conftest.py) and the page fixture and
helpers of tests/test_browser.py. The server's language is English; ``?lang=ja`` in the
URL (carried by the landing page's links and the language switch) makes a page Japanese,
also in a preheated kernel that drew its page before the request
(:func:`cs_analysis.dashboard.follow_request`).
"""

from __future__ import annotations

import re

import pytest
import test_browser as tb  # noqa: I001 - the sibling test module (tests/ is on sys.path)
from test_browser import page  # noqa: F401 - fixture reused (server, browser: conftest)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


def _errors(pg) -> list[str]:
    """Console errors, but the 403 of the page left behind asking Voila to shut its kernel
    down on navigation (Voila's own request; the kernel is culled later), seen whenever
    a link is followed from one dashboard page to another."""
    return [e for e in pg.recorder.errors
            if not ("403" in e and "/voila/api/shutdown/" in e)]


#: True once the scope line counts fewer customers than ``arg`` (the first stage of a
#: redraw has no count yet).
_FEWER_CUSTOMERS_JS = """before => {
  const scope = document.querySelector('.cs-scope');
  const m = scope && scope.textContent.match(/対象顧客 ([\\d,]+)社/);
  return m !== null && Number(m[1].replace(/,/g, '')) < before;
}"""


def _customers(pg) -> int:
    """The customers the scope line counts (waits for it: a first stage has no count)."""
    from playwright.sync_api import expect

    expect(pg.locator(".cs-scope")).to_contain_text(re.compile(r"対象顧客 [\d,]+社"),
                                                    timeout=tb.UPDATE_MS)
    m = re.search(r"対象顧客 ([\d,]+)社", pg.locator(".cs-scope").inner_text())
    assert m, pg.locator(".cs-scope").inner_text()
    return int(m.group(1).replace(",", ""))


def _loaded(pg) -> None:
    from playwright.sync_api import expect

    expect(pg.locator(".cs-kpi").first).to_be_visible(timeout=tb.LOAD_MS)
    expect(pg.locator(".cs-pending")).to_have_count(0, timeout=tb.LOAD_MS)
    pg.wait_for_function(tb._ALL_DRAWN_JS, timeout=tb.LOAD_MS)
    expect(pg.locator(".cs-error")).to_have_count(0)


def test_landing_and_retention_in_japanese(server, page):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server.url}voila/render/index.ipynb?lang=ja", timeout=tb.LOAD_MS)
    expect(page.locator(".cs-landing h1")).to_have_text("カスタマーサクセス ダッシュボード",
                                                        timeout=tb.LOAD_MS)
    card = page.locator('.cs-card[data-dashboard="retention"]')
    expect(card).to_contain_text("継続率と売上")
    expect(card).to_contain_text("顧客は継続し、成長しているか?")
    assert card.get_attribute("href") == "retention.ipynb?lang=ja"
    tb.screenshot(page, "index-ja")

    card.click()  # the language carries into the dashboard
    expect(page).to_have_url(re.compile(r"retention\.ipynb\?lang=ja"), timeout=tb.LOAD_MS)
    expect(page.locator(".cs-header .cs-title")).to_have_text("継続率と売上",
                                                              timeout=tb.LOAD_MS)
    expect(page.locator(".cs-kpi").first).to_contain_text("12か月時点のロゴ継続率",
                                                          timeout=tb.LOAD_MS)
    _loaded(page)
    expect(page.locator(".cs-header")).to_contain_text("データ基準日")
    expect(page.locator(".cs-filter-segment")).to_contain_text("セグメント")
    expect(page.locator(".cs-chart-triangle .cs-chart-title")).to_have_text("コホート別継続率")
    expect(page.locator(".cs-table")).to_contain_text("CSV をダウンロード")

    select = page.locator(".cs-filter-segment select")
    options = select.locator("option").all_inner_texts()
    assert options[0] == "すべて" and len(options) > 1
    assert page.recorder.external() == []
    assert _errors(page) == []


def test_retention_filter_change_in_japanese(server, page):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server.url}voila/render/retention.ipynb?lang=ja", timeout=tb.LOAD_MS)
    expect(page.locator(".cs-kpi").first).to_contain_text("12か月時点のロゴ継続率",
                                                          timeout=tb.LOAD_MS)
    _loaded(page)
    select = page.locator(".cs-filter-segment select")
    options = select.locator("option").all_inner_texts()
    assert options[0] == "すべて" and len(options) > 1
    customers = _customers(page)
    kpis_before = page.locator(".cs-kpis").inner_text()
    select.select_option(label=options[1])  # a filter change still works in Japanese
    # Wait for the kernel's redraw itself. (`not_to_have_text(kpis_before)` did not wait:
    # it compares textContent, where the tiles' texts run together, with innerText,
    # where they are separated by line breaks, so it passed at once, before the change
    # reached the kernel, and the unfiltered count was read.)
    expect(page.locator(".cs-kpis")).not_to_have_text(kpis_before, use_inner_text=True,
                                                      timeout=tb.UPDATE_MS)
    page.wait_for_function(_FEWER_CUSTOMERS_JS, arg=customers, timeout=tb.UPDATE_MS)
    expect(page.locator(".cs-pending")).to_have_count(0, timeout=tb.UPDATE_MS)
    page.wait_for_function(tb._ALL_DRAWN_JS, timeout=tb.UPDATE_MS)
    assert 0 < _customers(page) < customers  # the segment's customers only
    assert select.evaluate("s => s.options[s.selectedIndex].text") == options[1]
    expect(page.locator(".cs-kpi").first).to_contain_text("12か月時点のロゴ継続率")
    expect(page.locator(".cs-scope")).to_contain_text("対象顧客")
    expect(page.locator(".cs-error")).to_have_count(0)
    tb.screenshot(page, "retention-ja-filtered")
    assert page.recorder.external() == []
    assert _errors(page) == []


def test_onboarding_in_japanese_then_back_to_english(server, page):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server.url}voila/render/onboarding.ipynb?lang=ja", timeout=tb.LOAD_MS)
    expect(page.locator(".cs-header .cs-title")).to_have_text(
        "オンボーディングと価値到達までの時間", timeout=tb.LOAD_MS)
    expect(page.locator(".cs-kpis")).to_contain_text("目標期間内の到達率", timeout=tb.LOAD_MS)
    _loaded(page)
    expect(page.locator(".cs-kpis")).to_contain_text("停滞しているオンボーディング")
    expect(page.locator(".cs-table")).to_contain_text("停滞の理由")
    tb.screenshot(page, "onboarding-ja")

    # the switch in the header reopens the page in English: no server restart
    page.locator('.cs-header .cs-lang-option[data-lang="en"]').click()
    expect(page).to_have_url(re.compile(r"onboarding\.ipynb\?lang=en"), timeout=tb.LOAD_MS)
    expect(page.locator(".cs-header .cs-title")).to_have_text("Onboarding and time to value",
                                                              timeout=tb.LOAD_MS)
    expect(page.locator(".cs-kpis")).to_contain_text("Reached within target",
                                                     timeout=tb.LOAD_MS)
    _loaded(page)
    expect(page.locator(".cs-kpis")).not_to_contain_text("目標")

    page.goto(f"{server.url}voila/render/index.ipynb?lang=en", timeout=tb.LOAD_MS)
    expect(page.locator(".cs-landing h1")).to_have_text("Customer Success dashboards",
                                                        timeout=tb.LOAD_MS)
    assert page.locator('.cs-card[data-dashboard="onboarding"]').get_attribute(
        "href") == "onboarding.ipynb?lang=en"
    assert page.recorder.external() == []
    assert _errors(page) == []


def _renewing_ja(pg) -> tuple[int, int]:
    text = pg.locator(".cs-scope").inner_text()
    m = re.search(r"(\d+)日以内に更新する企業 ([\d,]+)社", text)
    assert m, text
    return int(m.group(1)), int(m.group(2).replace(",", ""))


def test_renewals_in_japanese_with_a_horizon_change(server, page):  # noqa: F811
    """A third dashboard in Japanese: header, KPI tiles, filter, chart title, table
    headers; changing the horizon (a Japanese button) recomputes the calendar."""
    from playwright.sync_api import expect

    page.goto(f"{server.url}voila/render/renewals.ipynb?lang=ja", timeout=tb.LOAD_MS)
    expect(page.locator(".cs-header .cs-title")).to_have_text("契約更新とサポート",
                                                              timeout=tb.LOAD_MS)
    expect(page.locator(".cs-kpis")).to_contain_text("90日以内に更新", timeout=tb.LOAD_MS)
    _loaded(page)
    expect(page.locator(".cs-kpis")).to_contain_text("更新対象 MRR")
    expect(page.locator(".cs-filter-horizon")).to_contain_text("対象期間")
    expect(page.locator(".cs-chart-calendar .cs-chart-title")).to_have_text(
        "今後90日以内の更新")
    expect(page.locator(".cs-table")).to_contain_text("更新カレンダー (更新日の近い順)")
    expect(page.locator(".cs-table th").filter(has_text="契約期間 (か月)")).to_have_count(1)
    horizon, before_n = _renewing_ja(page)
    assert horizon == 90
    table_before = page.locator(".cs-table").inner_text()
    tb.screenshot(page, "renewals-ja")

    page.wait_for_timeout(3000)  # let the relabel of a preheated kernel settle
    page.locator(".cs-filter-horizon button", has_text=re.compile(r"^30日$")).click()
    expect(page.locator(".cs-scope")).to_contain_text("30日以内に更新する企業",
                                                       timeout=tb.UPDATE_MS)
    expect(page.locator(".cs-table")).not_to_have_text(table_before, timeout=tb.UPDATE_MS)
    expect(page.locator(".cs-pending")).to_have_count(0, timeout=tb.UPDATE_MS)
    page.wait_for_function(tb._ALL_DRAWN_JS, timeout=tb.UPDATE_MS)
    _, after_n = _renewing_ja(page)
    assert after_n < before_n
    expect(page.locator(".cs-kpi").first).to_contain_text("30日以内に更新")
    expect(page.locator(".cs-chart-calendar .cs-chart-title")).to_have_text(
        "今後30日以内の更新")
    expect(page.locator(".cs-error")).to_have_count(0)
    tb.screenshot(page, "renewals-ja-30-days")
    assert page.recorder.external() == []
    assert _errors(page) == []
