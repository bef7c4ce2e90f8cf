"""Journey maps: the data classes, reading and writing map files, and editing them.

A map file (format: ``cs_analysis/defaults/journeys/README.md``) holds a persona, ordered
stages (each optionally with a data signal) and shared goals. :func:`load_map` checks it
and names the file, line, key and value of any mistake; the editing functions are pure
(each returns a new map) and the workshop calls them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cs_analysis.config import (
    YamlContext,
    default_file,
    read_source,
    read_yaml,
    short,
    validate,
)
from cs_analysis.errors import CSAnalysisError

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
#: Groups with fewer accounts (or responses) than this are flagged small_sample.
SMALL_SAMPLE = 30


# ======================================================================================
# Journey maps: data classes
# ======================================================================================
class JourneyMapError(CSAnalysisError, ValueError):
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
        return [norm_name(n) for n in (self.name, *self.aliases)]


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
        key = norm_name(name)
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


def norm_name(name: str) -> str:
    """A stage or goal name for matching: case, spaces, ``_`` and ``-`` ignored."""
    return re.sub(r"[\s_\-]+", "", str(name)).casefold()


# ======================================================================================
# Reading and writing map files
# ======================================================================================
# -- the schema of a map file (pydantic, through cs_analysis.config.validate) -----------
# Each field's check is a "before" validator holding today's wording; validate() adds the
# file, line, key path and the value found ("..., got 'grow'"). Checks across fields
# (unique names, a signal's kind, a goal's stage) follow the schema in _parse.
def _is_text(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, str | int | float)


def _text_value(v):
    if v is None:
        return ""
    if not _is_text(v):
        raise ValueError("must be text")
    return str(v).strip()


def _name_value(v):
    if v is None or not _is_text(v):
        raise ValueError("must be text")
    v = str(v).strip()
    if not v:
        raise ValueError("must not be empty")
    return v


def _texts_value(v, *, single: bool = False):
    if v is None:
        return ()
    if single and isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
        raise ValueError("must be a list of non-empty texts")
    return tuple(x.strip() for x in v)


def _events_value(v):
    if v is None or v == "any":
        return v
    return _texts_value(v)


def _whole_value(v):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError("must be a whole number >= 1")
    return int(v)


def _number_value(v):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError("must be a number")
    return v


def _choice_value(allowed: Sequence[str]):
    def check(v):
        if v is None:
            return None
        text = _text_value(v)
        if not text:
            return None
        if text not in allowed:
            raise ValueError(f"{text!r} is not one of {', '.join(allowed)}")
        return text
    return check


def _list_of(key: str, what: str, *, non_empty: bool = False):
    def check(v):
        if v is None and not non_empty:
            return []
        if not isinstance(v, list) or (non_empty and not v):
            raise ValueError(f"`{key}` must be a {'non-empty ' if non_empty else ''}list{what}")
        return v
    return check


def _mapping_of(key: str, what: str = ""):
    def check(v):
        if v is not None and not isinstance(v, Mapping):
            raise ValueError(f"`{key}` must be a mapping{what}")
        return v
    return check


def _schema():
    """The pydantic models of a map file (built once, on first use)."""
    from typing import Annotated, Any, ClassVar

    from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

    def field(fn):
        return Annotated[Any, BeforeValidator(fn)]

    Text = field(_text_value)
    Name = field(_name_value)
    Texts = field(_texts_value)
    Whole = field(_whole_value)
    Number = field(_number_value)

    class Part(BaseModel):
        what: ClassVar[str] = "a part of the map"
        model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

        @model_validator(mode="before")
        @classmethod
        def _mapping(cls, data):
            if not isinstance(data, Mapping):
                raise ValueError(f"{cls.what} must be a mapping")
            return data

    class PersonaModel(Part):
        """The persona."""

        what: ClassVar[str] = "the persona"

        name: Name
        role: field(_choice_value(ROLES))
        domain: field(_choice_value(DOMAINS))
        segment: field(lambda v: _texts_value(v, single=True)) = ()
        who: Text = ""
        goals: Texts = ()
        pains: Texts = ()
        success: Text = ""
        decision_style: field(_choice_value(DECISION_STYLES)) = None

        @model_validator(mode="after")
        def _required(self):
            for key in ("role", "domain"):
                if getattr(self, key) is None:
                    raise ValueError(f"the persona's `{key}` must not be empty")
            return self

    class SignalModel(Part):
        """A stage's data signal."""

        what: ClassVar[str] = "a signal (e.g. {milestone: data_imported})"

        milestone: Text = None
        events: field(_events_value) = None
        active_users: Whole = None
        at_least: Whole = None
        within_days: Whole = None
        survey: Text = None
        touchpoint: Text = None
        min_score: Number = None

    class StageModel(Part):
        """A stage."""

        what: ClassVar[str] = "a stage (with at least `name`)"

        name: Name
        aliases: Texts = ()
        customer_goal: Text = ""
        success: Text = ""
        owner: Text = ""
        signal: Annotated[SignalModel | None, BeforeValidator(_mapping_of(
            "signal", " such as {milestone: data_imported}"))] = None
        notes: Text = ""

    class GoalModel(Part):
        """A shared goal."""

        what: ClassVar[str] = "a goal"

        name: Name
        layer: field(_choice_value(LAYERS))
        metric: field(_choice_value(tuple(GOAL_METRICS)))
        target: Number
        direction: field(_choice_value(_DIRECTIONS)) = None
        stage: Text = None
        within_days: Whole = None
        events: field(_events_value) = None
        at_least: Whole = None
        description: Text = ""

    class MapModel(Part):
        """A whole map file."""

        what: ClassVar[str] = "the top level (with `title`, `team`, `persona` and `stages`)"

        title: Name
        team: Name
        version: Whole = None
        description: Text = ""
        persona: Annotated[PersonaModel, BeforeValidator(_mapping_of("persona"))]
        stages: Annotated[list[StageModel], BeforeValidator(_list_of("stages", " of stages",
                                                                     non_empty=True))]
        goals: Annotated[list[GoalModel], BeforeValidator(_list_of("goals", " of goals"))] = []

    return {"map": MapModel, "signal": SignalModel, "goal": GoalModel}


