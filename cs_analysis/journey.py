"""Journey alignment: journey maps, their comparison, stage flow, personas, stakeholders.

CS and Product usually hold different pictures of the ideal customer and their path to
success: Product maps feature use (set-up → feature A → feature B), CS maps what happens
between those steps and after them. This module supports the workshop where both teams
agree on one persona, one journey and at least one shared goal metric, and the review of
that metric afterwards.

Public API
----------
- Journey maps as YAML files (format documented in ``data/journeys/README.md``):
  :func:`load_map`, :func:`dump_map`, :func:`save_map`, :func:`save_version`;
  :class:`JourneyMap`, :class:`Persona`, :class:`Stage`, :class:`Signal`, :class:`Goal`,
  :class:`JourneyMapError`. Editing (pure, each returns a new map): :func:`rename_stage`,
  :func:`move_stage`, :func:`merge_stages`, :func:`add_stage`, :func:`remove_stage`,
  :func:`set_signal`, :func:`add_goal`, :func:`remove_goal`, :func:`merge_maps`.
- :func:`compare_maps` → :class:`MapComparison` (stages matched by name or alias, what
  only one team has, order disagreements, different success definitions; ``.html()``
  renders the two maps side by side with the differences highlighted).
- :func:`stage_flow`: per data-signal stage, accounts reaching it, conversion from the
  previous stage, Kaplan-Meier median and spread of the days between them, accounts
  waiting, stalled and churned in between.
- :func:`persona_evidence`: survey themes, curated voices and the typical onboarding path
  of a persona's segment and role (from :mod:`cs_analysis.surveys` and
  :mod:`cs_analysis.onboarding`).
- :func:`stakeholder_map` (people at one account, with flags) and
  :func:`stakeholder_coverage` (which role / domain gaps go with churn).
- :func:`goal_progress`: the agreed goal metrics per period against their targets.
- :func:`handout_html` / :func:`export_handout`: a printable workshop handout.
- :class:`WorkshopSession` (the agreed map being edited, autosaved to a draft file under
  :func:`workshop_dir`) and the dashboards :class:`JourneyWorkshopDashboard` and
  :class:`SharedGoalsDashboard`.

Definitions
-----------
- A stage is **reached** at the first moment its data signal holds: the first row of a
  milestone; the N-th event of an event set (within D consecutive days if given), or the
  K-th distinct active user (these three computed by
  :func:`cs_analysis.onboarding.time_to_value`, which this module reuses); the first
  response to a survey at a touchpoint (with at least ``min_score`` if given). Only
  activity from the account's ``signup_date`` up to the as-of date counts, and only
  while the account is a customer: a signal dated on or after the account's churn date
  (:func:`cs_analysis.retention.account_lifetimes`) does not count.
- **Conversion** from stage A to the next signal stage B = accounts that reached both /
  accounts that reached A (for the first signal stage, A is the signup).
- **Days from A to B**: whole days between the dates A and B were reached (0 when B came
  first). Accounts that reached A but not B are censored at their churn date, or at the
  as-of date when still customers; the median and quartiles come from the Kaplan-Meier
  estimate (smallest t with S(t) <= 1 - p), never from the reached accounts only.
- **Waiting** at B: reached A, not B, still a customer. **Stalled**: waiting for more than
  ``stall_days`` since reaching A. **Churned before** B: reached A, churned before B.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html as _html
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cs_analysis.config import YamlContext, read_text, read_yaml, short
from cs_analysis.workspace import _to_date

__all__ = [
    "CHAMPION_ROLES",
    "DECISION_STYLES",
    "DOMAINS",
    "GOAL_METRICS",
    "KEY_ROLES",
    "LAYERS",
    "ROLES",
    "SIGNAL_KINDS",
    "WORKSHOP_ENV",
    "Goal",
    "JourneyMap",
    "JourneyMapError",
    "MapComparison",
    "Persona",
    "PersonaEvidence",
    "Signal",
    "Stage",
    "StakeholderMap",
    "WorkshopSession",
    "add_goal",
    "add_stage",
    "compare_maps",
    "default_maps",
    "dump_map",
    "export_handout",
    "goal_progress",
    "journey_reach",
    "handout_html",
    "journeys_dir",
    "load_map",
    "merge_maps",
    "merge_stages",
    "move_stage",
    "persona_evidence",
    "remove_goal",
    "remove_stage",
    "rename_stage",
    "save_map",
    "save_version",
    "set_signal",
    "slug",
    "stage_flow",
    "stakeholder_coverage",
    "stakeholder_map",
    "workshop_dir",
]

#: Roles of people at a customer (contract ``stakeholders.role``).
ROLES = ("executive sponsor", "decision maker", "owner", "heavy user", "admin")
#: Business vs technical side of a person or persona.
DOMAINS = ("business", "technical")
#: How a customer decides.
DECISION_STYLES = ("top_down", "bottom_up", "balanced")
#: Layers a shared goal metric can come from.
LAYERS = ("adoption", "outcome", "experience")
#: Kinds of a stage's data signal.
#: What a journey map file is called in messages.
_LABEL = "journey map"
SIGNAL_KINDS = ("milestone", "events", "active_users", "survey")
#: Roles whose positive, present holder counts as a champion.
CHAMPION_ROLES = ("executive sponsor", "decision maker", "owner")
#: Roles whose departure is a key-person departure (churn risk).
KEY_ROLES = ("executive sponsor", "owner")
#: Environment variable naming the workshop folder (drafts, saved maps, handouts).
WORKSHOP_ENV = "CS_ANALYSIS_WORKSHOP"
#: Goal metrics: what each measures, per period (shown beside each chart).
GOAL_METRICS: dict[str, str] = {
    "stage_share": (
        "Share of the accounts signing up in the period that reached the stage within "
        "`within_days` days of signup (accounts that churned first count as not reached). "
        "A cohort is shown once `within_days` have passed since its period's end."),
    "active_share": (
        "Share of the accounts paying on the period's last day that had at least "
        "`at_least` events (of `events`; any event when not given) during the period."),
    "nps": ("NPS of the period's responses: (promoters - detractors) / responses x 100, "
            "one response per respondent per quarter."),
    "csat": "CSAT of the period's responses: share of responses in the top-2 box.",
    "ces": "CES of the period's responses: mean score (higher = easier).",
}
_DIRECTIONS = ("at_least", "at_most")
_SMALL = 30


# ======================================================================================
# Journey maps: data classes
# ======================================================================================
class JourneyMapError(ValueError):
    """A journey map file is malformed; the message names file, line, key and value."""


@dataclass(frozen=True)
class Persona:
    """Who the journey is for.

    Attributes
    ----------
    name : str
        A short handle ("Operations lead at a growing company").
    role : str
        Stakeholder role (one of :data:`ROLES`).
    domain : str
        ``business`` or ``technical`` (e.g. CTO / VPoE vs business owner).
    segment : tuple of str
        Account segments the persona belongs to (empty: every segment).
    who : str
        A sentence describing them.
    goals, pains : tuple of str
        What they want and what gets in the way.
    success : str
        Success in their own words.
    decision_style : str, optional
        ``top_down``, ``bottom_up`` or ``balanced``.
    """

    name: str
    role: str
    domain: str
    segment: tuple[str, ...] = ()
    who: str = ""
    goals: tuple[str, ...] = ()
    pains: tuple[str, ...] = ()
    success: str = ""
    decision_style: str | None = None


@dataclass(frozen=True)
class Signal:
    """The data signal that says an account reached a stage.

    Attributes
    ----------
    kind : str
        ``milestone`` (an ``onboarding_milestones`` row), ``events`` (``at_least`` usage
        events of ``events``, within ``within_days`` consecutive days if given),
        ``active_users`` (``at_least`` distinct users with an event of ``events``) or
        ``survey`` (a response to ``survey`` at ``touchpoint``, with at least
        ``min_score`` if given).
    """

    kind: str
    milestone: str | None = None
    events: tuple[str, ...] = ()
    at_least: int = 1
    within_days: int | None = None
    survey: str | None = None
    touchpoint: str | None = None
    min_score: float | None = None

    def describe(self) -> str:
        """The signal in words."""
        if self.kind == "milestone":
            return f"milestone {self.milestone}"
        what = " / ".join(self.events) if self.events else "any"
        if self.kind == "events":
            noun = "event" if self.at_least == 1 else "events"
            text = f"{self.at_least} {what} {noun}"
            return text + (f" within {self.within_days} days" if self.within_days else "")
        if self.kind == "active_users":
            return f"{self.at_least} active users" + (f" ({what})" if self.events else "")
        text = f"{self.survey} response"
        if self.touchpoint:
            text += f" at {self.touchpoint}"
        if self.min_score is not None:
            text += f" scoring {self.min_score:g}+"
        return text

    def to_dict(self) -> dict:
        """The signal as written in a map file."""
        if self.kind == "milestone":
            return {"milestone": self.milestone}
        if self.kind in ("events", "active_users"):
            out: dict = ({"events": list(self.events) or "any"} if self.kind == "events"
                         else {"active_users": self.at_least})
            if self.kind == "active_users" and self.events:
                out["events"] = list(self.events)
            if self.kind == "events" and self.at_least != 1:
                out["at_least"] = self.at_least
            if self.within_days is not None:
                out["within_days"] = self.within_days
            return out
        out = {"survey": self.survey}
        if self.touchpoint is not None:
            out["touchpoint"] = self.touchpoint
        if self.min_score is not None:
            out["min_score"] = self.min_score
        return out


@dataclass(frozen=True)
class Stage:
    """One stage of a journey.

    Attributes
    ----------
    name : str
        The stage's name, unique in the map (case and spacing ignored).
    customer_goal : str
        What the customer wants to achieve in this stage.
    success : str
        What success looks like at the end of it.
    owner : str
        Team owning the stage (``product``, ``cs``, ``shared``, ...).
    signal : Signal, optional
        How the data tell that an account reached it.
    aliases : tuple of str
        Other names (e.g. the other team's word), used to match stages across maps.
    notes : str
    """

    name: str
    customer_goal: str = ""
    success: str = ""
    owner: str = ""
    signal: Signal | None = None
    aliases: tuple[str, ...] = ()
    notes: str = ""

    def names(self) -> list[str]:
        """Normalised name and aliases (for matching)."""
        return [_norm(n) for n in (self.name, *self.aliases)]


@dataclass(frozen=True)
class Goal:
    """A shared goal metric with a target.

    Attributes
    ----------
    name : str
    layer : str
        ``adoption``, ``outcome`` or ``experience``.
    metric : str
        One of :data:`GOAL_METRICS`.
    target : float
        Shares as 0-1, NPS on -100..100, CES on its scale.
    direction : str
        ``at_least`` (higher is better) or ``at_most``.
    stage : str, optional
        Stage of ``stage_share`` (a stage of the map with a data signal).
    within_days : int, optional
        Days of ``stage_share``.
    events : tuple of str
        Event names of ``active_share`` (empty: any event).
    at_least : int
        Events of ``active_share``.
    description : str
    """

    name: str
    layer: str
    metric: str
    target: float
    direction: str = "at_least"
    stage: str | None = None
    within_days: int | None = None
    events: tuple[str, ...] = ()
    at_least: int = 1
    description: str = ""

    def definition(self) -> str:
        """The goal's definition in words (shown beside its chart)."""
        text = GOAL_METRICS[self.metric]
        text = text.replace("`within_days`", str(self.within_days))
        text = text.replace("`at_least`", str(self.at_least))
        text = text.replace("`events`", ", ".join(self.events) if self.events else "any")
        if self.stage:
            text = text.replace("the stage", f"the stage '{self.stage}'")
        sign = ">=" if self.direction == "at_least" else "<="
        return f"{text} Target: {sign} {format_target(self.metric, self.target)}."


def format_target(metric: str, value) -> str:
    """A goal value as shown (shares as percentages)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric in ("stage_share", "active_share", "csat"):
        return f"{100 * value:.0f}%"
    if metric == "nps":
        return f"{value:+.0f}"
    return f"{value:.2f}"


@dataclass(frozen=True)
class JourneyMap:
    """A team's (or the agreed) journey map: persona, ordered stages, goals.

    Attributes
    ----------
    title : str
    team : str
        Who drew it (``product``, ``cs``, ``shared``).
    version : int
    persona : Persona
    stages : tuple of Stage
        In the order customers go through them.
    goals : tuple of Goal
    description : str
    source : str
        Where the map was read from (not part of equality).
    """

    title: str
    team: str
    persona: Persona
    stages: tuple[Stage, ...]
    version: int = 1
    goals: tuple[Goal, ...] = ()
    description: str = ""
    source: str = field(default="<map>", compare=False)

    @property
    def stage_names(self) -> list[str]:
        """Stage names in order."""
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (or with that alias)."""
        return self.stages[self.index(name)]

    def index(self, name: str) -> int:
        """Position of the stage called ``name`` (or with that alias)."""
        key = _norm(name)
        for i, s in enumerate(self.stages):
            if key in s.names():
                return i
        raise JourneyMapError(f"journey map {self.source}: no stage {name!r}; the stages "
                              f"are: {', '.join(self.stage_names)}")

    def to_dict(self) -> dict:
        """The map as written in a file (defaults left out)."""
        p = self.persona
        persona: dict = {"name": p.name, "role": p.role, "domain": p.domain}
        if p.segment:
            persona["segment"] = list(p.segment)
        for key in ("who",):
            if getattr(p, key):
                persona[key] = getattr(p, key)
        if p.goals:
            persona["goals"] = list(p.goals)
        if p.pains:
            persona["pains"] = list(p.pains)
        if p.success:
            persona["success"] = p.success
        if p.decision_style:
            persona["decision_style"] = p.decision_style
        out: dict = {"title": self.title, "team": self.team, "version": self.version}
        if self.description:
            out["description"] = self.description
        out["persona"] = persona
        stages = []
        for s in self.stages:
            d: dict = {"name": s.name}
            if s.aliases:
                d["aliases"] = list(s.aliases)
            for key in ("customer_goal", "success", "owner"):
                if getattr(s, key):
                    d[key] = getattr(s, key)
            if s.signal is not None:
                d["signal"] = s.signal.to_dict()
            if s.notes:
                d["notes"] = s.notes
            stages.append(d)
        out["stages"] = stages
        if self.goals:
            goals = []
            for g in self.goals:
                d = {"name": g.name, "layer": g.layer, "metric": g.metric, "target": g.target}
                if g.direction != "at_least":
                    d["direction"] = g.direction
                if g.stage is not None:
                    d["stage"] = g.stage
                if g.within_days is not None:
                    d["within_days"] = g.within_days
                if g.events:
                    d["events"] = list(g.events)
                if g.at_least != 1:
                    d["at_least"] = g.at_least
                if g.description:
                    d["description"] = g.description
                goals.append(d)
            out["goals"] = goals
        return out

    def fingerprint(self) -> str:
        """A short text that changes whenever the map's content changes."""
        import hashlib

        return hashlib.sha1(dump_map(self).encode("utf-8")).hexdigest()[:16]


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).casefold()


