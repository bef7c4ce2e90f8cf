"""The dashboard framework: building blocks shared by the dashboards Voila serves.

Stakeholders open dashboards, not notebooks. A dashboard is two things:

1. a :class:`Dashboard` subclass, in its own module of :mod:`cs_analysis.dashboard`
   (e.g. :mod:`cs_analysis.dashboard.retention`), which declares its
   filters (:meth:`Dashboard.make_filters`) and turns the filter values into a
   :class:`View` (:meth:`Dashboard.compute`): KPI tiles, chart panels and one table. The
   base class draws them with one shared look (header, filter bar, KPI tiles, chart area,
   table with CSV download, friendly errors) and redraws when a filter changes. All logic
   lives here, so pytest drives a dashboard by setting widget values and reading
   :attr:`Dashboard.kpis` and :attr:`Dashboard.table`, with no browser;
2. a thin notebook in ``dashboards/`` that Voila serves::

       # Retention and revenue               <- first markdown cell: the header and the
       **Question:** Do customers stay ...?    landing-page line come from here, and
       **For:** VP of CS, CS managers          only from here (see read_info)

       WORKSPACE = os.environ.get("CS_WORKSPACE", "")      # cell tagged `parameters`

       from cs_analysis.dashboard import RetentionDashboard
       RetentionDashboard.launch(WORKSPACE)

:meth:`Dashboard.launch` opens the workspace and returns the app, or a friendly error
panel (``.cs-error``) instead of a traceback when the workspace cannot be opened or lacks
a table. ``dashboards/index.ipynb`` is the landing page: :func:`landing` lists every
other notebook of the folder (:func:`discover`) with the question it answers.

Stable CSS classes for tests and styling: ``cs-app``, ``cs-header``, ``cs-filters``,
``cs-filter`` (plus ``cs-filter-<name>``), ``cs-kpis``, ``cs-kpi``, ``cs-chart``,
``cs-table``, ``cs-download`` (or ``cs-download-prepare``), ``cs-error``, ``cs-note``,
``cs-landing``, ``cs-card``.

Adding a dashboard
------------------
Add a module to :mod:`cs_analysis.dashboard` (re-export the class from its
``__init__``), subclass :class:`Dashboard` there, set ``notebook = "<name>.ipynb"``, implement
``make_filters`` (start from :func:`account_filters`) and ``compute`` (start from
:meth:`Dashboard.scoped`), and add the thin notebook. The landing page, the notebook test
and the browser test pick the notebook up by themselves. Treat filter values as
untrusted input (standalone Voila runs widget callbacks, not arbitrary code): build
widgets with fixed options, and escape any data shown as HTML (:func:`esc`).
"""

from __future__ import annotations

import base64
import contextvars
import dataclasses
import datetime as dt
import html
import json
import os
import re
import sys
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import ipywidgets as widgets
import pandas as pd

from cs_analysis import redact
from cs_analysis.formatting import esc, fmt_int, fmt_money, fmt_pct, is_missing, to_csv
from cs_analysis.i18n import LANGUAGE_NAMES, LANGUAGES, N_, resolve_language, translator

#: Label of the "no filter" choice of a dropdown filter.
ALL = N_("All")
#: Name of the landing notebook in ``dashboards/``; :func:`discover` skips it.
LANDING = "index.ipynb"

__all__ = [
    "ALL",
    "KPI",
    "LANDING",
    "Dashboard",
    "DashboardInfo",
    "DashboardSpecError",
    "ErrorPanel",
    "Panel",
    "View",
    "account_filters",
    "choice_filter",
    "csv_data_uri",
    "dashboards_dir",
    "date_text",
    "discover",
    "esc",
    "fit_chart",
    "friendly_error",
    "landing",
    "landing_html",
    "month_label",
    "month_range",
    "fmt_int",
    "fmt_money",
    "fmt_pct",
    "follow_request",
    "range_filter",
    "relabel_chart",
    "read_info",
    "table_html",
    "toggle_filter",
    "use_served_chart_bundle",
]


# -- where the dashboards live and what each one answers ---------------------------------
class DashboardSpecError(ValueError):
    """A dashboard notebook does not open with the expected header cell."""


@dataclass(frozen=True)
class DashboardInfo:
    """What a dashboard notebook says about itself in its first markdown cell.

    Attributes
    ----------
    name : str
        Notebook file stem (``retention`` for ``retention.ipynb``).
    path : Path
        The notebook file.
    title : str
        The cell's ``# heading``.
    question : str
        The question the dashboard answers (``**Question:** ...`` line).
    audience : str
        Who it is for (``**For:** ...`` line).
    """

    name: str
    path: Path
    title: str
    question: str
    audience: str

    @property
    def href(self) -> str:
        """Link to the rendered dashboard, relative to another rendered dashboard."""
        return f"{self.name}.ipynb"


def dashboards_dir() -> Path:
    """The folder Voila serves: ``$CS_ANALYSIS_DASHBOARDS`` or the repo's ``dashboards/``.

    Found from the package's location (the repository root beside ``cs_analysis/``),
    never from the working directory.
    """
    env = os.environ.get("CS_ANALYSIS_DASHBOARDS")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "dashboards"


_FIELD = re.compile(r"^\s*\*\*(question|for)\s*:?\s*\*\*\s*:?\s*(.+?)\s*$", re.I)


def read_info(path) -> DashboardInfo:
    """Read a dashboard notebook's header cell.

    The notebook must open with a markdown cell holding a ``# Title`` line, a
    ``**Question:** ...`` line and a ``**For:** ...`` line (other text may follow). This
    cell is the one place the header and the landing-page line come from.

    Parameters
    ----------
    path : str or Path
        A ``.ipynb`` file.

    Raises
    ------
    DashboardSpecError
        Naming the file and what is missing.
    """
    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DashboardSpecError(f"{path}: cannot read the notebook ({exc})") from exc
    cells = nb.get("cells") or []
    if not cells or cells[0].get("cell_type") != "markdown":
        raise DashboardSpecError(
            f"{path}: the first cell must be a markdown cell with '# Title', "
            "'**Question:** ...' and '**For:** ...' lines"
        )
    source = cells[0].get("source", "")
    text = "".join(source) if isinstance(source, list) else source
    title = question = audience = None
    for line in text.splitlines():
        if title is None and line.startswith("# "):
            title = line[2:].strip()
            continue
        m = _FIELD.match(line)
        if m:
            key, value = m.group(1).lower(), m.group(2).strip()
            if key == "question" and question is None:
                question = value
            elif key == "for" and audience is None:
                audience = value
    missing = [label for label, value in (("'# Title'", title), ("'**Question:** ...'", question),
                                          ("'**For:** ...'", audience)) if not value]
    if missing:
        raise DashboardSpecError(
            f"{path}: the first markdown cell lacks {', '.join(missing)} "
            f"(found: {text[:120]!r})"
        )
    return DashboardInfo(name=path.stem, path=path, title=title, question=question,
                         audience=audience)


def discover(folder=None) -> list[DashboardInfo]:
    """Every dashboard notebook of ``folder`` (default :func:`dashboards_dir`), by name.

    The landing notebook (:data:`LANDING`) and checkpoint folders are skipped. A notebook
    whose header cell is malformed raises :class:`DashboardSpecError`.
    """
    folder = Path(folder) if folder is not None else dashboards_dir()
    paths = sorted(p for p in folder.glob("*.ipynb") if p.name != LANDING)
    return [read_info(p) for p in paths]


def csv_data_uri(frame: pd.DataFrame) -> str:
    """The frame as a CSV ``data:`` URI for an ``<a download>`` link.

    UTF-8 with a byte-order mark, so Excel (Japanese Windows included) reads Japanese
    text correctly. Works in standalone Voila, which refuses to execute code sent from the
    browser: the file is built in the kernel and carried by the link itself. Text cells
    are formula-safe (:func:`cs_analysis.formatting.to_csv`).
    """
    payload = to_csv(frame)
    encoded = base64.b64encode(payload.encode("utf-8")).decode("ascii")
    return f"data:text/csv;charset=utf-8;base64,{encoded}"