_MODELS: dict = {}


def _model(kind: str):
    if not _MODELS:
        _MODELS.update(_schema())
    return _MODELS[kind]


def _ctx(source: str) -> YamlContext:
    """Context for a map given in code (no file, no line numbers)."""
    return YamlContext(_LABEL, source, {}, {}, JourneyMapError)


def load_map(source) -> JourneyMap:
    """Read and check a journey map.

    The file is read with :func:`cs_analysis.config.read_yaml` (duplicate keys, alias
    bombs and deep nesting refused) and checked against the map's schema with
    :func:`cs_analysis.config.validate`.

    Parameters
    ----------
    source : str, Path, mapping or JourneyMap
        A YAML file (format: ``cs_analysis/defaults/journeys/README.md``), its content as a
        mapping, or a map already loaded.

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
        are not whole numbers >= 1 (3.0 is not), a ``min_score`` that is not a number,
        keys that do not belong to the signal's kind, an unknown goal layer, metric or
        direction, a target that is not a number, a ``stage_share`` goal without a stage
        with a data signal or without ``within_days``, duplicate goal names.
    """
    if isinstance(source, JourneyMap):
        return source
    return _parse(*read_source(source, _LABEL, JourneyMapError))


def _loads(text: str, source: str) -> JourneyMap:
    return _parse(*read_yaml(text, _LABEL, source, JourneyMapError))


def _parse(data, ctx: YamlContext) -> JourneyMap:
    if not isinstance(data, Mapping):
        raise ctx.error((), "expected a mapping with `title`, `team`, `persona` and `stages` "
                            f"at the top level, got {type(data).__name__}: {short(data)}")
    m = validate(_model("map"), data, ctx)
    p = m.persona
    persona = Persona(name=p.name, role=p.role, domain=p.domain, segment=p.segment, who=p.who,
                      goals=p.goals, pains=p.pains, success=p.success,
                      decision_style=p.decision_style)
    stages: list[Stage] = []
    seen: dict[str, tuple[str, int]] = {}
    for i, s in enumerate(m.stages):
        path = ("stages", i)
        signal = None if s.signal is None else _signal(s.signal, path + ("signal",), s.name, ctx)
        stage = Stage(name=s.name, customer_goal=s.customer_goal, success=s.success,
                      owner=s.owner, signal=signal, aliases=s.aliases, notes=s.notes)
        for n in stage.names():
            if n in seen:
                other, j = seen[n]
                raise ctx.error(path + ("name",),
                                f"stage {stage.name!r}: the name or alias {n!r} is already "
                                f"used by stage {other!r} (stages[{j}]); names and aliases "
                                "must be unique")
            seen[n] = (stage.name, i)
        stages.append(stage)
    goals: list[Goal] = []
    names = set()
    for i, g in enumerate(m.goals):
        goal = _goal(g, ("goals", i), stages, ctx)
        if norm_name(goal.name) in names:
            raise ctx.error(("goals", i, "name"), f"goal name {goal.name!r} is used twice")
        names.add(norm_name(goal.name))
        goals.append(goal)
    return JourneyMap(title=m.title, team=m.team, version=m.version or 1, persona=persona,
                      stages=tuple(stages), goals=tuple(goals), description=m.description,
                      source=ctx.source)