# ======================================================================================
# Reading and writing map files
# ======================================================================================
_TOP_KEYS = ("title", "team", "version", "description", "persona", "stages", "goals")
_PERSONA_KEYS = ("name", "role", "domain", "segment", "who", "goals", "pains", "success",
                 "decision_style")
_STAGE_KEYS = ("name", "aliases", "customer_goal", "success", "owner", "signal", "notes")
_SIGNAL_KEYS = ("milestone", "events", "active_users", "at_least", "within_days", "survey",
                "touchpoint", "min_score")
_GOAL_KEYS = ("name", "layer", "metric", "target", "direction", "stage", "within_days",
              "events", "at_least", "description")


def _ctx(source: str) -> YamlContext:
    """Context for a map given in code (no file, no line numbers)."""
    return YamlContext(_LABEL, source, {}, {}, JourneyMapError)


def load_map(source) -> JourneyMap:
    """Read and check a journey map.

    Parameters
    ----------
    source : str, Path, mapping or JourneyMap
        A YAML file (format: ``data/journeys/README.md``), its content as a mapping, or
        a map already loaded.

    Returns
    -------
    JourneyMap

    Raises
    ------
    JourneyMapError
        Naming the file, the line, the key and the value, and what was expected, for:
        a missing or unreadable file, invalid YAML, a top level that is not a mapping,
        unknown keys (anywhere), missing required keys (``title``, ``team``,
        ``persona``, ``stages``; persona ``name`` / ``role`` / ``domain``; stage
        ``name``; goal ``name`` / ``layer`` / ``metric`` / ``target``), text fields that
        are not text, lists of text that are not, an unknown persona role, domain or
        decision style, a version that is not a whole number >= 1, no stages, duplicate
        stage names or aliases, a signal with none or several kinds, event names that
        are not a list of text, ``at_least`` / ``within_days`` / ``active_users`` that
        are not whole numbers >= 1, a ``min_score`` that is not a number, keys that do
        not belong to the signal's kind, an unknown goal layer, metric or direction, a
        target that is not a number, a ``stage_share`` goal without a stage with a data
        signal or without ``within_days``, duplicate goal names.
    """
    if isinstance(source, JourneyMap):
        return source
    if isinstance(source, Mapping):
        return _parse(dict(source), _ctx("<mapping>"))
    path = Path(source)
    return _loads(read_text(path, _LABEL, JourneyMapError), str(path))


def _loads(text: str, source: str) -> JourneyMap:
    return _parse(*read_yaml(text, _LABEL, source, JourneyMapError))


def _check_keys(raw: Mapping, allowed: Sequence[str], path: tuple, ctx: YamlContext, what: str):
    for k in raw:
        if k not in allowed:
            raise ctx.error(path + (k,), f"unknown key {k!r} in {what}; expected one of "
                                         f"{', '.join(allowed)}", key_line=True)


def _text(raw: Mapping, key: str, path: tuple, ctx: YamlContext, *, required: bool = False,
          what: str = "") -> str:
    if key not in raw or raw[key] is None:
        if required:
            raise ctx.error(path, f"{what} has no `{key}` (required)")
        return ""
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ctx.error(path + (key,), f"`{key}` must be text, got {short(value)}")
    value = str(value).strip()
    if required and not value:
        raise ctx.error(path + (key,), f"`{key}` must not be empty")
    return value


def _texts(raw: Mapping, key: str, path: tuple, ctx: YamlContext, *, single: bool = False
           ) -> tuple[str, ...]:
    if key not in raw or raw[key] is None:
        return ()
    value = raw[key]
    if single and isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ctx.error(path + (key,), f"`{key}` must be a list of non-empty texts, got "
                                       f"{short(value)}")
    return tuple(v.strip() for v in value)


def _whole(raw: Mapping, key: str, path: tuple, ctx: YamlContext, default=None):
    if key not in raw or raw[key] is None:
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ctx.error(path + (key,), f"`{key}` must be a whole number >= 1, got "
                                       f"{short(value)}")
    return int(value)


def _number(raw: Mapping, key: str, path: tuple, ctx: YamlContext, *, required=False, what=""):
    if key not in raw or raw[key] is None:
        if required:
            raise ctx.error(path, f"{what} has no `{key}` (required)")
        return None
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ctx.error(path + (key,), f"`{key}` must be a number, got {short(value)}")
    return float(value) if isinstance(value, float) else int(value)


def _choice(raw: Mapping, key: str, allowed: Sequence[str], path: tuple, ctx: YamlContext, *,
            required: bool = False, what: str = "") -> str | None:
    value = _text(raw, key, path, ctx, required=required, what=what)
    if not value:
        return None
    if value not in allowed:
        raise ctx.error(path + (key,), f"`{key}` {value!r} is not one of "
                                       f"{', '.join(allowed)}")
    return value


