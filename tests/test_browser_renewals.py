"""The renewals dashboard in a real browser: changing the horizon changes the calendar.

Reuses the server, Chromium and page fixtures and helpers of tests/test_browser.py
(Debian's Chromium via Playwright, the small demo workspace, console and server-log
checks).
"""

from __future__ import annotations

import re

import pytest
import test_browser as tb  # noqa: I001 - the sibling test module (tests/ is on sys.path)
from test_browser import page  # noqa: F401 - fixture reused (server, browser: conftest)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

URL = "voila/render/renewals.ipynb"


def _renewing(pg) -> int:
    text = pg.locator(".cs-scope").inner_text()
    m = re.search(r"([\d,]+) accounts renewing in (\d+) days", text)
    assert m, text
    return int(m.group(1).replace(",", ""))


def test_changing_the_horizon_changes_the_calendar(server, page):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server.url}{URL}", timeout=tb.LOAD_MS)
    expect(page.locator(".cs-kpi").first).to_be_visible(timeout=tb.LOAD_MS)
    expect(page.locator(".cs-pending")).to_have_count(0, timeout=tb.LOAD_MS)
    page.wait_for_function(tb._ALL_DRAWN_JS, timeout=tb.LOAD_MS)
    expect(page.locator(".cs-scope")).to_contain_text("renewing in 90 days")
    before_n = _renewing(page)
    table_before = page.locator(".cs-table").inner_text()
    charts_before = tb.chart_digest(page)

    page.locator(".cs-filter-horizon button", has_text="30 days").click()
    expect(page.locator(".cs-scope")).to_contain_text("renewing in 30 days",
                                                       timeout=tb.UPDATE_MS)
    expect(page.locator(".cs-table")).not_to_have_text(table_before, use_inner_text=True,
                                                     timeout=tb.UPDATE_MS)
    page.wait_for_function("before => " + tb._DIGEST_JS + " !== before", arg=charts_before,
                           timeout=tb.UPDATE_MS)
    expect(page.locator(".cs-pending")).to_have_count(0, timeout=tb.UPDATE_MS)
    after_n = _renewing(page)
    assert after_n < before_n
    expect(page.locator(".cs-kpi").first).to_contain_text("Renewing in 30 days")
    expect(page.locator(".cs-error")).to_have_count(0)
    tb.screenshot(page, "renewals-30-days")
    assert page.recorder.external() == []
    assert page.recorder.errors == []