_KIND_KEYS = {
    "milestone": ("milestone",),
    "events": ("events", "at_least", "within_days"),
    "active_users": ("active_users", "events"),
    "survey": ("survey", "touchpoint", "min_score"),
}


def _parse_signal(raw, path: tuple, stage: str, ctx: YamlContext) -> Signal:
    """A signal given as a mapping (a file's or an edit's), checked like a file's."""
    if not isinstance(raw, Mapping):
        raise ctx.error(path, f"stage {stage!r}: `signal` must be a mapping such as "
                              f"{{milestone: data_imported}}, got {short(raw)}")
    return _signal(validate(_model("signal"), dict(raw), ctx, at=path), path, stage, ctx)


def _signal(s, path: tuple, stage: str, ctx: YamlContext) -> Signal:
    given = [k for k in type(s).model_fields if k in s.model_fields_set
             and getattr(s, k) is not None]
    kinds = [k for k in ("milestone", "active_users", "survey") if k in given]
    if "events" in given and "active_users" not in given:
        kinds.append("events")
    if len(kinds) != 1:
        found = ", ".join(kinds) if kinds else "none"
        raise ctx.error(path, f"stage {stage!r}: a signal needs exactly one of milestone, "
                              f"events, active_users, survey (found: {found})")
    kind = kinds[0]
    extra = [k for k in given if k not in _KIND_KEYS[kind]]
    if extra:
        raise ctx.error(path + (extra[0],), f"stage {stage!r}: `{extra[0]}` does not apply "
                                            f"to a {kind} signal (its keys: "
                                            f"{', '.join(_KIND_KEYS[kind])})", key_line=True)
    if kind == "milestone":
        if not s.milestone:
            raise ctx.error(path + ("milestone",), f"stage {stage!r}: `milestone` must not "
                                                   "be empty")
        return Signal("milestone", milestone=s.milestone)
    if kind == "survey":
        if not s.survey:
            raise ctx.error(path + ("survey",), f"stage {stage!r}: `survey` must not be empty")
        return Signal("survey", survey=s.survey, touchpoint=s.touchpoint or None,
                      min_score=s.min_score)
    events = () if s.events in (None, "any") else s.events
    if kind == "active_users":
        return Signal("active_users", events=events, at_least=s.active_users)
    return Signal("events", events=events, at_least=s.at_least or 1,
                  within_days=s.within_days)


def _parse_goal(raw, path: tuple, stages: Sequence[Stage], ctx: YamlContext) -> Goal:
    """A goal given as a mapping, checked like a file's."""
    return _goal(validate(_model("goal"), raw, ctx, at=path), path, stages, ctx)


def _goal(g, path: tuple, stages: Sequence[Stage], ctx: YamlContext) -> Goal:
    name, metric, target = g.name, g.metric, g.target
    for key in ("layer", "metric"):
        if getattr(g, key) is None:
            raise ctx.error(path + (key,), f"goal {name!r}: `{key}` must not be empty")
    stage = g.stage or None
    if metric == "stage_share":
        if stage is None:
            raise ctx.error(path, f"goal {name!r}: a stage_share goal needs `stage`")
        match = [s for s in stages if norm_name(stage) in s.names()]
        if not match:
            raise ctx.error(path + ("stage",), f"goal {name!r}: no stage {stage!r}; the "
                                               f"stages are: {', '.join(s.name for s in stages)}")
        if match[0].signal is None:
            raise ctx.error(path + ("stage",), f"goal {name!r}: stage {stage!r} has no data "
                                               "signal, so its share cannot be measured")
        if g.within_days is None:
            raise ctx.error(path, f"goal {name!r}: a stage_share goal needs `within_days`")
    if metric in ("stage_share", "active_share", "csat") and not 0 <= target <= 1:
        raise ctx.error(path + ("target",), f"goal {name!r}: a {metric} target is a share "
                                            f"between 0 and 1, got {target!r}")
    if metric == "nps" and not -100 <= target <= 100:
        raise ctx.error(path + ("target",), f"goal {name!r}: an NPS target is between -100 "
                                            f"and 100, got {target!r}")
    events = () if g.events in (None, "any") else g.events
    return Goal(name=name, layer=g.layer, metric=metric, target=target,
                direction=g.direction or "at_least", stage=stage, within_days=g.within_days,
                events=events, at_least=g.at_least or 1, description=g.description)