def _parse(data, ctx: YamlContext) -> JourneyMap:
    if not isinstance(data, Mapping):
        raise ctx.error((), "expected a mapping with `title`, `team`, `persona` and `stages` "
                            f"at the top level, got {type(data).__name__}: {short(data)}")
    _check_keys(data, _TOP_KEYS, (), ctx, "the map")
    title = _text(data, "title", (), ctx, required=True, what="the map")
    team = _text(data, "team", (), ctx, required=True, what="the map")
    version = _whole(data, "version", (), ctx, default=1)
    description = _text(data, "description", (), ctx)
    if "persona" not in data or data["persona"] is None:
        raise ctx.error((), "the map has no `persona` (required)")
    persona = _parse_persona(data["persona"], ("persona",), ctx)
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ctx.error(("stages",) if "stages" in data else (),
                        "`stages` must be a non-empty list of stages, got "
                        f"{short(raw_stages)}")
    stages: list[Stage] = []
    seen: dict[str, tuple[str, int]] = {}
    for i, raw in enumerate(raw_stages):
        stage = _parse_stage(raw, ("stages", i), ctx)
        for n in stage.names():
            if n in seen:
                other, j = seen[n]
                raise ctx.error(("stages", i, "name"),
                                f"stage {stage.name!r}: the name or alias {n!r} is already "
                                f"used by stage {other!r} (stages[{j}]); names and aliases "
                                "must be unique")
            seen[n] = (stage.name, i)
        stages.append(stage)
    goals: list[Goal] = []
    raw_goals = data.get("goals")
    if raw_goals is not None:
        if not isinstance(raw_goals, list):
            raise ctx.error(("goals",), f"`goals` must be a list, got {short(raw_goals)}")
        names = set()
        for i, raw in enumerate(raw_goals):
            goal = _parse_goal(raw, ("goals", i), stages, ctx)
            if _norm(goal.name) in names:
                raise ctx.error(("goals", i, "name"), f"goal name {goal.name!r} is used twice")
            names.add(_norm(goal.name))
            goals.append(goal)
    return JourneyMap(title=title, team=team, version=version, persona=persona,
                      stages=tuple(stages), goals=tuple(goals), description=description,
                      source=ctx.source)


def _parse_persona(raw, path: tuple, ctx: YamlContext) -> Persona:
    if not isinstance(raw, Mapping):
        raise ctx.error(path, f"`persona` must be a mapping, got {short(raw)}")
    _check_keys(raw, _PERSONA_KEYS, path, ctx, "the persona")
    return Persona(
        name=_text(raw, "name", path, ctx, required=True, what="the persona"),
        role=_choice(raw, "role", ROLES, path, ctx, required=True, what="the persona"),
        domain=_choice(raw, "domain", DOMAINS, path, ctx, required=True, what="the persona"),
        segment=_texts(raw, "segment", path, ctx, single=True),
        who=_text(raw, "who", path, ctx),
        goals=_texts(raw, "goals", path, ctx),
        pains=_texts(raw, "pains", path, ctx),
        success=_text(raw, "success", path, ctx),
        decision_style=_choice(raw, "decision_style", DECISION_STYLES, path, ctx),
    )


def _parse_stage(raw, path: tuple, ctx: YamlContext) -> Stage:
    if not isinstance(raw, Mapping):
        raise ctx.error(path, f"a stage must be a mapping with at least `name`, got "
                              f"{short(raw)}")
    _check_keys(raw, _STAGE_KEYS, path, ctx, "a stage")
    name = _text(raw, "name", path, ctx, required=True, what="the stage")
    signal = None
    if raw.get("signal") is not None:
        signal = _parse_signal(raw["signal"], path + ("signal",), name, ctx)
    return Stage(name=name, customer_goal=_text(raw, "customer_goal", path, ctx),
                 success=_text(raw, "success", path, ctx), owner=_text(raw, "owner", path, ctx),
                 signal=signal, aliases=_texts(raw, "aliases", path, ctx),
                 notes=_text(raw, "notes", path, ctx))


_KIND_KEYS = {
    "milestone": ("milestone",),
    "events": ("events", "at_least", "within_days"),
    "active_users": ("active_users", "events"),
    "survey": ("survey", "touchpoint", "min_score"),
}


def _parse_signal(raw, path: tuple, stage: str, ctx: YamlContext) -> Signal:
    if not isinstance(raw, Mapping):
        raise ctx.error(path, f"stage {stage!r}: `signal` must be a mapping such as "
                              f"{{milestone: data_imported}}, got {short(raw)}")
    _check_keys(raw, _SIGNAL_KEYS, path, ctx, f"the signal of stage {stage!r}")
    kinds = [k for k in ("milestone", "active_users", "survey") if k in raw]
    if "events" in raw and "active_users" not in raw:
        kinds.append("events")
    if len(kinds) != 1:
        found = ", ".join(kinds) if kinds else "none"
        raise ctx.error(path, f"stage {stage!r}: a signal needs exactly one of milestone, "
                              f"events, active_users, survey (found: {found})")
    kind = kinds[0]
    extra = [k for k in raw if k not in _KIND_KEYS[kind]]
    if extra:
        raise ctx.error(path + (extra[0],), f"stage {stage!r}: `{extra[0]}` does not apply "
                                            f"to a {kind} signal (its keys: "
                                            f"{', '.join(_KIND_KEYS[kind])})", key_line=True)
    if kind == "milestone":
        return Signal("milestone", milestone=_text(raw, "milestone", path, ctx, required=True,
                                                   what=f"the signal of stage {stage!r}"))
    if kind == "survey":
        return Signal("survey", survey=_text(raw, "survey", path, ctx, required=True,
                                             what=f"the signal of stage {stage!r}"),
                      touchpoint=_text(raw, "touchpoint", path, ctx) or None,
                      min_score=_number(raw, "min_score", path, ctx))
    events: tuple[str, ...] = ()
    if raw.get("events") is not None and raw.get("events") != "any":
        events = _texts(raw, "events", path, ctx)
    elif kind == "events" and raw.get("events") is None:
        raise ctx.error(path + ("events",), f"stage {stage!r}: `events` must be a list of "
                                            "event names or `any`, got None")
    if kind == "active_users":
        return Signal("active_users", events=events,
                      at_least=_whole(raw, "active_users", path, ctx, default=1))
    return Signal("events", events=events, at_least=_whole(raw, "at_least", path, ctx, 1),
                  within_days=_whole(raw, "within_days", path, ctx))


def _parse_goal(raw, path: tuple, stages: Sequence[Stage], ctx: YamlContext) -> Goal:
    if not isinstance(raw, Mapping):
        raise ctx.error(path, f"a goal must be a mapping, got {short(raw)}")
    _check_keys(raw, _GOAL_KEYS, path, ctx, "a goal")
    what = "the goal"
    name = _text(raw, "name", path, ctx, required=True, what=what)
    layer = _choice(raw, "layer", LAYERS, path, ctx, required=True, what=f"goal {name!r}")
    metric = _choice(raw, "metric", tuple(GOAL_METRICS), path, ctx, required=True,
                     what=f"goal {name!r}")
    target = _number(raw, "target", path, ctx, required=True, what=f"goal {name!r}")
    direction = _choice(raw, "direction", _DIRECTIONS, path, ctx) or "at_least"
    stage = _text(raw, "stage", path, ctx) or None
    within = _whole(raw, "within_days", path, ctx)
    if metric == "stage_share":
        if stage is None:
            raise ctx.error(path, f"goal {name!r}: a stage_share goal needs `stage`")
        match = [s for s in stages if _norm(stage) in s.names()]
        if not match:
            raise ctx.error(path + ("stage",), f"goal {name!r}: no stage {stage!r}; the "
                                               f"stages are: {', '.join(s.name for s in stages)}")
        if match[0].signal is None:
            raise ctx.error(path + ("stage",), f"goal {name!r}: stage {stage!r} has no data "
                                               "signal, so its share cannot be measured")
        if within is None:
            raise ctx.error(path, f"goal {name!r}: a stage_share goal needs `within_days`")
    if metric in ("stage_share", "active_share", "csat") and not 0 <= target <= 1:
        raise ctx.error(path + ("target",), f"goal {name!r}: a {metric} target is a share "
                                            f"between 0 and 1, got {target!r}")
    if metric == "nps" and not -100 <= target <= 100:
        raise ctx.error(path + ("target",), f"goal {name!r}: an NPS target is between -100 "
                                            f"and 100, got {target!r}")
    events: tuple[str, ...] = ()
    if raw.get("events") not in (None, "any"):
        events = _texts(raw, "events", path, ctx)
    return Goal(name=name, layer=layer, metric=metric, target=target, direction=direction,
                stage=stage, within_days=within, events=events,
                at_least=_whole(raw, "at_least", path, ctx, 1),
                description=_text(raw, "description", path, ctx))


def dump_map(journey: JourneyMap) -> str:
    """The map as YAML text.

    What :func:`save_map` writes; :func:`load_map` reads it back to an equal map.
    """
    import yaml

    return yaml.safe_dump(journey.to_dict(), sort_keys=False, allow_unicode=True, width=88,
                          default_flow_style=False)


def save_map(journey: JourneyMap, path) -> Path:
    """Write ``journey`` to ``path`` atomically (temp file + rename); return the path.

    The file is checked by reading it back before it replaces ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dump_map(journey)
    _loads(text, str(path))  # never write a map that would not load
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def slug(text: str) -> str:
    """A file- and CSS-safe name: ASCII letters and digits joined by ``-``, lower case."""
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return s or "journey"


def save_version(journey: JourneyMap, folder, name: str | None = None) -> tuple[Path, JourneyMap]:
    """Save ``journey`` as the next version ``<name>-v<N>.yml`` in ``folder``.

    ``N`` is one more than the highest version already saved under that name; the map's
    ``version`` is set to ``N``. Returns the path and the saved map.
    """
    folder = Path(folder)
    stem = slug(name or journey.title)
    taken = [int(m.group(1)) for p in folder.glob(f"{stem}-v*.yml")
             if (m := re.fullmatch(rf"{re.escape(stem)}-v(\d+)\.yml", p.name))]
    version = max(taken, default=0) + 1
    saved = dataclasses.replace(journey, version=version)
    path = save_map(saved, folder / f"{stem}-v{version}.yml")
    return path, dataclasses.replace(saved, source=str(path))


def journeys_dir() -> Path:
    """The example maps of the demo data: ``data/journeys/`` beside the package."""
    return Path(__file__).resolve().parent.parent / "data" / "journeys"


def default_maps() -> tuple[JourneyMap, JourneyMap]:
    """The demo's Product-team and CS-team maps (``data/journeys/``)."""
    folder = journeys_dir()
    return load_map(folder / "product_team.yml"), load_map(folder / "cs_team.yml")


# ======================================================================================
# Editing (pure functions; the workshop calls them)
# ======================================================================================
def _check_new_name(journey: JourneyMap, name: str, ignore: int | None = None) -> str:
    name = str(name).strip()
    if not name:
        raise JourneyMapError("a stage name must not be empty")
    for i, s in enumerate(journey.stages):
        if i != ignore and _norm(name) in s.names():
            raise JourneyMapError(f"the name {name!r} is already used by stage {s.name!r}")
    return name


def _replace_stages(journey: JourneyMap, stages) -> JourneyMap:
    return dataclasses.replace(journey, stages=tuple(stages))


