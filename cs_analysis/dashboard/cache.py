"""Views shared by every kernel of a dashboard server: an on-disk cache of computed views.

A dashboard's :meth:`~cs_analysis.dashboard.Dashboard.compute` is pure: the same
workspace, filter values, language and code give the same :class:`View`. Every viewer of
a served dashboard has its own kernel, and each used to recompute what the preheated
kernel had computed already (a third of a kernel's start on the retention dashboard).
With this cache the first kernel that computes a view stores it, and every other kernel
(the next viewer, the next filter change to the same values) draws it from disk.

What is stored, and how
-----------------------
- **Only safe formats.** An entry is JSON (KPI tiles with their shown text, panel titles
  and captions, each chart's Vega-Lite spec) followed by the table as Parquet; nothing is
  unpickled, so a file placed in the cache folder cannot run code. Charts are rebuilt from
  their specs (``alt.Chart.from_dict``), formatted table cells from the texts stored for
  the rows shown on screen.
- **Checked.** An entry starts with a SHA-256 of its contents and repeats its whole key;
  a truncated, corrupt or foreign file is ignored (the view is computed again and the
  entry rewritten), never an error.
- **Atomic.** Written to a temporary file in the same folder, then renamed over the
  entry: concurrent kernels writing the same view each leave a complete file.
- **Keyed** by the workspace's content version (:func:`workspace_version`: the DuckDB
  file's path, inode, size and modification time, the workspace's settings and scope),
  the dashboard class, its launch arguments (files named there by content), the filter
  values (language-independent: a dropdown's value, not its label), the language, the
  redaction mode, and the code version (:func:`code_version`: a hash of the package's
  files). A new ``cs-analysis load`` replaces the workspace file (new inode and time), so
  every entry of the previous version misses, and the folder of the previous version is
  deleted when the first entry of the new one is written.
- **Per workspace.** Entries live under ``<root>/<workspace id>/<version>/``, the id
  a hash of the workspace file's resolved path, and each entry names its workspace and
  version, checked on read: a view is never read across workspaces.
- **Bounded.** At most :func:`max_bytes` (``$CS_ANALYSIS_VIEW_CACHE_MB``, default 512 MB)
  in all; the least recently used entries go first.

Where
-----
``$CS_ANALYSIS_VIEW_CACHE`` names the root folder; unset, empty, ``0`` or ``off``: no
cache (the default, so tests and notebooks compute as before). ``cs-analysis serve``
(:class:`cs_analysis.voila_app.DashboardVoila`) sets it for its kernels to
``<cache dir>/views`` unless it is set. The root must belong to the current user and not
be writable by others, else the cache stays off (one line in the server log).
Workspaces that are not DuckDB files (a PostgreSQL URL, a Spark session) are not cached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import hashlib
import io
import json
import numbers
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["ENV", "SIZE_ENV", "ViewCache", "cache_root", "code_version", "max_bytes",
           "open_cache", "workspace_version"]

#: Environment variable naming the cache's root folder (unset: no cache).
ENV = "CS_ANALYSIS_VIEW_CACHE"
#: Environment variable: most megabytes the cache may hold (default 512).
SIZE_ENV = "CS_ANALYSIS_VIEW_CACHE_MB"
OFF_VALUES = {"", "0", "off", "false", "no", "none"}
_MAGIC = b"CSVIEW1\n"
_SUFFIX = ".view"
#: Temporary files older than this (seconds) are debris of a killed kernel.
_STALE_TMP = 600.0


class _Unshareable(Exception):
    """A view holds something the cache cannot store in a safe format."""


def cache_root() -> Path | None:
    """The root folder from ``$CS_ANALYSIS_VIEW_CACHE``, or None when the cache is off."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in OFF_VALUES:
        return None
    return Path(value).expanduser()


def max_bytes() -> int:
    """Most bytes the cache may hold (``$CS_ANALYSIS_VIEW_CACHE_MB``, default 512 MB)."""
    try:
        mb = float(os.environ.get(SIZE_ENV, "512"))
    except ValueError:
        mb = 512.0
    return int(max(mb, 1.0) * 1024 * 1024)


