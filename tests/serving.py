"""Test tooling for serving: a real ``cs-analysis serve`` and Debian's Chromium.

Used by the browser and serving tests and by the dashboard benchmarks (``benchmarks/``
imports it as ``tests.serving``); not part of the package.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cs_analysis.serve import ServeError

#: Debian's Chromium, driven by Playwright in the browser tests and benchmarks (Playwright
#: must never download a browser here).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")


class DashboardServer:
    """``cs-analysis serve`` running in the background (browser tests and benchmarks).

    Starts the command in its own process group on a free localhost port, waits until
    the landing page answers, and stops the whole group (Voila and its kernels) on
    :meth:`stop` or when used as a context manager.

    Parameters
    ----------
    workspace : str or Path
        Workspace the dashboards read.
    port : int, optional
        Port; default a free one.
    log_path : str or Path, optional
        File receiving the server's output; default a temporary file.
    extra_args : sequence of str
        More ``cs-analysis serve`` arguments (e.g. ``["--pool-size", "2"]``).
    env : mapping, optional
        Extra environment variables.
    timeout : float
        Most seconds to wait for the server to be ready (it returns as soon as
        ``/healthz`` says so).
    """

    def __init__(self, workspace, *, port: int | None = None, log_path=None,
                 extra_args=(), env=None, timeout: float = 600.0):
        self.workspace = str(workspace)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._own_log = log_path is None
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix="cs-serve-", suffix=".log")
            os.close(fd)
        self.log_path = Path(log_path)
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        # kernels share views through a cache folder of this server's own (mkdtemp:
        # owner-only), never the user's ~/.cache, unless the caller names one
        self._views = None
        if "CS_ANALYSIS_VIEW_CACHE" not in self.env:
            self._views = tempfile.mkdtemp(prefix="cs-views-")
            self.env["CS_ANALYSIS_VIEW_CACHE"] = self._views
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        """The ``cs-analysis serve`` command line."""
        script = Path(sys.executable).with_name("cs-analysis")
        head = [str(script)] if script.exists() else [sys.executable, "-m", "cs_analysis.cli"]
        return [*head, "serve", "--workspace", self.workspace, "--host", "127.0.0.1",
                "--port", str(self.port), *self.extra_args]

    def start(self, *, complete: bool = True) -> DashboardServer:
        """Start the server and wait until it is ready (raises with the log if it dies).

        Readiness is what ``/healthz`` reports: ``complete`` (every dashboard's kernel
        pool filled) by default, else ``ready`` (the landing page's).
        """
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop
        self.proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        try:
            self.wait_ready(complete=complete, timeout=self.timeout)
        except ServeError:
            self.stop()
            raise
        return self

    def health(self) -> dict | None:
        """What ``/healthz`` answers now (None while the server does not answer)."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + "healthz", timeout=2) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return None

    def wait_ready(self, *, complete: bool = True, timeout: float = 600.0) -> dict:
        """Poll ``/healthz`` until ready (or complete); return its last answer."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServeError(f"the dashboard server exited with {self.proc.returncode}:\n"
                                 f"{self.log_text()}")
            state = self.health()
            if state and state["complete" if complete else "ready"]:
                return state
            time.sleep(0.25)
        raise ServeError(f"the dashboard server was not ready within {timeout:.0f} s "
                         f"({self.health()}):\n{self.log_text()}")

    def log_text(self) -> str:
        """Everything the server printed so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def processes(self) -> list[int]:
        """Ids of the server's live processes: the command, Voila and its kernels.

        Kernels run in sessions of their own (jupyter_client starts them so), so they are
        found as descendants, and remembered (as psutil handles, safe against pid reuse)
        so that ones orphaned by a dying parent are still found.
        """
        if self.proc is None:
            return []
        import psutil

        known = getattr(self, "_procs", {})
        try:
            root = psutil.Process(self.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                known.setdefault(p.pid, p)
        except psutil.Error:
            pass
        alive = {}
        for pid, p in known.items():
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive[pid] = p
            except psutil.Error:
                continue
        self._procs = alive
        return sorted(alive)

    def wait_idle(self, timeout: float = 300.0, window: float = 1.5,
                  cpu_fraction: float = 0.05) -> float:
        """Wait until the server and its kernels use (almost) no CPU; return seconds waited.

        Voila reports a kernel pool "filled" when the kernels are started, not when they
        have run their notebook; benchmarks wait for this instead, so a viewer gets a
        kernel that has finished preheating.

        Parameters
        ----------
        timeout : float
            Give up (and return) after this many seconds.
        window : float
            Length of the quiet period required.
        cpu_fraction : float
            CPU seconds per second (all server processes together) counted as quiet.
        """
        import time

        import psutil

        def cpu_total() -> float:
            total = 0.0
            for pid in self.processes():
                try:
                    t = psutil.Process(pid).cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
                except psutil.Error:
                    continue
            return total

        start = time.monotonic()
        previous = cpu_total()
        while time.monotonic() - start < timeout:
            time.sleep(window)
            now = cpu_total()
            if now - previous < cpu_fraction * window:
                return time.monotonic() - start
            previous = now
        return time.monotonic() - start

    def kernel_memory(self) -> dict[str, dict[str, float]]:
        """RSS and USS (MB) of each running kernel, by kernel id."""
        import psutil

        out = {}
        for pid in self.processes():
            try:
                proc = psutil.Process(pid)
                cmd = " ".join(proc.cmdline())
                if "ipykernel" not in cmd:
                    continue
                m = re.search(r"kernel-([0-9a-f-]+)\.json", cmd)
                info = proc.memory_full_info()
                out[m.group(1) if m else str(pid)] = {"rss_mb": info.rss / 2**20,
                                                      "uss_mb": info.uss / 2**20}
            except psutil.Error:
                continue
        return out

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server and everything it started.

        SIGTERM to the command's process group (Voila then shuts its kernels down), then
        SIGKILL to any of its processes still alive after ``timeout`` seconds.
        """
        import time

        if self.proc is None:
            self._drop_views()
            return
        self.processes()  # remember the kernels before their parent goes away
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + timeout
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self.processes():
            try:
                self._procs[pid].kill()
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        self._drop_views()

    def _drop_views(self) -> None:
        if self._views is not None:
            shutil.rmtree(self._views, ignore_errors=True)

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_chromium() -> None:
    """Skip without Debian's Chromium locally; fail in CI, where it must be installed."""
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is missing (Debian package `chromium`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)


#: Limits of the test server: several test modules share it and each page keeps its
#: kernel until the idle cull, so the caps are higher and the cull quicker than served.
TEST_SERVER_ENV = {"CS_ANALYSIS_MAX_KERNELS": "40", "CS_ANALYSIS_MAX_KERNELS_PER_DASHBOARD": "20",
                   "CS_ANALYSIS_CULL_IDLE": "60"}


@contextlib.contextmanager
def serving(workspace, log, env=None):
    """A `cs-analysis serve` for tests; fails if processes are left behind."""
    require_chromium()
    srv = DashboardServer(workspace, log_path=log, env={**TEST_SERVER_ENV, **(env or {})})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        assert srv.processes() == [], "server processes left behind"


@contextlib.contextmanager
def chromium():
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield b
        finally:
            b.close()
