"""Many viewers at once: N browsers open a dashboard together and change a filter.

Bounded and local: one ``cs-analysis serve`` on 127.0.0.1 (the served limits: kernel
caps, culling) of the default demo workspace (3000 accounts; ``--quick``: 300), N
Chromium pages (one browser context each, Debian's Chromium via Playwright) opening the
same dashboard at the same moment, then each choosing another value in the first
dropdown filter. Every wait is capped (:data:`PAGE_TIMEOUT`), so a run ends even when the
server is overwhelmed.

Reported per N:

- ``first chart``: seconds from the request to the viewer's first drawn chart (median
  and max over the viewers that got one); viewers answered with the "busy, retry" page
  (a kernel cap reached) or that saw nothing within the timeout are counted apart;
- ``filter``: seconds from choosing another segment to the first chart changing;
- ``failed``: HTTP responses >= 400 (the busy page is a 503), failed requests and page
  errors;
- ``memory``: total kernel RSS / USS before and after the viewers connected, and the
  USS per extra viewer ((after - before) / viewers served).

- ``CPU``: CPU seconds the server with its kernels, and the browser pages, used during
  the round (the browsers run on the same cores here; a real audience's do not);
- ``load``: the machine's load average when the round started and ended (the figures
  depend on what else runs on it);
- ``kernel work``: what one kernel does before its first chart, measured apart from the
  server in two fresh processes: import, open the workspace, launch the dashboard with
  an empty view cache (compute) and again with the view in the cache (read): what the
  cache saves per kernel, beside the start-up it cannot save.

Each round's server gets a fresh, empty view cache (:mod:`cs_analysis.dashboard.cache`):
its preheated kernel computes and stores the first view, every later kernel reads it.

Settings (environment): ``CS_BENCH_LOAD_VIEWERS`` (default ``3,10``; ``--quick``: ``3``),
``CS_BENCH_LOAD_DASHBOARD`` (default ``retention``), ``CS_BENCH_LOAD_VIEW_CACHE=off``
(measure without the shared view cache), ``CS_BENCH_LOAD_POOL`` (standing pool size of
the measured dashboard, ``$CS_ANALYSIS_POOL_SIZES``; default the server's: 1),
``CS_BENCH_LOAD_RAISE_CAPS=1`` (kernel caps raised to the number of viewers).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

#: Most seconds any one wait may take (page, chart, filter).
PAGE_TIMEOUT = 180.0
_DRAWN = ".cs-chart svg.marks, .cs-chart canvas"
_DIGEST = ("() => Array.from(document.querySelectorAll('.cs-chart svg.marks, "
           ".cs-chart canvas')).map(e => e.tagName === 'CANVAS' ? e.toDataURL() : "
           "e.innerHTML).join('|')")


def _row(case, seconds=None, size=None, peak_mb=None, note="", **extra) -> dict:
    return {"bench": "load", "size": size, "case": case, "seconds": seconds,
            "peak_mb": peak_mb, "note": note, **extra}


async def _viewer(browser, url: str, start: asyncio.Event) -> dict:
    """One viewer: open the page, wait for a chart, change the first filter."""
    ctx = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await ctx.new_page()
    out = {"first": None, "filter": None, "busy": False, "failed": 0, "errors": [],
           "outcome": "no chart"}

    def on_response(resp):
        if resp.status >= 400:
            out["failed"] += 1
            path = resp.url.split("?")[0].removeprefix(url.split("voila/")[0])
            out["errors"].append(f"HTTP {resp.status} {path[:60]}")
            if resp.status == 503:
                out["busy"] = True

    def on_failed(req):
        out["failed"] += 1
        out["errors"].append(f"{req.url[-60:]}: {req.failure}")

    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    page.on("pageerror", lambda e: out["errors"].append(str(e)[:200]))
    await start.wait()
    t0 = time.perf_counter()
    try:
        await page.goto(url, timeout=PAGE_TIMEOUT * 1000)
        deadline = t0 + PAGE_TIMEOUT
        while time.perf_counter() < deadline:  # a chart, or the busy page
            if await page.locator(_DRAWN).count():
                out["first"] = time.perf_counter() - t0
                out["outcome"] = "chart"
                break
            if await page.locator(".cs-busy").count() and out["busy"]:
                out["outcome"] = "busy page"
                break
            await asyncio.sleep(0.1)
        if out["first"] is not None:
            select = page.locator(".cs-filter select").first
            if await select.count():
                options = await select.locator("option").all_inner_texts()
                if len(options) > 1:
                    before = await page.evaluate(_DIGEST)
                    t1 = time.perf_counter()
                    await select.select_option(label=options[1])
                    await page.wait_for_function(
                        f"before => ({_DIGEST})() !== before", arg=before,
                        timeout=PAGE_TIMEOUT * 1000, polling=50)
                    out["filter"] = time.perf_counter() - t1
    except Exception as exc:  # noqa: BLE001 - a timeout or a closed page is a result
        out["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    out["page"], out["ctx"] = page, ctx
    return out


def _memory(srv) -> tuple[float, float, int]:
    mem = srv.kernel_memory()
    return (sum(m["rss_mb"] for m in mem.values()), sum(m["uss_mb"] for m in mem.values()),
            len(mem))


async def _round(srv, url: str, n: int) -> dict:
    from playwright.async_api import async_playwright

    from tests.serving import CHROMIUM, CHROMIUM_ARGS

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            start = asyncio.Event()
            tasks = [asyncio.create_task(_viewer(browser, url, start)) for _ in range(n)]
            await asyncio.sleep(0.5)  # every context made: all viewers ask at once
            cpu0 = _cpu(srv.processes())
            t0 = time.perf_counter()
            start.set()
            results = await asyncio.gather(*tasks)
            wall = time.perf_counter() - t0
            cpu_server = _cpu(srv.processes()) - cpu0
            cpu_browser = _cpu(p.pid for p in _browser_processes())
            rss, uss, kernels = _memory(srv)  # pages still open: their kernels alive
            for r in results:
                await r.pop("ctx").close()
                r.pop("page")
        finally:
            await browser.close()
    return {"results": results, "wall": wall, "rss": rss, "uss": uss, "kernels": kernels,
            "cpu_server": cpu_server, "cpu_browser": cpu_browser}


def _cpu(pids) -> float:
    """CPU seconds (user + system) used so far by these processes."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def _browser_processes():
    """The Chromium processes this benchmark started (all started in this round)."""
    import psutil

    return [p for p in psutil.Process().children(recursive=True)
            if "chrom" in (p.name() or "").lower()]