_CODE_VERSION: str | None = None


def code_version() -> str:
    """A hash of every file of the ``cs_analysis`` package, with pandas and Altair versions.

    Computed once per process (1.6 MB read). Any edit to the package, its default
    criteria or its translations changes it, so a view is never served by other code.
    """
    global _CODE_VERSION
    if _CODE_VERSION is None:
        import altair

        root = Path(__file__).resolve().parents[1]
        h = hashlib.sha256()
        h.update(f"{sys.version_info[:2]} pandas {pd.__version__} "
                 f"altair {altair.__version__}".encode())
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode() + b"\0")
                h.update(path.read_bytes())
        _CODE_VERSION = h.hexdigest()[:24]
    return _CODE_VERSION


def _workspace_file(ws) -> Path | None:
    source = getattr(ws, "source", None)
    if not source or "://" in str(source):
        return None
    path = Path(str(source))
    try:
        return path.resolve() if path.is_file() else None
    except OSError:
        return None


def workspace_version(ws) -> str | None:
    """The content version of a DuckDB-file workspace, or None (then nothing is cached).

    The file's resolved path, device, inode, size and modification time (a load writes a
    new file and renames it over the old one: a new inode and time), the stored
    ``content_version`` setting when a loader wrote one, the workspace's settings and its
    scope (:meth:`~cs_analysis.workspace.Workspace.where` filters). Cheap: one ``stat``.
    """
    path = _workspace_file(ws)
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    material = json.dumps(
        [str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
         getattr(ws, "config", {}), getattr(ws, "filters", {})],
        sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()[:24]


def _argument_token(value) -> Any:
    """A launch argument as key material: files by content, simple values as they are."""
    if value is None or isinstance(value, bool | int | float | str):
        if isinstance(value, str) and value and len(value) < 4096:
            path = Path(value).expanduser()
            with contextlib.suppress(OSError, ValueError):
                if path.is_file():
                    return ["file", str(path.resolve()),
                            hashlib.sha256(path.read_bytes()).hexdigest()]
        return value
    if isinstance(value, Path):
        return _argument_token(str(value))
    if isinstance(value, list | tuple):
        return [_argument_token(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _argument_token(v) for k, v in sorted(value.items(), key=str)}
    if isinstance(value, set | frozenset):
        return sorted((_argument_token(v) for v in value), key=str)
    if isinstance(value, pd.DataFrame):
        return ["frame", list(map(str, value.columns)),
                int(pd.util.hash_pandas_object(value, index=True).sum())]
    if isinstance(value, dt.date | dt.datetime | dt.timedelta | decimal.Decimal):
        return str(value)
    if isinstance(value, re.Pattern):
        return ["pattern", value.pattern, value.flags]
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # a loaded model or criteria object: keyed by every field's value
        return [kind, {f.name: _argument_token(getattr(value, f.name))
                       for f in dataclasses.fields(value)}]
    if hasattr(value, "model_dump") and callable(value.model_dump):  # pydantic
        return [kind, _argument_token(value.model_dump(mode="json"))]
    raise _Unshareable(f"launch argument of type {type(value).__name__}")


def _safe_dir(root: Path) -> bool:
    """Create ``root`` (mode 700) and check that it is ours and not writable by others."""
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = root.stat()
    except OSError as exc:
        _log(f"view cache off: cannot use {root} ({exc})")
        return False
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
        _log(f"view cache off: {root} belongs to someone else or others may write to it")
        return False
    return True


def _log(message: str) -> None:
    print(f"cs_analysis.dashboard: {message}", file=sys.__stderr__ or sys.stderr)


def open_cache(ws, dashboard: str, arguments: Mapping[str, Any] | None = None,
               root: Path | str | None = None) -> ViewCache | None:
    """The shared cache of ``dashboard``'s views on ``ws``, or None when there is none.

    None when the cache is off (:func:`cache_root`), the workspace is not a DuckDB file,
    a launch argument cannot be keyed, or the folder is not safe to use.

    Parameters
    ----------
    ws : Workspace
        The dashboard's workspace.
    dashboard : str
        The dashboard class (``module.QualName``).
    arguments : mapping, optional
        The dashboard's launch arguments (a criteria file path is keyed by its content).
    root : str or Path, optional
        Root folder (default ``$CS_ANALYSIS_VIEW_CACHE``).
    """
    from cs_analysis import redact

    root = Path(root) if root is not None else cache_root()
    if root is None or redact.enabled():  # redacted views are redacted again when drawn
        return None
    ws_file = _workspace_file(ws)
    version = workspace_version(ws)
    if ws_file is None or version is None:
        return None
    try:
        token = _argument_token(dict(arguments or {}))
    except _Unshareable:
        return None
    if not _safe_dir(root):
        return None
    ws_id = hashlib.sha256(str(ws_file).encode()).hexdigest()[:16]
    return ViewCache(root, ws_id, str(ws_file), version, dashboard, token)


@dataclasses.dataclass
class ViewCache:
    """The views of one dashboard (with its launch arguments) on one workspace version.

    Made by :func:`open_cache`; :meth:`get` and :meth:`put` take the rest of the key.
    """

    root: Path
    workspace_id: str
    workspace: str
    version: str
    dashboard: str
    arguments: Any
    hits: int = 0
    misses: int = 0

    @property
    def folder(self) -> Path:
        """Where this workspace version's entries live."""
        return self.root / self.workspace_id / self.version

    def key(self, params: Mapping[str, Any], lang: str, extra: Any = None) -> str:
        """The full key (JSON text) of a view: everything the view depends on."""
        from cs_analysis import redact

        return json.dumps(
            {"code": code_version(), "workspace": self.workspace, "version": self.version,
             "dashboard": self.dashboard, "arguments": self.arguments,
             "params": {str(k): params[k] for k in sorted(params, key=str)},
             "lang": lang, "redact": bool(redact.enabled()), "extra": extra},
            sort_keys=True, default=str)

    def path(self, key: str) -> Path:
        """The entry file of ``key``."""
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:40] + _SUFFIX)

    # -- reading ---------------------------------------------------------------------
    def get(self, key: str):
        """The stored view of ``key``, or None (absent, corrupt, another key): never raises."""
        from cs_analysis.dashboard.base import View

        path = self.path(key)
        try:
            data = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        try:
            meta, table = _decode(data)
            if meta.get("key") != key:
                raise ValueError("another key")
            view = _view_from(meta["view"], table, View)
        except Exception as exc:  # noqa: BLE001 - a bad entry is a miss, never an error
            _log(f"view cache: ignored {path.name} ({type(exc).__name__}: "
                 f"{' '.join(str(exc).split())[:120]})")
            self.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently used goes first
        self.hits += 1
        return view

    # -- writing ---------------------------------------------------------------------
    def put(self, key: str, view, shown_rows: int = 200) -> bool:
        """Store ``view`` (complete, resolved) under ``key``; False when it cannot be stored.

        ``shown_rows``: rows of the table shown on screen (their formatted cells are kept).
        Never raises: a full disk or a view holding something unstorable is a no-op.
        """
        try:
            meta, table = _view_to(view, shown_rows)
            payload = _encode({"key": key, "written": time.time(), "view": meta}, table)
        except Exception as exc:  # noqa: BLE001 - unstorable view: compute next time
            _log(f"view cache: not stored ({type(exc).__name__}: "
                 f"{' '.join(str(exc).split())[:120]})")
            return False
        folder = self.folder
        try:
            fresh = not folder.exists()
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if fresh:
                self._drop_other_versions()
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=folder)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(payload)
                os.replace(tmp, self.path(key))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            _log(f"view cache: not stored ({exc})")
            return False
        self._bound()
        return True

    def _drop_other_versions(self) -> None:
        """Delete the entries of the workspace's previous versions (a load happened)."""
        import shutil

        parent = self.root / self.workspace_id
        for other in parent.iterdir():
            if other.name != self.version and other.is_dir():
                shutil.rmtree(other, ignore_errors=True)

    def _bound(self) -> None:
        """Delete least recently used entries (and stale temporary files) over the limit."""
        entries = []
        now = time.time()
        for path in self.root.glob("*/*/*" + _SUFFIX):
            try:
                st = path.stat()
            except OSError:
                continue
            if path.name.startswith(".tmp-"):
                if now - st.st_mtime > _STALE_TMP:
                    with contextlib.suppress(OSError):
                        path.unlink()
                continue
            entries.append((st.st_mtime, st.st_size, path))
        total, limit = sum(e[1] for e in entries), max_bytes()
        for _mtime, size, path in sorted(entries, key=lambda e: e[0]):
            if total <= limit:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size


