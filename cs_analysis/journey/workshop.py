"""The workshop: the agreed map being edited (autosaved), saved versions, the handout."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from cs_analysis.i18n import N_, translator
from cs_analysis.journey.compare import compare_maps, merge_maps
from cs_analysis.journey.compare import escape_text as _e
from cs_analysis.journey.maps import (
    WORKSHOP_ENV,
    JourneyMap,
    JourneyMapError,
    default_maps,
    format_target,
    load_map,
    save_map,
    save_version,
    slug,
)

# ======================================================================================
# Handout
# ======================================================================================
_HANDOUT_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Hiragino Sans", "Noto Sans JP",
  sans-serif; color: #1f2933; margin: 24px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 16px; margin-top: 22px; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
th, td { border: 1px solid #ccd3db; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f3f6f9; } .num { text-align: right; } .meta { color: #52606d; }
@media print { body { margin: 10mm; } h2 { page-break-after: avoid; }
  tr { page-break-inside: avoid; } }
"""


def _fmt(x, kind: str = "int") -> str:
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if kind == "pct":
        return f"{100 * float(x):.0f}%"
    if kind == "days":
        return f"{float(x):.0f}"
    return f"{int(x):,}"


#: Column headers of the handout's tables (English message ids, translated per language).
_STAGE_HEADS = ("#", N_("Stage"), N_("Customer goal"), N_("Success"), N_("Data signal"),
                N_("Owner team"), N_("Accounts reached"), N_("Conversion"), N_("Median days"),
                N_("Stalled"))
_GOAL_HEADS = (N_("Goal"), N_("Layer"), N_("Definition and target"), N_("Latest"))
#: The map's keywords a reader sees in the handout: teams of the demo maps, decision styles
#: and goal layers (other values are printed as written).
_HANDOUT_WORDS = (N_("shared"), N_("product"), N_("cs"), N_("top-down"), N_("bottom-up"),
                  N_("balanced"), N_("adoption"), N_("outcome"), N_("experience"))


def handout_html(journey, flow: pd.DataFrame | None = None,
                 progress: pd.DataFrame | None = None, *, as_of=None,
                 lang: str | None = None) -> str:
    """A printable, self-contained HTML handout: persona, agreed journey, stage data, goals.

    Parameters
    ----------
    journey : JourneyMap or what :func:`load_map` accepts
    flow : pandas.DataFrame, optional
        :func:`stage_flow` of the map (no ``by``), shown beside each stage.
    progress : pandas.DataFrame, optional
        :func:`goal_progress` of the map (no ``by``): the latest value of each goal.
    as_of : date, optional
        Printed as the data's date.
    lang : str, optional
        Language of the handout's headings and table headers (``"ja"``, default English);
        the map's own texts (stage names, goals, persona) are printed as the teams wrote
        them.
    """
    from cs_analysis.formatting import fmt_date

    _ = translator(lang)
    m = load_map(journey)
    p = m.persona
    items = "".join(f"<li>{_e(x)}</li>" for x in p.goals)
    pains = "".join(f"<li>{_e(x)}</li>" for x in p.pains)
    words = _e(_("Success in their words:"))
    goals_h, pains_h = _e(_("Goals")), _e(_("Pains"))
    persona = (f"<p><b>{_e(p.name)}</b> · {_e(p.role)} · {_e(p.domain)}"
               f"{' · ' + _e(', '.join(p.segment)) if p.segment else ''}"
               + (" · " + _e(_("decides {style}",
                                style=_(p.decision_style.replace("_", "-"))))
                  if p.decision_style else "") +
               f"</p><p>{_e(p.who)}</p>"
               f"<p><b>{words}</b> “{_e(p.success)}”</p>"
               f"<table><tr><th>{goals_h}</th><th>{pains_h}</th></tr>"
               f"<tr><td><ul>{items}</ul></td><td><ul>{pains}</ul></td></tr></table>")
    data = {}
    if flow is not None and not flow.empty:
        data = {r.stage: r for r in flow.itertuples(index=False) if r.has_signal}
    rows = []
    for i, s in enumerate(m.stages, 1):
        r = data.get(s.name)
        nums = ("<td class=num>–</td>" * 4 if r is None else
                f"<td class=num>{_fmt(r.reached)}</td><td class=num>{_fmt(r.conversion, 'pct')}"
                f"</td><td class=num>{_fmt(r.median_days, 'days')}</td>"
                f"<td class=num>{_fmt(r.stalled)}</td>")
        rows.append(f"<tr><td>{i}</td><td><b>{_e(s.name)}</b></td><td>{_e(s.customer_goal)}</td>"
                    f"<td>{_e(s.success)}</td><td>{_e(s.signal.describe() if s.signal else '')}"
                    f"</td><td>{_e(s.owner)}</td>{nums}</tr>")
    stages = ("<table><tr>" + "".join(f"<th>{_e(_(h))}</th>" for h in _STAGE_HEADS)
              + "</tr>" + "".join(rows) + "</table>")
    goal_rows = []
    for g in m.goals:
        latest = "–"
        if progress is not None and not progress.empty:
            gp = progress[(progress["goal"] == g.name) & progress["value"].notna()]
            if not gp.empty:
                last = gp.sort_values("period").iloc[-1]
                latest = (f"{format_target(g.metric, float(last['value']))} "
                          f"({_e(last['period_label'])}, n = {int(last['denominator'])})")
        goal_rows.append(f"<tr><td><b>{_e(g.name)}</b></td><td>{_e(_(g.layer))}</td>"
                         f"<td>{_e(g.definition())}</td><td>{latest}</td></tr>")
    goals = ("<table><tr>" + "".join(f"<th>{_e(_(h))}</th>" for h in _GOAL_HEADS)
             + "</tr>" + "".join(goal_rows) + "</table>") if goal_rows else \
        "<p>" + _e(_("No shared goal agreed yet.")) + "</p>"
    when = (" · " + _e(_("data as of {date}", date=fmt_date(as_of, _.lang)))) if as_of else ""
    version = _e(_("Version {n}", n=m.version))
    persona_h, journey_h, shared_h = _e(_("Persona")), _e(_("Journey")), _e(_("Shared goals"))
    return (f"<!DOCTYPE html><html lang={_.lang}><head><meta charset=utf-8>"
            f"<title>{_e(m.title)}</title><style>{_HANDOUT_CSS}</style></head><body>"
            f"<h1>{_e(m.title)}</h1>"
            f"<p class=meta>{version} · {_e(_(m.team))}{when}</p>"
            f"<p>{_e(m.description)}</p><h2>{persona_h}</h2>{persona}"
            f"<h2>{journey_h}</h2>{stages}"
            f"<h2>{shared_h}</h2>{goals}</body></html>")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def export_handout(journey, path, *, flow=None, progress=None, as_of=None, pdf: bool = True,
                   timeout: float = 60.0, lang: str | None = None) -> dict[str, Path]:
    """Write the handout as HTML, and as PDF when a converter (Chromium) is available.

    ``lang`` is the handout's language (:func:`handout_html`; default English).

    Returns
    -------
    dict
        ``{"html": path}`` plus ``"pdf"`` when the PDF was written.
    """
    path = Path(path).with_suffix(".html")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(handout_html(journey, flow, progress, as_of=as_of, lang=lang),
                    encoding="utf-8")
    out = {"html": path}
    exe = _chromium() if pdf else None
    if exe:
        target = path.with_suffix(".pdf")
        with tempfile.TemporaryDirectory() as profile:
            cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                   f"--user-data-dir={profile}", f"--print-to-pdf={target}", path.as_uri()]
            try:
                subprocess.run(cmd, check=False, timeout=timeout, capture_output=True)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if target.exists() and target.stat().st_size > 0:
            out["pdf"] = target
    return out