def rename_stage(journey: JourneyMap, old: str, new: str, *, keep_alias: bool = True
                 ) -> JourneyMap:
    """Rename a stage; the old name stays as an alias (so the teams' maps still match).

    Goals that pointed at the old name follow the stage.
    """
    i = journey.index(old)
    s = journey.stages[i]
    new = _check_new_name(journey, new, ignore=i)
    aliases = [a for a in s.aliases if _norm(a) != _norm(new)]
    if keep_alias and _norm(s.name) != _norm(new) and s.name not in aliases:
        aliases.append(s.name)
    stages = list(journey.stages)
    stages[i] = dataclasses.replace(s, name=new, aliases=tuple(aliases))
    goals = tuple(dataclasses.replace(g, stage=new) if g.stage and _norm(g.stage) in s.names()
                  else g for g in journey.goals)
    return dataclasses.replace(journey, stages=tuple(stages), goals=goals)


def move_stage(journey: JourneyMap, name: str, to: int) -> JourneyMap:
    """Move a stage to position ``to`` (0-based, clipped to the list)."""
    i = journey.index(name)
    stages = list(journey.stages)
    s = stages.pop(i)
    stages.insert(max(0, min(int(to), len(stages))), s)
    return _replace_stages(journey, stages)


def merge_stages(journey: JourneyMap, keep: str, other: str) -> JourneyMap:
    """Merge stage ``other`` into ``keep``: one stage at ``keep``'s position.

    Texts that differ are joined with `` / ``; the other's name and aliases become
    aliases; ``keep``'s signal wins, the other's is used when ``keep`` has none.
    """
    i, j = journey.index(keep), journey.index(other)
    if i == j:
        raise JourneyMapError(f"cannot merge stage {keep!r} with itself")
    a, b = journey.stages[i], journey.stages[j]

    def join(x: str, y: str) -> str:
        if not y or _norm(x) == _norm(y):
            return x
        return f"{x} / {y}" if x else y

    aliases = list(a.aliases)
    for n in (b.name, *b.aliases):
        if _norm(n) not in [_norm(x) for x in (a.name, *aliases)]:
            aliases.append(n)
    merged = Stage(name=a.name, customer_goal=join(a.customer_goal, b.customer_goal),
                   success=join(a.success, b.success), owner=join(a.owner, b.owner),
                   signal=a.signal if a.signal is not None else b.signal,
                   aliases=tuple(aliases), notes=join(a.notes, b.notes))
    stages = [merged if k == i else s for k, s in enumerate(journey.stages) if k != j]
    goals = tuple(dataclasses.replace(g, stage=a.name) if g.stage and _norm(g.stage) in b.names()
                  else g for g in journey.goals)
    return dataclasses.replace(journey, stages=tuple(stages), goals=goals)


def add_stage(journey: JourneyMap, stage: Stage | str, after: str | None = None) -> JourneyMap:
    """Add a stage after stage ``after`` (default: at the end)."""
    if isinstance(stage, str):
        stage = Stage(name=stage)
    _check_new_name(journey, stage.name)
    for alias in stage.aliases:
        _check_new_name(journey, alias)
    stages = list(journey.stages)
    pos = len(stages) if after is None else journey.index(after) + 1
    stages.insert(pos, stage)
    return _replace_stages(journey, stages)


def remove_stage(journey: JourneyMap, name: str) -> JourneyMap:
    """Remove a stage (not the last one; not one a goal measures)."""
    i = journey.index(name)
    if len(journey.stages) == 1:
        raise JourneyMapError("a journey needs at least one stage")
    s = journey.stages[i]
    used = [g.name for g in journey.goals if g.stage and _norm(g.stage) in s.names()]
    if used:
        raise JourneyMapError(f"stage {s.name!r} is measured by goal(s) {', '.join(used)}; "
                              "remove those goals first")
    return _replace_stages(journey, [x for k, x in enumerate(journey.stages) if k != i])


def set_signal(journey: JourneyMap, name: str, signal: Signal | Mapping | None) -> JourneyMap:
    """Set (or with None remove) a stage's data signal; a mapping is checked like a file."""
    i = journey.index(name)
    s = journey.stages[i]
    if isinstance(signal, Mapping):
        signal = _parse_signal(dict(signal), ("signal",), s.name, _ctx("<edit>"))
    if signal is None:
        used = [g.name for g in journey.goals if g.metric == "stage_share"
                and g.stage and _norm(g.stage) in s.names()]
        if used:
            raise JourneyMapError(f"stage {s.name!r} is measured by goal(s) "
                                  f"{', '.join(used)}; it needs its signal")
    stages = list(journey.stages)
    stages[i] = dataclasses.replace(s, signal=signal)
    return _replace_stages(journey, stages)


def add_goal(journey: JourneyMap, goal: Goal | Mapping) -> JourneyMap:
    """Add a shared goal (a mapping is checked like a file's goal)."""
    raw = goal.__dict__ if isinstance(goal, Goal) else dict(goal)
    raw = {k: (list(v) if isinstance(v, tuple) else v) for k, v in raw.items()
           if v not in (None, "", ())}
    checked = _parse_goal(raw, ("goals", len(journey.goals)), journey.stages,
                          _ctx("<edit>"))
    if _norm(checked.name) in [_norm(g.name) for g in journey.goals]:
        raise JourneyMapError(f"goal name {checked.name!r} is used twice")
    return dataclasses.replace(journey, goals=(*journey.goals, checked))


def remove_goal(journey: JourneyMap, name: str) -> JourneyMap:
    """Remove the goal called ``name``."""
    goals = [g for g in journey.goals if _norm(g.name) != _norm(name)]
    if len(goals) == len(journey.goals):
        raise JourneyMapError(f"no goal {name!r}")
    return dataclasses.replace(journey, goals=tuple(goals))


# ======================================================================================
# Comparing two maps
# ======================================================================================
@dataclass
class MapComparison:
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

    def summary(self) -> str:
        """The differences in one paragraph."""
        ta, tb = self.a.team, self.b.team
        parts = [f"{(self.stages['status'] == 'both').sum()} stages in both maps"]
        if self.only_a:
            parts.append(f"only {ta}: {', '.join(self.only_a)}")
        if self.only_b:
            parts.append(f"only {tb}: {', '.join(self.only_b)}")
        if self.order_conflicts:
            parts.append(f"order differs for {', '.join(self.order_conflicts)}")
        if self.success_differs:
            parts.append(f"success defined differently for {', '.join(self.success_differs)}")
        return "; ".join(parts) + "."

    def html(self) -> str:
        """The two maps side by side, differences highlighted (escaped HTML)."""
        return comparison_html(self)


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
            if _norm(sa.name) == _norm(sb.name):
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


def _e(x) -> str:
    return _html.escape("" if x is None or x is pd.NA else str(x), quote=True)


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


def comparison_html(comparison: MapComparison) -> str:
    """Two maps side by side: missing stages, order conflicts and differing texts marked.

    Every text is escaped. Rows carry ``data-status`` and CSS classes
    ``cs-diff-only`` / ``cs-diff-order`` / ``cs-diff-text`` for tests and styling.
    """
    a, b = comparison.a, comparison.b
    head = (f'<div class="cs-journey-legend"><span class="cs-diff-only">only one team</span>'
            f'<span class="cs-diff-order">order differs</span>'
            f'<span class="cs-diff-text">success / goal / signal differ</span></div>'
            f'<p class="cs-journey-summary">{_e(comparison.summary())}</p>')
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
                    f'<div>{_e(goal_text)}</div><div><b>Success:</b> {_e(success)}</div>'
                    f'<div class="cs-journey-signal">{_e(signal or "no data signal")}'
                    f'{" · owner " + _e(owner) if owner else ""}</div></td>')

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
            + '<h4>Persona</h4><table class="cs-journey-compare"><thead><tr><th></th>'
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
            tmp = _replace_stages(tmp, [a.stage(r.a_name),
                                        dataclasses.replace(b.stage(r.b_name),
                                                            name="\0" + r.b_name, aliases=())])
            merged = merge_stages(tmp, r.a_name, "\0" + r.b_name).stages[0]
            aliases = [x for x in merged.aliases if not x.startswith("\0")]
            for n in (r.b_name, *b.stage(r.b_name).aliases):
                if _norm(n) not in [_norm(x) for x in (merged.name, *aliases)]:
                    aliases.append(n)
            stages.append(dataclasses.replace(merged, aliases=tuple(aliases)))
        elif r.status == "only_a":
            stages.append(a.stage(r.a_name))
        else:
            stages.append(b.stage(r.b_name))
    goals = list(a.goals) + [g for g in b.goals
                             if _norm(g.name) not in [_norm(x.name) for x in a.goals]]
    return JourneyMap(title=title, team=team, persona=a.persona, stages=tuple(stages),
                      goals=tuple(goals), version=1,
                      description=f"Merged from {a.title} ({a.team}) and {b.title} ({b.team}).")


# ======================================================================================
# Stage flow
# ======================================================================================
def _resolve_as_of(ws, as_of) -> dt.date:
    return _to_date(as_of) if as_of is not None else ws.as_of


_STAKEHOLDER_SPLITS = ("decision_style", "champion_domain")


def _signal_stages(journey: JourneyMap) -> list[tuple[int, Stage]]:
    return [(i, s) for i, s in enumerate(journey.stages) if s.signal is not None]


def _criteria_for(stages: Sequence[tuple[int, Stage]]) -> dict | None:
    out = []
    for i, s in stages:
        sig = s.signal
        if sig.kind == "milestone":
            cond: dict = {"milestone": sig.milestone}
        elif sig.kind == "events":
            cond = {"events": list(sig.events) or "any", "at_least": sig.at_least}
            if sig.within_days:
                cond["within_days"] = sig.within_days
        elif sig.kind == "active_users":
            cond = {"active_users": sig.at_least}
            if sig.events:
                cond["events"] = list(sig.events)
        else:
            continue
        out.append({"name": f"stage_{i}", "label": s.name, "all": [cond]})
    if not out:
        return None
    return {"clock_start": "signup_date", "stages": out}