# -- what a dashboard shows ---------------------------------------------------------------
@dataclass(frozen=True)
class KPI:
    """One KPI tile: a value, its label, an interval or subtitle, and its sample size.

    Attributes
    ----------
    label : str
        What the number is ("Logo retention at 12 months").
    value : float or None
        The number; None or NaN shows as ``–`` (not computable in this scope).
    format : callable
        Turns ``value`` into text (default: a percentage).
    detail : str
        Interval or subtitle ("95% CI 71%–78%").
    n : int, optional
        Sample size behind the number.
    n_label : str
        What ``n`` counts ("accounts").
    warning : str
        Shown on the tile when the number should not be trusted (small sample).
    pending : bool
        Still being computed (a first, partial view of :meth:`Dashboard.stages`).
    """

    label: str
    value: float | None
    format: Callable[[Any], str] = fmt_pct
    detail: str = ""
    n: int | None = None
    n_label: str = N_("accounts")
    warning: str = ""
    pending: bool = False

    @property
    def text(self) -> str:
        """The value as shown on the tile (``…`` while pending, ``–`` when missing)."""
        if self.pending:
            return "…"
        return "–" if is_missing(self.value) else self.format(self.value)

    def html(self, t: Callable[..., str] | None = None) -> str:
        """The tile's HTML (``div.cs-kpi``), every text escaped.

        ``t`` translates :attr:`n_label` (an English message id such as "accounts").
        """
        t = t or translator()
        _ = t
        n = ""
        if self.n is not None:
            n_text = _("n = {n} {unit}", n=fmt_int(self.n), unit=_(self.n_label))
            n = f'<div class="cs-kpi-n">{esc(n_text)}</div>'
        warn = (f'<div class="cs-kpi-warning">{esc(self.warning)}</div>'
                if self.warning else "")
        cls = "cs-kpi cs-pending" if self.pending else "cs-kpi"
        return (
            f'<div class="{cls}" data-label="{esc(self.label)}">'
            f'<div class="cs-kpi-label">{esc(self.label)}</div>'
            f'<div class="cs-kpi-value">{esc(self.text)}</div>'
            f'<div class="cs-kpi-detail">{esc(self.detail)}</div>{n}{warn}</div>'
        )


@dataclass(frozen=True)
class Panel:
    """One chart in the chart area.

    Attributes
    ----------
    key : str
        Stable identifier; the chart widget of a key is reused across refreshes.
    title : str
        Heading above the chart.
    chart : altair chart or None
        From :mod:`cs_analysis.charts`; None shows ``empty`` text instead.
    caption : str
        One line under the chart: how to read it.
    wide : bool
        Span the full width of the chart area.
    empty : str
        Text shown when there is nothing to chart in this scope.
    pending : bool
        Still being computed: the panel keeps its previous chart, dimmed and marked
        "updating", until the next stage of :meth:`Dashboard.stages` replaces it.
    renderer : {"svg", "canvas"}
        How the browser draws the chart; canvas is faster for thousands of marks (a
        monthly cohort triangle), SVG crisper for the rest.
    build : callable, optional
        Builds ``chart`` when the view is drawn (``chart`` stays None until then; the
        callable may return None for an empty panel, or a whole :class:`Panel` when the
        caption depends on the slow part too). Building Altair charts (and tests behind a
        caption) takes a noticeable share of a filter change, so :meth:`Dashboard.stages`
        draws the first such panel (with the KPI tiles) before building the others.
    """

    key: str
    title: str
    chart: Any = None
    caption: str = ""
    wide: bool = False
    empty: str = N_("Nothing to show for this selection.")
    pending: bool = False
    renderer: str = "svg"
    build: Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    def built(self) -> Panel:
        """The panel with its chart built (itself when there is nothing to build)."""
        if self.build is None:
            return self
        out = self.build()
        if isinstance(out, Panel):
            return dataclasses.replace(out, build=None, pending=False)
        return dataclasses.replace(self, chart=out, build=None)


@dataclass
class View:
    """Everything a dashboard shows for one set of filter values.

    Attributes
    ----------
    kpis : list of KPI
    panels : list of Panel
    table : DataFrame, None or callable
        Shown (first rows) and downloadable as CSV (all rows). None in a partial stage:
        the table on screen stays, dimmed, until the complete view arrives. A callable
        returning the frame is called after the first stage is drawn
        (:meth:`Dashboard.stages`).
    table_title : str
    table_formats : dict
        Column → formatter for the on-screen table (the CSV keeps raw values).
    table_columns : list of str, optional
        Columns shown on screen (default all); the CSV always has every column.
    table_labels : dict
        Column → header shown on screen (the CSV keeps the column names).
    scope : str
        One line saying what is in scope ("1,234 accounts · cohorts 2023-01 – 2026-10").
    notes : list of str
        Caveats shown above the KPIs (e.g. small samples).
    csv_name : str
        File name of the download.
    """

    kpis: list[KPI] = field(default_factory=list)
    panels: list[Panel] = field(default_factory=list)
    table: pd.DataFrame | Callable[[], pd.DataFrame] | None = field(
        default_factory=pd.DataFrame)
    table_title: str = N_("Data")
    table_formats: dict[str, Callable[[Any], str]] = field(default_factory=dict)
    table_columns: list[str] | None = None
    table_labels: dict[str, str] = field(default_factory=dict)
    scope: str = ""
    notes: list[str] = field(default_factory=list)
    csv_name: str = "data.csv"

    def resolved(self) -> View:
        """The view with its lazy parts made: panels not ``pending`` built, the table called."""
        if not callable(self.table) and all(p.build is None or p.pending for p in self.panels):
            return self
        return dataclasses.replace(
            self, table=self.table() if callable(self.table) else self.table,
            panels=[p if p.pending else p.built() for p in self.panels])


def friendly_error(exc: BaseException, t: Callable[..., str] | None = None) -> tuple[str, str]:
    """A (message, hint) pair a stakeholder can act on, for any exception.

    The package's own errors (:class:`~cs_analysis.errors.CSAnalysisError`: a workspace
    without a table, a criteria file with a mistake on line 12, a group too small to
    compare) are written for people and shown as they are; anything else is reported by
    type only, with its details in the server log. ``t`` translates the hints and the
    framework's own messages (:func:`cs_analysis.i18n.translator`; default English).
    """
    _ = t or translator()
    from cs_analysis.errors import CSAnalysisError
    from cs_analysis.workspace import WorkspaceError

    if isinstance(exc, WorkspaceError):
        return (str(exc), _("Ask your CS analyst to load the missing data with "
                            "`cs-analysis load`, or open another workspace."))
    if isinstance(exc, CSAnalysisError):
        return (str(exc), _("Change the filters, or ask your CS analyst to fix the file or "
                            "setting named above."))
    if isinstance(exc, FileNotFoundError):
        return (_("A file this dashboard needs is missing: {name}",
                  name=exc.filename or exc),
                _("Ask your CS analyst to check the workspace path."))
    return (_("Something went wrong while computing this view ({kind}).",
              kind=type(exc).__name__),
            _("The details are in the dashboard server's log."))


def _log_exception(exc: BaseException) -> None:
    """Log an error to the server log: one line for an explained error, else a traceback.

    The kernel's real stderr ends up in the Voila server's log (``sys.stderr`` would go
    to the browser as cell output).
    """
    from cs_analysis.errors import CSAnalysisError

    stream = sys.__stderr__ or sys.stderr
    if isinstance(exc, CSAnalysisError):
        one_line = " ".join(str(exc).split())
        print(f"cs_analysis.dashboard: {type(exc).__name__}: {one_line}", file=stream)
        return
    print("cs_analysis.dashboard: error while computing a view", file=stream)
    traceback.print_exception(exc, file=stream)


