"""Serve the dashboards (``dashboards/*.ipynb``) with standalone Voila.

``cs-analysis serve`` (``make serve``) calls :func:`serve`, which

- resolves the workspace every dashboard reads (``--workspace``, else ``$CS_WORKSPACE``,
  else the demo workspace ``data/demo.duckdb``, built if missing) and hands it to every
  kernel as the ``CS_WORKSPACE`` environment variable (an absolute path);
- locates ``dashboards/`` from the package's location (``$CS_ANALYSIS_DASHBOARDS``
  overrides it), never from the working directory;
- writes the whole Voila configuration to a private temporary ``voila.json`` (so no
  ``voila.json`` in the working directory can change it, and a token never appears on a
  command line) and runs ``python -m voila`` on the folder with it:

  * the ``cs`` template shipped in ``cs_analysis/jupyter/voila/templates/cs``: Voila's
    ``lab`` template without its Font Awesome CDN link, MathJax or mermaid loaders, so
    a page makes no request beyond the server (charts use Altair's offline renderer,
    set up by :func:`cs_analysis.charts.setup`);
  * preheated kernels (``preheat_kernel``, ``pool_size`` kernels per notebook) so a
    dashboard opens fast; the landing page ``index.ipynb`` gets one;
  * the jinja folder page, which sends ``/`` to the landing page;
  * ``port_retries = 0``: a busy port is an error, not a silent move to another port;
- prints the URL, forwards Ctrl-C / SIGTERM to Voila and returns its exit code.

Access control
--------------
Voila listens on ``127.0.0.1`` by default and needs no token there. To share beyond this
machine, bind another address *and* set a token (``--token`` or ``$CS_ANALYSIS_TOKEN``);
viewers then open ``http://HOST:PORT/?token=...`` once (a cookie keeps them signed in).
A token shorter than :data:`MIN_TOKEN_LENGTH` characters is refused for such an
address (the message suggests a random one). Binding a non-loopback address without a
token is refused unless
``allow_no_token=True`` (``--allow-no-token``), e.g. behind an authenticating proxy.
Standalone Voila never executes code sent from the browser (only widget messages pass),
and ``voila>=0.5.6`` is required (CVE-2024-30265).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from cs_analysis.dashboard import LANDING, dashboards_dir

__all__ = [
    "CHART_BUNDLE_ENV",
    "ServeError",
    "cache_dir",
    "prepare_chart_bundle",
    "resolve_workspace",
    "serve",
    "template_root",
    "voila_config",
]

#: Name of the Voila template shipped with the package.
TEMPLATE = "cs"


#: Shortest token accepted for a non-loopback address (a blank or one-letter token is no
#: protection).
MIN_TOKEN_LENGTH = 16


class ServeError(RuntimeError):
    """The dashboards cannot be served as asked (message says why and what to do)."""


def template_root() -> Path:
    """Folder to put on ``JUPYTER_PATH`` so Voila finds the ``cs`` template."""
    return Path(__file__).resolve().parent / "jupyter"


#: Environment variable telling dashboard kernels where Voila serves the chart bundle.
CHART_BUNDLE_ENV = "CS_ANALYSIS_CHART_BUNDLE"


def cache_dir() -> Path:
    """Where generated files live: ``$CS_ANALYSIS_CACHE``, else ``~/.cache/cs_analysis``."""
    env = os.environ.get("CS_ANALYSIS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cs_analysis"


def prepare_chart_bundle(root=None) -> tuple[Path, str]:
    """Write Altair's offline JupyterChart JavaScript once, for Voila to serve.

    Each offline ``JupyterChart`` normally carries its own copy of the ~0.9 MB bundle of
    Vega, Vega-Lite and vega-embed (built by vl-convert), which the browser parses once
    per chart; on two busy cores five charts can exceed anywidget's 2-second start-up
    limit. Served as one file from the ``cs`` template's static folder
    (``/voila/templates/cs/static/<name>``), the browser fetches and parses it once per
    page and each chart carries a few hundred bytes (see
    :func:`cs_analysis.dashboard.use_served_chart_bundle`).

    Parameters
    ----------
    root : str or Path, optional
        A Jupyter data root to write under (default ``cache_dir() / "jupyter"``); put it
        on ``JUPYTER_PATH`` so Voila finds ``voila/templates/cs/static``.

    Returns
    -------
    (Path, str)
        The root and the bundle's file name (versioned by Altair and vl-convert).
    """
    import altair as alt
    import vl_convert

    root = Path(root) if root is not None else cache_dir() / "jupyter"
    name = f"jupyterchart-{alt.__version__}-{vl_convert.__version__}.js"
    folder = root / "voila" / "templates" / TEMPLATE / "static"
    path = folder / name
    if not path.exists():
        alt.JupyterChart.enable_offline()
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".jupyterchart-", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(alt.JupyterChart._esm)
        os.replace(tmp, path)
    return root, name


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_workspace(workspace=None) -> str:
    """The workspace the dashboards read, as an absolute path or an Ibis URL.

    ``workspace`` (path or URL), else ``$CS_WORKSPACE``, else the demo workspace,
    which is built if missing (through :func:`~cs_analysis.demo.build_demo`).

    Raises
    ------
    ServeError
        When an explicit path does not exist.
    """
    from cs_analysis.workspace import default_workspace_path

    target = workspace or os.environ.get("CS_WORKSPACE") or None
    if target is None:
        path = default_workspace_path()
        if not path.exists():
            print(f"building the demo workspace at {path} (first run only)...", flush=True)
            from cs_analysis.demo import build_demo

            build_demo(path)
        return str(path.resolve())
    text = str(target)
    if "://" in text:
        return text
    path = Path(text).expanduser()
    if not path.exists():
        raise ServeError(
            f"no workspace at {path}: build one with `cs-analysis demo --out {path}` or "
            f"`cs-analysis load --config mapping.yml --out {path}`"
        )
    return str(path.resolve())


def voila_config(*, port: int = 8866, host: str = "127.0.0.1", token: str | None = None,
                 preheat: bool = True, pool_size: int = 1, open_browser: bool = False,
                 show_tracebacks: bool = False, fill_delay: float = 1.0,
                 cull_idle: float = 600.0, chart_bundle: str | None = None,
                 max_kernels: int = 12, max_kernels_per_dashboard: int = 6,
                 connect_timeout: float = 60.0) -> dict:
    """The Voila configuration :func:`serve` writes to ``voila.json`` (pure; tested).

    Parameters
    ----------
    port, host : int, str
        Where to listen.
    token : str, optional
        Require this token; None or '' means no token.
    preheat : bool
        Keep ``pool_size`` executed kernels ready per dashboard notebook (the landing page
        gets one); a viewer then gets a page that has already run.
    pool_size : int
        Preheated kernels per dashboard notebook.
    open_browser : bool
        Let Voila open a browser tab.
    show_tracebacks : bool
        Send tracebacks of failing cells to the browser (tests only; dashboards show
        friendly errors of their own).
    fill_delay : float
        Seconds before a used preheated kernel is replaced.
    cull_idle : float
        Shut down a viewer's kernel this many seconds after its page went away (closed
        tab, lost connection) and it went idle; 0 keeps kernels until the server stops.
        Voila does not shut kernels down when a page closes, so without this every visit
        would keep its kernel (hundreds of MB) for good. Kernels with a page still
        connected, and preheated ones, are never culled.
    chart_bundle : str, optional
        Path (under ``{base_url}voila/``) of the served chart JavaScript
        (:func:`prepare_chart_bundle`); the template then asks the browser to fetch and
        compile it while the page starts, before the first chart needs it.
    max_kernels, max_kernels_per_dashboard : int
        Most viewer kernels at once, in all and per dashboard (preheated ones not
        counted); a request over a cap gets a "busy, retry" page
        (:class:`cs_analysis.voila_app.DashboardVoila`).
    connect_timeout : float
        Shut down a viewer kernel whose page has not connected within this many seconds
        (a plain GET or a script starts a kernel no page will ever use).
    """
    config: dict = {
        "Voila": {
            "ip": host,
            "port": int(port),
            "port_retries": 0,
            "open_browser": bool(open_browser),
            "token": token or "",
        },
        "VoilaConfiguration": {
            "template": TEMPLATE,
            "classic_tree": True,
            "theme": "light",
            "strip_sources": True,
            "show_tracebacks": bool(show_tracebacks),
            "preheat_kernel": bool(preheat),
            "default_pool_size": max(int(pool_size), 0) if preheat else 0,
        },
    }
    config["DashboardVoila"] = {
        "max_kernels": max(int(max_kernels), 1),
        "max_kernels_per_dashboard": max(int(max_kernels_per_dashboard), 1),
        "connect_timeout": float(connect_timeout),
        "pool_size": max(int(pool_size), 0) if preheat else 0,
        "landing": LANDING,
    }
    if chart_bundle:
        config["VoilaConfiguration"]["resources"] = {"cs_chart_bundle": chart_bundle}
    if cull_idle and cull_idle > 0:
        config["MappingKernelManager"] = {
            "cull_idle_timeout": int(cull_idle),
            "cull_interval": max(5, min(60, int(cull_idle) // 4)),
            "cull_connected": False,
            "cull_busy": False,
        }
    if preheat:
        config["VoilaKernelManager"] = {
            "fill_delay": float(fill_delay),
            # only the landing page's pool starts with the server; DashboardVoila fills
            # the others (pool_size each) one at a time once it is ready
            "kernel_pools_config": {
                "default": {"pool_size": 0},
                LANDING: {"pool_size": min(max(int(pool_size), 0), 1)},
            },
        }
    return config


def serve(workspace=None, port: int = 8866, host: str = "127.0.0.1", token: str | None = None,
          preheat: bool = True, open_browser: bool = False, *, allow_no_token: bool = False,
          pool_size: int | None = None, dashboards=None, show_tracebacks: bool = False,
          redact: bool = False, lang: str | None = None) -> int:
    """Serve every notebook of ``dashboards/`` with Voila until interrupted.

    Parameters
    ----------
    workspace : str or Path, optional
        Workspace path or Ibis URL; default ``$CS_WORKSPACE``, else the demo workspace
        (built if missing). Passed to every kernel as ``CS_WORKSPACE``.
    port : int
        Port to listen on (busy port: error).
    host : str
        Address to bind; default ``127.0.0.1`` (this machine only).
    token : str, optional
        Require this token (default ``$CS_ANALYSIS_TOKEN``).
    preheat : bool
        Preheated kernels (see :func:`voila_config`).
    open_browser : bool
        Open a browser tab on the landing page.
    allow_no_token : bool
        Allow a non-loopback ``host`` without a token.
    pool_size : int, optional
        Preheated kernels per dashboard (default ``$CS_ANALYSIS_POOL_SIZE`` or 1).
    dashboards : str or Path, optional
        Folder to serve (default :func:`~cs_analysis.dashboard.dashboards_dir`).
    show_tracebacks : bool
        Show tracebacks of failing cells in the browser (for tests).
    redact : bool
        Redaction mode for sharing outside the CS team: every kernel gets
        ``CS_ANALYSIS_REDACT=1`` and every dashboard table, CSV and chart passes through
        :func:`cs_analysis.redact.redact_view` (people masked, accounts aliased).
    lang : {"en", "ja"}, optional
        Language of the dashboards' labels when a page's URL has no ``?lang=``; passed to
        every kernel as ``CS_ANALYSIS_LANG`` (default: ``$CS_ANALYSIS_LANG``, else each
        workspace's ``language`` setting, else English; see :mod:`cs_analysis.i18n`).

    Returns
    -------
    int
        Voila's exit code (0 after Ctrl-C), or 2 when refusing to start.
    """
    token = token or os.environ.get("CS_ANALYSIS_TOKEN") or None
    if not is_loopback(host) and not token and not allow_no_token:
        print(f"refusing to serve on {host} without a token: anyone who can reach this "
              "machine could open the dashboards. Pass --token SECRET (or set "
              "CS_ANALYSIS_TOKEN), or --allow-no-token if access is controlled elsewhere.",
              file=sys.stderr)
        return 2
    if not is_loopback(host) and token and len(token.strip()) < MIN_TOKEN_LENGTH:
        print(f"refusing to serve on {host} with a {len(token.strip())}-character token: a "
              f"shared token needs at least {MIN_TOKEN_LENGTH} characters. Use for example "
              f"--token {secrets.token_urlsafe(24)}", file=sys.stderr)
        return 2
    folder = Path(dashboards).expanduser().resolve() if dashboards else dashboards_dir()
    if not folder.is_dir() or not any(folder.glob("*.ipynb")):
        print(f"no dashboard notebooks in {folder}", file=sys.stderr)
        return 2
    try:
        target = resolve_workspace(workspace)
        lang_env = language_env(lang)
    except ServeError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if pool_size is None:
        pool_size = int(os.environ.get("CS_ANALYSIS_POOL_SIZE", "1"))
    cull_idle = float(os.environ.get("CS_ANALYSIS_CULL_IDLE", "600"))
    limits = {"max_kernels": int(os.environ.get("CS_ANALYSIS_MAX_KERNELS", "12")),
              "max_kernels_per_dashboard": int(os.environ.get(
                  "CS_ANALYSIS_MAX_KERNELS_PER_DASHBOARD", "6")),
              "connect_timeout": float(os.environ.get("CS_ANALYSIS_CONNECT_TIMEOUT", "60"))}

    bundle_root, bundle = prepare_chart_bundle()
    bundle_path = f"templates/{TEMPLATE}/static/{bundle}"
    config = voila_config(port=port, host=host, token=token, preheat=preheat,
                          pool_size=pool_size, open_browser=open_browser,
                          show_tracebacks=show_tracebacks, cull_idle=cull_idle,
                          chart_bundle=bundle_path, **limits)
    env = dict(os.environ)
    env["CS_WORKSPACE"] = target
    env["CS_ANALYSIS_DASHBOARDS"] = str(folder)
    env[CHART_BUNDLE_ENV] = bundle_path
    env["JUPYTER_PATH"] = os.pathsep.join(
        p for p in (str(template_root()), str(bundle_root), os.environ.get("JUPYTER_PATH", ""))
        if p)
    env.pop("CS_ANALYSIS_TOKEN", None)  # kernels have no use for it
    if redact:
        from cs_analysis.redact import REDACT_ENV

        env[REDACT_ENV] = "1"
    env.update(lang_env)

    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown_host and not shown_host.startswith("["):
        shown_host = f"[{shown_host}]"
    url = f"http://{shown_host}:{port}/"
    with tempfile.TemporaryDirectory(prefix="cs-serve-") as conf_dir:
        conf_path = Path(conf_dir) / "voila.json"
        fd = os.open(conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2)
        cmd = [sys.executable, "-m", "cs_analysis.voila_app", str(folder),
               f"--Voila.config_file_paths={conf_dir}"]
        print(f"serving the dashboards in {folder}\n  workspace: {target}\n"
              + ("  redacted: people masked, accounts under aliases\n" if redact else "")
              + f"  open {url}{'?token=<your token>' if token else ''}\n"
              f"  (a starting page shows progress until the dashboards are ready; "
              f"{url}healthz reports readiness)", flush=True)
        proc = subprocess.Popen(cmd, env=env)
        return _wait(proc)


def language_env(lang: str | None) -> dict[str, str]:
    """The environment that gives the kernels the server's language (``--lang``).

    Empty when ``lang`` is None (the environment's ``CS_ANALYSIS_LANG``, if any, stays).

    Raises
    ------
    ServeError
        For a language the dashboards have no labels in.
    """
    from cs_analysis.i18n import ENV, LANGUAGES, normalize

    if lang is None:
        return {}
    code = normalize(lang)
    if code is None:
        raise ServeError(f"unknown language {lang!r}: choose one of {', '.join(LANGUAGES)}")
    return {ENV: code}


def _wait(proc: subprocess.Popen) -> int:
    """Wait for Voila, forwarding SIGINT / SIGTERM so it shuts its kernels down."""

    def forward(signum, _frame):
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:  # pragma: no cover - the handler above forwards it
                continue
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if code in (0, -signal.SIGINT, -signal.SIGTERM) else code