_KERNEL_WORK = r'''
import json, os, sys, time
t0 = time.perf_counter()
import cs_analysis.dashboard as d
from cs_analysis.workspace import open_workspace
t1 = time.perf_counter()
ws = open_workspace(sys.argv[1])
t2 = time.perf_counter()
app = getattr(d, sys.argv[2]).launch(ws)
t3 = time.perf_counter()
cache = app.__dict__.get("_shared_cache")
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "launch": t3 - t2,
                  "hits": cache.hits if cache else None}))
'''


def _kernel_work(workspace, notebook: str) -> list[dict]:
    """Seconds one kernel spends before its first chart: import, open, launch (miss, hit)."""
    import json
    import subprocess
    import tempfile

    from cs_analysis.dashboard import discover

    info = {i.name: i for i in discover()}.get(notebook)
    text = info.path.read_text(encoding="utf-8") if info else ""
    import re

    m = re.search(r"(\w+Dashboard)\.launch", text)
    if not m:
        return []
    cls = m.group(1)
    out = {}
    with tempfile.TemporaryDirectory(prefix="cs-bench-views-") as views:
        env = {**os.environ, "CS_ANALYSIS_VIEW_CACHE": views, "CS_ANALYSIS_CHART_BUNDLE": "x"}
        for label in ("compute", "cached"):
            load = os.getloadavg()[0]
            proc = subprocess.run([sys.executable, "-c", _KERNEL_WORK, str(workspace), cls],
                                  env=env, capture_output=True, text=True, timeout=600)
            if proc.returncode:
                return [_row("kernel work", note=f"failed: {proc.stderr[-200:]}")]
            out[label] = {**json.loads(proc.stdout.strip().splitlines()[-1]), "load": load}
    rows = []
    for label, r in out.items():
        rows.append(_row(f"kernel work: launch ({label})", r["launch"],
                         note=f"import {r['import']:.1f} s, open {r['open']:.1f} s, "
                              f"launch {r['launch']:.1f} s (view cache hits {r['hits']}); "
                              f"load {r['load']:.1f}"))
    return rows