def _error_html(message: str, hint: str = "", title: str = N_("This view cannot be shown"),
                t: Callable[..., str] | None = None) -> str:
    title = (t or translator())(title)
    hint_html = f'<div class="cs-error-hint">{esc(hint)}</div>' if hint else ""
    return (f'<div class="cs-error" role="alert"><div class="cs-error-title">{esc(title)}'
            f'</div><div class="cs-error-message">{esc(message)}</div>{hint_html}</div>')


# -- the shared look --------------------------------------------------------------------
_CSS = """
<style>
.cs-app, .cs-landing { font-family: system-ui, -apple-system, "Segoe UI", "Hiragino Sans",
  "Noto Sans JP", sans-serif; color: #1f2933; --cs-accent: #2f5d8a; }
.cs-app { gap: 14px; padding: 4px 0 24px; }
.cs-header { padding: 18px 22px; background: #fff; border-radius: 10px;
  box-shadow: 0 1px 3px rgba(15, 23, 42, .08); border-left: 5px solid var(--cs-accent); }
.cs-title { font-size: 24px; font-weight: 650; margin: 0 0 4px; line-height: 1.25; }
.cs-question { font-size: 16px; color: #334e68; margin: 0 0 6px; }
.cs-meta { font-size: 12.5px; color: #627d98; margin: 0; }
.cs-filters { background: #fff; border-radius: 10px; padding: 10px 14px;
  box-shadow: 0 1px 3px rgba(15, 23, 42, .08); flex-wrap: wrap; gap: 6px 18px;
  align-items: center; }
.cs-filters .widget-label { color: #486581; font-size: 12.5px; }
.cs-scope { font-size: 12.5px; color: #627d98; padding: 0 4px; }
.cs-kpis-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(210px, 1fr));
  gap: 14px; }
.cs-kpi { background: #fff; border-radius: 10px; padding: 14px 18px 12px;
  box-shadow: 0 1px 3px rgba(15, 23, 42, .08); }
.cs-kpi-label { font-size: 13px; color: #486581; font-weight: 600; }
.cs-kpi-value { font-size: 34px; font-weight: 700; color: #102a43; margin: 4px 0 2px;
  font-variant-numeric: tabular-nums; }
.cs-kpi-detail { font-size: 12.5px; color: #486581; min-height: 1em; }
.cs-kpi-n { font-size: 12px; color: #829ab1; margin-top: 4px; }
.cs-kpi-warning { font-size: 12px; color: #b44d12; margin-top: 4px; }
.cs-notes { display: flex; flex-direction: column; gap: 6px; margin-top: 8px; }
.cs-note { background: #fffbea; border: 1px solid #f7d070; color: #8d2b0b; border-radius: 8px;
  padding: 8px 12px; font-size: 13px; }
.cs-charts { display: grid !important; grid-template-columns: repeat(2, minmax(0, 1fr));
  gap: 14px; }
.cs-chart { background: #fff; border-radius: 10px; padding: 12px 16px;
  box-shadow: 0 1px 3px rgba(15, 23, 42, .08); min-width: 0; overflow-x: auto; }
.cs-chart.cs-wide { grid-column: 1 / -1; }
.cs-chart-title { font-size: 15px; font-weight: 650; color: #102a43; margin: 0 0 2px; }
.cs-chart-caption { font-size: 12.5px; color: #627d98; margin: 2px 0 0; }
.cs-chart-empty { font-size: 13px; color: #829ab1; padding: 40px 0; text-align: center; }
.cs-table { background: #fff; border-radius: 10px; padding: 12px 16px;
  box-shadow: 0 1px 3px rgba(15, 23, 42, .08); }
.cs-table-head { display: flex; justify-content: space-between; align-items: baseline;
  gap: 12px; }
.cs-table-title { font-size: 15px; font-weight: 650; color: #102a43; }
.cs-download { display: inline-block; padding: 5px 12px; border-radius: 6px;
  background: var(--cs-accent); color: #fff !important; text-decoration: none;
  font-size: 13px; font-weight: 600; }
.cs-download:hover { background: #243b53; }
.cs-table-scroll { max-height: 420px; overflow: auto; margin-top: 8px; }
.cs-table-scroll table { border-collapse: collapse; font-size: 12.5px; width: 100%;
  font-variant-numeric: tabular-nums; }
.cs-table-scroll th { position: sticky; top: 0; background: #f0f4f8; color: #334e68;
  text-align: left; padding: 6px 10px; border-bottom: 1px solid #d9e2ec; white-space: nowrap; }
.cs-table-scroll td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #f0f4f8; }
.cs-table-scroll .cs-num { text-align: right; }
.cs-table-scroll td:first-child { white-space: nowrap; }
.cs-table-more { font-size: 12px; color: #829ab1; margin-top: 6px; }
.cs-error { background: #fff5f5; border: 1px solid #f5b5b5; border-left: 5px solid #d64545;
  border-radius: 10px; padding: 14px 18px; color: #610404; }
.cs-error-title { font-weight: 700; margin-bottom: 4px; }
.cs-error-hint { color: #8a4b4b; font-size: 13px; margin-top: 6px; }
.cs-pending { opacity: .45; transition: opacity .15s; }
.cs-updating { font-size: 12px; font-weight: 400; color: #829ab1; margin-left: 6px; }
.cs-landing { max-width: 900px; }
.cs-landing h1 { font-size: 26px; margin: 8px 0 4px; }
.cs-landing .cs-lead { color: #486581; margin: 0 0 18px; }
.cs-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr));
  gap: 14px; }
.cs-card { display: block; background: #fff; border-radius: 10px; padding: 16px 18px;
  box-shadow: 0 1px 3px rgba(15, 23, 42, .08); border-left: 5px solid var(--cs-accent);
  text-decoration: none !important; color: inherit !important; }
.cs-card:hover { box-shadow: 0 3px 10px rgba(15, 23, 42, .15); }
.cs-card-title { font-size: 17px; font-weight: 650; color: var(--cs-accent); }
.cs-card-question { font-size: 14px; color: #243b53; margin: 6px 0; }
.cs-card-audience { font-size: 12.5px; color: #627d98; }
.cs-lang { display: flex; gap: 10px; justify-content: flex-end; font-size: 12.5px; }
.cs-lang-option { color: var(--cs-accent) !important; text-decoration: none; }
.cs-lang-current { font-weight: 700; color: #102a43 !important; }
@media (max-width: 900px) { .cs-charts { grid-template-columns: minmax(0, 1fr); } }
</style>
"""


# -- filters -----------------------------------------------------------------------------
def _filter(widget: widgets.Widget, name: str) -> widgets.Widget:
    widget.add_class("cs-filter")
    widget.add_class(f"cs-filter-{name}")
    widget.style.description_width = "initial"
    return widget


def choice_filter(name: str, label: str, options: Sequence[str], *,
                  all_label: str | None = ALL, value: str | None = None,
                  t: Callable[..., str] | None = None) -> widgets.Dropdown:
    """A dropdown of fixed ``options``, with an ``All`` choice first unless ``all_label=None``.

    ``t`` translates the ``All`` choice's label; its value stays :data:`ALL`.

    Returns
    -------
    ipywidgets.Dropdown
        With CSS classes ``cs-filter`` and ``cs-filter-<name>``.
    """
    opts: list = ([all_label] if all_label else []) + [str(o) for o in options]
    shown = (t or translator())(all_label) if all_label else all_label  # ALL is marked
    if shown != all_label:  # (label, value) pairs: the value stays ALL
        opts = [(shown, all_label)] + [(o, o) for o in opts[1:]]
    default = all_label if all_label else opts[0] if opts else None
    w = widgets.Dropdown(options=opts, value=value if value is not None else default,
                         description=label, layout=widgets.Layout(width="220px"))
    return _filter(w, name)