# ======================================================================================
# The workshop session (autosaved)
# ======================================================================================
def workshop_dir() -> Path:
    """Where drafts, agreed maps and handouts go.

    ``$CS_ANALYSIS_WORKSHOP`` if set, else ``data/workshop/`` beside the package
    (gitignored).
    """
    env = os.environ.get(WORKSHOP_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "data" / "workshop"


def latest_agreed(folder=None, name: str = "agreed") -> JourneyMap | None:
    """The highest saved version ``<name>-v<N>.yml`` in the workshop folder, if any."""
    folder = Path(folder) if folder else workshop_dir()
    found = []
    for p in folder.glob(f"{name}-v*.yml"):
        m = re.fullmatch(rf"{re.escape(name)}-v(\d+)\.yml", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return load_map(max(found)[1]) if found else None


class WorkshopSession:
    """The agreed map being edited in a workshop, saved to a draft file after every edit.

    On start the draft ``<folder>/<name>.draft.yml`` is read if it exists (so nothing
    typed is lost when the kernel restarts); otherwise the agreed map starts as
    :func:`merge_maps` of the two teams' maps. A draft that no longer loads is moved
    aside (``.broken-<n>``) and reported in :attr:`notice`, never silently dropped.

    Parameters
    ----------
    a, b : JourneyMap or what :func:`load_map` accepts
        The two teams' maps (default: the demo's Product and CS maps).
    folder : str or Path, optional
        Default :func:`workshop_dir`.
    name : str
        Stem of the draft and of the saved versions.
    """

    def __init__(self, a=None, b=None, folder=None, name: str = "agreed"):
        if a is None or b is None:
            da, db = default_maps()
            a, b = a if a is not None else da, b if b is not None else db
        self.a, self.b = load_map(a), load_map(b)
        self.folder = Path(folder) if folder else workshop_dir()
        self.name = slug(name)
        self.draft_path = self.folder / f"{self.name}.draft.yml"
        self.comparison = compare_maps(self.a, self.b)
        self.notice = ""
        self.saved_path: Path | None = None
        self.history: list[JourneyMap] = []
        self.map = self._read_draft() or merge_maps(self.a, self.b)

    def _read_draft(self) -> JourneyMap | None:
        if not self.draft_path.exists():
            return None
        try:
            return load_map(self.draft_path)
        except JourneyMapError as exc:
            k = 1
            while self.draft_path.with_name(f"{self.draft_path.name}.broken-{k}").exists():
                k += 1
            aside = self.draft_path.with_name(f"{self.draft_path.name}.broken-{k}")
            self.draft_path.replace(aside)
            self.notice = f"The draft could not be read and was moved to {aside}: {exc}"
            return None

    def reload(self) -> JourneyMap:
        """Re-read the draft (another kernel may have saved edits)."""
        got = self._read_draft()
        if got is not None:
            self.map = got
        return self.map

    def autosave(self) -> Path:
        """Write the draft now."""
        return save_map(self.map, self.draft_path)

    def apply(self, edit, *args, **kwargs) -> JourneyMap:
        """Apply an edit function (e.g. :func:`rename_stage`) and autosave."""
        new = edit(self.map, *args, **kwargs)
        self.history.append(self.map)
        self.map = new
        self.autosave()
        return new

    def undo(self) -> JourneyMap:
        """Undo the last edit (and autosave)."""
        if self.history:
            self.map = self.history.pop()
            self.autosave()
        return self.map

    def save(self) -> Path:
        """Save the agreed map as the next version ``<name>-v<N>.yml``; keep the draft."""
        path, saved = save_version(self.map, self.folder, self.name)
        self.map = saved
        self.autosave()
        self.saved_path = path
        return path
