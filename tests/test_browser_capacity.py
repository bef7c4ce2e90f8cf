"""The capacity-planning dashboard in a real browser: moving a slider redraws the chart.

Reuses tests/test_browser.py's server and Chromium helpers (serving, chromium, Recorder,
time limits). The generic checks of every dashboard (loads, KPIs, CSV, a dropdown
filter) run there; this module moves the hours-per-account slider of the high-touch tier
and waits for the CSMs-needed chart and its KPI to change, with nothing computed by
the engine in between (the dashboard redraws from frames computed once).
"""

from __future__ import annotations

import pytest
import test_browser as tb  # noqa: I001 - the sibling test module (tests/ is on sys.path)
from test_browser import page  # noqa: F401 - fixture reused (one definition)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

URL = "voila/render/capacity_planning.ipynb"
#: Everything drawn in the CSMs-needed panel.
_CSMS_JS = ("() => Array.from(document.querySelectorAll('.cs-chart-csms svg.marks, "
            ".cs-chart-csms canvas')).map(e => e.tagName === 'CANVAS' ? e.toDataURL() : "
            "e.innerHTML).join('|')")


def _kpi(page) -> str:  # noqa: F811
    return page.locator('.cs-kpi[data-label="CSMs needed at peak"] .cs-kpi-value').inner_text()


def test_moving_a_slider_redraws_the_csms_needed_chart(server, page):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server.url}{URL}", timeout=tb.LOAD_MS)
    expect(page.locator(".cs-kpi").first).to_be_visible(timeout=tb.LOAD_MS)
    expect(page.locator(".cs-pending")).to_have_count(0, timeout=tb.LOAD_MS)
    page.wait_for_function(f"() => ({_CSMS_JS})().length > 0", timeout=tb.LOAD_MS)
    expect(page.locator(".cs-error")).to_have_count(0)
    chart_before, kpi_before = page.evaluate(_CSMS_JS), _kpi(page)

    # the high-touch hours slider: keyboard on its handle (ipywidgets' noUiSlider), a
    # few steps up; the value is sent when the key is released (continuous_update=False)
    handle = page.locator(".cs-filter-hours_high .noUi-handle").first
    expect(handle).to_be_visible()
    handle.focus()
    for _ in range(6):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(f"before => ({_CSMS_JS})() !== before", arg=chart_before,
                           timeout=tb.UPDATE_MS)
    expect(page.locator('.cs-kpi[data-label="CSMs needed at peak"] .cs-kpi-value')
           ).not_to_have_text(kpi_before, use_inner_text=True, timeout=tb.UPDATE_MS)
    assert float(_kpi(page).split()[0]) > float(kpi_before.split()[0])
    expect(page.locator(".cs-error")).to_have_count(0)
    tb.screenshot(page, "capacity_planning-slider")
    assert page.recorder.external() == [], "requests left localhost"
    assert page.recorder.errors == [], "errors in the browser console"