def toggle_filter(name: str, label: str, options: Sequence, *,
                  value=None) -> widgets.ToggleButtons:
    """Toggle buttons for a small fixed choice (grain, basis).

    ``options`` may be values or ``(label, value)`` pairs.
    """
    w = widgets.ToggleButtons(options=list(options), description=label,
                              layout=widgets.Layout(width="auto"))
    w.style.button_width = "auto"
    if value is not None:
        w.value = value
    return _filter(w, name)


def range_filter(name: str, label: str, options: Sequence, *,
                 value: tuple | None = None) -> widgets.SelectionRangeSlider:
    """A range over ordered ``options`` (e.g. cohort months); updates on release.

    ``options`` may be values or ``(label, value)`` pairs.
    """
    opts = list(options)
    w = widgets.SelectionRangeSlider(options=opts, index=(0, len(opts) - 1),
                                     description=label, continuous_update=False,
                                     layout=widgets.Layout(width="420px"))
    if value is not None:
        w.value = value
    return _filter(w, name)


#: Labels of the account filters (English message ids, translated where shown).
ACCOUNT_LABELS = {"segment": N_("Segment"), "plan": N_("Plan"), "region": N_("Region"),
                  "industry": N_("Industry"), "csm_owner": N_("CSM"),
                  "touch_model": N_("Touch model")}


def account_filters(ws, columns: Sequence[str] = ("segment", "plan", "region"),
                    labels: Mapping[str, str] | None = None,
                    t: Callable[..., str] | None = None) -> dict[str, widgets.Dropdown]:
    """Dropdown filters over ``accounts`` columns, with the values the workspace holds.

    Columns the workspace's ``accounts`` table lacks are left out (no empty filter), and
    so are columns of people (``csm_owner``) when redacting (:mod:`cs_analysis.redact`).
    Options come from the whole workspace, not a scope, so they do not change as other
    filters move. Pair with :meth:`Dashboard.scoped`.
    """
    t = t or translator()
    labels = dict(labels or {})
    present = [c for c in columns if ws.has("accounts", c)
               and not (redact.enabled() and c in redact.PERSON_COLUMNS)]  # names listed
    if not present:
        return {}
    acc = ws.table("accounts")
    out = {}
    for col in present:
        values = acc[[col]].distinct().to_pandas()[col].dropna().astype(str)
        label = labels.get(col) or t(ACCOUNT_LABELS.get(col, col.replace("_", " ").capitalize()))
        out[col] = choice_filter(col, label, sorted(values), t=t)
    return out


# -- the app ---------------------------------------------------------------------------
#: The arguments :meth:`Dashboard.launch` passes (None outside it): key of shared views.
_LAUNCH_ARGUMENTS: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "cs_analysis_launch_arguments", default=None)