def _account_base(ws, as_of: dt.date, by: Sequence[str]) -> pd.DataFrame:
    acc_cols = [c for c in by if c not in _STAKEHOLDER_SPLITS]
    t = ws.table("accounts", columns=["account_id", "signup_date", *acc_cols])
    t = t.filter(t.signup_date <= as_of).select("account_id", "signup_date", *acc_cols)
    acc = t.to_pandas()
    acc["account_id"] = acc["account_id"].astype("str")
    acc["signup_date"] = pd.to_datetime(acc["signup_date"]).astype("datetime64[us]")
    acc["churn_date"] = pd.Series(pd.NaT, index=acc.index, dtype="datetime64[us]")
    if ws.has("subscriptions"):
        from cs_analysis.retention import account_lifetimes

        lt = account_lifetimes(ws, as_of=as_of)
        churn = pd.Series(pd.to_datetime(lt["churn_date"]).astype("datetime64[us]").to_numpy(),
                          index=lt["account_id"].astype("str"))
        acc["churn_date"] = churn.reindex(acc["account_id"]).to_numpy()
    for split in by:
        if split in _STAKEHOLDER_SPLITS:
            acc[split] = _stakeholder_split(ws, as_of, split).reindex(acc["account_id"]).fillna(
                "(unknown)").to_numpy()
    return acc.sort_values("account_id").reset_index(drop=True)


def _survey_times(ws, as_of: dt.date, sig: Signal) -> pd.Series:
    t = ws.table("survey_responses", columns=["account_id", "survey", "score", "responded_at"])
    t = t.filter(t.survey == sig.survey)
    if sig.touchpoint:
        if "touchpoint" not in t.columns:
            from cs_analysis.workspace import WorkspaceError

            raise WorkspaceError("this workspace's survey_responses table has no column "
                                 "touchpoint, which a survey signal with a touchpoint needs")
        t = t.filter(t.touchpoint == sig.touchpoint)
    if sig.min_score is not None:
        t = t.filter(t.score >= sig.min_score)
    acc = ws.table("accounts", columns=["account_id", "signup_date"])
    acc = acc.select("account_id", _signup=acc.signup_date)
    j = t.join(acc, "account_id")
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    j = j.filter(j.responded_at >= j._signup.cast("timestamp"), j.responded_at < end)
    out = j.group_by("account_id").agg(at=j.responded_at.min()).to_pandas()
    return pd.Series(pd.to_datetime(out["at"]).astype("datetime64[us]").to_numpy(),
                     index=out["account_id"].astype("str"))


def _reach_times(ws, journey: JourneyMap, as_of: dt.date, by: Sequence[str]
                 ) -> tuple[pd.DataFrame, list[tuple[int, Stage]]]:
    """Accounts with one reached-time column per signal stage.

    Columns ``account_id, signup_date, churn_date``, the by columns, and ``stage_<i>``:
    when stage ``i`` was reached while a customer (NaT otherwise).
    """
    from cs_analysis.onboarding import time_to_value

    acc = _account_base(ws, as_of, by)
    stages = _signal_stages(journey)
    crit = _criteria_for(stages)
    if crit is not None:
        ttv = time_to_value(ws, crit, as_of=as_of)
        for name, g in ttv.groupby("stage", sort=False):
            at = pd.Series(pd.to_datetime(g["reached_at"]).astype("datetime64[us]").to_numpy(),
                           index=g["account_id"].astype("str"))
            acc[name] = at.reindex(acc["account_id"]).to_numpy()
    churn_day = acc["churn_date"]
    for i, s in stages:
        if s.signal.kind != "survey":
            continue
        at = _survey_times(ws, as_of, s.signal).reindex(acc["account_id"]).to_numpy()
        at = pd.Series(at, index=acc.index, dtype="datetime64[us]")
        ok = churn_day.isna() | (at.dt.normalize() < churn_day)
        acc[f"stage_{i}"] = at.where(ok)
    for i, _ in stages:
        acc[f"stage_{i}"] = pd.to_datetime(acc[f"stage_{i}"]).astype("datetime64[us]")
    return acc, stages


def _flow_rows(acc: pd.DataFrame, stages, as_of: dt.date, stall_days: int, small: int,
               journey: JourneyMap) -> list[dict]:
    from cs_analysis.survival import kaplan_meier

    as_of_ts = pd.Timestamp(as_of)
    churned = acc["churn_date"].notna()
    end = acc["churn_date"].where(churned, as_of_ts)
    rows = []
    prev_col, prev_name = None, "signup"
    signal_pos = {i for i, _ in stages}
    for i, s in enumerate(journey.stages):
        if i not in signal_pos:
            rows.append({"position": i + 1, "stage": s.name, "signal": "", "has_signal": False,
                         "from_stage": "", "accounts": len(acc)})
            continue
        col = f"stage_{i}"
        prev_at = acc["signup_date"] if prev_col is None else acc[prev_col]
        prev = prev_at.notna()
        this = acc[col].notna()
        prev_day = prev_at.dt.normalize()
        this_day = acc[col].dt.normalize()
        conv = prev & this
        event_days = (this_day - prev_day).dt.days.clip(lower=0)
        cens_days = (end - prev_day).dt.days.clip(lower=0)
        time = event_days.where(this, cens_days)[prev].to_numpy(dtype=float)
        event = this[prev].to_numpy(dtype=int)
        km = kaplan_meier(time, event) if len(time) else None
        waiting = prev & ~this & ~churned
        since = (as_of_ts - prev_day).dt.days
        n_prev = int(prev.sum())
        rows.append({
            "position": i + 1, "stage": s.name, "signal": s.signal.describe(),
            "has_signal": True, "from_stage": prev_name, "accounts": len(acc),
            "reached": int(this.sum()), "reached_share": _div(this.sum(), len(acc)),
            "from_reached": n_prev, "converted": int(conv.sum()),
            "conversion": _div(conv.sum(), n_prev),
            "median_days": km.quantile(0.5) if km else math.nan,
            "p25_days": km.quantile(0.25) if km else math.nan,
            "p75_days": km.quantile(0.75) if km else math.nan,
            "waiting": int(waiting.sum()),
            "stalled": int((waiting & (since > stall_days)).sum()),
            "stalled_share": _div((waiting & (since > stall_days)).sum(), n_prev),
            "churned_before": int((prev & ~this & churned).sum()),
            "small_sample": n_prev < small,
        })
        prev_col, prev_name = col, s.name
    return rows


def _div(a, b) -> float:
    return float(a) / float(b) if b else math.nan


_FLOW_COLUMNS = ["position", "stage", "signal", "has_signal", "from_stage", "accounts",
                 "reached", "reached_share", "from_reached", "converted", "conversion",
                 "median_days", "p25_days", "p75_days", "waiting", "stalled", "stalled_share",
                 "churned_before", "small_sample"]


def journey_reach(ws, journey, by: str | Sequence[str] | None = None, *, as_of=None
                  ) -> pd.DataFrame:
    """When each account reached each stage of a journey that has a data signal.

    One row per account (signed up by the as-of date): ``account_id``, ``signup_date``,
    ``churn_date`` (NaT while a customer), the ``by`` columns (as for
    :func:`stage_flow`) and ``stage_<i>`` per signal stage (``i`` its 0-based position
    in the map): when it was reached while a customer, NaT otherwise. This is what
    :func:`stage_flow` aggregates; the rows do not depend on which other accounts are in
    scope, so a dashboard computes them once and narrows them (``reach=``).

    Parameters
    ----------
    ws : Workspace
    journey : JourneyMap or what :func:`load_map` accepts
    by : str or list of str, optional
        Split columns to carry (``segment``, ``decision_style``, ``champion_domain``, ...).
    as_of : date or str, optional
        Default: the workspace's as-of date.
    """
    journey = load_map(journey)
    as_of = _resolve_as_of(ws, as_of)
    by_cols = [by] if isinstance(by, str) else list(by or [])
    acc, _ = _reach_times(ws, journey, as_of, by_cols)
    acc.attrs = {"journey": journey.fingerprint(), "as_of": as_of, "by": by_cols}
    return acc


def stage_flow(ws, journey, by: str | None = None, *, as_of=None, stall_days: int = 30,
               small_sample: int = _SMALL, reach: pd.DataFrame | None = None
               ) -> pd.DataFrame:
    """How accounts move through a journey's stages: reach, conversion, days, stalls.

    Definitions (module docstring): a stage is **reached** at the first moment its data
    signal holds while the account is a customer (milestones, event sets and active
    users via :func:`cs_analysis.onboarding.time_to_value`; survey touchpoints here).
    For each stage with a signal, the previous one is the previous stage *with a signal*
    (for the first, the signup). **conversion** = accounts that reached both / accounts
    that reached the previous one. **Days** between the two: whole days between the
    dates reached (0 when this one came first); accounts that reached the previous stage
    but not this one are censored at their churn date or at the as-of date; median and
    quartiles from the Kaplan-Meier estimate (smallest t with S(t) <= 1 - p; NaN when
    the curve never gets there). **waiting**: reached the previous stage, not this one,
    still a customer; **stalled**: waiting for more than ``stall_days`` days since
    reaching the previous stage; **churned_before**: reached the previous stage, churned
    without reaching this one.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace; accounts signing up after the as-of date are
        left out.
    journey : JourneyMap or what :func:`load_map` accepts
    by : str, optional
        An ``accounts`` column (e.g. ``segment``), ``decision_style`` (the account's most
        common stakeholder decision style) or ``champion_domain`` (``business``,
        ``technical``, ``both`` or ``none``: the domains of the account's champions at
        the as-of date, see :func:`stakeholder_map`). Missing values form ``"(missing)"``.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    stall_days : int
        Days of waiting after which an account counts as stalled.
    small_sample : int
        Rows whose ``from_reached`` is below this are flagged ``small_sample``.
    reach : DataFrame, optional
        :func:`journey_reach` of this journey and as-of date (with the ``by`` column),
        possibly narrowed to some accounts: aggregated instead of asking the engine.

    Returns
    -------
    pandas.DataFrame
        One row per (group and) stage in map order: the ``by`` column, ``position``
        (1-based, in the map), ``stage``, ``signal`` (in words; '' without one),
        ``has_signal``, ``from_stage``, ``accounts`` (in the group), ``reached``,
        ``reached_share``, ``from_reached``, ``converted``, ``conversion``,
        ``median_days``, ``p25_days``, ``p75_days``, ``waiting``, ``stalled``,
        ``stalled_share``, ``churned_before``, ``small_sample``. Stages without a
        signal have only ``position``, ``stage``, ``has_signal`` and ``accounts``.
    """
    journey = load_map(journey)
    as_of = _resolve_as_of(ws, as_of)
    by_cols = [by] if by else []
    if reach is None:
        acc, stages = _reach_times(ws, journey, as_of, by_cols)
    else:
        stages = _signal_stages(journey)
        made = reach.attrs.get("journey"), reach.attrs.get("as_of")
        missing = [c for c in [*by_cols, *(f"stage_{i}" for i, _ in stages)]
                   if c not in reach]
        if made != (journey.fingerprint(), as_of) or missing:
            raise ValueError("reach must be journey_reach() of this journey and as-of date"
                             + (f" with the column(s) {missing}" if missing else ""))
        acc = reach.copy()
    if by:
        acc[by] = acc[by].astype("object").where(acc[by].notna(), "(missing)").astype("str")
        groups = [(str(k), g) for k, g in acc.groupby(by, sort=True)]
    else:
        groups = [(None, acc)]
    rows = []
    for key, g in groups:
        for r in _flow_rows(g, stages, as_of, stall_days, small_sample, journey):
            rows.append({by: key, **r} if by else r)
    cols = ([by] if by else []) + _FLOW_COLUMNS
    out = pd.DataFrame(rows).reindex(columns=cols)
    for c in ("accounts", "reached", "from_reached", "converted", "waiting", "stalled",
              "churned_before"):
        out[c] = out[c].astype("Int64")
    out["has_signal"] = out["has_signal"].astype(bool)
    out["small_sample"] = out["small_sample"].astype("boolean")
    out.attrs = {"by": by, "as_of": as_of, "stall_days": stall_days, "title": journey.title}
    return out


