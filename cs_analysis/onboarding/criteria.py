"""Onboarding completion criteria: the clock start, the stages and their conditions.

:func:`load_criteria` reads a criteria file (YAML, see
``cs_analysis/defaults/onboarding_criteria.yml``,
whose top documents the format) and checks it with pydantic through
:func:`cs_analysis.config.validate` (every mistake names the file and line);
:meth:`Criteria.check` checks the names it uses against a workspace.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from cs_analysis.config import (
    YamlContext,
    default_file,
    read_source,
    short,
    validate,
)
from cs_analysis.errors import CSAnalysisError
from cs_analysis.formatting import is_missing
from cs_analysis.workspace import WorkspaceError

__all__ = [
    "CLOCK_COLUMNS",
    "Condition",
    "Criteria",
    "CriteriaError",
    "Stage",
    "default_criteria_path",
    "known_values",
    "load_criteria",
]

#: Date columns of ``accounts`` an onboarding clock may start from.
CLOCK_COLUMNS = ("signup_date", "kickoff_date")
#: ``if_no_clock_start`` value meaning "leave the account out and list it".
REPORT = "report"


# ======================================================================================
# Completion criteria
# ======================================================================================
class CriteriaError(CSAnalysisError, ValueError):
    """A completion-criteria file is malformed or does not fit the workspace.

    The message names the file, the line, the key and the value, and says what was
    expected (for unknown milestone or event names: the known ones).
    """


@dataclass(frozen=True)
class Condition:
    """One condition of a stage.

    Attributes
    ----------
    kind : str
        ``"milestone"`` (an ``onboarding_milestones`` row), ``"events"`` (at least
        ``at_least`` usage events of ``events``, within ``within_days`` consecutive days
        if given) or ``"active_users"`` (at least ``at_least`` distinct ``user_id`` with
        an event of ``events``).
    milestone : str, optional
        Milestone name (``kind="milestone"``).
    events : tuple of str
        Event names counted; empty means any event.
    at_least : int
        N events or K users.
    within_days : int, optional
        The N events fall on at most this many consecutive calendar days (a rolling
        window); None counts every event since signup.
    line : int, optional
        Line of the criteria file, for messages.
    """

    kind: str
    milestone: str | None = None
    events: tuple[str, ...] = ()
    at_least: int = 1
    within_days: int | None = None
    line: int | None = None

    @property
    def key(self) -> str:
        """A stable identifier (conditions with equal keys are computed once)."""
        if self.kind == "milestone":
            return f"milestone:{self.milestone}"
        names = ",".join(self.events) or "*"
        if self.kind == "events":
            return f"events:{names}:{self.at_least}:{self.within_days}"
        return f"active_users:{names}:{self.at_least}"

    def describe(self) -> str:
        """The condition in words (for tables and next steps)."""
        if self.kind == "milestone":
            return str(self.milestone)
        what = " / ".join(self.events) if self.events else "any"
        if self.kind == "events":
            noun = "event" if self.at_least == 1 else "events"
            text = f"{self.at_least} {what} {noun}"
            return text + (f" within {self.within_days} days" if self.within_days else "")
        users = "user" if self.at_least == 1 else "users"
        text = f"{self.at_least} active {users}"
        return text + (f" ({what})" if self.events else "")


@dataclass(frozen=True)
class Stage:
    """One onboarding stage: conditions, how they combine, targets by segment.

    Attributes
    ----------
    name : str
        Identifier (``value_realized``).
    label : str
        For people ("Value realized").
    mode : str
        ``"all"`` (every condition must hold) or ``"any"`` (one is enough).
    conditions : tuple of Condition
    targets : dict of str to float
        Target days by segment.
    default_target : float, optional
        Target of segments not in ``targets`` (and of accounts without a segment).
    requires : str, optional
        An earlier stage that must also be reached.
    description : str
    """

    name: str
    label: str
    mode: str
    conditions: tuple[Condition, ...]
    targets: Mapping[str, float] = field(default_factory=dict)
    default_target: float | None = None
    requires: str | None = None
    description: str = ""

    @property
    def has_targets(self) -> bool:
        """Whether the stage has any target."""
        return bool(self.targets) or self.default_target is not None

    def target_for(self, segment) -> float:
        """Target days of a segment (NaN when there is none)."""
        if segment is not None and not is_missing(segment) and str(segment) in self.targets:
            return float(self.targets[str(segment)])
        return float(self.default_target) if self.default_target is not None else math.nan


@dataclass(frozen=True)
class Criteria:
    """Completion criteria: the clock start and the stages, as read from a file.

    Build with :func:`load_criteria`. Stages are in the order customers reach them; the
    last one is the default "value" stage of every analysis.

    Attributes
    ----------
    clock_start : str
        Default clock column (``signup_date`` or ``kickoff_date``).
    clock_by_segment : dict of str to str
        Clock column per segment, overriding ``clock_start``.
    if_no_clock_start : str, optional
        Date column to start from when the chosen one is missing; None reports the
        account (status ``no_clock_start``).
    stages : tuple of Stage
    source : str
        Where the criteria came from (file path), for messages.
    lines : dict
        Line numbers by key path, for messages.
    """

    clock_start: str
    stages: tuple[Stage, ...]
    clock_by_segment: Mapping[str, str] = field(default_factory=dict)
    if_no_clock_start: str | None = None
    source: str = "<criteria>"
    description: str = ""
    lines: Mapping[tuple, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def stage_names(self) -> list[str]:
        """Stage names in order."""
        return [s.name for s in self.stages]

    def stage(self, name: str | None = None) -> Stage:
        """The stage called ``name`` (default: the last stage, "value")."""
        if name is None:
            return self.stages[-1]
        for s in self.stages:
            if s.name == name:
                return s
        raise CriteriaError(f"onboarding criteria {self.source}: no stage {name!r}; "
                            f"the stages are: {', '.join(self.stage_names)}")

    @property
    def milestones(self) -> list[str]:
        """Milestone names used by any stage, in order of first use."""
        out = [c.milestone for s in self.stages for c in s.conditions if c.kind == "milestone"]
        return list(dict.fromkeys(out))

    @property
    def clock_columns(self) -> list[str]:
        """Every accounts date column the clock may read."""
        cols = [self.clock_start, *self.clock_by_segment.values()]
        if self.if_no_clock_start:
            cols.append(self.if_no_clock_start)
        return list(dict.fromkeys(cols))

    def to_frame(self) -> pd.DataFrame:
        """The criteria as a table: one row per stage and condition (for reading).

        Returns
        -------
        pandas.DataFrame
            ``stage``, ``label``, ``combine`` ("all of" / "any of"), ``condition`` (in
            words), ``kind``, ``requires``, ``targets`` (e.g. ``SMB 45 · default 40``),
            ``clock_start``.
        """
        clock = self.clock_start + "".join(f" ({seg}: {col})" for seg, col
                                           in self.clock_by_segment.items())
        if self.if_no_clock_start:
            clock += f"; {self.if_no_clock_start} when missing"
        rows = []
        for s in self.stages:
            targets = [f"{seg} {t:g}" for seg, t in s.targets.items()]
            if s.default_target is not None:
                targets.append(f"{'default ' if s.targets else ''}{s.default_target:g}")
            for c in s.conditions:
                rows.append({"stage": s.name, "label": s.label,
                             "combine": "all of" if s.mode == "all" else "any of",
                             "condition": c.describe(), "kind": c.kind,
                             "requires": s.requires or "", "targets": " · ".join(targets),
                             "clock_start": clock})
        return pd.DataFrame(rows)

    def line(self, *path) -> int | None:
        """Line of a key path in the file (None when unknown)."""
        return self.lines.get(tuple(path))

    def check(self, ws) -> Criteria:
        """Check the criteria against a workspace; return them unchanged.

        Milestone names must exist in ``onboarding_milestones``, event names in
        ``usage_events.event_name``, segments named in the file in ``accounts.segment``;
        the tables and columns the conditions need must exist; every segment of the
        workspace must have a target in each stage that has targets. Checked over the
        whole workspace, not a scope (a scope may lack a segment or a milestone).

        Raises
        ------
        CriteriaError
            Naming the file, the line and the offending names, with the known ones.
        """
        _check_against(self, ws)
        return self


def default_criteria_path() -> Path:
    """The default criteria file: ``cs_analysis/defaults/onboarding_criteria.yml``.

    Package data (:func:`cs_analysis.config.default_file`), found from the installed
    package, never from the working directory.
    """
    return default_file("onboarding_criteria.yml")


_COND_KEYS = {"milestone": ("milestone",),
              "events": ("events", "at_least", "within_days"),
              "active_users": ("active_users", "events")}
#: What an onboarding criteria file is called in messages.
_LABEL = "onboarding criteria"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_KINDS_TEXT = "`milestone: <name>`, `events: [<event names>]` or `active_users: <K>`"


# -- schema (pydantic, through cs_analysis.config.validate: file + line in every error) --
def _whole_number(value, info: ValidationInfo):
    """A whole number >= 1; 3.0, "3" and True are refused (strict)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{info.field_name} must be a whole number >= 1")
    return value