# -- the entry format -----------------------------------------------------------------------
def _encode(meta: dict, table: pd.DataFrame | None) -> bytes:
    text = json.dumps(meta, allow_nan=True, separators=(",", ":")).encode("utf-8")
    parquet = b""
    if table is not None:
        buf = io.BytesIO()
        table.to_parquet(buf, engine="pyarrow", index=True)
        parquet = buf.getvalue()
    body = len(text).to_bytes(8, "big") + text + parquet
    return _MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def _decode(data: bytes) -> tuple[dict, pd.DataFrame | None]:
    if not data.startswith(_MAGIC):
        raise ValueError("not a view cache entry")
    head = len(_MAGIC)
    digest, body = data[head:head + 64], data[head + 65:]
    if len(digest) != 64 or hashlib.sha256(body).hexdigest().encode() != digest:
        raise ValueError("checksum mismatch (truncated or corrupt)")
    n = int.from_bytes(body[:8], "big")
    meta = json.loads(body[8:8 + n].decode("utf-8"))
    rest = body[8 + n:]
    table = pd.read_parquet(io.BytesIO(rest), engine="pyarrow") if rest else None
    return meta, table


class _Text:
    """A KPI's formatter replaced by the text it produced (the tile shows the same)."""

    def __init__(self, text: str):
        self.text = text

    def __call__(self, _value) -> str:
        return self.text


