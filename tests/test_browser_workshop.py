"""The journey workshop in a real browser: edit a stage, save, reload, the edit is there.

Reuses the helpers of tests/test_browser.py (Recorder, screenshots, time limits, the
Chromium check) with its own server, whose workshop folder ($CS_ANALYSIS_WORKSHOP) is a
temporary directory, so the test never writes into data/workshop/. The server runs with
preheated kernels, so the reload is served by a kernel that ran before the edit: the
dashboard must re-read the autosaved draft when the viewer arrives (cs_analysis.dashboard.resume).
"""

from __future__ import annotations

import pytest
import test_browser as tb  # noqa: I001 - the sibling test module (tests/ is on sys.path)
from test_browser import page  # noqa: F401 - fixture reused (one definition)

from cs_analysis import journey

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

URL = "voila/render/journey_workshop.ipynb"
NEW_NAME = "Agreed set-up (from the browser)"


@pytest.fixture(scope="module")
def workshop_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("workshop")


@pytest.fixture(scope="module")
def server(small_demo_path, tmp_path_factory, workshop_folder):
    log = tmp_path_factory.mktemp("serve-workshop") / "serve.log"
    with tb.serving(small_demo_path, log,
                    env={journey.WORKSHOP_ENV: str(workshop_folder)}) as srv:
        yield srv


# the browser is the session's (tests/conftest.py): one Playwright per process
def _open(page, server):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server.url}{URL}", timeout=tb.LOAD_MS)  # may wait for a pool kernel
    expect(page.locator(".cs-journey-agreed")).to_be_visible(timeout=tb.LOAD_MS)
    expect(page.locator(".cs-kpi").first).to_be_visible(timeout=tb.LOAD_MS)
    expect(page.locator(".cs-pending")).to_have_count(0, timeout=tb.LOAD_MS)


def test_edit_save_reload_keeps_the_edit(server, page, workshop_folder):  # noqa: F811
    from playwright.sync_api import expect

    log_start = len(server.log_text())
    _open(page, server)
    expect(page.locator(".cs-journey-compare-box")).to_contain_text("only")
    select = page.locator(".cs-journey-stage select")
    options = select.locator("option").all_inner_texts()
    assert len(options) > 3 and NEW_NAME not in options
    old = options[1].replace("\xa0", " ")  # option texts keep non-breaking spaces
    select.select_option(index=1)
    page.locator(".cs-journey-name input").fill(NEW_NAME)
    page.locator(".cs-journey-rename").click()
    agreed = page.locator(".cs-journey-agreed")
    expect(agreed).to_contain_text(NEW_NAME, timeout=tb.UPDATE_MS)
    expect(page.locator(".cs-journey-status")).to_contain_text("draft saved",
                                                               timeout=tb.UPDATE_MS)
    # autosaved as made, before any explicit save
    draft = journey.load_map(workshop_folder / "agreed.draft.yml")
    assert draft.stage_names[1] == NEW_NAME and old in draft.stages[1].aliases

    page.locator(".cs-journey-save").click()
    expect(page.locator(".cs-journey-status")).to_contain_text("Saved version 1",
                                                               timeout=tb.UPDATE_MS)
    saved = journey.load_map(workshop_folder / "agreed-v1.yml")
    assert saved.stage_names[1] == NEW_NAME
    tb.screenshot(page, "journey_workshop-edited")

    assert page.recorder.errors == [], "errors in the browser console before reload"
    page.reload()
    _open(page, server)
    expect(page.locator(".cs-journey-agreed")).to_contain_text(NEW_NAME, timeout=tb.LOAD_MS)
    expect(page.locator(".cs-journey-version")).to_contain_text("Version 1")
    options = [o.replace("\xa0", " ")
               for o in page.locator(".cs-journey-stage select option").all_inner_texts()]
    assert NEW_NAME in options
    expect(page.locator(".cs-error")).to_have_count(0)
    tb.screenshot(page, "journey_workshop-reloaded")

    assert page.recorder.external() == [], "requests left localhost"
    # Leaving a Voila page posts /voila/api/shutdown/<kernel> without its _xsrf token;
    # Voila answers 403 (seen in the server log on every reload, passing or not) and
    # Chromium sometimes reports it in the console before the old page is gone. That
    # is Voila's own unload request, not the dashboard: only it is excused.
    errors = [e for e in page.recorder.errors if "/voila/api/shutdown/" not in e]
    assert errors == [], "errors in the browser console"
    new_log = server.log_text()[log_start:]
    bad = [line for line in new_log.splitlines() if tb.BAD_LOG.search(line)]
    assert bad == [], "errors in the server log:\n" + new_log