def _event_names(value):
    """``any`` / ``*`` (every event), one name, or a list of names -> tuple of names."""
    if value in ("any", "*"):
        return ()
    if isinstance(value, str):
        value = [value]
    if (not isinstance(value, list) or not value
            or not all(isinstance(e, str) and e.strip() for e in value)):
        raise ValueError("`events` must be a list of event names (or `any`)")
    return tuple(dict.fromkeys(e.strip() for e in value))


_Whole = Annotated[int, BeforeValidator(_whole_number)]
_Events = Annotated[tuple[str, ...], BeforeValidator(_event_names)]
_STRICT = ConfigDict(extra="forbid", strict=True)


class _MilestoneSchema(BaseModel):
    model_config = _STRICT
    milestone: Any

    @field_validator("milestone", mode="before")
    @classmethod
    def _named(cls, value):
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a milestone must be a name (text)")
        return value.strip()


class _EventsSchema(BaseModel):
    model_config = _STRICT
    events: _Events = ()
    at_least: _Whole = 1
    within_days: _Whole | None = None


class _UsersSchema(BaseModel):
    model_config = _STRICT
    active_users: _Whole
    events: _Events = ()


_COND_SCHEMAS = {"milestone": _MilestoneSchema, "events": _EventsSchema,
                 "active_users": _UsersSchema}


