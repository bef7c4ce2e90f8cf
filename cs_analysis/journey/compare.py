"""Comparing two journey maps (stages matched by name or alias) and merging them."""

from __future__ import annotations

import dataclasses
import html as _html
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cs_analysis.i18n import translator
from cs_analysis.journey.maps import (
    JourneyMap,
    Stage,
    load_map,
    merge_stages,
    norm_name,
    replace_stages,
)
from cs_analysis.results import Result


# ======================================================================================
# Comparing two maps
# ======================================================================================
@dataclass(frozen=True)
class MapComparison(Result):
    """Result of :func:`compare_maps`.

    Attributes
    ----------
    a, b : JourneyMap
    stages : pandas.DataFrame
        One row per stage of either map, in a merged order: ``key`` (a's name when
        matched), ``a_name`` / ``b_name`` ('' when missing), ``a_position`` /
        ``b_position`` (1-based; NA when missing), ``status`` (``both``, ``only_a``,
        ``only_b``), ``matched_by`` (``name`` or ``alias``), ``order_conflict``,
        ``success_a`` / ``success_b`` / ``success_differs``, ``goal_differs``,
        ``owner_a`` / ``owner_b``, ``signal_a`` / ``signal_b`` / ``signal_differs``.
    persona : pandas.DataFrame
        ``field``, ``a``, ``b``, ``differs``: the persona fields side by side.
    """

    a: JourneyMap
    b: JourneyMap
    stages: pd.DataFrame
    persona: pd.DataFrame

    title = "Two journey maps compared"

    @property
    def only_a(self) -> list[str]:
        """Stages only the first map has."""
        return self.stages.loc[self.stages["status"] == "only_a", "a_name"].tolist()

    @property
    def only_b(self) -> list[str]:
        """Stages only the second map has."""
        return self.stages.loc[self.stages["status"] == "only_b", "b_name"].tolist()

    @property
    def order_conflicts(self) -> list[str]:
        """Matched stages whose position disagrees (the fewest to move to agree)."""
        return self.stages.loc[self.stages["order_conflict"], "key"].tolist()

    @property
    def success_differs(self) -> list[str]:
        """Matched stages with different success definitions."""
        return self.stages.loc[self.stages["success_differs"], "key"].tolist()

    def summary(self, lang: str | None = None) -> str:
        """The differences in one paragraph (``lang``: its language, default English)."""
        _ = translator(lang)
        ta, tb = _(self.a.team), _(self.b.team)
        parts = [_("{n} stages in both maps", n=(self.stages["status"] == "both").sum())]
        if self.only_a:
            parts.append(_("only {team}: {stages}", team=ta, stages=", ".join(self.only_a)))
        if self.only_b:
            parts.append(_("only {team}: {stages}", team=tb, stages=", ".join(self.only_b)))
        if self.order_conflicts:
            parts.append(_("order differs for {stages}",
                           stages=", ".join(self.order_conflicts)))
        if self.success_differs:
            parts.append(_("success defined differently for {stages}",
                           stages=", ".join(self.success_differs)))
        return _("; ").join(parts) + _(".")

    def html(self, lang: str | None = None) -> str:
        """The two maps side by side, differences highlighted (escaped HTML)."""
        return comparison_html(self, lang=lang)

    def _repr_html_(self) -> str:
        return self.html()


def _lis_keep(seq: Sequence[int]) -> set[int]:
    """Indices of one longest strictly increasing subsequence of ``seq``."""
    n = len(seq)
    if not n:
        return set()
    best = [1] * n
    prev = [-1] * n
    for i in range(n):
        for j in range(i):
            if seq[j] < seq[i] and best[j] + 1 > best[i]:
                best[i], prev[i] = best[j] + 1, j
    i = int(np.argmax(best))
    keep = set()
    while i >= 0:
        keep.add(i)
        i = prev[i]
    return keep