class ErrorPanel:
    """A friendly error in the dashboard's look, shown instead of an app.

    Parameters
    ----------
    message, hint : str
        What happened and what to do.
    title : str
        Heading of the panel.
    """

    def __init__(self, message: str, hint: str = "",
                 title: str = N_("This dashboard cannot open"), lang: str | None = None):
        self.message, self.hint = message, hint
        self.lang = resolve_language(lang)
        box = widgets.HTML(_CSS + _error_html(message, hint, title, translator(self.lang)))
        self.widget = widgets.VBox([box])
        self.widget.add_class("cs-app")

    @property
    def error(self) -> str:
        """The message shown."""
        return self.message

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class Dashboard:
    """Base class of every dashboard: filters in, a :class:`View` out, one shared look.

    Subclasses set :attr:`notebook` and implement :meth:`make_filters` and
    :meth:`compute`. The base class

    - builds the header from the notebook's first markdown cell (:func:`read_info`);
    - lays out filter bar, notes, KPI tiles, chart area and table (with CSV download);
    - recomputes on every filter change (results cached per filter values), reusing the
      chart widgets so only the new spec travels to the browser;
    - catches errors in :meth:`compute` and shows them in ``.cs-error`` (details in the
      server log), never a traceback.

    Parameters
    ----------
    ws : Workspace
        The workspace every number comes from.
    info : DashboardInfo, optional
        Header text; default read from ``dashboards/<notebook>``.
    as_of : date, optional
        Passed to time-dependent analyses; default the workspace's as-of date.
    cache_size : int
        Number of filter combinations whose views are kept.
    lang : {"en", "ja"}, optional
        Language of the labels (:func:`cs_analysis.i18n.resolve_language`: this, else
        ``?lang=`` of the page's URL when the kernel knows it, else
        ``$CS_ANALYSIS_LANG``, else the workspace's ``language`` setting, else English).
        :meth:`set_language` switches it later.

    Attributes
    ----------
    filters : dict of str to widget
        Filter widgets by name; set ``.value`` to drive the dashboard (tests do).
    view : View or None
        The view on screen (None while an error is shown).
    error : str or None
        The error on screen, if any.
    widget : ipywidgets.VBox
        The whole app (notebooks display the dashboard object itself).
    """

    #: File name of the dashboard's notebook in ``dashboards/`` (header text source).
    notebook: ClassVar[str | None] = None
    #: Header used when the notebook cannot be read (e.g. package used elsewhere).
    fallback_title: ClassVar[str] = "Dashboard"
    #: Rows of the table shown on screen (the CSV holds all rows).
    max_table_rows: ClassVar[int] = 200
    #: Larger CSV downloads (characters of the data URI) are made when asked for.
    max_inline_csv: ClassVar[int] = 262_144
    #: Whether views may be shared through the on-disk cache of a served dashboard
    #: (:mod:`cs_analysis.dashboard.cache`): only when :meth:`compute` depends on nothing
    #: but the workspace, the launch arguments, the filters and the language.
    share_views: ClassVar[bool] = True

    def __init__(self, ws, *, info: DashboardInfo | None = None, as_of=None,
                 cache_size: int = 32, lang: str | None = None):
        self.ws = ws
        self.lang = resolve_language(lang or _url_language(), ws)
        #: Translates a label into :attr:`lang` (``_ = self.t; _("Grain")`` in subclasses).
        self.t = translator(self.lang)
        self.as_of = as_of
        self.info = info if info is not None else self._default_info()
        self._cache: OrderedDict[tuple, View] = OrderedDict()
        self._cache_size = cache_size
        self._memo: OrderedDict[tuple, Any] = OrderedDict()
        self.view: View | None = None
        self.error: str | None = None
        self._chart_widgets: dict[str, Any] = {}
        self._panel_boxes: dict[str, widgets.Box] = {}
        self._panel_texts: dict[str, widgets.HTML] = {}
        self._panel_captions: dict[str, str] = {}

        # Few widgets on purpose: each is 2-3 models the browser must restore before the
        # page shows (style + header in one HTML, scope + notes in one, the table in one).
        self.filters: dict[str, widgets.Widget] = dict(self.make_filters())
        self._header = widgets.HTML(_CSS + self._header_html())
        self._header.add_class("cs-header-box")
        self._filter_bar = widgets.HBox(list(self.filters.values()))
        self._filter_bar.add_class("cs-filters")
        if not self.filters:
            self._filter_bar.layout.display = "none"
        self._message = widgets.HTML("")
        self._message.add_class("cs-message")
        self._kpis = widgets.HTML("")
        self._kpis.add_class("cs-kpis")
        self._charts = widgets.Box([])
        self._charts.add_class("cs-charts")
        self._table = widgets.HTML("")
        self._table.add_class("cs-table")
        # a large CSV is made on request: carried in the page, it would be sent with every
        # redraw of the table and delay the first chart (8,000 comments: 1.9 MB)
        self._download = widgets.HTML("")
        self._download.add_class("cs-download-box")
        _ = self.t
        self._prepare = widgets.Button(description=_("Prepare the CSV download"))
        self._prepare.add_class("cs-download-prepare")
        self._prepare.layout.display = "none"
        self._prepare.on_click(lambda _b: self._prepare_download())
        self._download_frame: pd.DataFrame | None = None
        self._download_name = "data.csv"
        self.widget = widgets.VBox([self._header, self._filter_bar, self._message,
                                    self._kpis, self._charts, self._table,
                                    widgets.HBox([self._prepare, self._download])])
        self.widget.add_class("cs-app")
        self.refresh()
        for w in self.filters.values():
            w.observe(self._on_filter_change, names="value")

    def set_language(self, lang) -> None:
        """Show every label in ``lang`` (unknown codes: left as is).

        Keeps the filters' values and redraws the header, the filters' labels and choices,
        then the view (the data
        the views share stay memoized, so only labels and charts are redone).
        """
        code = resolve_language(lang, self.ws) if lang else None
        if not code or code == self.lang:
            return
        self.lang, self.t = code, translator(code)
        fresh = dict(self.make_filters())
        for name, w in self.filters.items():
            new = fresh.get(name)
            if new is None:
                continue
            w.unobserve(self._on_filter_change, names="value")
            try:  # one consistent state message per widget (labels and selection together)
                with w.hold_sync():
                    w.description = new.description
                    if hasattr(w, "options") and tuple(w.options) != tuple(new.options):
                        value = w.value
                        w.options = new.options
                        w.value = value
            finally:
                w.observe(self._on_filter_change, names="value")
        self._header.value = _CSS + self._header_html()
        _ = self.t
        self._prepare.description = _("Prepare the CSV download")
        self._cache.clear()
        self.refresh()

    # -- to implement ---------------------------------------------------------------
    def make_filters(self) -> Mapping[str, widgets.Widget]:
        """Filter widgets by name (see :func:`account_filters`, :func:`choice_filter`)."""
        return {}

    def compute(self, params: Mapping[str, Any]) -> View:
        """The complete view for these filter values (pure: same values, same view)."""
        raise NotImplementedError

    def stages(self, params: Mapping[str, Any]) -> Iterator[View]:
        """Successive views for these filter values; the last one is complete.

        The default draws :meth:`compute` in up to two stages: when its panels have
        charts still to build (:attr:`Panel.build`), first the KPI tiles with the first
        such chart (the others ``pending``, the table kept), then everything. Override it
        to show other fast parts first: yield a view whose slow KPIs and panels are
        marked ``pending=True``, then the complete view (and let :meth:`compute` return
        the last stage). Each stage is drawn as soon as it is yielded, so a viewer sees
        the fast charts change while slow ones are still being computed.
        """
        view = self.compute(params)
        lazy = [i for i, p in enumerate(view.panels) if p.build is not None]
        if lazy or callable(view.table):
            first = [p.built() if lazy and i == lazy[0] else
                     dataclasses.replace(p, pending=True) if p.build is not None else p
                     for i, p in enumerate(view.panels)]
            yield dataclasses.replace(view, panels=first, table=None)
            if lazy:  # the first chart is built already
                panels = list(view.panels)
                panels[lazy[0]] = first[lazy[0]]
                view = dataclasses.replace(view, panels=panels)
        yield view.resolved()

    def warm_up(self) -> None:
        """Compute now what later filter choices will need (default: nothing).

        :meth:`launch` calls it after the first view, so in a preheated Voila kernel it
        runs before anyone opens the page. Must not raise for data problems: leave those
        to the view that needs the data.
        """

    # -- helpers for subclasses -----------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Current filter values by name."""
        return {name: w.value for name, w in self.filters.items()}

    def scoped(self, params: Mapping[str, Any]):
        """The workspace restricted by the account filters among ``params``.

        Any filter named like a :meth:`Workspace.where` argument (``segment``, ``plan``,
        ``region``, ``industry``, ``csm_owner``, ``touch_model``) applies unless it is
        :data:`ALL`; ``signup_between`` applies as given.
        """
        from cs_analysis.workspace import ACCOUNT_FILTERS

        where = {k: v for k, v in params.items()
                 if k in ACCOUNT_FILTERS and v not in (None, ALL, "")}
        if params.get("signup_between") is not None:
            where["signup_between"] = params["signup_between"]
        return self.ws.where(**where) if where else self.ws

    def scope_ids(self, params: Mapping[str, Any]) -> pd.Index | None:
        """Ids of the accounts :meth:`scoped` keeps for ``params``; None when it keeps all.

        The workspace answers (one small query on ``accounts`` per scope, remembered), so
        the scope means exactly what :meth:`Workspace.where` means. With
        :meth:`in_scope`, a dashboard computes an account-level frame once for the whole
        workspace and narrows it on each filter change instead of asking the engine
        again: account-level results do not depend on which other accounts are in scope.
        """
        ws = self.scoped(params)
        if ws.filters == self.ws.filters:  # no filter beyond the dashboard's workspace
            return None

        def ids():
            acc = ws.table("accounts", columns=["account_id"]).select("account_id")
            return pd.Index(acc.to_pandas()["account_id"].astype("str").unique())

        return self.memo("scope", _freeze(ws.filters), ids)

    @staticmethod
    def in_scope(frame: pd.DataFrame, ids: pd.Index | None,
                 column: str = "account_id") -> pd.DataFrame:
        """The rows of ``frame`` whose ``column`` is among ``ids`` (all rows for None)."""
        if ids is None:
            return frame
        return frame[frame[column].astype("str").isin(ids)]

    def memo(self, name: str, key, compute: Callable[[], Any], size: int = 16):
        """``compute()``, remembered under ``(name, key)`` (the ``size`` latest per name).

        For what several views share: account-level frames for the whole workspace, the
        accounts of a scope. Key on whatever the value depends on (a map's fingerprint,
        a stage), so an edit never finds a stale value.
        """
        full = (name, key)
        if full in self._memo:
            self._memo.move_to_end(full)
            return self._memo[full]
        value = compute()
        self._memo[full] = value
        same = [k for k in self._memo if k[0] == name]
        for k in same[:-size]:
            del self._memo[k]
        return value

    def cohort_filter(self) -> widgets.Widget | None:
        """A ``cohorts`` range filter over the signup months up to the as-of date.

        None when the accounts span fewer than two months. :meth:`cohort_scope` turns
        its value into ``signup_between``.
        """
        from cs_analysis.time import to_date

        acc = self.ws.table("accounts", columns=["signup_date"])
        row = acc.aggregate(lo=acc.signup_date.min(), hi=acc.signup_date.max()).to_pandas()
        lo, hi = row["lo"].iloc[0], row["hi"].iloc[0]
        if is_missing(lo) or is_missing(hi):
            return None
        as_of = to_date(self.as_of) if self.as_of else self.ws.as_of
        lo, hi = pd.Timestamp(lo).date(), min(pd.Timestamp(hi).date(), as_of)
        months = range(lo.year * 12 + lo.month - 1, hi.year * 12 + hi.month)
        if len(months) < 2:
            return None
        _ = self.t
        return range_filter("cohorts", _("Signup cohorts"),
                            [(month_label(m, self.lang), m) for m in months])

    def cohort_scope(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``{"signup_between": (first day, last day)}`` for a narrowed cohorts filter, else {}."""
        cohorts = params.get("cohorts")
        if cohorts and "cohorts" in self.filters:
            options = [v for _, v in self.filters["cohorts"].options]
            if tuple(cohorts) != (options[0], options[-1]):
                return {"signup_between": month_range(cohorts[0], cohorts[1])}
        return {}

    # -- state tests read ---------------------------------------------------------------
    @property
    def kpis(self) -> list[KPI]:
        """KPI tiles on screen (empty while an error is shown)."""
        return list(self.view.kpis) if self.view else []

    @property
    def table(self) -> pd.DataFrame:
        """The table behind the on-screen table and the CSV download."""
        if self.view is None or self.view.table is None:
            return pd.DataFrame()
        return self.view.table

    @property
    def charts(self) -> dict[str, Any]:
        """Altair charts on screen by panel key (None where a panel is empty)."""
        return {p.key: p.chart for p in self.view.panels} if self.view else {}

    @property
    def csv_href(self) -> str:
        """The ``data:`` URI of the download link ('' when there is no table)."""
        m = re.search(r'href="(data:[^"]+)"', self._table.value + self._download.value)
        return html.unescape(m.group(1)) if m else ""

    def kpi(self, label: str) -> KPI:
        """The KPI tile whose label starts with ``label``."""
        for k in self.kpis:
            if k.label.startswith(label):
                return k
        raise KeyError(f"no KPI {label!r}; have {[k.label for k in self.kpis]}")

    # -- launching ----------------------------------------------------------------
    @classmethod
    def launch(cls, workspace=None, *, lang: str | None = None, **kwargs):
        """Open ``workspace`` and build the dashboard, or a friendly :class:`ErrorPanel`.

        Parameters
        ----------
        workspace : str, Path, Workspace or None
            What :func:`~cs_analysis.workspace.open_workspace` accepts ('' or None: the
            ``CS_WORKSPACE`` environment variable, else the demo), or an open workspace.
        lang : str, optional
            Language of the labels (default: :func:`~cs_analysis.i18n.resolve_language`).
        **kwargs
            Passed to the class.
        """
        from cs_analysis import charts
        from cs_analysis.workspace import Workspace, open_workspace

        use_served_chart_bundle()
        charts.setup()
        try:
            ws = workspace if isinstance(workspace, Workspace) else open_workspace(
                workspace or None)
            token = _LAUNCH_ARGUMENTS.set(dict(kwargs))  # keys the shared views
            try:
                app = cls(ws, lang=lang, **kwargs)
            finally:
                _LAUNCH_ARGUMENTS.reset(token)
            app.warm_up()
        except Exception as exc:  # noqa: BLE001 - shown to people, logged for analysts
            _log_exception(exc)
            code = resolve_language(lang or _url_language())
            message, hint = friendly_error(exc, translator(code))
            return ErrorPanel(message, hint, lang=code)
        _freeze_heap()
        return app

    # -- drawing ------------------------------------------------------------------
    def _default_info(self) -> DashboardInfo:
        if self.notebook:
            path = dashboards_dir() / self.notebook
            try:
                return read_info(path)
            except DashboardSpecError:
                pass
        return DashboardInfo(name=Path(self.notebook or "dashboard").stem,
                             path=Path(self.notebook or ""), title=self.fallback_title,
                             question="", audience="")

    def _header_html(self) -> str:
        _ = self.t
        meta = []
        if self.info.audience:
            meta.append(esc(_("For {audience}", audience=_(self.info.audience).rstrip("."))))
        try:
            as_of = self.as_of or self.ws.as_of
            meta.append(esc(_("Data as of {date}", date=date_text(as_of, self.lang))))
        except Exception:  # noqa: BLE001 - a header must never fail
            pass
        question = (f'<p class="cs-question">{esc(_(self.info.question))}</p>'
                    if self.info.question else "")
        return (f'<div class="cs-header"><h1 class="cs-title">{esc(_(self.info.title))}</h1>'
                f'{question}<p class="cs-meta">{" · ".join(meta)}</p>'
                f'{language_switch(self.lang)}</div>')

    def _on_filter_change(self, change) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Recompute the view for the current filter values and redraw."""
        params = self.params()
        key = _freeze(params)
        self.widget.add_class("cs-busy")
        try:
            view = self._cache.get(key)
            if view is None:
                view = self._shared_get(params)  # computed by another kernel already?
                if view is not None:
                    self._draw(view)
                else:
                    for view in self.stages(params):
                        self._draw(view)
                    self._shared_put(params)
                self._cache[key] = self.view  # complete: every chart built
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
                self._draw(view)
        except Exception as exc:  # noqa: BLE001 - shown to people, logged for analysts
            _log_exception(exc)
            self._show_error(*friendly_error(exc, self.t))
        finally:
            self.widget.remove_class("cs-busy")

    # -- the views shared by every kernel (cs_analysis.dashboard.cache) ---------------
    def _shared(self):
        """The on-disk view cache of this dashboard, or None (off, or not launched by launch)."""
        if "_shared_cache" not in self.__dict__:
            self._shared_cache = None
            arguments = _LAUNCH_ARGUMENTS.get()
            if arguments is not None and self.share_views:
                from cs_analysis.dashboard.cache import open_cache

                cls = type(self)
                self._shared_cache = open_cache(
                    self.ws, f"{cls.__module__}.{cls.__qualname__}", arguments)
        return self._shared_cache

    def _shared_key(self, params):
        return self._shared_cache.key(params, self.lang, extra=[self.max_table_rows])

    def _shared_get(self, params) -> View | None:
        cache = self._shared()
        return cache.get(self._shared_key(params)) if cache is not None else None

    def _shared_put(self, params) -> None:
        cache = self._shared()
        if cache is not None and self.view is not None:
            cache.put(self._shared_key(params), self.view, self.max_table_rows)

    def _show_error(self, message: str, hint: str = "") -> None:
        self.view = None
        self.error = message
        self._message.value = _error_html(message, hint, t=self.t)
        for w in (self._kpis, self._charts, self._table, self._prepare):
            w.layout.display = "none"
        self._download.value = ""
        self._download_frame = None

    def _draw(self, view: View) -> None:
        view = view.resolved()  # a stages() override may pass lazy parts on
        if redact.enabled():  # `cs-analysis serve --redact`: table, CSV, charts, texts
            view = redact.redact_view(view, self.ws)
        self.view = view
        self.error = None
        notes = "".join(f'<div class="cs-note">{esc(n)}</div>' for n in view.notes)
        scope = f'<div class="cs-scope">{esc(view.scope)}</div>' if view.scope else ""
        self._message.value = scope + (f'<div class="cs-notes">{notes}</div>' if notes else "")
        self._kpis.value = ('<div class="cs-kpis-grid">'
                            + "".join(k.html(self.t) for k in view.kpis) + "</div>")
        self._kpis.layout.display = None if view.kpis else "none"
        self._draw_panels(view.panels)
        self._draw_table(view)

    def _draw_panels(self, panels: Sequence[Panel]) -> None:
        import altair as alt

        _ = self.t
        updating = esc(_("updating…"))
        boxes = []
        for p in panels:
            # a panel is one VBox: [title + caption (HTML), chart or placeholder]
            box = self._panel_boxes.get(p.key)
            if box is None:
                computing = esc(_("Computing…"))
                text = widgets.HTML(f'<div class="cs-chart-empty">{computing}</div>')
                self._panel_texts[p.key] = text
                box = widgets.VBox([widgets.HTML(), text])
                box.add_class("cs-chart")
                box.add_class(f"cs-chart-{p.key}")
                self._panel_boxes[p.key] = box
            head = box.children[0]
            mark = (f' <span class="cs-updating">{updating}</span>' if p.pending else "")
            caption = (f'<div class="cs-chart-caption">{esc(p.caption)}</div>'
                       if p.caption else "")
            if p.pending and not p.caption:  # keep the caption drawn, until the next stage
                caption = self._panel_captions.get(p.key, "")
            self._panel_captions[p.key] = caption
            head.value = f'<div class="cs-chart-title">{esc(p.title)}{mark}</div>{caption}'
            if p.wide:
                box.add_class("cs-wide")
            else:
                box.remove_class("cs-wide")
            boxes.append(box)
            if p.pending:  # keep what is drawn, dimmed, until the next stage
                box.add_class("cs-pending")
                continue
            box.remove_class("cs-pending")
            if p.chart is None:
                body = self._panel_texts[p.key]
                body.value = f'<div class="cs-chart-empty">{esc(self.t(p.empty))}</div>'
            else:
                chart = _fixed_width(p.chart, p.wide)
                body = self._chart_widgets.get(p.key)
                if body is None:
                    body = alt.JupyterChart(chart, embed_options={
                        "actions": False, "renderer": p.renderer})
                    self._chart_widgets[p.key] = body
                else:
                    body.chart = chart
            if box.children[1] is not body:
                box.children = (head, body)
        self._charts.children = tuple(boxes)
        self._charts.layout.display = None if boxes else "none"

    def _draw_table(self, view: View) -> None:
        frame = view.table
        if frame is None:  # a partial stage: keep the table on screen, dimmed
            self._table.add_class("cs-pending")
            return
        self._table.remove_class("cs-pending")
        self._download.value = ""
        self._prepare.layout.display = "none"
        self._download_frame = None
        if frame.empty:
            self._table.layout.display = "none"
            self._table.value = ""
            return
        self._table.layout.display = None
        shown = frame.head(self.max_table_rows)
        if view.table_columns:
            shown = shown[[c for c in view.table_columns if c in shown.columns]]
        body = table_html(shown, view.table_formats, view.table_labels)
        _ = self.t
        more = ('<div class="cs-table-more">'
                + esc(_("Showing {shown:,} of {total:,} rows; the CSV has them all.",
                        shown=len(shown), total=len(frame)))
                + "</div>" if len(frame) > len(shown) else "")
        uri = csv_data_uri(frame)
        if len(uri) <= self.max_inline_csv:
            link = _download_link(view.csv_name, uri, len(frame), _)
        else:
            link = ""
            self._download_frame, self._download_name = frame, view.csv_name
            self._prepare.description = _("Prepare the CSV download ({rows:,} rows)",
                                          rows=len(frame))
            self._prepare.layout.display = None
        self._table.value = (
            f'<div class="cs-table-head"><span class="cs-table-title">'
            f'{esc(_(view.table_title))}</span>{link}</div>'
            f'<div class="cs-table-scroll">{body}</div>{more}')

    def _prepare_download(self) -> None:
        """Put the link to the whole table's CSV on the page (the button's action)."""
        frame = self._download_frame
        if frame is None:
            return
        self._download.value = _download_link(self._download_name, csv_data_uri(frame),
                                              len(frame), self.t)
        self._prepare.layout.display = "none"

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def _download_link(name: str, uri: str, rows: int,
                   t: Callable[..., str] | None = None) -> str:
    _ = t or translator()
    text = _("Download CSV ({rows:,} rows)", rows=rows)
    return f'<a class="cs-download" download="{esc(name)}" href="{esc(uri)}">{esc(text)}</a>'


def table_html(frame: pd.DataFrame, formats: Mapping[str, Callable[[Any], str]] | None = None,
               labels: Mapping[str, str] | None = None) -> str:
    """An HTML table of ``frame``: escaped cells, numbers right-aligned, ``–`` for missing.

    Parameters
    ----------
    frame : DataFrame
        Rows to show.
    formats : mapping, optional
        Column → formatter (e.g. :func:`fmt_pct`); other numbers get thousands separators,
        dates their ISO form.
    labels : mapping, optional
        Column → header text (default the column name).
    """
    formats = dict(formats or {})
    labels = dict(labels or {})
    numeric = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])}

    def cell(col, value) -> str:
        if is_missing(value):
            return "–"
        if col in formats:
            return formats[col](value)
        if isinstance(value, pd.Timestamp):
            return value.date().isoformat() if value == value.normalize() else str(value)
        if isinstance(value, dt.date):
            return value.isoformat()
        if col in numeric and isinstance(value, float):
            return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
        if col in numeric and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    cls = {c: ' class="cs-num"' if c in numeric else "" for c in frame.columns}
    head = "".join(f"<th{cls[c]}>{esc(labels.get(c, c))}</th>" for c in frame.columns)
    rows = []
    for values in frame.itertuples(index=False, name=None):
        tds = "".join(f"<td{cls[c]}>{esc(cell(c, v))}</td>"
                      for c, v in zip(frame.columns, values, strict=True))
        rows.append(f"<tr>{tds}</tr>")
    return (f'<table class="cs-table-grid"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


#: Plot widths replacing ``width="container"`` in half and full-width panels.
PANEL_WIDTH, WIDE_PANEL_WIDTH = 440, 1040


def _fixed_width(chart, wide: bool):
    """``chart`` with a pixel width instead of ``"container"``.

    Voila keeps the page hidden while it renders; vega-embed then measures a zero-width
    container and draws nothing until the window is resized. A fixed width is robust.
    """
    if getattr(chart, "width", None) == "container":
        return chart.properties(width=WIDE_PANEL_WIDTH if wide else PANEL_WIDTH)
    return chart


#: An ES module standing in for Altair's offline JupyterChart bundle: it imports the one
#: copy Voila serves (path relative to ``{base_url}voila/``) and re-exports it.
_CHART_SHIM = """const voila = document.body.dataset.baseUrl || "/voila/";
const base = new URL(voila, window.location.href);
const mod = await import(new URL(%s, base).href);
export default mod.default;
"""


def use_served_chart_bundle(path: str | None = None) -> bool:
    """Make every ``JupyterChart`` load the chart JavaScript Voila serves, if it does.

    ``cs-analysis serve`` writes Altair's offline bundle once
    (:func:`cs_analysis.serve.prepare_chart_bundle`) and tells kernels where it is
    served in ``$CS_ANALYSIS_CHART_BUNDLE``. Charts then carry a tiny module that imports
    that one file (the browser parses it once per page) instead of their own ~0.9 MB
    copy. Outside such a server (JupyterLab, nbclient) nothing changes and
    :func:`cs_analysis.charts.setup` bundles the JavaScript into each chart as usual.

    Returns
    -------
    bool
        Whether the served bundle is used.
    """
    import altair as alt

    path = path or os.environ.get("CS_ANALYSIS_CHART_BUNDLE")
    if not path:
        return False
    alt.JupyterChart._esm = _CHART_SHIM % json.dumps(path)
    alt.JupyterChart._is_offline = True
    return True


def _freeze_heap() -> None:
    """Exempt what exists now (libraries, the workspace, the first view) from the GC.

    A dashboard kernel holds a few million long-lived objects (pandas, Ibis, Altair and
    their schemas). Every full garbage collection walked all of them, 0.1-0.25 s in the
    middle of a filter change; frozen, a collection only walks what the views create.
    """
    import gc

    gc.collect()
    gc.freeze()


def _freeze(value):
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | set):
        return tuple(_freeze(v) for v in value)
    return value