def dump_map(journey: JourneyMap) -> str:
    """The map as YAML text.

    What :func:`save_map` writes; :func:`load_map` reads it back to an equal map.
    """
    import yaml

    return yaml.safe_dump(journey.to_dict(), sort_keys=False, allow_unicode=True, width=88,
                          default_flow_style=False)


def save_map(journey: JourneyMap, path, *, exclusive: bool = False) -> Path:
    """Write ``journey`` to ``path`` atomically; return the path.

    The text is checked by reading it back, written to a temporary file beside ``path``
    and then put in place in one step, so a reader never sees a half-written map.

    Parameters
    ----------
    journey : JourneyMap
    path : str or Path
    exclusive : bool
        Create ``path`` only if it does not exist yet (a hard link of the finished
        temporary file, which the file system makes atomically): :class:`FileExistsError`
        when another writer got there first. Otherwise ``path`` is replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dump_map(journey)
    _loads(text, str(path))  # never write a map that would not load
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            _create_exclusive(tmp, path, text)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _create_exclusive(tmp: str, path: Path, text: str) -> None:
    """Put the finished ``tmp`` at ``path`` only if nothing is there (atomic)."""
    try:
        os.link(tmp, path)  # fails with FileExistsError when path exists
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: exclusive create, then write
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)


def slug(text: str) -> str:
    """A file- and CSS-safe name: ASCII letters and digits joined by ``-``, lower case."""
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return s or "journey"


def save_version(journey: JourneyMap, folder, name: str | None = None) -> tuple[Path, JourneyMap]:
    """Save ``journey`` as a new version ``<name>-v<N>.yml`` in ``folder``.

    ``N`` is one more than the highest version saved under that name; the map's
    ``version`` is set to ``N``. Every call creates its own file: the file is created only
    if ``<name>-v<N>.yml`` does not exist yet (atomically), and when another viewer or
    process saved ``N`` in the meantime the next free number is taken, so concurrent saves
    never overwrite each other. Returns the path and the saved map.
    """
    folder = Path(folder)
    stem = slug(name or journey.title)
    pattern = re.compile(rf"{re.escape(stem)}-v(\d+)\.yml")
    version = 0
    for _ in range(10_000):
        taken = [int(m.group(1)) for p in folder.glob(f"{stem}-v*.yml")
                 if (m := pattern.fullmatch(p.name))]
        version = max([*taken, version], default=0) + 1
        saved = dataclasses.replace(journey, version=version)
        try:
            path = save_map(saved, folder / f"{stem}-v{version}.yml", exclusive=True)
        except FileExistsError:
            continue
        return path, dataclasses.replace(saved, source=str(path))
    raise JourneyMapError(f"could not save a new version of {stem!r} in {folder}: every "
                          f"attempt collided with another save (last tried v{version})")


def journeys_dir() -> Path:
    """The example maps of the demo data: ``cs_analysis/defaults/journeys/`` beside the package."""
    return default_file("journeys")


def default_maps() -> tuple[JourneyMap, JourneyMap]:
    """The demo's Product-team and CS-team maps (``cs_analysis/defaults/journeys/``)."""
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
        if i != ignore and norm_name(name) in s.names():
            raise JourneyMapError(f"the name {name!r} is already used by stage {s.name!r}")
    return name


def replace_stages(journey: JourneyMap, stages) -> JourneyMap:
    """``journey`` with ``stages`` (no check)."""
    return dataclasses.replace(journey, stages=tuple(stages))