# ======================================================================================
# Persona evidence
# ======================================================================================
@dataclass
class PersonaEvidence:
    """Result of :func:`persona_evidence`.

    Attributes
    ----------
    persona : Persona
    themes : pandas.DataFrame
        :func:`cs_analysis.surveys.themes` summary of the comments of respondents in the
        persona's role at accounts of its segment.
    voices : pandas.DataFrame
        :func:`cs_analysis.surveys.curated_voices` of the persona's segment, role and
        domain (newest first).
    onboarding : pandas.DataFrame
        :func:`cs_analysis.onboarding.ttv_summary` of every onboarding stage in the
        persona's segment: the typical onboarding path (median days, share within target).
    accounts : int
        Accounts in the persona's segment.
    """

    persona: Persona
    themes: pd.DataFrame
    voices: pd.DataFrame
    onboarding: pd.DataFrame
    accounts: int


def persona_evidence(ws, persona, *, as_of=None, voices: int = 8, criteria=None
                     ) -> PersonaEvidence:
    """What the data say about a persona: survey themes, curated voices, onboarding path.

    Parameters
    ----------
    ws : Workspace
    persona : Persona, JourneyMap or what :func:`load_map` accepts
    as_of : date or str, optional
    voices : int
        At most this many curated comments (newest).
    criteria : optional
        Onboarding criteria (:func:`cs_analysis.onboarding.load_criteria`; default file).

    Returns
    -------
    PersonaEvidence
    """
    from cs_analysis import onboarding, surveys

    if not isinstance(persona, Persona):
        persona = load_map(persona).persona
    as_of = _resolve_as_of(ws, as_of)
    scoped = ws.where(segment=list(persona.segment)) if persona.segment else ws
    n = int(scoped.table("accounts").count().to_pandas())
    themes = pd.DataFrame()
    voice = pd.DataFrame()
    if ws.has("survey_responses", "comment"):
        resp = surveys.responses(scoped, as_of=as_of, roles=[persona.role], comments_only=True)
        themes = surveys.themes(resp, by=None, quotes=0).summary
        voice = surveys.curated_voices(ws, segment=list(persona.segment) or None,
                                       roles=[persona.role],
                                       domain=persona.domain if ws.has("stakeholders", "domain")
                                       else None, as_of=as_of, limit=voices)
    path = pd.DataFrame()
    if ws.has("onboarding_milestones"):
        crit = onboarding.load_criteria(criteria)
        path = pd.concat([onboarding.ttv_summary(scoped, crit, by=None, stage=s.name,
                                                 as_of=as_of).assign(stage=s.name,
                                                                     stage_label=s.label)
                          for s in crit.stages], ignore_index=True)
    return PersonaEvidence(persona, themes, voice, path, n)


# ======================================================================================
# Stakeholders
# ======================================================================================
def _people(ws, as_of: dt.date, accounts: Sequence[str] | None = None) -> pd.DataFrame:
    cols = [c for c in ("account_id", "person_id", "role", "name", "title", "domain",
                        "influence", "sentiment", "decision_style", "left_at")
            if ws.has("stakeholders", c)]
    t = ws.table("stakeholders", columns=["account_id", "person_id", "role"])
    if accounts is not None:
        t = t.filter(t.account_id.isin([str(a) for a in accounts]))
    df = t.select(*cols).to_pandas()
    df["account_id"] = df["account_id"].astype("str")
    if "left_at" in df:
        df["left_at"] = pd.to_datetime(df["left_at"])
    return df


def _champion_mask(people: pd.DataFrame, at: pd.Series, champion_roles, min_sentiment
                   ) -> pd.Series:
    present = people["left_at"].isna() | (people["left_at"] > at) if "left_at" in people \
        else pd.Series(True, index=people.index)
    champ = present & people["role"].isin(list(champion_roles))
    if "sentiment" in people and min_sentiment is not None:
        champ &= people["sentiment"].astype("Float64").fillna(-99) >= min_sentiment
    return champ.astype(bool)


def _stakeholder_split(ws, as_of: dt.date, split: str) -> pd.Series:
    if not ws.has("stakeholders"):
        return pd.Series(dtype="str")
    people = _people(ws, as_of)
    if split == "decision_style":
        if "decision_style" not in people:
            return pd.Series(dtype="str")
        d = people.dropna(subset=["decision_style"])
        return d.groupby("account_id")["decision_style"].agg(
            lambda s: s.value_counts().sort_index().idxmax())
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    champ = _champion_mask(people, pd.Series(end, index=people.index), CHAMPION_ROLES, 1)
    doms = people[champ].groupby("account_id")["domain"].agg(set) if "domain" in people \
        else pd.Series(dtype=object)

    def label(s):
        return "both" if len(s) > 1 else next(iter(s))

    out = doms.map(label)
    allacc = people["account_id"].unique()
    return out.reindex(allacc).fillna("none")


@dataclass
class StakeholderMap:
    """Result of :func:`stakeholder_map`.

    Attributes
    ----------
    account_id : str
    people : pandas.DataFrame
        One row per person: ``person_id``, ``name``, ``title``, ``role``, ``domain``,
        ``influence``, ``sentiment``, ``decision_style``, ``left_at``, ``present`` (at
        the as-of date), ``champion``, ``key_person``, ``left_recently``; ordered by
        role (as in :data:`ROLES`), then influence.
    grid : pandas.DataFrame
        People present, by ``role`` (rows) and ``domain`` (columns).
    decision_style : str or None
        The account's most common decision style.
    flags : dict of str to bool
        ``no_technical_champion``, ``no_business_champion``, ``key_person_left``.
    departed : list of str
        Names (with roles) of key people who left in the last ``recent_days``.
    """

    account_id: str
    people: pd.DataFrame
    grid: pd.DataFrame
    decision_style: str | None
    flags: dict[str, bool]
    departed: list[str]

    def html(self) -> str:
        """The map as an escaped HTML card: flags, then people by role and domain."""
        flags = [k.replace("_", " ") for k, v in self.flags.items() if v]
        flag_html = "".join(f'<span class="cs-flag">{_e(f)}</span>' for f in flags) or \
            '<span class="cs-flag-ok">no coverage gap</span>'
        rows = "".join(
            f'<tr class="{"cs-left" if not p.present else ""}"><td>{_e(p.role)}</td>'
            f'<td>{_e(getattr(p, "domain", ""))}</td><td>{_e(getattr(p, "name", ""))}</td>'
            f'<td>{_e(getattr(p, "title", ""))}</td><td>{_e(getattr(p, "influence", ""))}</td>'
            f'<td>{_e(getattr(p, "sentiment", ""))}</td>'
            f'<td>{"champion" if p.champion else ""}</td>'
            f'<td>{"left " + str(p.left_at.date()) if not p.present else ""}</td></tr>'
            for p in self.people.itertuples(index=False))
        return (f'<div class="cs-stakeholders"><div>{flag_html}</div>'
                f'<div>Decision style: {_e(self.decision_style or "unknown")}</div>'
                '<table class="cs-table-grid"><thead><tr><th>role</th><th>domain</th>'
                '<th>name</th><th>title</th><th>influence</th><th>sentiment</th><th></th>'
                f'<th></th></tr></thead><tbody>{rows}</tbody></table></div>')


def stakeholder_map(ws, account_id: str, *, as_of=None, recent_days: int = 90,
                    champion_roles: Sequence[str] = CHAMPION_ROLES,
                    key_roles: Sequence[str] = KEY_ROLES, min_sentiment: int | None = 1
                    ) -> StakeholderMap:
    """The people at one customer, by role and domain, with coverage flags.

    Definitions: a person is **present** at the as-of date when ``left_at`` is empty or
    after that day. A **champion** is a present person whose role is one of
    ``champion_roles`` and whose ``sentiment`` is at least ``min_sentiment`` (when the
    workspace has sentiment; None: any sentiment). Flags: **no technical champion** / **no
    business champion**: no champion of that ``domain``; **key person left**: a person in
    one of ``key_roles`` left in the ``recent_days`` days up to the as-of date.

    Parameters
    ----------
    ws : Workspace
    account_id : str
    as_of : date or str, optional
    recent_days : int
    champion_roles, key_roles : sequence of str
    min_sentiment : int, optional

    Returns
    -------
    StakeholderMap
    """
    as_of = _resolve_as_of(ws, as_of)
    people = _people(ws, as_of, [account_id])
    if people.empty:
        from cs_analysis.workspace import WorkspaceError

        raise WorkspaceError(f"no stakeholders recorded for account {account_id!r}")
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    left = people["left_at"] if "left_at" in people else pd.Series(pd.NaT, index=people.index)
    people["present"] = (left.isna() | (left >= end)).astype(bool)
    people["champion"] = _champion_mask(people, pd.Series(end, index=people.index),
                                        champion_roles, min_sentiment)
    people["key_person"] = people["role"].isin(list(key_roles))
    start = end - pd.Timedelta(days=recent_days)
    people["left_recently"] = (people["key_person"] & left.notna() & (left >= start)
                               & (left < end)).astype(bool)
    order = {r: i for i, r in enumerate(ROLES)}
    people = people.assign(_o=people["role"].map(order).fillna(len(ROLES)),
                           _i=-people["influence"].astype("Float64").fillna(0)
                           if "influence" in people else 0)
    people = people.sort_values(["_o", "_i", "person_id"]).drop(columns=["_o", "_i"])
    people = people.reset_index(drop=True)
    present = people[people["present"]]
    dom = "domain" if "domain" in people else None
    grid = (present.groupby(["role", dom]).size().unstack(fill_value=0) if dom
            else present.groupby("role").size().to_frame("people"))
    grid = grid.reindex([r for r in ROLES if r in grid.index] +
                        [r for r in grid.index if r not in ROLES])
    champs = people[people["champion"]]
    flags = {
        "no_technical_champion": dom is not None and not (champs[dom] == "technical").any(),
        "no_business_champion": dom is not None and not (champs[dom] == "business").any(),
        "key_person_left": bool(people["left_recently"].any()),
    }
    style = None
    if "decision_style" in people and people["decision_style"].notna().any():
        style = str(people["decision_style"].dropna().value_counts().sort_index().idxmax())
    departed = [f"{p.name if 'name' in people else p.person_id} ({p.role})"
                for p in people[people["left_recently"]].itertuples(index=False)]
    return StakeholderMap(str(account_id), people, grid, style, flags, departed)


