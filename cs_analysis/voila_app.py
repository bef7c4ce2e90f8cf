"""The Voila application ``cs-analysis serve`` runs: Voila plus limits, readiness and order.

Standalone Voila starts a kernel for every page request and keeps it until an idle cull,
starts every preheated pool at once, and answers requests while nothing is ready yet. A
handful of plain GETs could exhaust the machine, and a first viewer waited 25-30 s on a
request that seemed to hang. :class:`DashboardVoila` keeps Voila's behaviour and adds:

- **Readiness, reported.** ``GET /healthz`` answers JSON: ``ready`` (the landing page's
  pool is filled, so ``/`` opens at once), ``complete`` (every dashboard's pool is
  filled), each pool's filled/target counts and the number of viewer kernels. Tests and
  scripts wait on it instead of on long page timeouts.
- **Landing page first.** Preheated pools fill one notebook at a time, the landing page's
  first, instead of all at once competing for the cores.
- **A starting page instead of a hanging request.** Until a notebook's pool is filled, a
  request for it (or for ``/``) gets a small page that shows progress and reloads itself
  every two seconds.
- **Kernel caps.** At most :attr:`~DashboardVoila.max_kernels` viewer kernels in all and
  :attr:`~DashboardVoila.max_kernels_per_dashboard` per dashboard (preheated pool kernels
  are not counted); a request over a cap gets a friendly "busy, retry" page (HTTP 503 with
  ``Retry-After``) instead of another kernel.
- **Unconnected kernels culled.** A viewer kernel whose page never opened its connection
  within :attr:`~DashboardVoila.connect_timeout` seconds (a plain GET, a script, a closed
  tab) is shut down; Voila's idle cull (``MappingKernelManager``) handles the rest.
- **Pools that follow demand.** A kernel taken from a pool is replaced once no new
  viewer of that dashboard arrived for :attr:`~DashboardVoila.refill_quiet` seconds
  (Voila replaced it at once, and a burst of viewers then started as many kernels again,
  competing for the cores with theirs). A dashboard that
  viewers open keeps more preheated kernels: as many as it had requests in the last
  :attr:`~DashboardVoila.demand_window` seconds, up to
  :attr:`~DashboardVoila.max_pool_size` and within :attr:`~DashboardVoila.max_kernels`;
  after :attr:`~DashboardVoila.idle_shrink` seconds without a request it goes back to
  :attr:`~DashboardVoila.pool_size`. :attr:`~DashboardVoila.pool_sizes` sets a larger
  standing pool for one dashboard (a meeting where everyone opens it).
- **Views computed once.** Kernels share the views they compute through an on-disk
  cache (:mod:`cs_analysis.dashboard.cache`) in :attr:`~DashboardVoila.view_cache`: a
  new viewer's kernel draws what the preheated one computed instead of computing it
  again.
- **No kernel details over HTTP.** ``/api/kernels/<id>`` answers only the kernel's id and
  name (a page asks for its own before connecting) and refuses ``DELETE``; it used to
  show any viewer kernel's state, connections and last activity to whoever had its id.

Run as ``python -m cs_analysis.voila_app DIR --Voila.config_file_paths=...`` (what
:func:`cs_analysis.serve.serve` does); the configuration sections ``Voila``,
``VoilaConfiguration``, ``MappingKernelManager`` and ``DashboardVoila`` apply.
"""

from __future__ import annotations

import asyncio
import contextvars
import html
import json
import os
import time
from collections import deque
from pathlib import Path

import tornado.ioloop
import tornado.web
from jupyter_server.services.kernels.handlers import KernelHandler
from traitlets import Dict, Float, Int, Unicode, default
from voila.app import Voila
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler
from voila.tornado.treehandler import TornadoVoilaTreeHandler

from cs_analysis.i18n import resolve_language, translator

__all__ = ["DashboardVoila", "main"]

#: The dashboard request being served in this task: ``{"notebook", "released"}``. Its
#: count in ``DashboardVoila._pending`` is released as soon as it has a kernel (which the
#: caps then count), so a request is never counted twice.
_REQUEST: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "cs_analysis_request", default=None)

_PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}
<title>{title}</title><style>
body{{font-family:system-ui,-apple-system,"Segoe UI","Hiragino Sans","Noto Sans JP",sans-serif;
background:#f6f7f9;color:#1f2933;margin:0;display:flex;min-height:100vh;align-items:center;
justify-content:center}} main{{background:#fff;border:1px solid #d9dde3;border-radius:8px;
padding:28px 32px;max-width:520px}} h1{{font-size:20px;margin:0 0 8px}} p{{margin:6px 0;
line-height:1.45}} .bar{{height:8px;background:#e4e7eb;border-radius:4px;margin:14px 0 6px;
overflow:hidden}} .bar span{{display:block;height:100%;background:#3b6fd4}}
.muted{{color:#616e7c;font-size:13px}}</style></head><body><main role="status"
class="{cls}"><h1>{title}</h1>{body}</main></body></html>"""


def _page(title: str, body: str, *, cls: str, refresh: int | None = None,
          lang: str = "en") -> str:
    meta = f'\n<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return _PAGE.format(title=html.escape(title), body=body, cls=cls, refresh=meta,
                        lang=lang)


def _request_language(handler: tornado.web.RequestHandler) -> str:
    """The page's language: ``?lang=``, else the server's (``$CS_ANALYSIS_LANG``)."""
    return resolve_language(handler.get_query_argument("lang", None))


class DashboardVoila(Voila):
    """Voila with kernel caps, ordered preheating, readiness and a starting page."""

    max_kernels = Int(12, config=True,
                      help="Most viewer kernels at once (preheated pool kernels not counted).")
    max_kernels_per_dashboard = Int(6, config=True,
                                    help="Most viewer kernels of one dashboard at once.")
    connect_timeout = Float(60.0, config=True,
                            help="Seconds a viewer kernel may wait for its page to connect.")
    pool_size = Int(1, config=True, help="Preheated kernels per dashboard notebook.")
    landing = Unicode("index.ipynb", config=True, help="The landing page's notebook.")
    retry_after = Int(20, config=True, help="Seconds a busy page asks the viewer to wait.")
    pool_sizes = Dict(Int(), default_value={}, config=True,
                      help="Standing pool size of some notebooks (name -> kernels), "
                           "instead of pool_size.")
    max_pool_size = Int(config=True,
                        help="Most preheated kernels one dashboard's pool grows to on demand.")
    demand_window = Float(120.0, config=True,
                          help="Seconds of past requests that size a pool.")
    idle_shrink = Float(600.0, config=True,
                        help="Seconds without a request before a grown pool shrinks back.")
    refill_delay = Float(0.2, config=True,
                         help="Seconds before a kernel taken from a pool is replaced.")
    refill_quiet = Float(15.0, config=True,
                         help="Seconds without a new viewer of a dashboard before its pool "
                              "is refilled or grown (viewers arriving together come first).")
    view_cache = Unicode("", config=True,
                         help="Folder of the views kernels share ('' : <cache dir>/views, "
                              "'off': none); $CS_ANALYSIS_VIEW_CACHE wins.")

    @default("pool_sizes")
    def _pool_sizes_from_env(self) -> dict:
        """``$CS_ANALYSIS_POOL_SIZES``: ``retention=6,renewals=2`` (``.ipynb`` optional)."""
        out = {}
        for item in os.environ.get("CS_ANALYSIS_POOL_SIZES", "").split(","):
            name, _, size = item.partition("=")
            name = name.strip()
            if name and size.strip().isdigit():
                out[name if name.endswith(".ipynb") else f"{name}.ipynb"] = int(size)
        return out

    @default("max_pool_size")
    def _max_pool_size_from_env(self) -> int:
        value = os.environ.get("CS_ANALYSIS_MAX_POOL_SIZE", "4")
        return int(value) if value.strip().isdigit() else 4

    # -- state ---------------------------------------------------------------------
    def _notebooks(self) -> list[str]:
        km = self.kernel_manager
        root = Path(self.root_dir)
        names = [str(p.relative_to(root)) for p in sorted(root.rglob("*.ipynb"))
                 if getattr(km, "_notebook_filter", lambda _: True)(p)]
        names.sort(key=lambda n: (n != self.landing, n))
        return names

    def _target(self, notebook: str) -> int:
        """The standing pool size of ``notebook`` (what readiness waits for)."""
        if not self.voila_configuration.preheat_kernel:
            return 0
        if notebook in self.pool_sizes:
            return max(int(self.pool_sizes[notebook]), 0)
        return min(self.pool_size, 1) if notebook == self.landing else self.pool_size

    def demand(self, notebook: str, now: float | None = None) -> int:
        """Requests for ``notebook`` in the last :attr:`demand_window` seconds."""
        now = time.monotonic() if now is None else now
        seen = self._requests.get(notebook)
        while seen and now - seen[0] > self.demand_window:
            seen.popleft()
        return len(seen) if seen else 0

    def demand_target(self, notebook: str, now: float | None = None) -> int:
        """The pool size ``notebook`` should have now: its standing size, grown by demand.

        As many kernels as requests in the last :attr:`demand_window` seconds (the next
        viewers of a busy dashboard find one warm), at most :attr:`max_pool_size`;
        back to the standing size after :attr:`idle_shrink` seconds without a request.
        """
        now = time.monotonic() if now is None else now
        base = self._target(notebook)
        if base == 0 and not self.voila_configuration.preheat_kernel:
            return 0
        grown = self._grown.get(notebook, base)
        recent = self.demand(notebook, now)
        if recent:
            grown = max(grown, min(recent, max(self.max_pool_size, base)))
        last = self._last_request.get(notebook)
        if last is None or now - last > self.idle_shrink:
            grown = base
        return max(base, grown)

    def note_request(self, notebook: str) -> None:
        """Count a viewer's request for ``notebook`` (it sizes the pool)."""
        now = time.monotonic()
        self._requests.setdefault(notebook, deque()).append(now)
        self._last_request[notebook] = now

    def _filled(self, notebook: str) -> int:
        """Pool kernels of ``notebook`` that have started *and* run the notebook."""
        pool = getattr(self.kernel_manager, "_pools", {}).get(notebook, [])
        n = 0
        for task in pool:
            if task.done() and not task.cancelled() and task.exception() is None:
                n += _warmed(task.result())
        return n

    def pool_ready(self, notebook: str) -> bool:
        """Whether ``notebook`` can be served from its pool (or is not preheated)."""
        return notebook in self._ready_once or self._filled(notebook) >= self._target(notebook)

    def viewer_kernels(self, notebook: str | None = None) -> set[str]:
        """Kernels handed to viewers, of one notebook or all.

        A preheated kernel counts from the moment a request takes it from its pool;
        kernels warming up or waiting in a pool do not count. A kernel Voila started
        directly for a request (its pool was momentarily empty) counts for every
        notebook, since Voila does not record which notebook it runs.
        """
        km = self.kernel_manager
        live = set(km.list_kernel_ids())
        warmed = set()
        for data in getattr(km, "notebook_data", {}).values():
            warmed |= set(data.get("kernel_ids", ()))
        direct = live - warmed
        handed = {k for k, nb in self._handed_out.items()
                  if k in live and (notebook is None or nb == notebook)}
        return handed | direct

    def health(self) -> dict:
        """What ``/healthz`` answers."""
        pools = {nb: {"filled": self._filled(nb), "target": self._target(nb)}
                 for nb in self._notebooks()}
        landing_ready = self.pool_ready(self.landing) if self.landing in pools else True
        for nb, state in pools.items():
            state["demand"] = self._grown.get(nb, state["target"])
        return {"ready": bool(landing_ready),
                "complete": all(self.pool_ready(nb) for nb in pools),
                "pools": pools, "viewer_kernels": len(self.viewer_kernels()),
                "max_kernels": self.max_kernels}

    # -- start-up ----------------------------------------------------------------------
    def init_settings(self):
        """Voila's settings, and the state the caps and readiness keep."""
        self._ready_once: set[str] = set()
        self._seen: dict[str, float] = {}
        self._connected: set[str] = set()
        self._handed_out: dict[str, str] = {}
        #: requests past the cap check whose page is still being served, per notebook
        self._pending: dict[str, int] = {}
        self._requests: dict[str, deque] = {}
        self._last_request: dict[str, float] = {}
        #: pool size per notebook as last set by demand
        self._grown: dict[str, int] = {}
        self._use_view_cache()
        settings = super().init_settings()
        km = self.kernel_manager
        if hasattr(km, "fill_delay"):
            km.fill_delay = max(float(self.refill_delay), 0.0)
        if hasattr(km, "fill_if_needed"):
            fill = km.fill_if_needed

            def fill_if_needed(delay=None, notebook_name=None, **kwargs):
                # Voila refills a pool the moment a kernel is taken from it: ten viewers
                # arriving together started ten more kernels that competed for the cores
                # with theirs (first charts 39-53 s with ten kernels preheated). While
                # viewers of the notebook arrive, the refill is left to _follow_demand,
                # which refills once they have been quiet for refill_quiet seconds.
                if notebook_name and not self._quiet(notebook_name):
                    return None
                return fill(delay=delay, notebook_name=notebook_name, **kwargs)

            km.fill_if_needed = fill_if_needed
        if hasattr(km, "get_rendered_notebook"):
            original = km.get_rendered_notebook

            async def get_rendered_notebook(notebook_name, *args, **kwargs):
                out = await original(notebook_name, *args, **kwargs)
                self._handed_out[out[2]] = notebook_name  # (task, cache, kernel_id)
                self._release_request()
                return out

            km.get_rendered_notebook = get_rendered_notebook
        if hasattr(km, "start_kernel"):  # a kernel started for a request (pool empty)
            start = km.start_kernel

            async def start_kernel(*args, **kwargs):
                kid = await start(*args, **kwargs)
                self._release_request()
                return kid

            km.start_kernel = start_kernel
        return settings

    def _release_request(self) -> None:
        """The request served in this task has its kernel: stop counting it as pending."""
        req = _REQUEST.get()
        if req is not None and not req["released"]:
            req["released"] = True
            nb = req["notebook"]
            self._pending[nb] = max(self._pending.get(nb, 0) - 1, 0)

    def _quiet(self, notebook: str, now: float | None = None) -> bool:
        """Whether background kernel starts may run now.

        No viewer of ``notebook`` waiting for a kernel, none arrived in the last
        :attr:`refill_quiet` seconds, and no viewer's kernel (of any dashboard) busy,
        e.g. still running its notebook: a kernel start takes a core for seconds.
        """
        now = time.monotonic() if now is None else now
        last = self._last_request.get(notebook)
        if self._pending.get(notebook, 0) or (
                last is not None and now - last < self.refill_quiet):
            return False
        km = self.kernel_manager
        for kid in self.viewer_kernels():
            try:
                state = getattr(km.get_kernel(kid), "execution_state", "idle")
            except KeyError:
                continue
            if state not in ("idle", "dead"):
                return False
        return True

    def _use_view_cache(self) -> None:
        """Tell the kernels (through the environment they inherit) where views are shared."""
        from cs_analysis.dashboard.cache import ENV, OFF_VALUES

        given = os.environ.get(ENV)
        if given is not None:  # set by whoever started the server: say so, change nothing
            if given.strip().lower() in OFF_VALUES:
                self.log.info("cs_analysis: the shared view cache is off (%s)", ENV)
            else:
                self.log.info("cs_analysis: dashboards share computed views in %s", given)
            return
        folder = self.view_cache
        if not folder:
            from cs_analysis.serve import cache_dir

            folder = str(cache_dir() / "views")
        os.environ[ENV] = folder
        self.log.info("cs_analysis: dashboards share computed views in %s", folder)

    def _pools_config(self) -> dict:
        config = {"default": {"pool_size": self.pool_size},
                  self.landing: {"pool_size": self._target(self.landing)}}
        for nb, size in self.pool_sizes.items():
            config[nb] = {"pool_size": max(int(size), 0)}
        for nb, size in self._grown.items():
            config[nb] = {"pool_size": size}
        return config

    async def _follow_demand(self) -> None:
        """Grow the pools of dashboards viewers open, shrink those nobody opened lately."""
        km = self.kernel_manager
        if not self.voila_configuration.preheat_kernel or not hasattr(km, "_pools"):
            return
        now = time.monotonic()
        live = len(km.list_kernel_ids())
        starting = any(not t.done() or t.cancelled() or t.exception() is not None
                       or not _warmed(t.result()) for p in km._pools.values() for t in p)
        for nb in self._notebooks():
            if nb not in self._ready_once:  # still filled in order; readiness first
                continue
            want = self.demand_target(nb, now)
            pool = km._pools.get(nb, [])
            if want > len(pool) and (not self._quiet(nb, now) or starting):
                continue  # viewers still arriving, kernels starting: growing slows them
            extra = max(want - len(pool), 0)
            # grown pools stay within the total cap: the kernels alive (viewers and
            # pools) may exceed it by the standing pools only
            room = self.max_kernels + sum(self._target(n) for n in self._notebooks()) - live
            if extra > room:
                want = len(pool) + max(room, 0)
            if want == self._grown.get(nb, self._target(nb)) and len(pool) >= want:
                continue
            self._grown[nb] = max(want, self._target(nb))
            km.kernel_pools_config = self._pools_config()
            if len(pool) < want:
                if starting:
                    continue  # one kernel at a time: a start takes a core for seconds
                self.log.info("cs_analysis: %s pool %s to %d kernels (%d now)", nb,
                              "grows" if want > self._target(nb) else "refills", want,
                              len(pool))
                # one more kernel now, the next once it is warm (ten at once on two
                # cores delayed viewers' pages for a minute)
                km.kernel_pools_config = {**km.kernel_pools_config,
                                          nb: {"pool_size": len(pool) + 1}}
                try:
                    km.fill_if_needed(delay=0, notebook_name=nb)
                finally:
                    km.kernel_pools_config = self._pools_config()
                starting = True
                live += 1
            elif len(pool) > want:
                await self._shrink(nb, want)

    async def _shrink(self, notebook: str, size: int) -> None:
        """Shut down preheated kernels of ``notebook`` beyond ``size`` (ready ones only)."""
        km = self.kernel_manager
        pool = km._pools.get(notebook, [])
        extra = [t for t in pool if t.done() and not t.cancelled() and t.exception() is None]
        for task in extra[: max(len(pool) - size, 0)]:
            kid = task.result().get("kernel_id")
            self.log.info("cs_analysis: %s pool shrinks (no viewer for %.0f s): kernel %s",
                          notebook, self.idle_shrink, kid)
            try:
                await km.shutdown_kernel(kid)
            except Exception:  # noqa: BLE001 - already gone
                pass

    async def _fill_in_order(self) -> None:
        km = self.kernel_manager
        if not self.voila_configuration.preheat_kernel or not hasattr(km, "_pools"):
            return
        # the configuration gave the landing page its pool and the others none, so that
        # Voila started only the landing page's; now every notebook gets its pool, one
        # notebook at a time
        km.kernel_pools_config = self._pools_config()
        for nb in self._notebooks():
            if nb != self.landing and not km._pools.get(nb):
                km.fill_if_needed(delay=0, notebook_name=nb)
            for task in list(km._pools.get(nb, [])):
                try:  # the kernel has started, then it has run the notebook
                    content = await asyncio.shield(task)
                    deadline = time.monotonic() + 600
                    while not _warmed(content) and time.monotonic() < deadline:
                        await asyncio.sleep(0.2)
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - logged by Voila
                    pass
            self._ready_once.add(nb)
        self.log.info("cs_analysis: every dashboard's kernel pool is filled")

    async def _cull_unconnected(self) -> None:
        km = self.kernel_manager
        now = time.monotonic()
        viewers = self.viewer_kernels()
        for kid in list(self._seen):
            if kid not in viewers:
                self._seen.pop(kid, None)
                self._connected.discard(kid)
        live = set(km.list_kernel_ids())
        for kid in list(self._handed_out):
            if kid not in live:
                self._handed_out.pop(kid, None)
        for kid in viewers:
            self._seen.setdefault(kid, now)
            if km._kernel_connections.get(kid, 0) > 0:
                self._connected.add(kid)
            elif (kid not in self._connected and now - self._seen[kid] > self.connect_timeout
                  and getattr(km.get_kernel(kid), "execution_state", "idle") == "idle"):
                self.log.info("cs_analysis: shutting down kernel %s: its page never connected "
                              "within %.0f s", kid, self.connect_timeout)
                self._seen.pop(kid, None)
                try:
                    await km.shutdown_kernel(kid)
                except Exception:  # noqa: BLE001 - already gone
                    pass

    def listen(self):
        """Schedule the ordered pool filling and the cull of unconnected kernels, then serve."""
        loop = tornado.ioloop.IOLoop.current()
        loop.add_callback(self._fill_in_order)
        interval = max(1.0, min(10.0, self.connect_timeout / 4)) * 1000
        tornado.ioloop.PeriodicCallback(self._cull_unconnected, interval).start()
        tornado.ioloop.PeriodicCallback(self._follow_demand, 1000).start()
        super().listen()

    # -- handlers ----------------------------------------------------------------------
    def init_handlers(self):
        """Voila's handlers, with ``/healthz``, caps, the starting page, a reduced kernel API."""
        handlers = []
        for spec in super().init_handlers():
            pattern, cls = spec[0], spec[1]
            kwargs = spec[2] if len(spec) > 2 else {}
            if cls is KernelHandler:
                handlers.append((pattern, KernelModelHandler))
            elif cls is VoilaKernelWebsocketHandler:
                handlers.append((pattern, KernelChannelsHandler, *spec[2:]))
            elif cls is TornadoVoilaHandler:
                handlers.append((pattern, CappedVoilaHandler, {**kwargs, "app": self}))
            elif cls is TornadoVoilaTreeHandler:
                handlers.append((pattern, StartingTreeHandler, {**kwargs, "app": self}))
            else:
                handlers.append(spec)
        health = self.server_url.rstrip("/") + "/healthz"
        return [(health, HealthHandler, {"app": self}), *handlers]


def _warmed(content: dict) -> bool:
    """Whether a pool kernel has run its notebook, or waits for its request's details.

    A notebook that reads its URL calls ``voila.utils.wait_for_request()``, which blocks
    until a viewer takes the kernel: it is as warm as it will get once it waits.
    """
    from voila.request_info_handler import RequestInfoSocketHandler

    render = content.get("task")
    return (render is None or render.done()
            or content.get("kernel_id") in RequestInfoSocketHandler._waiters)


class HealthHandler(tornado.web.RequestHandler):
    """``GET /healthz``: readiness as JSON (no token needed; it reveals no data)."""

    def initialize(self, app: DashboardVoila):
        self.app = app

    def get(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(self.app.health()))


class KernelChannelsHandler(VoilaKernelWebsocketHandler):
    """Voila's kernel websocket, quiet when a page leaves during the handshake.

    A viewer who reloads or navigates while the page's websocket is being accepted
    closes it before Tornado asks for the subprotocol: jupyter_server has then dropped
    the connection object and logs an ``AttributeError`` traceback (and a second one
    rendering the 500 page) for a socket nobody is waiting for. Here that socket is
    simply closed; everything else is Voila's handler unchanged.
    """

    def select_subprotocol(self, subprotocols):
        if getattr(self, "connection", None) is None:  # the page has already gone
            return None
        return super().select_subprotocol(subprotocols)

    async def open(self, kernel_id):  # type: ignore[override]
        if getattr(self, "connection", None) is None:
            self.close()
            return
        await super().open(kernel_id)

    def on_close(self):
        if getattr(self, "connection", None) is not None:
            super().on_close()


class KernelModelHandler(KernelHandler):
    """``/api/kernels/<id>``: only the kernel's id and name, and no way to shut it down.

    A dashboard page asks for its own kernel's model before it connects, so the endpoint
    stays, but it no longer tells anyone else a viewer kernel's state, connections or
    last activity, and ``DELETE`` (shutting down someone else's kernel) is refused.
    With a token, Voila's authentication applies as before.
    """

    @tornado.web.authenticated
    async def get(self, kernel_id):
        """The kernel's id and name (404 for an unknown id)."""
        if kernel_id not in self.kernel_manager:
            raise tornado.web.HTTPError(404)
        model = self.kernel_manager.kernel_model(kernel_id)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"id": model["id"], "name": model["name"]}))

    async def delete(self, kernel_id):
        """Refused: pages shut their kernel down through Voila's own endpoint."""
        raise tornado.web.HTTPError(405)


def _starting_page(app: DashboardVoila, lang: str = "en") -> str:
    _ = translator(lang)
    state = app.health()
    pools = state["pools"]
    done = sum(1 for nb in pools if app.pool_ready(nb))
    pct = int(100 * done / max(len(pools), 1))
    ready = html.escape(_("The dashboards are starting: {done} of {total} ready.",
                          done=done, total=len(pools)))
    wait = html.escape(_("This page reloads by itself; the first start takes a minute "
                         "while each dashboard computes its numbers once."))
    body = (f"<p>{ready}</p>"
            f'<div class="bar"><span style="width:{pct}%"></span></div>'
            f'<p class="muted">{wait}</p>')
    return _page(_("Starting the dashboards…"), body, cls="cs-starting", refresh=2,
                 lang=lang)


def _busy_page(app: DashboardVoila, lang: str = "en") -> str:
    _ = translator(lang)
    many = html.escape(_("Many people are viewing the dashboards right now, and this one "
                         "has no free place for you yet."))
    retry = html.escape(_("Please retry in about {seconds} seconds; this page reloads by "
                          "itself.", seconds=app.retry_after))
    body = f"<p>{many}</p><p>{retry}</p>"
    return _page(_("The dashboards are busy"), body, cls="cs-busy", refresh=app.retry_after,
                 lang=lang)


class StartingTreeHandler(TornadoVoilaTreeHandler):
    """The folder page (``/``), or the starting page while the landing page warms up."""

    def initialize(self, app: DashboardVoila, **kwargs):
        super().initialize(**kwargs)
        self.cs_app = app

    @tornado.web.authenticated
    def get(self, path=""):
        if not self.cs_app.health()["ready"]:
            self.set_header("Cache-Control", "no-store")
            self.write(_starting_page(self.cs_app, _request_language(self)))
            return None
        return super().get(path)


class CappedVoilaHandler(TornadoVoilaHandler):
    """A dashboard page: the starting page while its pool fills, busy page over a cap."""

    def initialize(self, app: DashboardVoila, **kwargs):
        super().initialize(**kwargs)
        self.cs_app = app

    @tornado.web.authenticated
    async def get(self, path=None):
        app = self.cs_app
        notebook = self.notebook_path or path
        if notebook and not app.pool_ready(notebook):
            self.set_header("Cache-Control", "no-store")
            self.write(_starting_page(app, _request_language(self)))
            return
        # requests still being served count too: ten viewers arriving together all pass
        # a check that counts only the kernels that already exist (the check and the
        # count below run without an await in between, so they cannot interleave)
        pending = app._pending.get(notebook, 0)
        if (len(app.viewer_kernels()) + sum(app._pending.values()) >= app.max_kernels
                or len(app.viewer_kernels(notebook)) + pending
                >= app.max_kernels_per_dashboard):
            self.set_status(503)
            self.set_header("Retry-After", str(app.retry_after))
            self.set_header("Cache-Control", "no-store")
            self.write(_busy_page(app, _request_language(self)))
            return
        app._pending[notebook] = pending + 1
        app.note_request(notebook)
        token = _REQUEST.set({"notebook": notebook, "released": False})
        try:
            await super().get(path)
        finally:
            app._release_request()  # if it never got a kernel (an error)
            _REQUEST.reset(token)


def main():
    """Entry point: ``python -m cs_analysis.voila_app``."""
    DashboardVoila.launch_instance()


if __name__ == "__main__":
    main()