class _StageSchema(BaseModel):
    model_config = _STRICT
    name: Any = Field(default=None, validate_default=True)
    label: str | int | float | None = None
    description: str | None = None
    all: Any = None
    any: Any = None
    target_days: Any = None
    requires: str | None = None

    @field_validator("name", mode="before")
    @classmethod
    def _valid_name(cls, value):
        if not isinstance(value, str) or not _NAME.match(value):
            raise ValueError("each stage needs a `name`: letters, digits, _ or -, starting "
                             "with a letter (e.g. value_realized)")
        return value


class _FileSchema(BaseModel):
    model_config = _STRICT
    clock_start: Any = None
    if_no_clock_start: str | None = REPORT
    stages: Any = None
    description: str | None = None
    title: str | None = None
    version: Any = None

    @field_validator("if_no_clock_start", mode="before")
    @classmethod
    def _fallback(cls, value):
        if value is not None and value != REPORT and value not in CLOCK_COLUMNS:
            raise ValueError(f"if_no_clock_start must be {REPORT!r} or one of "
                             f"{', '.join(CLOCK_COLUMNS)}")
        return value


def load_criteria(source=None) -> Criteria:
    """Read and check completion criteria.

    Parameters
    ----------
    source : str, Path, mapping or Criteria, optional
        A YAML file (see ``cs_analysis/defaults/onboarding_criteria.yml`` for the format,
        documented at its top), the same content as a mapping, or criteria already loaded. None or
        ``""``: :func:`default_criteria_path`.

    Returns
    -------
    Criteria

    Raises
    ------
    CriteriaError
        For every kind of mistake, naming the file, line, key and value and what was
        expected: unreadable file or YAML syntax; unknown keys; a missing or unknown
        clock start; no stages; a stage without a name, with a duplicate name, with
        neither or both of ``all`` / ``any``, with no conditions, with a ``requires``
        that is not an earlier stage; a condition of unknown kind or with mixed kinds,
        a non-text milestone, event names that are not a list of text, ``at_least`` or
        ``within_days`` that are not whole numbers >= 1 (``3.0`` is not); targets that
        are not non-negative numbers. The structure is checked with pydantic
        (:func:`cs_analysis.config.validate`). Names are checked against a workspace by
        :meth:`Criteria.check`.
    """
    if isinstance(source, Criteria):
        return source
    return _parse(*read_source(source, _LABEL, CriteriaError, default_criteria_path()))