def _rate_ratio(d1, e1, d0, e0, z) -> tuple[float, float, float]:
    if not (e1 > 0 and e0 > 0 and d1 > 0 and d0 > 0):
        rr = (d1 / e1) / (d0 / e0) if e1 > 0 and e0 > 0 and d0 > 0 else math.nan
        return rr, math.nan, math.nan
    rr = (d1 / e1) / (d0 / e0)
    se = math.sqrt(1 / d1 + 1 / d0)
    return rr, rr * math.exp(-z * se), rr * math.exp(z * se)


def stakeholder_coverage(ws, *, as_of=None, champion_roles: Sequence[str] = CHAMPION_ROLES,
                         key_roles: Sequence[str] = KEY_ROLES, min_sentiment: int | None = 1,
                         alpha: float = 0.05, small_sample: int = _SMALL) -> pd.DataFrame:
    """Which stakeholder gaps go with churn, across accounts.

    Each account is followed from signup to its churn date (churned) or the as-of date
    (censored), as in :func:`cs_analysis.retention.account_lifetimes`. Gaps:

    - **no executive sponsor / decision maker / owner / heavy user / admin**, **no
      technical champion**, **no business champion**: measured on the people present on
      the account's last day followed (the day before churn, or the as-of date); the
      whole follow-up counts as exposure with the gap (a simplification: people data are
      a snapshot).
    - **key person left**: a person in ``key_roles`` left during the follow-up; the
      follow-up is split at the first such departure (exposure before it counts without
      the gap, after it with), so longer-lived accounts do not look worse just for having
      had more time to lose someone.

    **churn_per_year** = churned accounts / account-years of exposure, in the accounts (or
    time) with and without the gap; **rate_ratio** = with / without, with a Wald interval
    on the log scale (sqrt(1/d1 + 1/d0)). ``churn_share`` = churned / accounts (with the
    gap at the end) is given for reading, not for comparing.

    Returns
    -------
    pandas.DataFrame
        One row per gap: ``gap``, ``accounts`` (with the gap), ``churned``,
        ``churn_share``, ``exposure_years``, ``churn_per_year``, ``accounts_without``,
        ``churned_without``, ``exposure_years_without``, ``churn_per_year_without``,
        ``rate_ratio``, ``lower``, ``upper``, ``small_sample``.
    """
    from scipy.stats import norm

    from cs_analysis.retention import account_lifetimes

    as_of = _resolve_as_of(ws, as_of)
    z = float(norm.ppf(1 - alpha / 2))
    lt = account_lifetimes(ws, as_of=as_of)
    lt["account_id"] = lt["account_id"].astype("str")
    lt["end"] = (pd.to_datetime(lt["signup_date"])
                 + pd.to_timedelta(lt["lifetime_days"], unit="D"))
    people = _people(ws, as_of, None)
    people = people.merge(lt[["account_id", "signup_date", "end"]], on="account_id")
    left = people["left_at"] if "left_at" in people else pd.Series(pd.NaT, index=people.index)
    present = left.isna() | (left >= people["end"])
    base = lt.set_index("account_id")
    years = base["lifetime_days"] / 365.25
    churn = base["churned"].astype(bool)
    gaps: dict[str, pd.Series] = {}
    roles_present = people[present].groupby("account_id")["role"].agg(set)
    roles_present = roles_present.reindex(base.index).map(
        lambda s: s if isinstance(s, set) else set())
    for r in ROLES:
        gaps[f"no {r}"] = roles_present.map(lambda s, r=r: r not in s)
    if "domain" in people:
        champ = _champion_mask(people, people["end"], champion_roles, min_sentiment)
        doms = people[champ].groupby("account_id")["domain"].agg(set).reindex(base.index)
        doms = doms.map(lambda s: s if isinstance(s, set) else set())
        gaps["no technical champion"] = doms.map(lambda s: "technical" not in s)
        gaps["no business champion"] = doms.map(lambda s: "business" not in s)
    rows = []
    for gap, has in gaps.items():
        has = has.astype(bool)
        rows.append(_coverage_row(gap, churn[has].sum(), has.sum(), years[has].sum(),
                                  churn[~has].sum(), (~has).sum(), years[~has].sum(), z,
                                  small_sample))
    if "left_at" in people:
        key = people["role"].isin(list(key_roles)) & left.notna() & (left < people["end"])
        first = people[key].groupby("account_id")["left_at"].min().reindex(base.index)
        signup = pd.to_datetime(base["signup_date"])
        before = ((first - signup).dt.days.clip(lower=0) / 365.25).where(first.notna(), years)
        after = (years - before).clip(lower=0)
        had = first.notna()
        # a churn counts with the gap when it came after the first key departure
        d1 = int((churn & had).sum())
        d0 = int((churn & ~had).sum())
        rows.append(_coverage_row("key person left", d1, int(had.sum()), float(after.sum()),
                                  d0, int((~had).sum()), float(before.sum()), z, small_sample,
                                  accounts_without=len(base)))
    out = pd.DataFrame(rows)
    out.attrs = {"as_of": as_of, "alpha": alpha}
    return out


def _coverage_row(gap, d1, n1, e1, d0, n0, e0, z, small, accounts_without=None) -> dict:
    rr, lo, hi = _rate_ratio(float(d1), float(e1), float(d0), float(e0), z)
    return {"gap": gap, "accounts": int(n1), "churned": int(d1), "churn_share": _div(d1, n1),
            "exposure_years": float(e1), "churn_per_year": _div(d1, e1),
            "accounts_without": int(n0 if accounts_without is None else accounts_without),
            "churned_without": int(d0), "exposure_years_without": float(e0),
            "churn_per_year_without": _div(d0, e0), "rate_ratio": rr, "lower": lo,
            "upper": hi, "small_sample": bool(n1 < small)}


# ======================================================================================
# Shared goals over time
# ======================================================================================
_GRAINS = ("month", "quarter")


def _period_number(ts: pd.Series, grain: str) -> pd.Series:
    ts = pd.to_datetime(ts)
    if grain == "month":
        return ts.dt.year * 12 + ts.dt.month - 1
    return ts.dt.year * 4 + (ts.dt.month - 1) // 3


