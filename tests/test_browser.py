"""Every dashboard in a real browser: `cs-analysis serve` + Playwright + Debian's Chromium.

For each notebook in dashboards/ (discovered, so new dashboards are covered): it loads
with no error in the browser console or the server log, shows KPI tiles and a rendered
chart, a filter change changes what is shown, the CSV download works, and no request
leaves localhost. The landing page lists every dashboard. Screenshots go to
test-artifacts/ (gitignored).

Needs /usr/bin/chromium: skipped locally without it, failed when CI=true.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from serving import chromium, require_chromium, serving  # noqa: F401 - used by sibling modules

from cs_analysis.dashboard import dashboards_dir, discover

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
DASHBOARDS = discover(dashboards_dir())
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
#: How long a dashboard may take to show up in the browser (2 cores, CI).
LOAD_MS = 90_000
UPDATE_MS = 30_000
#: Server log lines that mean something went wrong.
BAD_LOG = re.compile(r"Traceback|\bERROR\b|\[E |Exception|cs_analysis\.dashboard: error")


class Recorder:
    """What a page asked for and complained about."""

    def __init__(self, page):
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.errors.append(
            f"console: {m.text} @ {(m.location or {}).get('url', '')}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e} {e.stack}"))

    def external(self) -> list[str]:
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.hostname not in LOCAL_HOSTS:
                out.append(url)
        return out


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900},
                                  accept_downloads=True)
    pg = context.new_page()
    pg.recorder = Recorder(pg)
    yield pg
    context.close()


#: Everything drawn inside the chart area (changes when any chart changes).
_DIGEST_JS = ("Array.from(document.querySelectorAll('.cs-chart svg.marks, .cs-chart canvas'))"
              ".map(e => e.tagName === 'CANVAS' ? e.toDataURL() : e.innerHTML).join('|')")


#: True when every .cs-chart panel holds a drawn chart wider and taller than 50 px, or
#: an explicit "nothing to show" text.
_ALL_DRAWN_JS = """() => {
  const panels = Array.from(document.querySelectorAll('.cs-chart'));
  return panels.length > 0 && panels.every(p => {
    if (p.querySelector('.cs-chart-empty')) return true;
    const m = p.querySelector('svg.marks, canvas');
    if (!m) return false;
    const r = m.getBoundingClientRect();
    return r.width > 50 && r.height > 50;
  });
}"""


def chart_digest(page) -> str:
    return page.evaluate("() => " + _DIGEST_JS)


def screenshot(page, name: str) -> None:
    """Whole-page screenshot. Voila's page scrolls inside #rendered_cells, not the
    document, so grow the viewport to the content's height first."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    height = page.evaluate(
        "() => { const e = document.getElementById('rendered_cells');"
        " return e ? e.scrollHeight : document.body.scrollHeight; }")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def test_landing_page_lists_every_dashboard(server, page):
    from playwright.sync_api import expect

    page.goto(server.url, timeout=LOAD_MS)  # `/` sends the visitor to the landing page
    expect(page).to_have_url(re.compile(r"/voila/render/index\.ipynb"), timeout=LOAD_MS)
    cards = page.locator(".cs-card")
    expect(cards).to_have_count(len(DASHBOARDS), timeout=LOAD_MS)
    for info in DASHBOARDS:
        card = page.locator(f'.cs-card[data-dashboard="{info.name}"]')
        expect(card).to_contain_text(info.title)
        expect(card).to_contain_text(info.question)
        assert card.get_attribute("href") == f"{info.href}?lang=en"  # the language carries
    expect(page.locator(".cs-error")).to_have_count(0)
    screenshot(page, "index")
    assert page.recorder.external() == []
    assert page.recorder.errors == []


@pytest.mark.parametrize("info", DASHBOARDS, ids=[i.name for i in DASHBOARDS])
def test_dashboard_renders_and_responds(server, page, info):
    from playwright.sync_api import expect

    log_start = len(server.log_text())
    page.goto(f"{server.url}voila/render/{info.href}", timeout=LOAD_MS)

    # header, KPI tiles and at least one drawn chart
    expect(page.locator(".cs-header .cs-title")).to_have_text(info.title, timeout=LOAD_MS)
    expect(page.locator(".cs-header")).to_contain_text(info.question)
    expect(page.locator(".cs-kpi").first).to_be_visible(timeout=LOAD_MS)
    expect(page.locator(".cs-chart svg.marks, .cs-chart canvas").first).to_be_visible(
        timeout=LOAD_MS)
    expect(page.locator(".cs-error")).to_have_count(0)
    assert page.locator(".cs-kpi").count() >= 1
    # every stage has arrived, every chart panel is drawn at a readable size (or says
    # it has nothing to show)
    expect(page.locator(".cs-pending")).to_have_count(0, timeout=LOAD_MS)
    page.wait_for_function(_ALL_DRAWN_JS, timeout=LOAD_MS)
    assert page.locator(".cs-kpi-value").first.inner_text() != ""
    page.wait_for_timeout(500)  # let every chart finish drawing before the screenshot
    screenshot(page, info.name)

    # the CSV download works in standalone Voila (a large one is prepared on request)
    if page.locator(".cs-download-prepare:visible").count():
        page.locator(".cs-download-prepare").click()
        expect(page.locator(".cs-download")).to_have_count(1, timeout=LOAD_MS)
    if page.locator(".cs-download").count():
        with page.expect_download() as dl:
            page.locator(".cs-download").click()
        data = Path(dl.value.path()).read_bytes()
        assert data.startswith(b"\xef\xbb\xbf") and data.count(b"\n") >= 2
        assert dl.value.suggested_filename.endswith(".csv")

    # changing a filter changes the KPIs and the charts
    select = page.locator(".cs-filter select").first
    expect(select).to_be_visible()
    kpis_before = page.locator(".cs-kpis").inner_text()
    charts_before = chart_digest(page)
    options = select.locator("option").all_inner_texts()
    assert len(options) > 1, "the first dropdown filter offers a single choice"
    current = select.evaluate("s => s.options[s.selectedIndex].text")
    select.select_option(label=next(o for o in options if o != current))
    expect(page.locator(".cs-kpis")).not_to_have_text(kpis_before, use_inner_text=True,
                                                     timeout=UPDATE_MS)
    page.wait_for_function("before => " + _DIGEST_JS + " !== before", arg=charts_before,
                           timeout=UPDATE_MS)
    expect(page.locator(".cs-pending")).to_have_count(0, timeout=UPDATE_MS)
    page.wait_for_function(_ALL_DRAWN_JS, timeout=UPDATE_MS)
    expect(page.locator(".cs-error")).to_have_count(0)
    screenshot(page, f"{info.name}-filtered")

    assert page.recorder.external() == [], "requests left localhost"
    assert page.recorder.errors == [], "errors in the browser console"
    new_log = server.log_text()[log_start:]
    bad = [line for line in new_log.splitlines() if BAD_LOG.search(line)]
    assert bad == [], "errors in the server log:\n" + new_log


def test_kernels_were_preheated(server, page):
    # runs after the dashboards were opened: each was served from a preheated kernel
    if not DASHBOARDS:
        pytest.skip("no dashboards")
    assert "Using pre-heated kernel" in server.log_text()