def _parse(data, ctx: YamlContext) -> Criteria:
    if not isinstance(data, Mapping):
        raise ctx.error((), "expected a mapping with `clock_start` and `stages` at the top "
                            f"level, got {type(data).__name__}: {short(data)}")
    top = validate(_FileSchema, data, ctx)
    clock_start, by_segment = _parse_clock(top.clock_start, ctx)
    fallback = top.if_no_clock_start
    fallback = None if fallback in (None, REPORT) else fallback
    if top.stages is None:
        raise ctx.error((), "no `stages`: list at least one stage (name, label, and `all:` "
                            "or `any:` conditions)")
    if not isinstance(top.stages, list) or not top.stages:
        raise ctx.error(("stages",), "`stages` must be a non-empty list of stages, got "
                                     f"{short(top.stages)}")
    stages: list[Stage] = []
    for i, raw in enumerate(top.stages):
        stages.append(_parse_stage(raw, i, stages, ctx))
    return Criteria(clock_start=clock_start, clock_by_segment=by_segment,
                    if_no_clock_start=fallback, stages=tuple(stages), source=ctx.source,
                    description=str(top.description or ""), lines=dict(ctx.lines))


def _parse_clock(raw, ctx: YamlContext) -> tuple[str, dict[str, str]]:
    expected = f"one of {', '.join(CLOCK_COLUMNS)}"
    if raw is None:
        raise ctx.error((), f"no `clock_start`: say when the onboarding clock starts ({expected}"
                            ", or a mapping by segment with a `default`)")
    if isinstance(raw, str):
        if raw not in CLOCK_COLUMNS:
            raise ctx.error(("clock_start",), f"clock_start must be {expected}, got {raw!r}")
        return raw, {}
    if not isinstance(raw, Mapping) or not raw:
        raise ctx.error(("clock_start",), f"clock_start must be {expected} or a mapping "
                                          f"segment -> date column, got {short(raw)}")
    by_segment = {}
    for seg, col in raw.items():
        if col not in CLOCK_COLUMNS:
            raise ctx.error(("clock_start", seg), f"clock start of {seg!r} must be {expected}, "
                                                  f"got {col!r}")
        by_segment[str(seg)] = col
    default = by_segment.pop("default", None)
    if default is None:
        raise ctx.error(("clock_start",), "a clock_start mapping needs a `default` entry for "
                                          "the segments it does not name")
    return default, by_segment