def date_text(d, lang: str | None = None) -> str:
    """A date as ``"3 Mar 2024"``, or ``"2024年3月3日"`` in Japanese.

    Datetimes lose their time; anything else as text). See :func:`cs_analysis.formatting.fmt_date`.
    """
    from cs_analysis.formatting import fmt_date

    return fmt_date(d, lang)


# -- the landing page ----------------------------------------------------------------
def _url_language() -> str | None:
    """``?lang=`` of the page's URL when the kernel knows it already.

    (A kernel Voila
    starts for a request has ``$QUERY_STRING``; a preheated one learns it later, see
    :func:`follow_request`).
    """
    from cs_analysis.i18n import language_from_query

    return language_from_query()


def language_switch(lang: str) -> str:
    """Links that reopen the page in each language (``?lang=en``, ``?lang=ja``)."""
    links = "".join(
        f'<a class="cs-lang-option{" cs-lang-current" if code == lang else ""}" '
        f'href="?lang={code}" hreflang="{code}" data-lang="{code}">'
        f"{esc(LANGUAGE_NAMES[code])}</a>" for code in LANGUAGES)
    return f'<nav class="cs-lang" aria-label="Language / 言語">{links}</nav>'


def landing_html(infos: Sequence[DashboardInfo] | None = None,
                 lang: str | None = None) -> str:
    """The landing page's HTML: one card per dashboard with the question it answers.

    In ``lang`` (default :func:`~cs_analysis.i18n.resolve_language`), with a language
    switch; each card's link carries ``?lang=`` so the dashboard opens in it too.
    """
    lang = resolve_language(lang)
    _ = translator(lang)
    for_audience = _("For {audience}")
    infos = discover() if infos is None else list(infos)
    cards = "".join(
        f'<a class="cs-card" href="{esc(i.href)}?lang={lang}" data-dashboard="{esc(i.name)}">'
        f'<div class="cs-card-title">{esc(_(i.title))}</div>'
        f'<div class="cs-card-question">{esc(_(i.question))}</div>'
        f'<div class="cs-card-audience">{esc(for_audience.format(audience=_(i.audience).rstrip(".")))}</div></a>'  # noqa: E501
        for i in infos
    )
    if not cards:
        empty = esc(_("No dashboards in this folder yet."))
        cards = f'<div class="cs-note">{empty}</div>'
    heading = esc(_("Customer Success dashboards"))
    lead = esc(_("Pick the question you want answered. Every number shows the sample size "
                 "behind it."))
    return (_CSS + f'<div class="cs-landing" lang="{lang}">{language_switch(lang)}'
            f'<h1>{heading}</h1><p class="cs-lead">{lead}</p>'
            f'<div class="cs-cards">{cards}</div></div>')


