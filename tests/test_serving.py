"""The dashboard server under load and misuse: readiness, kernel caps, culling, no kernel API.

A real ``cs-analysis serve`` on a small dashboards folder (the landing page and one tiny
dashboard), with low caps, driven by plain HTTP requests (no browser): what a script, a
crawler or a crowd of viewers does to it.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.request

import nbformat
import pytest
from serving import DashboardServer

from cs_analysis.dashboard import LANDING, dashboards_dir

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


def test_kernel_api_tells_only_id_and_name_and_cannot_shut_down(server):
    assert _get(server.url + "api/kernels")[0] == 404  # no listing
    assert _get(server.url + "api/kernels/00000000-0000-0000-0000-000000000000")[0] == 404
    status, _, body = _get(server.url + "voila/render/hello.ipynb")
    assert status == 200
    kid = re.search(r'"kernelId": "([0-9a-f-]{36})"', body).group(1)
    status, _, body = _get(server.url + f"api/kernels/{kid}")
    assert status == 200 and json.loads(body) == {"id": kid, "name": json.loads(body)["name"]}
    req = urllib.request.Request(server.url + f"api/kernels/{kid}", method="DELETE")
    try:
        urllib.request.urlopen(req, timeout=30)
        code = 204
    except urllib.error.HTTPError as exc:
        code = exc.code
    assert code in (403, 405)  # refused (403 when the XSRF check answers first)
    assert _kernel_alive(server, kid)  # the kernel is still there


def _kernel_alive(server, kid: str) -> bool:
    return _get(server.url + f"api/kernels/{kid}")[0] == 200


def _wait_no_viewers(server, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while server.health()["viewer_kernels"] and time.monotonic() < deadline:
        time.sleep(0.5)
    return server.health()["viewer_kernels"]


def test_simultaneous_viewers_cannot_overrun_the_cap(server):
    """Four requests at the same moment: two kernels for the dashboard, two 'busy' pages."""
    from concurrent.futures import ThreadPoolExecutor

    assert _wait_no_viewers(server) == 0
    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(lambda _: _get(server.url + "voila/render/hello.ipynb")[0],
                                range(4)))
    assert codes == [200, 200, 503, 503]
    assert server.health()["viewer_kernels"] <= 2


def test_plain_gets_are_capped_and_their_kernels_culled(server):
    assert _wait_no_viewers(server) == 0  # kernels of earlier tests culled
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
    assert _wait_no_viewers(server) == 0
    assert "its page never connected" in server.log_text()
    # and the dashboard serves again
    assert _get(server.url + "voila/render/hello.ipynb")[0] == 200


def test_pool_size_follows_demand_within_its_cap():
    """Grown to the recent requests (at most max_pool_size), back after idle_shrink."""
    import types
    from collections import deque

    from cs_analysis.voila_app import DashboardVoila

    app = DashboardVoila(pool_size=1, max_pool_size=3, demand_window=10, idle_shrink=30,
                         pool_sizes={"meeting.ipynb": 5})
    app.voila_configuration = types.SimpleNamespace(preheat_kernel=True)
    app._requests, app._last_request, app._grown = {}, {}, {}
    nb = "retention.ipynb"
    assert app.demand_target(nb, 0.0) == 1  # nobody asked: the standing pool
    for t in (1.0, 1.5, 2.0, 2.5, 3.0):  # five viewers within a few seconds
        app._requests.setdefault(nb, deque()).append(t)
        app._last_request[nb] = t
    sizes = {}
    for now in (3.0, 20.0, 40.0):  # what _follow_demand does each second
        app._grown[nb] = sizes[now] = app.demand_target(nb, now)
    assert sizes == {3.0: 3, 20.0: 3, 40.0: 1}  # capped at 3; kept; shrunk when idle
    assert app.demand(nb, 40.0) == 0
    assert app._target("meeting.ipynb") == 5 and app.demand_target("meeting.ipynb", 0) == 5
    assert app._pools_config()["meeting.ipynb"] == {"pool_size": 5}


def test_pool_grows_for_a_busy_dashboard_and_kernels_share_views(server):
    assert _wait_no_viewers(server) == 0
    for _ in range(2):
        assert _get(server.url + "voila/render/hello.ipynb")[0] == 200
    deadline = time.monotonic() + 120
    state = server.health()["pools"]["hello.ipynb"]
    while time.monotonic() < deadline and not (state["demand"] >= 2 and state["filled"] >= 2):
        time.sleep(1)
        state = server.health()["pools"]["hello.ipynb"]
    assert state["demand"] >= 2 and state["filled"] >= 2, state
    assert server.health()["pools"][LANDING]["demand"] == 1  # nobody else's pool grew
    assert "share computed views in" in server.log_text()
    assert "pool grows to" in server.log_text()