def _parse_stage(raw, i: int, earlier: list[Stage], ctx: YamlContext) -> Stage:
    here = ("stages", i)
    if not isinstance(raw, Mapping):
        raise ctx.error(here, f"each stage must be a mapping (name, label, all/any), got "
                              f"{short(raw)}")
    st = validate(_StageSchema, raw, ctx, at=here)
    name = st.name
    if name in [s.name for s in earlier]:
        raise ctx.error(here + ("name",), f"duplicate stage name {name!r}; stage names must "
                                          "be unique")
    modes = [m for m in ("all", "any") if m in raw]
    if len(modes) != 1:
        what = "both `all` and `any`" if modes else "neither `all` nor `any`"
        raise ctx.error(here, f"stage {name!r} has {what}; give exactly one: `all:` (every "
                              "condition must hold) or `any:` (one is enough)")
    mode = modes[0]
    conds_raw = raw[mode]
    if not isinstance(conds_raw, list) or not conds_raw:
        raise ctx.error(here + (mode,), f"stage {name!r}: `{mode}` must be a non-empty list "
                                        f"of conditions, got {short(conds_raw)}")
    conditions = tuple(_parse_condition(c, here + (mode, j), name, ctx)
                       for j, c in enumerate(conds_raw))
    targets, default = _parse_targets(st.target_days, here + ("target_days",), name, ctx)
    if st.requires is not None:
        names = [s.name for s in earlier]
        if st.requires not in names:
            raise ctx.error(here + ("requires",),
                            f"stage {name!r} requires {st.requires!r}, which is not an "
                            f"earlier stage; earlier stages: {', '.join(names) or '(none)'}")
    label = str(st.label) if st.label not in (None, "") else name.replace("_", " ").capitalize()
    return Stage(name=name, label=label, mode=mode, conditions=conditions, targets=targets,
                 default_target=default, requires=st.requires,
                 description=str(st.description or "").strip())


def _parse_condition(raw, path: tuple, stage: str, ctx: YamlContext) -> Condition:
    line = ctx.lines.get(path)
    if isinstance(raw, str):
        raise ctx.error(path, f"stage {stage!r}: condition {raw!r} is plain text; write "
                              f"`- milestone: {raw}` ({_KINDS_TEXT})")
    if not isinstance(raw, Mapping):
        raise ctx.error(path, f"stage {stage!r}: each condition must be a mapping: "
                              f"{_KINDS_TEXT}; got {short(raw)}")
    primary = [k for k in ("milestone", "active_users") if k in raw]
    if not primary and "events" in raw:
        primary = ["events"]
    if len(primary) != 1:
        what = "conditions of two kinds" if primary else "no known condition"
        raise ctx.error(path, f"stage {stage!r}: {what} in {short(raw)}; one condition per "
                              f"list item: {_KINDS_TEXT}")
    kind = primary[0]
    c = validate(_COND_SCHEMAS[kind], raw, ctx, at=path)
    if kind == "milestone":
        return Condition("milestone", milestone=c.milestone, line=line)
    if kind == "events":
        return Condition("events", events=c.events, at_least=c.at_least,
                         within_days=c.within_days, line=line)
    return Condition("active_users", events=c.events, at_least=c.active_users, line=line)


def _parse_targets(raw, path, stage, ctx) -> tuple[dict[str, float], float | None]:
    if raw is None:
        return {}, None

    def number(v, p, who):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                or v < 0:
            raise ctx.error(p, f"stage {stage!r}: target of {who} must be a number of days "
                               f">= 0, got {short(v)}")
        return float(v)

    if isinstance(raw, Mapping):
        if not raw:
            raise ctx.error(path, f"stage {stage!r}: target_days is empty; give a number or "
                                  "one per segment")
        targets = {str(k): number(v, path + (k,), repr(str(k))) for k, v in raw.items()}
        default = targets.pop("default", None)
        return targets, default
    return {}, number(raw, path, "every segment")


def known_values(ws, table: str, column: str) -> list[str]:
    """Distinct non-null values of a column over the whole (unscoped) workspace."""
    t = ws.con.table(table)
    values = t.select(t[column]).distinct().to_pandas()[column].dropna()
    return sorted(str(v) for v in values)