def _period_bounds(p: int, grain: str) -> tuple[dt.date, dt.date]:
    if grain == "month":
        y, m = divmod(int(p), 12)
        start = dt.date(y, m + 1, 1)
        nxt = dt.date(y + (m + 1) // 12, (m + 1) % 12 + 1, 1)
    else:
        y, q = divmod(int(p), 4)
        start = dt.date(y, 3 * q + 1, 1)
        nxt = dt.date(y + (q + 1) // 4, (3 * (q + 1)) % 12 + 1, 1)
    return start, nxt - dt.timedelta(days=1)


def _period_label(p: int, grain: str) -> str:
    if grain == "month":
        y, m = divmod(int(p), 12)
        return f"{y}-{m + 1:02d}"
    y, q = divmod(int(p), 4)
    return f"{y}Q{q + 1}"


_GOAL_COLUMNS = ["goal", "layer", "metric", "period", "period_label", "period_start",
                 "value", "numerator", "denominator", "lower", "upper", "target",
                 "direction", "met", "small_sample"]


def goal_progress(ws, journey, *, grain: str = "quarter", by: str | None = None, as_of=None,
                  goals: Sequence[str] | None = None, small_sample: int = _SMALL
                  ) -> pd.DataFrame:
    """The agreed goal metrics per period, against their targets.

    Definitions (also :data:`GOAL_METRICS` and :meth:`Goal.definition`):

    - ``stage_share``: of the accounts signing up in the period, the share that reached
      the goal's stage (its data signal, as in :func:`stage_flow`) within
      ``within_days`` days of signup; accounts that churned first count as not reached.
      Only periods whose last day is at least ``within_days`` before the as-of date are
      returned (every account of the cohort had the full window).
    - ``active_share``: of the accounts paying on the period's last day (a subscription
      covers it: ``start_date <= d < end_date``), the share with at least ``at_least``
      usage events (of ``events``; any when not given) dated in the period. Only
      observable periods (last day on or before the as-of date). Counted in the engine.
    - ``nps`` / ``csat`` / ``ces``: the score of the period's responses
      (:func:`cs_analysis.surveys.nps` etc.: one response per respondent per wave, with
      their intervals).

    ``met`` says whether the value reaches the target in the goal's direction.

    Parameters
    ----------
    ws : Workspace
    journey : JourneyMap or what :func:`load_map` accepts
        Its ``goals`` are tracked (and its stages give ``stage_share`` signals).
    grain : {"quarter", "month"}
    by : str, optional
        An ``accounts`` column to split by (e.g. ``segment``).
    as_of : date or str, optional
    goals : list of str, optional
        Only these goals (default all).
    small_sample : int
        Rows with a denominator (responses for surveys) below this are flagged.

    Returns
    -------
    pandas.DataFrame
        One row per goal, (group,) and period: ``goal``, ``layer``, ``metric``, the ``by``
        column, ``period`` (number), ``period_label``, ``period_start``, ``value``,
        ``numerator`` (NaN for NPS / CES), ``denominator`` (accounts, or responses),
        ``lower`` / ``upper`` (survey intervals; NaN otherwise), ``target``,
        ``direction``, ``met``, ``small_sample``.
    """
    from cs_analysis import surveys

    journey = load_map(journey)
    if grain not in _GRAINS:
        raise ValueError(f"grain must be one of {_GRAINS}, got {grain!r}")
    as_of = _resolve_as_of(ws, as_of)
    chosen = [g for g in journey.goals if goals is None or g.name in goals]
    frames = []
    for g in chosen:
        if g.metric == "stage_share":
            df = _stage_share(ws, journey, g, grain, by, as_of)
        elif g.metric == "active_share":
            df = _active_share(ws, g, grain, by, as_of)
        else:
            fn = {"nps": surveys.nps, "csat": surveys.csat, "ces": surveys.ces}[g.metric]
            s = fn(ws, by=by, period=grain, as_of=as_of)
            s = s[s["period"].map(lambda p: _period_bounds(p, grain)[1] <= as_of)]
            df = pd.DataFrame({
                **({by: s[by].astype("str")} if by else {}),
                "period": s["period"].astype("int64"),
                "value": s[g.metric].astype(float),
                "numerator": s["top2_box"].astype(float) if g.metric == "csat" else np.nan,
                "denominator": s["responses"].astype("int64"),
                "lower": s["lower"].astype(float), "upper": s["upper"].astype(float)})
        df = df.assign(goal=g.name, layer=g.layer, metric=g.metric, target=float(g.target),
                       direction=g.direction)
        frames.append(df)
    cols = _GOAL_COLUMNS[:3] + ([by] if by else []) + _GOAL_COLUMNS[3:]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    out["period"] = out["period"].astype("int64")
    out["period_label"] = [_period_label(p, grain) for p in out["period"]]
    out["period_start"] = pd.to_datetime([_period_bounds(p, grain)[0] for p in out["period"]])
    up = out["direction"] == "at_least"
    out["met"] = (out["value"] >= out["target"]).where(up, out["value"] <= out["target"])
    out["met"] = out["met"].where(out["value"].notna()).astype("boolean")
    out["small_sample"] = out["denominator"] < small_sample
    out = out.reindex(columns=cols)
    out = out.sort_values(["goal", *([by] if by else []), "period"]).reset_index(drop=True)
    out.attrs = {"grain": grain, "by": by, "as_of": as_of}
    return out


def _stage_share(ws, journey: JourneyMap, goal: Goal, grain, by, as_of) -> pd.DataFrame:
    i = journey.index(goal.stage)
    one = dataclasses.replace(journey, stages=(journey.stages[i],), goals=())
    acc, _ = _reach_times(ws, one, as_of, [by] if by else [])
    reached_at = acc["stage_0"]
    days = (reached_at.dt.normalize() - acc["signup_date"]).dt.days
    ok = reached_at.notna() & (days <= goal.within_days)
    acc = acc.assign(period=_period_number(acc["signup_date"], grain), ok=ok)
    observable = acc["period"].map(
        lambda p: _period_bounds(p, grain)[1] + dt.timedelta(days=goal.within_days) <= as_of)
    acc = acc[observable]
    keys = ([by] if by else []) + ["period"]
    if by:
        acc = acc.assign(**{by: acc[by].astype("object").where(acc[by].notna(), "(missing)")
                            .astype("str")})
    g = acc.groupby(keys, sort=True).agg(numerator=("ok", "sum"), denominator=("ok", "size"))
    g = g.reset_index()
    g["value"] = g["numerator"] / g["denominator"]
    g["numerator"] = g["numerator"].astype(float)
    return g.assign(lower=np.nan, upper=np.nan)


def _active_share(ws, goal: Goal, grain, by, as_of) -> pd.DataFrame:
    acc_cols = ["account_id", "signup_date", *([by] if by else [])]
    acc = ws.table("accounts", columns=acc_cols).select(*acc_cols).to_pandas()
    acc["account_id"] = acc["account_id"].astype("str")
    subs = ws.table("subscriptions", columns=["account_id", "start_date"])
    cols = ["account_id", "start_date"] + (["end_date"] if "end_date" in subs.columns else [])
    subs = subs.select(*cols).to_pandas()
    subs["account_id"] = subs["account_id"].astype("str")
    if "end_date" not in subs:
        subs["end_date"] = pd.NaT
    subs["start_date"] = pd.to_datetime(subs["start_date"])
    subs["end_date"] = pd.to_datetime(subs["end_date"])
    ev = ws.table("usage_events", columns=["account_id", "event_at"])
    if goal.events:
        ev = ws.table("usage_events", columns=["account_id", "event_at", "event_name"])
        ev = ev.filter(ev.event_name.isin(list(goal.events)))
    ev = ev.filter(ev.event_at < pd.Timestamp(as_of) + pd.Timedelta(days=1))
    if grain == "month":
        per = ev.event_at.year() * 12 + ev.event_at.month() - 1
    else:
        per = ev.event_at.year() * 4 + (ev.event_at.month() - 1) // 3
    counts = ev.group_by(["account_id", per.name("period")]).agg(events=ev.count()).to_pandas()
    counts["account_id"] = counts["account_id"].astype("str")
    active = counts[counts["events"] >= goal.at_least][["account_id", "period"]]
    active = set(zip(active["account_id"], active["period"].astype(int), strict=True))
    if subs.empty:
        return pd.DataFrame(columns=[*([by] if by else []), "period", "value", "numerator",
                                     "denominator", "lower", "upper"])
    first = int(_period_number(pd.Series([subs["start_date"].min()]), grain).iloc[0])
    last = int(_period_number(pd.Series([pd.Timestamp(as_of)]), grain).iloc[0])
    rows = []
    for p in range(first, last + 1):
        end = _period_bounds(p, grain)[1]
        if end > as_of:
            continue
        d = pd.Timestamp(end)
        cov = subs[(subs["start_date"] <= d) & (subs["end_date"].isna() | (subs["end_date"] > d))]
        paying = pd.Index(cov["account_id"].unique())
        part = acc[acc["account_id"].isin(paying)]
        part = part.assign(ok=[(a, p) in active for a in part["account_id"]])
        if by:
            part = part.assign(**{by: part[by].astype("object").where(part[by].notna(),
                                                                      "(missing)").astype("str")})
            for key, g in part.groupby(by, sort=True):
                rows.append({by: key, "period": p, "numerator": float(g["ok"].sum()),
                             "denominator": len(g)})
        else:
            rows.append({"period": p, "numerator": float(part["ok"].sum()),
                         "denominator": len(part)})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=[*([by] if by else []), "period", "value", "numerator",
                                     "denominator", "lower", "upper"])
    df["value"] = df["numerator"] / df["denominator"].where(df["denominator"] > 0)
    return df.assign(lower=np.nan, upper=np.nan)


def edit_stage(journey: JourneyMap, name: str, **fields) -> JourneyMap:
    """Change a stage's texts (``customer_goal``, ``success``, ``owner``, ``notes``)."""
    allowed = ("customer_goal", "success", "owner", "notes")
    bad = [k for k in fields if k not in allowed]
    if bad:
        raise JourneyMapError(f"cannot edit {bad[0]!r}; editable: {', '.join(allowed)}")
    i = journey.index(name)
    clean = {k: str(v or "").strip() for k, v in fields.items()}
    stages = list(journey.stages)
    stages[i] = dataclasses.replace(stages[i], **clean)
    return _replace_stages(journey, stages)


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


def handout_html(journey, flow: pd.DataFrame | None = None,
                 progress: pd.DataFrame | None = None, *, as_of=None) -> str:
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
    """
    m = load_map(journey)
    p = m.persona
    items = "".join(f"<li>{_e(x)}</li>" for x in p.goals)
    pains = "".join(f"<li>{_e(x)}</li>" for x in p.pains)
    persona = (f"<p><b>{_e(p.name)}</b> · {_e(p.role)} · {_e(p.domain)}"
               f"{' · ' + _e(', '.join(p.segment)) if p.segment else ''}"
               + (f" · decides {_e(p.decision_style.replace('_', '-'))}"
                  if p.decision_style else "") +
               f"</p><p>{_e(p.who)}</p>"
               f"<p><b>Success in their words:</b> “{_e(p.success)}”</p>"
               f"<table><tr><th>Goals</th><th>Pains</th></tr><tr><td><ul>{items}</ul></td>"
               f"<td><ul>{pains}</ul></td></tr></table>")
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
    stages = ("<table><tr><th>#</th><th>Stage</th><th>Customer goal</th><th>Success</th>"
              "<th>Data signal</th><th>Owner</th><th>Reached</th><th>Conversion</th>"
              "<th>Median days</th><th>Stalled</th></tr>" + "".join(rows) + "</table>")
    goal_rows = []
    for g in m.goals:
        latest = "–"
        if progress is not None and not progress.empty:
            gp = progress[(progress["goal"] == g.name) & progress["value"].notna()]
            if not gp.empty:
                last = gp.sort_values("period").iloc[-1]
                latest = (f"{format_target(g.metric, float(last['value']))} "
                          f"({_e(last['period_label'])}, n = {int(last['denominator'])})")
        goal_rows.append(f"<tr><td><b>{_e(g.name)}</b></td><td>{_e(g.layer)}</td>"
                         f"<td>{_e(g.definition())}</td><td>{latest}</td></tr>")
    goals = ("<table><tr><th>Goal</th><th>Layer</th><th>Definition and target</th>"
             "<th>Latest</th></tr>" + "".join(goal_rows) + "</table>") if goal_rows else \
        "<p>No shared goal agreed yet.</p>"
    when = f" · data as of {_e(as_of)}" if as_of else ""
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{_e(m.title)}"
            f"</title><style>{_HANDOUT_CSS}</style></head><body><h1>{_e(m.title)}</h1>"
            f"<p class=meta>Version {m.version} · {_e(m.team)}{when}</p>"
            f"<p>{_e(m.description)}</p><h2>Persona</h2>{persona}<h2>Journey</h2>{stages}"
            f"<h2>Shared goals</h2>{goals}</body></html>")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def export_handout(journey, path, *, flow=None, progress=None, as_of=None, pdf: bool = True,
                   timeout: float = 60.0) -> dict[str, Path]:
    """Write the handout as HTML, and as PDF when a converter (Chromium) is available.

    Returns
    -------
    dict
        ``{"html": path}`` plus ``"pdf"`` when the PDF was written.
    """
    path = Path(path).with_suffix(".html")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(handout_html(journey, flow, progress, as_of=as_of), encoding="utf-8")
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
    return Path(__file__).resolve().parent.parent / "data" / "workshop"


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