def rename_stage(journey: JourneyMap, old: str, new: str, *, keep_alias: bool = True
                 ) -> JourneyMap:
    """Rename a stage; the old name stays as an alias (so the teams' maps still match).

    Goals that pointed at the old name follow the stage.
    """
    i = journey.index(old)
    s = journey.stages[i]
    new = _check_new_name(journey, new, ignore=i)
    aliases = [a for a in s.aliases if norm_name(a) != norm_name(new)]
    if keep_alias and norm_name(s.name) != norm_name(new) and s.name not in aliases:
        aliases.append(s.name)
    stages = list(journey.stages)
    stages[i] = dataclasses.replace(s, name=new, aliases=tuple(aliases))
    goals = tuple(dataclasses.replace(g, stage=new) if g.stage and norm_name(g.stage) in s.names()
                  else g for g in journey.goals)
    return dataclasses.replace(journey, stages=tuple(stages), goals=goals)


def move_stage(journey: JourneyMap, name: str, to: int) -> JourneyMap:
    """Move a stage to position ``to`` (0-based, clipped to the list)."""
    i = journey.index(name)
    stages = list(journey.stages)
    s = stages.pop(i)
    stages.insert(max(0, min(int(to), len(stages))), s)
    return replace_stages(journey, stages)


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
        if not y or norm_name(x) == norm_name(y):
            return x
        return f"{x} / {y}" if x else y

    aliases = list(a.aliases)
    for n in (b.name, *b.aliases):
        if norm_name(n) not in [norm_name(x) for x in (a.name, *aliases)]:
            aliases.append(n)
    merged = Stage(name=a.name, customer_goal=join(a.customer_goal, b.customer_goal),
                   success=join(a.success, b.success), owner=join(a.owner, b.owner),
                   signal=a.signal if a.signal is not None else b.signal,
                   aliases=tuple(aliases), notes=join(a.notes, b.notes))
    stages = [merged if k == i else s for k, s in enumerate(journey.stages) if k != j]
    goals = tuple(dataclasses.replace(g, stage=a.name)
                  if g.stage and norm_name(g.stage) in b.names() else g for g in journey.goals)
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
    return replace_stages(journey, stages)


def remove_stage(journey: JourneyMap, name: str) -> JourneyMap:
    """Remove a stage (not the last one; not one a goal measures)."""
    i = journey.index(name)
    if len(journey.stages) == 1:
        raise JourneyMapError("a journey needs at least one stage")
    s = journey.stages[i]
    used = [g.name for g in journey.goals if g.stage and norm_name(g.stage) in s.names()]
    if used:
        raise JourneyMapError(f"stage {s.name!r} is measured by goal(s) {', '.join(used)}; "
                              "remove those goals first")
    return replace_stages(journey, [x for k, x in enumerate(journey.stages) if k != i])


def set_signal(journey: JourneyMap, name: str, signal: Signal | Mapping | None) -> JourneyMap:
    """Set (or with None remove) a stage's data signal; a mapping is checked like a file."""
    i = journey.index(name)
    s = journey.stages[i]
    if isinstance(signal, Mapping):
        signal = _parse_signal(dict(signal), ("signal",), s.name, _ctx("<edit>"))
    if signal is None:
        used = [g.name for g in journey.goals if g.metric == "stage_share"
                and g.stage and norm_name(g.stage) in s.names()]
        if used:
            raise JourneyMapError(f"stage {s.name!r} is measured by goal(s) "
                                  f"{', '.join(used)}; it needs its signal")
    stages = list(journey.stages)
    stages[i] = dataclasses.replace(s, signal=signal)
    return replace_stages(journey, stages)


def add_goal(journey: JourneyMap, goal: Goal | Mapping) -> JourneyMap:
    """Add a shared goal (a mapping is checked like a file's goal)."""
    raw = goal.__dict__ if isinstance(goal, Goal) else dict(goal)
    raw = {k: (list(v) if isinstance(v, tuple) else v) for k, v in raw.items()
           if v not in (None, "", ())}
    checked = _parse_goal(raw, ("goals", len(journey.goals)), journey.stages,
                          _ctx("<edit>"))
    if norm_name(checked.name) in [norm_name(g.name) for g in journey.goals]:
        raise JourneyMapError(f"goal name {checked.name!r} is used twice")
    return dataclasses.replace(journey, goals=(*journey.goals, checked))


def remove_goal(journey: JourneyMap, name: str) -> JourneyMap:
    """Remove the goal called ``name``."""
    goals = [g for g in journey.goals if norm_name(g.name) != norm_name(name)]
    if len(goals) == len(journey.goals):
        raise JourneyMapError(f"no goal {name!r}")
    return dataclasses.replace(journey, goals=tuple(goals))



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
    return replace_stages(journey, stages)