class _Lookup:
    """A table column's formatter replaced by the texts it produced for the shown rows."""

    def __init__(self, texts: Mapping[str, str]):
        self.texts = dict(texts)

    def __call__(self, value) -> str:
        return self.texts.get(_cell_key(value), str(value))


def _cell_key(value) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return repr(float(value))
    return str(value)


def _number(value):
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    raise _Unshareable(f"a value of type {type(value).__name__}")


def _text(value) -> str:
    if not isinstance(value, str):
        raise _Unshareable(f"text of type {type(value).__name__}")
    return value


def _view_to(view, shown_rows: int) -> tuple[dict, pd.DataFrame | None]:
    from cs_analysis.formatting import is_missing

    if callable(view.table) or any(p.build is not None or p.pending for p in view.panels):
        raise _Unshareable("an unresolved view")
    if any(k.pending for k in view.kpis):
        raise _Unshareable("a partial view")
    kpis = [{"label": _text(k.label), "value": _number(k.value), "text": _text(k.text),
             "detail": _text(k.detail), "n": _number(k.n), "n_label": _text(k.n_label),
             "warning": _text(k.warning)} for k in view.kpis]
    panels = []
    for p in view.panels:
        panels.append({"key": _text(p.key), "title": _text(p.title),
                       "caption": _text(p.caption), "wide": bool(p.wide),
                       "empty": _text(p.empty), "renderer": _text(p.renderer),
                       "chart": None if p.chart is None else p.chart.to_dict()})
    table = view.table
    formats = {}
    if table is not None:
        if not isinstance(table, pd.DataFrame):
            raise _Unshareable(f"a table of type {type(table).__name__}")
        shown = table.head(shown_rows)
        for col, fmt in view.table_formats.items():
            if col in shown.columns:
                formats[str(col)] = {_cell_key(v): _text(fmt(v)) for v in shown[col]
                                     if not is_missing(v)}
        if not all(isinstance(c, str) for c in table.columns):
            raise _Unshareable("a table with non-text column names")
    units = {}  # Parquet has no second-resolution times: restore the frame's own unit
    if table is not None:
        units = {c: str(t) for c, t in table.dtypes.items()
                 if str(t).startswith(("datetime64", "timedelta64"))}
    meta = {"kpis": kpis, "panels": panels, "has_table": table is not None,
            "table_units": units,
            "table_title": _text(view.table_title), "table_formats": formats,
            "table_columns": None if view.table_columns is None else
            [_text(c) for c in view.table_columns],
            "table_labels": {str(k): _text(v) for k, v in view.table_labels.items()},
            "scope": _text(view.scope), "notes": [_text(n) for n in view.notes],
            "csv_name": _text(view.csv_name)}
    return meta, table