def compare_maps(a, b) -> MapComparison:
    """Match two maps' stages and list how they differ.

    Stages match when their names, or a name and a declared alias, are equal ignoring
    case, spaces, ``_`` and ``-`` (each stage matches at most one; the first map's order
    decides ties). **Order conflicts** are the fewest matched stages that would have to
    move for both maps to list the matched stages in the same order (the stages outside
    a longest common ordering). **Success differs** when both maps define success for a
    matched stage and the texts differ (ignoring case and spacing); likewise the customer
    goal and the data signal.

    Parameters
    ----------
    a, b : JourneyMap or what :func:`load_map` accepts

    Returns
    -------
    MapComparison
    """
    a, b = load_map(a), load_map(b)
    pairs: list[tuple[int, int, str]] = []
    used_b: set[int] = set()
    for i, sa in enumerate(a.stages):
        for j, sb in enumerate(b.stages):
            if j in used_b:
                continue
            if norm_name(sa.name) == norm_name(sb.name):
                how = "name"
            elif set(sa.names()) & set(sb.names()):
                how = "alias"
            else:
                continue
            pairs.append((i, j, how))
            used_b.add(j)
            break
    keep = _lis_keep([j for _, j, _ in pairs])
    conflict = {pairs[k][0] for k in range(len(pairs)) if k not in keep}
    match_a = {i: (j, how) for i, j, how in pairs}
    matched_b = {j: i for i, j, _ in pairs}

    def txt(x) -> str:
        return re.sub(r"\s+", " ", x or "").strip().casefold()

    def differs(x: str, y: str) -> bool:
        return bool(x) and bool(y) and txt(x) != txt(y)

    def sig(s: Stage | None) -> str:
        return s.signal.describe() if s is not None and s.signal is not None else ""

    rows = []

    def row(sa: Stage | None, ia, sb: Stage | None, ib, how: str) -> dict:
        status = "both" if sa and sb else ("only_a" if sa else "only_b")
        return {
            "key": (sa or sb).name, "a_name": sa.name if sa else "",
            "b_name": sb.name if sb else "",
            "a_position": ia + 1 if sa else pd.NA, "b_position": ib + 1 if sb else pd.NA,
            "status": status, "matched_by": how, "order_conflict": ia in conflict if sa else False,
            "success_a": sa.success if sa else "", "success_b": sb.success if sb else "",
            "success_differs": bool(sa and sb and differs(sa.success, sb.success)),
            "goal_differs": bool(sa and sb and differs(sa.customer_goal, sb.customer_goal)),
            "owner_a": sa.owner if sa else "", "owner_b": sb.owner if sb else "",
            "signal_a": sig(sa), "signal_b": sig(sb),
            "signal_differs": bool(sa and sb and differs(sig(sa), sig(sb))),
        }

    # merged order: walk a; before each a-stage, emit b-only stages that precede its match
    j_next = 0
    for i, sa in enumerate(a.stages):
        if i in match_a:
            j, how = match_a[i]
            if i not in conflict:
                while j_next < j:
                    if j_next not in matched_b:
                        rows.append(row(None, None, b.stages[j_next], j_next, ""))
                    j_next += 1
                j_next = max(j_next, j + 1)
            rows.append(row(sa, i, b.stages[j], j, how))
        else:
            rows.append(row(sa, i, None, None, ""))
    for j in range(j_next, len(b.stages)):
        if j not in matched_b:
            rows.append(row(None, None, b.stages[j], j, ""))
    emitted = {r["b_name"] for r in rows if r["b_name"]}
    for j, sb in enumerate(b.stages):  # b-only stages skipped above (before conflicts)
        if j not in matched_b and sb.name not in emitted:
            rows.append(row(None, None, sb, j, ""))
    stages = pd.DataFrame(rows)
    for c in ("a_position", "b_position"):
        stages[c] = stages[c].astype("Int64")
    pa, pb = a.persona, b.persona
    prow = []
    for f in ("name", "role", "domain", "segment", "who", "goals", "pains", "success",
              "decision_style"):
        va, vb = getattr(pa, f), getattr(pb, f)
        ta = "; ".join(va) if isinstance(va, tuple) else (va or "")
        tb = "; ".join(vb) if isinstance(vb, tuple) else (vb or "")
        prow.append({"field": f, "a": ta, "b": tb, "differs": txt(ta) != txt(tb)})
    return MapComparison(a, b, stages, pd.DataFrame(prow))


def escape_text(x) -> str:
    """HTML-escaped text of a value (None and missing values: empty)."""
    return _html.escape("" if x is None or x is pd.NA else str(x), quote=True)


_e = escape_text


_COMPARE_CSS = """<style>
.cs-journey-compare { border-collapse: collapse; width: 100%; font-size: 13px; }
.cs-journey-compare th, .cs-journey-compare td { border: 1px solid #dde3ea; padding: 6px 8px;
  vertical-align: top; text-align: left; }
.cs-journey-compare th { background: #f3f6f9; }
.cs-diff-only { background: #fff4e0; }
.cs-diff-order { background: #fde8e8; }
.cs-diff-text { background: #fffbd6; }
.cs-journey-legend span { display: inline-block; padding: 2px 8px; margin-right: 8px;
  border-radius: 3px; font-size: 12px; }
.cs-journey-stage-name { font-weight: 600; }
.cs-journey-signal { color: #52606d; font-size: 12px; }
</style>"""


