"""The adoption dashboard in a real browser: a filter change redraws the heatmap and the drop list.

Reuses tests/test_browser.py's server, Chromium and page fixtures (imported, not copied);
the generic checks (renders, CSV, no external request) run there for every dashboard.
"""

from __future__ import annotations

import pytest
import test_browser as tb  # noqa: I001 - the sibling test module (tests/ is on sys.path)
from test_browser import page  # noqa: F401 - fixture reused (server, browser: conftest)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

URL = "voila/render/adoption.ipynb"
_HEAT_JS = ("() => Array.from(document.querySelectorAll('.cs-chart-heatmap svg.marks'))"
            ".map(e => e.innerHTML).join('|')")


def test_segment_filter_changes_heatmap_and_drop_list(server, page):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server.url}{URL}", timeout=tb.LOAD_MS)
    expect(page.locator(".cs-kpi").first).to_be_visible(timeout=tb.LOAD_MS)
    expect(page.locator(".cs-chart-heatmap svg.marks")).to_be_visible(timeout=tb.LOAD_MS)
    expect(page.locator(".cs-pending")).to_have_count(0, timeout=tb.LOAD_MS)
    expect(page.locator(".cs-table")).to_contain_text("Renewal", timeout=tb.LOAD_MS)
    heat_before = page.evaluate(_HEAT_JS)
    table_before = page.locator(".cs-table").inner_text()

    select = page.locator(".cs-filter-segment select")
    options = select.locator("option").all_inner_texts()
    choice = "Enterprise" if "Enterprise" in options else options[-1]
    select.select_option(label=choice)
    page.wait_for_function(f"before => ({_HEAT_JS})() !== before", arg=heat_before,
                           timeout=tb.UPDATE_MS)
    expect(page.locator(".cs-table")).not_to_have_text(table_before, use_inner_text=True,
                                                     timeout=tb.UPDATE_MS)
    expect(page.locator(".cs-pending")).to_have_count(0, timeout=tb.UPDATE_MS)
    expect(page.locator(".cs-error")).to_have_count(0)
    tb.screenshot(page, "adoption-enterprise")
    assert page.recorder.external() == []
    assert page.recorder.errors == []
