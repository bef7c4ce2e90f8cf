"""The health dashboards in a real browser: a weight slider moves the AUC; a risk-table
link opens the account's page.

Reuses tests/test_browser.py's server and Chromium helpers (serving, chromium, Recorder,
time limits). The generic checks of every dashboard (loads, KPIs, CSV, a dropdown
filter) run there; this module moves the CSM-rating weight slider of the account-health
dashboard and waits for the backtest AUC tile to change, then clicks the first account
name of the renewal-risk table and checks that the account page opens on that account.
"""

from __future__ import annotations

import pytest
import test_browser as tb  # noqa: I001 - the sibling test module (tests/ is on sys.path)
from test_browser import page  # noqa: F401 - fixture reused (one definition)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

URL = "voila/render/account_health.ipynb"
_AUC = '.cs-kpi[data-label="Backtest AUC"] .cs-kpi-value'


# server and browser: the session-wide ones of tests/conftest.py


def _open(page, url):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(url, timeout=tb.LOAD_MS)
    expect(page.locator(".cs-kpi").first).to_be_visible(timeout=tb.LOAD_MS)
    expect(page.locator(".cs-pending")).to_have_count(0, timeout=tb.LOAD_MS)
    expect(page.locator(".cs-error")).to_have_count(0)


def test_moving_a_weight_slider_changes_the_backtest_auc(server, page):  # noqa: F811
    from playwright.sync_api import expect

    _open(page, f"{server.url}{URL}")
    before = page.locator(_AUC).inner_text()
    assert before not in ("", "–", "…")
    handle = page.locator(".cs-filter-w_csm_rating .noUi-handle").first
    expect(handle).to_be_visible()
    handle.focus()
    for _ in range(6):  # 3.0 -> 0.0 in steps of 0.5; sent when the key is released
        page.keyboard.press("ArrowLeft")
    expect(page.locator(_AUC)).not_to_have_text(before, use_inner_text=True, timeout=tb.UPDATE_MS)
    expect(page.locator(".cs-error")).to_have_count(0)
    tb.screenshot(page, "account_health-slider")
    assert page.recorder.external() == [], "requests left localhost"
    assert page.recorder.errors == [], "errors in the browser console"


def test_a_risk_table_link_opens_the_account_page(server, page):  # noqa: F811
    from playwright.sync_api import expect

    _open(page, f"{server.url}{URL}")
    link = page.locator("a.cs-account-link").first
    expect(link).to_be_visible(timeout=tb.LOAD_MS)
    name, account = link.inner_text(), link.get_attribute("data-account")
    assert link.get_attribute("href") == f"account.ipynb?account={account}"
    with page.context.expect_page() as new:
        link.click()
    acc = new.value
    acc.recorder = tb.Recorder(acc)
    expect(acc.locator(".cs-account-name")).to_have_text(name, timeout=tb.LOAD_MS)
    expect(acc.locator(f'.cs-account[data-account="{account}"]')).to_have_count(1)
    expect(acc.locator(".cs-kpi").first).to_be_visible(timeout=tb.LOAD_MS)
    expect(acc.locator(".cs-pending")).to_have_count(0, timeout=tb.LOAD_MS)
    expect(acc.locator(".cs-error")).to_have_count(0)
    chosen = acc.locator(".cs-filter-account select").evaluate(
        "s => s.options[s.selectedIndex].text")
    assert chosen.endswith(f"({account})"), chosen
    tb.screenshot(acc, "account-from-link")
    assert acc.recorder.external() == [], "requests left localhost"