_SPEC_CHART = None


def chart_from_dict(spec: dict, wide: bool = False):
    """A chart drawing the Vega-Lite ``spec`` as stored (its ``to_dict`` is the spec).

    Rebuilding Altair's object tree (``alt.Chart.from_dict``) validates every node against
    the schema: about a second per chart, more than computing it. The stored spec was
    valid when written, so it is handed to the chart widget as it is. A ``"container"``
    width becomes the panel's pixel width (see ``base._fixed_width``).
    """
    global _SPEC_CHART
    if _SPEC_CHART is None:
        import copy

        import altair as alt

        class SpecChart(alt.Chart):
            """A chart whose spec is a stored Vega-Lite dict (nothing to validate again)."""

            def __init__(self, spec: dict):
                object.__setattr__(self, "_spec", spec)
                super().__init__(width=spec.get("width", alt.Undefined),
                                 height=spec.get("height", alt.Undefined))

            def to_dict(self, *args, **kwargs) -> dict:
                return dict(self._spec)  # the widget only serialises it

            def __eq__(self, other) -> bool:  # Altair compares arguments, not the spec
                return self is other

            __hash__ = object.__hash__

            def copy(self, deep=True, ignore=None):
                return type(self)(copy.deepcopy(self._spec) if deep else self._spec)

        _SPEC_CHART = SpecChart
    if spec.get("width") == "container":
        from cs_analysis.dashboard.base import PANEL_WIDTH, WIDE_PANEL_WIDTH

        spec = {**spec, "width": WIDE_PANEL_WIDTH if wide else PANEL_WIDTH}
    return _SPEC_CHART(spec)


def _view_from(meta: dict, table: pd.DataFrame | None, view_cls):
    from cs_analysis.dashboard.base import KPI, Panel

    kpis = [KPI(label=k["label"], value=k["value"], format=_Text(k["text"]),
                detail=k["detail"], n=k["n"], n_label=k["n_label"], warning=k["warning"])
            for k in meta["kpis"]]
    panels = [Panel(key=p["key"], title=p["title"], caption=p["caption"], wide=p["wide"],
                    empty=p["empty"], renderer=p["renderer"],
                    chart=None if p["chart"] is None else chart_from_dict(p["chart"], p["wide"]))
              for p in meta["panels"]]
    if meta["has_table"] and table is None:
        raise ValueError("the table is missing")
    for col, dtype in meta.get("table_units", {}).items():
        if table is not None and col in table.columns and str(table[col].dtype) != dtype:
            table[col] = table[col].astype(dtype)
    return view_cls(
        kpis=kpis, panels=panels, table=table if meta["has_table"] else None,
        table_title=meta["table_title"],
        table_formats={c: _Lookup(t) for c, t in meta["table_formats"].items()},
        table_columns=meta["table_columns"], table_labels=meta["table_labels"],
        scope=meta["scope"], notes=list(meta["notes"]), csv_name=meta["csv_name"])