class LandingPage(widgets.HTML):
    """The landing page widget; :meth:`set_language` redraws it in another language."""

    def __init__(self, folder=None, lang: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.folder = folder
        self.lang = resolve_language(lang or _url_language())
        self.add_class("cs-landing-box")
        self._render()

    def _render(self) -> None:
        _ = translator(self.lang)
        try:
            self.value = landing_html(discover(self.folder), self.lang)
        except DashboardSpecError as exc:
            _log_exception(exc)
            self.value = _CSS + _error_html(
                str(exc), _("Fix the notebook's first markdown cell."),
                N_("A dashboard is misconfigured"), _)

    def set_language(self, lang) -> None:
        """Redraw in ``lang`` (unknown codes: left as is)."""
        from cs_analysis.i18n import normalize

        code = normalize(lang)
        if code and code != self.lang:
            self.lang = code
            self._render()


def landing(folder=None, lang: str | None = None) -> LandingPage:
    """The landing page widget listing every dashboard of ``folder`` (default: served one).

    A malformed dashboard notebook shows as a friendly error rather than breaking the list.
    """
    return LandingPage(folder, lang)


def follow_request(app) -> None:
    """In a preheated Voila kernel, wait for the viewer, then show the URL's language.

    A preheated kernel draws its page before anyone asks for it, in the server's
    language; this waits for the request (:func:`voila.utils.wait_for_request`, a no-op
    outside preheated Voila) and, when its ``?lang=`` differs, relabels ``app`` (a
    :class:`Dashboard` or the landing page; anything else is left alone). Put it in the
    dashboard notebook's last cell, after the cell that displays the app.
    """
    if not hasattr(app, "set_language"):
        return
    try:
        from voila.utils import wait_for_request

        wait_for_request()
    except ImportError:  # pragma: no cover - voila is a dependency
        pass
    lang = _url_language()
    if lang:
        app.set_language(lang)


# -- helpers shared by the analysis dashboards ---------------------------------------------
#: Axis, legend and tooltip titles of the charts the dashboards show (English message
#: ids, as :mod:`cs_analysis.charts` writes them; :func:`relabel_chart` translates them).
CHART_TITLES = (
    N_("Periods since signup"), N_("Signup cohort"), N_("cohort"), N_("period"),
    N_("period ends"), N_("accounts in cohort"), N_("retained"), N_("rate"),
    N_("observable (period not over yet)"), N_("Days since signup"), N_("MRR"),
    N_("12 months ending"), N_("window end"), N_("MRR at start"),
    N_("segment"), N_("plan"), N_("region"), N_("group"),
    N_("Days since the onboarding clock started"), N_("target (days)"), N_("median days"),
    N_("median, lower"), N_("median, upper"), N_("target days"), N_("within target"),
    N_("within, lower"), N_("within, upper"), N_("actually within target (churn counted)"),
    N_("Days"), N_("Stalled onboardings"),
)


def relabel_chart(chart, t: Callable[..., str] | None):
    """A copy of ``chart`` with its axis, legend and tooltip titles translated.

    Translated by ``t`` (titles without a translation stay). The chart's data are not copied.

    Charts keep English titles (:mod:`cs_analysis.charts` knows no languages); a
    dashboard relabels what it shows, once per chart (not per data row).
    """
    if t is None or getattr(t, "lang", "en") == "en":
        return chart
    import altair as alt

    def walk(obj):
        if isinstance(obj, alt.SchemaBase):
            kwds = obj._kwds
            for key, value in list(kwds.items()):
                if key in ("data", "datasets"):
                    continue
                if key == "title" and isinstance(value, str):
                    kwds[key] = t(value)
                else:
                    walk(value)
        elif isinstance(obj, list | tuple):
            for item in obj:
                walk(item)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                if key not in ("data", "datasets"):
                    walk(value)

    chart = chart.copy(deep=True)
    walk(chart)
    return chart


def fit_chart(chart, width: int | None = PANEL_WIDTH, height: int = 260,
              t: Callable[..., str] | None = None):
    """A chart from :mod:`cs_analysis.charts` laid out for a half-width dashboard panel.

    The panel shows the title, so the chart's own is dropped. Single (layered) charts get
    a fixed plot size that, with a legend, fits a half-width panel on a laptop screen;
    faceted or concatenated charts keep their sizes. (Not ``width="container"``: Voila
    keeps the page hidden while it renders, so vega-embed can measure a zero-width
    container and draw nothing until the window is resized.)

    Parameters
    ----------
    chart : altair.TopLevelMixin
        The chart.
    width : int or None
        Plot width in pixels (default :data:`PANEL_WIDTH`); None keeps the chart's own.
    height : int
        Plot height in pixels.
    t : callable, optional
        The dashboard's translator: axis, legend and tooltip titles are translated
        (:func:`relabel_chart`).

    Returns
    -------
    altair.TopLevelMixin
        A shallow copy, untitled and sized.
    """
    import altair as alt

    chart = relabel_chart(chart, t).copy(deep=False)
    chart.title = alt.Undefined
    if width is not None and isinstance(chart, alt.Chart | alt.LayerChart):
        chart = chart.properties(width=width, height=height)
    return chart


def month_label(index: int, lang: str | None = None) -> str:
    """``"Mar 2024"`` (``"2024年3月"`` in Japanese) for a month index.

    The index is ``year * 12 + month - 1`` (as in the workspace).
    """
    from cs_analysis.formatting import fmt_month

    return fmt_month(dt.date(index // 12, index % 12 + 1, 1), lang)


def month_range(first: int, last: int | None = None) -> tuple[dt.date, dt.date]:
    """First day of month index ``first`` and last day of ``last`` (default ``first``)."""
    last = first if last is None else last
    nxt = last + 1
    return (dt.date(first // 12, first % 12 + 1, 1),
            dt.date(nxt // 12, nxt % 12 + 1, 1) - dt.timedelta(days=1))