def _check_against(crit: Criteria, ws) -> None:
    src = crit.source

    def err(message, *path):
        line = crit.line(*path) if path else None
        at = f", line {line}" if line else ""
        return CriteriaError(f"onboarding criteria {src}{at}: {message}")

    if not ws.has("accounts"):
        raise WorkspaceError(f"this workspace ({ws.source}) has no accounts table")
    for col in crit.clock_columns:
        if not ws.has("accounts", col):
            raise err(f"the clock starts at {col}, but this workspace's accounts table has no "
                      f"{col} column; use signup_date, or load {col}", "clock_start")
    segments_used = bool(crit.clock_by_segment) or any(s.targets for s in crit.stages)
    has_segment = ws.has("accounts", "segment")
    if segments_used and not has_segment:
        raise err("targets or clock starts are given per segment, but this workspace's "
                  "accounts table has no segment column; give one number (or `default`)")
    known_segments = known_values(ws, "accounts", "segment") if has_segment else []
    null_segment = False
    if has_segment:
        acc = ws.con.table("accounts")
        null_segment = bool(acc.filter(acc.segment.isnull()).count().to_pandas() > 0)
    named = [(seg, ("clock_start", seg)) for seg in crit.clock_by_segment]
    for i, s in enumerate(crit.stages):
        named += [(seg, ("stages", i, "target_days", seg)) for seg in s.targets]
    for seg, path in named:
        if seg not in known_segments:
            raise err(f"segment {seg!r} is not in this workspace; its segments are: "
                      f"{', '.join(known_segments) or '(none)'}", *path)
    for i, s in enumerate(crit.stages):
        if not s.has_targets or s.default_target is not None:
            continue
        lacking = [g for g in known_segments if g not in s.targets]
        if null_segment:
            lacking.append("accounts without a segment")
        if lacking:
            raise err(f"stage {s.name!r} has no target for {', '.join(map(str, lacking))}; add "
                      "them or a `default` to target_days", "stages", i, "target_days")

    milestones = crit.milestones
    if milestones:
        if not ws.has("onboarding_milestones"):
            raise WorkspaceError(f"this workspace ({ws.source}) has no onboarding_milestones "
                                 f"table, which the criteria's milestone conditions need")
        known = known_values(ws, "onboarding_milestones", "milestone")
        unknown = [m for m in milestones if m not in known]
        if unknown:
            first = _first_use(crit, "milestone", unknown[0])
            raise err(f"unknown milestone(s) {', '.join(map(repr, unknown))}; the workspace's "
                      f"milestones are: {', '.join(known) or '(none)'}", *first)
    usage = [(i, j, c) for i, s in enumerate(crit.stages) for j, c in enumerate(s.conditions)
             if c.kind != "milestone"]
    if usage:
        if not ws.has("usage_events"):
            raise WorkspaceError(f"this workspace ({ws.source}) has no usage_events table, "
                                 "which the criteria's usage conditions need")
        if any(c.kind == "active_users" for _, _, c in usage) and not ws.has(
                "usage_events", "user_id"):
            raise WorkspaceError(f"this workspace's usage_events table ({ws.source}) has no "
                                 "user_id column, which active_users conditions need")
        names = [e for _, _, c in usage for e in c.events]
        if names:
            if not ws.has("usage_events", "event_name"):
                raise WorkspaceError(f"this workspace's usage_events table ({ws.source}) has "
                                     "no event_name column, which conditions on named events "
                                     "need")
            known = known_values(ws, "usage_events", "event_name")
            unknown = [e for e in dict.fromkeys(names) if e not in known]
            if unknown:
                i, j, _ = next((i, j, c) for i, j, c in usage if unknown[0] in c.events)
                mode = crit.stages[i].mode
                raise err(f"unknown event name(s) {', '.join(map(repr, unknown))}; the "
                          f"workspace's event names are: {', '.join(known) or '(none)'}",
                          "stages", i, mode, j, "events")


def _first_use(crit: Criteria, kind: str, name: str) -> tuple:
    for i, s in enumerate(crit.stages):
        for j, c in enumerate(s.conditions):
            if c.kind == kind and c.milestone == name:
                return ("stages", i, s.mode, j, "milestone")
    return ()