def comparison_html(comparison: MapComparison, *, lang: str | None = None) -> str:
    """Two maps side by side: missing stages, order conflicts and differing texts marked.

    Every text is escaped. Rows carry ``data-status`` and CSS classes
    ``cs-diff-only`` / ``cs-diff-order`` / ``cs-diff-text`` for tests and styling.
    """
    _ = translator(lang)
    a, b = comparison.a, comparison.b
    only, order = _e(_("only one team")), _e(_("order differs"))
    differ = _e(_("success / goal / signal differ"))
    success_label, no_signal = _e(_("Success:")), _("no data signal")
    owner_word, persona = _("owner"), _e(_("Persona"))
    head = (f'<div class="cs-journey-legend"><span class="cs-diff-only">{only}</span>'
            f'<span class="cs-diff-order">{order}</span>'
            f'<span class="cs-diff-text">{differ}</span></div>'
            f'<p class="cs-journey-summary">{_e(comparison.summary(lang))}</p>')
    rows = []
    for r in comparison.stages.itertuples(index=False):
        cls = []
        if r.status != "both":
            cls.append("cs-diff-only")
        if r.order_conflict:
            cls.append("cs-diff-order")

        def cell(name, pos, goal_text, success, signal, owner, mark_text):
            if not name:
                return '<td class="cs-diff-only">—</td>'
            tcls = ' class="cs-diff-text"' if mark_text else ""
            return (f'<td{tcls}><div class="cs-journey-stage-name">{_e(pos)}. {_e(name)}</div>'
                    f'<div>{_e(goal_text)}</div><div><b>{success_label}</b> {_e(success)}</div>'
                    f'<div class="cs-journey-signal">{_e(signal or no_signal)}'
                    f'{" · " + _e(owner_word) + " " + _e(owner) if owner else ""}</div></td>')

        sa = a.stage(r.a_name) if r.a_name else None
        sb = b.stage(r.b_name) if r.b_name else None
        mark = bool(r.success_differs or r.goal_differs or r.signal_differs)
        rows.append(
            f'<tr class="{" ".join(cls)}" data-status="{_e(r.status)}" '
            f'data-stage="{_e(r.key)}">'
            + cell(r.a_name, r.a_position, sa.customer_goal if sa else "", r.success_a,
                   r.signal_a, r.owner_a, mark)
            + cell(r.b_name, r.b_position, sb.customer_goal if sb else "", r.success_b,
                   r.signal_b, r.owner_b, mark)
            + "</tr>")
    prow = "".join(
        f'<tr><th>{_e(p.field)}</th><td{" class=cs-diff-text" if p.differs else ""}>'
        f'{_e(p.a)}</td><td{" class=cs-diff-text" if p.differs else ""}>{_e(p.b)}</td></tr>'
        for p in comparison.persona.itertuples(index=False))
    return (_COMPARE_CSS + '<div class="cs-journey-comparison">' + head
            + f'<table class="cs-journey-compare"><thead><tr><th>{_e(a.title)} '
              f'({_e(a.team)})</th><th>{_e(b.title)} ({_e(b.team)})</th></tr></thead>'
            + f'<tbody>{"".join(rows)}</tbody></table>'
            + f'<h4>{persona}</h4><table class="cs-journey-compare"><thead><tr><th></th>'
              f'<th>{_e(a.team)}</th><th>{_e(b.team)}</th></tr></thead>'
              f'<tbody>{prow}</tbody></table></div>')


def merge_maps(a, b, *, title: str = "Agreed journey", team: str = "shared") -> JourneyMap:
    """A starting point for the agreed map: every stage of both, matched ones once.

    Order: the first map's, with each stage only the second map has placed after the
    stage it follows there. Matched stages keep the first map's name (the other name
    becomes an alias), join differing texts with `` / ``, and keep the first signal
    (else the second). The persona is the first map's; goals of both (first wins a name).
    """
    cmp = compare_maps(a, b)
    a, b = cmp.a, cmp.b
    stages: list[Stage] = []
    for r in cmp.stages.itertuples(index=False):
        if r.status == "both":
            tmp = JourneyMap("tmp", "tmp", a.persona, (a.stage(r.a_name), b.stage(r.b_name)))
            tmp = replace_stages(tmp, [a.stage(r.a_name),
                                        dataclasses.replace(b.stage(r.b_name),
                                                            name="\0" + r.b_name, aliases=())])
            merged = merge_stages(tmp, r.a_name, "\0" + r.b_name).stages[0]
            aliases = [x for x in merged.aliases if not x.startswith("\0")]
            for n in (r.b_name, *b.stage(r.b_name).aliases):
                if norm_name(n) not in [norm_name(x) for x in (merged.name, *aliases)]:
                    aliases.append(n)
            stages.append(dataclasses.replace(merged, aliases=tuple(aliases)))
        elif r.status == "only_a":
            stages.append(a.stage(r.a_name))
        else:
            stages.append(b.stage(r.b_name))
    goals = list(a.goals) + [g for g in b.goals
                             if norm_name(g.name) not in [norm_name(x.name) for x in a.goals]]
    return JourneyMap(title=title, team=team, persona=a.persona, stages=tuple(stages),
                      goals=tuple(goals), version=1,
                      description=f"Merged from {a.title} ({a.team}) and {b.title} ({b.team}).")


