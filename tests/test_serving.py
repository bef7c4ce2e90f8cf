"""The dashboard server under load and misuse: readiness, kernel caps, culling, no kernel API.

A real ``cs-analysis serve`` on a small dashboards folder (the landing page and one tiny
dashboard), with low caps, driven by plain HTTP requests (no browser): what a script, a
crawler or a crowd of viewers does to it.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request

import nbformat
import pytest

from cs_analysis.dashboard import LANDING, dashboards_dir
from cs_analysis.serve import DashboardServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def _get(url: str, timeout: float = 120):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8")


@pytest.fixture(scope="module")
def server(small_demo_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dashboards")
    shutil.copy(dashboards_dir() / LANDING, folder / LANDING)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Hello\n\nA tiny dashboard for tests."),
                nbformat.v4.new_code_cell("print('hello from the kernel')")]
    nbformat.write(nb, folder / "hello.ipynb")
    srv = DashboardServer(small_demo_path,
                          log_path=tmp_path_factory.mktemp("log") / "serve.log",
                          env={"CS_ANALYSIS_DASHBOARDS": str(folder),
                               "CS_ANALYSIS_MAX_KERNELS": "3",
                               "CS_ANALYSIS_MAX_KERNELS_PER_DASHBOARD": "2",
                               "CS_ANALYSIS_CONNECT_TIMEOUT": "5"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        assert srv.processes() == [], "server processes left behind"


def test_healthz_reports_readiness_of_every_pool(server):
    state = server.health()
    assert state["ready"] is True and state["complete"] is True
    assert set(state["pools"]) == {LANDING, "hello.ipynb"}
    assert all(p["filled"] >= p["target"] for p in state["pools"].values())
    status, headers, body = _get(server.url + "healthz")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["max_kernels"] == 3


def test_kernel_details_are_not_served(server):
    status, _, _ = _get(server.url + "api/kernels")
    assert status == 404
    for kid in ("00000000-0000-0000-0000-000000000000",):
        assert _get(server.url + f"api/kernels/{kid}")[0] == 404


def test_plain_gets_are_capped_and_their_kernels_culled(server):
    codes, bodies = [], []
    for _ in range(4):
        status, headers, body = _get(server.url + "voila/render/hello.ipynb")
        codes.append(status)
        bodies.append((headers, body))
    # two viewer kernels for this dashboard at most; then a friendly "busy" page
    assert codes[:2] == [200, 200] and codes[2:] == [503, 503]
    headers, body = bodies[-1]
    assert "cs-busy" in body and "retry" in body.lower() and int(headers["Retry-After"]) > 0
    assert "hello from the kernel" not in body
    assert server.health()["viewer_kernels"] == 2
    # no page ever connected to those kernels: they are shut down (5 s in this test)
    deadline = time.monotonic() + 60
    while server.health()["viewer_kernels"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert server.health()["viewer_kernels"] == 0
    assert "its page never connected" in server.log_text()
    # and the dashboard serves again
    assert _get(server.url + "voila/render/hello.ipynb")[0] == 200