def run(args) -> list[dict]:
    from benchmarks.bench_dashboards import _workspace
    from tests.serving import CHROMIUM, DashboardServer

    if not os.path.exists(CHROMIUM):
        return [_row("skipped", note=f"{CHROMIUM} missing")]
    default = "3" if args.quick else "3,10"
    counts = [int(x) for x in os.environ.get("CS_BENCH_LOAD_VIEWERS", default).split(",")]
    name = os.environ.get("CS_BENCH_LOAD_DASHBOARD", "retention")
    workspace, size = _workspace(args)
    cache_on = os.environ.get("CS_BENCH_LOAD_VIEW_CACHE", "on").lower() not in (
        "off", "0", "no")
    pool = os.environ.get("CS_BENCH_LOAD_POOL")
    raise_caps = os.environ.get("CS_BENCH_LOAD_RAISE_CAPS", "") not in ("", "0", "no")
    rows: list[dict] = _kernel_work(workspace, name) if cache_on else []
    for r in rows:
        print("  ", r["case"], r["seconds"], r["note"], flush=True)
    for n in counts:
        # a fresh server per round: each starts from the served state (pools preheated),
        # with an empty view cache that its preheated kernel fills
        import tempfile

        views = tempfile.mkdtemp(prefix="cs-bench-views-")
        env = {"CS_ANALYSIS_VIEW_CACHE": views if cache_on else "off"}
        if pool:
            env["CS_ANALYSIS_POOL_SIZES"] = f"{name}={int(pool)}"
        if raise_caps:  # every viewer may have a kernel (default caps: 6 per dashboard)
            env["CS_ANALYSIS_MAX_KERNELS_PER_DASHBOARD"] = str(max(6, n))
            env["CS_ANALYSIS_MAX_KERNELS"] = str(max(12, n))
        load0 = os.getloadavg()
        with DashboardServer(workspace, timeout=900, env=env) as srv:
            waited = srv.wait_idle()
            base_rss, base_uss, base_k = _memory(srv)
            url = f"{srv.url}voila/render/{name}.ipynb"
            print(f"  {n} viewers of {name} (server idle after {waited:.0f} s, "
                  f"{base_k} kernels, {base_uss:.0f} MB USS)", flush=True)
            got = asyncio.run(_round(srv, url, n))
        load1 = os.getloadavg()
        import shutil

        shutil.rmtree(views, ignore_errors=True)
        res = got["results"]
        firsts = sorted(r["first"] for r in res if r["first"] is not None)
        filters = [r["filter"] for r in res if r["filter"] is not None]
        busy = sum(r["outcome"] == "busy page" for r in res)
        none = sum(r["outcome"] == "no chart" for r in res)
        failed = sum(r["failed"] for r in res)
        errors = sorted({e for r in res for e in r["errors"]})
        served = len(firsts)
        per_viewer = (got["uss"] - base_uss) / served if served else None
        added = got["kernels"] - base_k  # viewers' kernels and pool kernels grown by demand
        per_kernel = (got["uss"] - base_uss) / added if added > 0 else None
        med = statistics.median
        rows += [
            _row(f"{n} viewers: first chart (median)", med(firsts) if firsts else None, size,
                 note=f"max {max(firsts):.1f} s; per viewer "
                      f"{', '.join(f'{x:.1f}' for x in firsts)}" if firsts else "none",
                 viewers=n, first_charts=firsts),
            _row(f"{n} viewers: outcome", None, size,
                 note=f"{served} charts, {busy} busy pages (kernel cap), {none} nothing "
                      f"within {PAGE_TIMEOUT:.0f} s; all done in {got['wall']:.0f} s"),
            _row(f"{n} viewers: filter -> first chart (median)",
                 med(filters) if filters else None, size,
                 note=f"max {max(filters):.1f} s, n={len(filters)}" if filters else "none"),
            _row(f"{n} viewers: failed requests", None, size,
                 note=f"{failed} HTTP >= 400 or failed; page errors: "
                      f"{'; '.join(errors)[:200] or 'none'}", failed=failed),
            _row(f"{n} viewers: kernel memory", None, size, peak_mb=got["uss"],
                 note=f"USS {base_uss:.0f} -> {got['uss']:.0f} MB, RSS {base_rss:.0f} -> "
                      f"{got['rss']:.0f} MB, kernels {base_k} -> {got['kernels']}"
                      + (f"; {per_viewer:.0f} MB USS per extra viewer"
                         if per_viewer is not None else "")
                      + (f", {per_kernel:.0f} MB per added kernel"
                         if per_kernel is not None else "")),
            _row(f"{n} viewers: CPU", None, size,
                 note=f"{got['cpu_server']:.0f} CPU s in the server and its kernels, "
                      f"{got['cpu_browser']:.0f} CPU s in the {n} browser pages, over "
                      f"{got['wall']:.0f} s on {os.cpu_count()} CPUs shared with other work"),
            _row(f"{n} viewers: load", None, size,
                 note=f"load average {load0[0]:.1f} at start, {load1[0]:.1f} at end "
                      f"(1 min; {os.cpu_count()} CPUs); view cache "
                      f"{'on' if cache_on else 'off'}"
                      + (f", pool {pool}" if pool else "")
                      + (", caps raised to the viewers" if raise_caps else "")),
        ]
        for r in rows[-7:]:
            print("  ", r["case"], r["seconds"], r["peak_mb"], r["note"], flush=True)
    return rows


if __name__ == "__main__":  # pragma: no cover - `python -m benchmarks --only load`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.__main__ import main

    sys.exit(main(["--only", "load", *sys.argv[1:]]))
