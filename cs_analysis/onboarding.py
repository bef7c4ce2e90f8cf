"""Onboarding: completion criteria, time-to-value, stalled accounts, and what helps.

Public API (signatures are stable; notebooks and dashboards rely on them):

- :func:`load_criteria` -- read and check a completion-criteria file (YAML, see
  ``data/onboarding_criteria.yml``); :class:`Criteria`, :class:`Stage`,
  :class:`Condition`, :class:`CriteriaError`, :func:`default_criteria_path`.
- :func:`time_to_value` -- per account and stage: clock start, reached time or
  censoring, days.
- :func:`ttv_summary` / :func:`ttv_curves` -- Kaplan-Meier median and percentiles of
  days to a stage with intervals, share within target, counts; the curves.
- :func:`stalled_accounts` -- onboardings that stopped moving or ran past their target.
- :func:`ttv_vs_retention` -- does faster time-to-value go with better retention
  (landmark analysis, Cox model).
- :func:`onboarding_tickets` -- support tickets opened during onboarding, per category
  and account-week.
- :func:`activity_effect` -- do accounts that received a CS activity (e.g. training) do
  better, naively and within strata of the listed covariates.
- :class:`OnboardingDashboard` -- the dashboard ``dashboards/onboarding.ipynb`` serves.

Definitions (metrics.md, "Onboarding")
--------------------------------------
- **clock start**: ``signup_date`` or ``kickoff_date``, per the criteria file (per
  segment if it says so). An account without the chosen date is reported (status
  ``no_clock_start``), not guessed, unless the file names a date to start from instead
  (``if_no_clock_start``). A clock start after the as-of date: status ``not_started``.
- **stage reached at**: the first moment all of the stage's conditions hold (``all:``),
  or the first moment one of them holds (``any:``). A milestone condition holds from the
  first row of that milestone (duplicate rows do not matter, nor does the order in which
  milestones were reached); usage conditions from the event that completes them. Only
  activity from the account's ``signup_date`` up to the as-of date counts.
- **time-to-value (TTV)**: whole days from the clock-start date to the (UTC) date of the
  stage's reached time (0 when it was reached before the clock started). Accounts not
  there by the as-of date are censored at the as-of date (status ``in_progress``);
  accounts that churn before are censored at their churn date (status
  ``churned_before``, counted separately as "churned before value"). The churn date is
  :func:`cs_analysis.retention.account_lifetimes`' (not recomputed here).
- **median TTV** and percentiles: from the Kaplan-Meier estimate of the TTV
  distribution. **Share within target** = 1 - S(target) from the same estimate, not
  completed / all.
- **stalled**: not reached, not churned, and either no milestone for ``idle_days``
  (counting from the clock start when there is none) or past the segment's target.

Heavy work (first milestone times, the N-th event of an event set, windows of N events
within D days, the K-th distinct user, tickets within each account's onboarding window)
runs in the engine (Ibis on the workspace's backend); only one row per account (or per
category) comes back to pandas, where statsmodels does the statistics.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd

from cs_analysis.config import YamlContext, read_text, read_yaml, short
from cs_analysis.formatting import is_missing
from cs_analysis.survival import kaplan_meier, loglog_interval
from cs_analysis.workspace import WorkspaceError, _to_date

__all__ = [
    "CLOCK_COLUMNS",
    "STATUSES",
    "ActivityEffect",
    "Condition",
    "Criteria",
    "CriteriaError",
    "OUTCOMES",
    "Stage",
    "TTVRetention",
    "activity_effect",
    "default_criteria_path",
    "load_criteria",
    "onboarding_tickets",
    "stalled_accounts",
    "stalled_per_owner",
    "time_to_value",
    "ttv_curves",
    "ttv_summary",
    "ttv_vs_retention",
]

#: Date columns of ``accounts`` an onboarding clock may start from.
CLOCK_COLUMNS = ("signup_date", "kickoff_date")
#: Status of an account for a stage (see :func:`time_to_value`).
STATUSES = ("reached", "in_progress", "churned_before", "no_clock_start", "not_started")
#: Statuses that enter the Kaplan-Meier estimate (the others have no clock running).
_OBSERVED = ("reached", "in_progress", "churned_before")
#: Label of the group holding every account when no ``by`` column is given.
ALL_ACCOUNTS = "All accounts"
#: Label of accounts whose ``by`` column is null.
MISSING = "(missing)"
#: ``if_no_clock_start`` value meaning "leave the account out and list it".
REPORT = "report"
_DAY = pd.Timedelta(days=1)


# ======================================================================================
# Completion criteria
# ======================================================================================
class CriteriaError(ValueError):
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
    """The project's criteria file for the demo workspace: ``data/onboarding_criteria.yml``.

    Found from the package's location (the repository root beside ``cs_analysis/``),
    never from the working directory.
    """
    return Path(__file__).resolve().parent.parent / "data" / "onboarding_criteria.yml"


_TOP_KEYS = ("clock_start", "if_no_clock_start", "stages", "description", "title", "version")
_STAGE_KEYS = ("name", "label", "description", "all", "any", "target_days", "requires")
_COND_KEYS = {"milestone": ("milestone",),
              "events": ("events", "at_least", "within_days"),
              "active_users": ("active_users", "events")}
#: What an onboarding criteria file is called in messages.
_LABEL = "onboarding criteria"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def load_criteria(source=None) -> Criteria:
    """Read and check completion criteria.

    Parameters
    ----------
    source : str, Path, mapping or Criteria, optional
        A YAML file (see ``data/onboarding_criteria.yml`` for the format, documented at
        its top), the same content as a mapping, or criteria already loaded. None or
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
        ``within_days`` that are not whole numbers >= 1; targets that are not
        non-negative numbers. Names are checked against a workspace by
        :meth:`Criteria.check`.
    """
    if isinstance(source, Criteria):
        return source
    if source is None or (isinstance(source, str) and source.strip() == ""):
        source = default_criteria_path()
    if isinstance(source, Mapping):
        return _parse(dict(source), YamlContext(_LABEL, "<mapping>", {}, {}, CriteriaError))
    path = Path(source)
    text = read_text(path, _LABEL, CriteriaError)
    return _parse(*read_yaml(text, _LABEL, str(path), CriteriaError))


def _parse(data, ctx: YamlContext) -> Criteria:
    if not isinstance(data, Mapping):
        raise ctx.error((), "expected a mapping with `clock_start` and `stages` at the top "
                            f"level, got {type(data).__name__}: {short(data)}")
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        raise ctx.error((unknown[0],), f"unknown key {unknown[0]!r}; the allowed keys are "
                                       f"{', '.join(_TOP_KEYS)}", key_line=True)
    clock_start, by_segment = _parse_clock(data, ctx)
    fallback = data.get("if_no_clock_start", REPORT)
    if fallback is None or fallback == REPORT:
        fallback = None
    elif fallback not in CLOCK_COLUMNS:
        raise ctx.error(("if_no_clock_start",),
                        f"if_no_clock_start must be {REPORT!r} or one of "
                        f"{', '.join(CLOCK_COLUMNS)}, got {fallback!r}")
    stages_raw = data.get("stages")
    if stages_raw is None:
        raise ctx.error((), "no `stages`: list at least one stage (name, label, and `all:` "
                            "or `any:` conditions)")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ctx.error(("stages",), "`stages` must be a non-empty list of stages, got "
                                     f"{short(stages_raw)}")
    stages: list[Stage] = []
    for i, raw in enumerate(stages_raw):
        stages.append(_parse_stage(raw, i, stages, ctx))
    return Criteria(clock_start=clock_start, clock_by_segment=by_segment,
                    if_no_clock_start=fallback, stages=tuple(stages), source=ctx.source,
                    description=str(data.get("description") or ""),
                    lines=dict(ctx.lines))


def _parse_clock(data, ctx: YamlContext) -> tuple[str, dict[str, str]]:
    raw = data.get("clock_start")
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
    unknown = [k for k in raw if k not in _STAGE_KEYS]
    if unknown:
        raise ctx.error(here + (unknown[0],), f"unknown stage key {unknown[0]!r}; the allowed "
                                              f"keys are {', '.join(_STAGE_KEYS)}",
                        key_line=True)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ctx.error(here + (("name",) if "name" in raw else ()),
                        "each stage needs a `name`: letters, digits, _ or -, starting with "
                        f"a letter (e.g. value_realized), got {name!r}")
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
    targets, default = _parse_targets(raw.get("target_days"), here + ("target_days",), name,
                                      ctx)
    requires = raw.get("requires")
    if requires is not None:
        names = [s.name for s in earlier]
        if requires not in names:
            raise ctx.error(here + ("requires",),
                            f"stage {name!r} requires {requires!r}, which is not an earlier "
                            f"stage; earlier stages: {', '.join(names) or '(none)'}")
    label = raw.get("label")
    label = str(label) if label not in (None, "") else name.replace("_", " ").capitalize()
    return Stage(name=name, label=label, mode=mode, conditions=conditions, targets=targets,
                 default_target=default, requires=requires,
                 description=str(raw.get("description") or "").strip())


def _parse_condition(raw, path: tuple, stage: str, ctx: YamlContext) -> Condition:
    line = ctx.lines.get(path)
    kinds_text = "`milestone: <name>`, `events: [<event names>]` or `active_users: <K>`"
    if isinstance(raw, str):
        raise ctx.error(path, f"stage {stage!r}: condition {raw!r} is plain text; write "
                              f"`- milestone: {raw}` ({kinds_text})")
    if not isinstance(raw, Mapping):
        raise ctx.error(path, f"stage {stage!r}: each condition must be a mapping: "
                              f"{kinds_text}; got {short(raw)}")
    primary = [k for k in ("milestone", "active_users") if k in raw]
    if not primary and "events" in raw:
        primary = ["events"]
    if len(primary) != 1:
        what = "conditions of two kinds" if primary else "no known condition"
        raise ctx.error(path, f"stage {stage!r}: {what} in {short(raw)}; one condition per "
                              f"list item: {kinds_text}")
    kind = primary[0]
    unknown = [k for k in raw if k not in _COND_KEYS[kind]]
    if unknown:
        raise ctx.error(path + (unknown[0],), f"stage {stage!r}: {unknown[0]!r} is not a key "
                                              f"of a {kind} condition (allowed: "
                                              f"{', '.join(_COND_KEYS[kind])})", key_line=True)
    if kind == "milestone":
        name = raw["milestone"]
        if not isinstance(name, str) or not name.strip():
            raise ctx.error(path + ("milestone",), f"stage {stage!r}: a milestone must be a "
                                                   f"name (text), got {short(name)}")
        return Condition("milestone", milestone=name.strip(), line=line)
    events = _parse_events(raw.get("events", "any"), path + ("events",), stage, ctx)
    if kind == "events":
        at_least = _whole(raw.get("at_least", 1), path + ("at_least",), "at_least", stage, ctx)
        within = raw.get("within_days")
        within = None if within is None else _whole(within, path + ("within_days",),
                                                    "within_days", stage, ctx)
        return Condition("events", events=events, at_least=at_least, within_days=within,
                         line=line)
    k = _whole(raw["active_users"], path + ("active_users",), "active_users", stage, ctx)
    return Condition("active_users", events=events, at_least=k, line=line)


def _parse_events(raw, path, stage, ctx) -> tuple[str, ...]:
    if raw in ("any", "*"):
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if (not isinstance(raw, list) or not raw
            or not all(isinstance(e, str) and e.strip() for e in raw)):
        raise ctx.error(path, f"stage {stage!r}: `events` must be a list of event names (or "
                              f"`any`), got {short(raw)}")
    return tuple(dict.fromkeys(e.strip() for e in raw))


def _whole(value, path, key, stage, ctx) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) \
            or value < 1:
        raise ctx.error(path, f"stage {stage!r}: {key} must be a whole number >= 1, got "
                              f"{short(value)}")
    return int(value)


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


def _known(ws, table: str, column: str) -> list[str]:
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
    known_segments = _known(ws, "accounts", "segment") if has_segment else []
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
        known = _known(ws, "onboarding_milestones", "milestone")
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
            known = _known(ws, "usage_events", "event_name")
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


# ======================================================================================
# Engine work: per-account clock and condition times
# ======================================================================================
def _resolve_as_of(ws, as_of) -> dt.date:
    return ws.as_of if as_of is None else _to_date(as_of)


def _ts(d: dt.date):
    return ibis.timestamp(dt.datetime(d.year, d.month, d.day))


def _end_ts(as_of: dt.date):
    """Midnight after the as-of date: activity strictly before it counts."""
    return _ts(as_of + dt.timedelta(days=1))


def _scoped_accounts(ws, as_of: dt.date):
    acc = ws.table("accounts", columns=["account_id", "signup_date"])
    acc = acc.filter(acc.signup_date <= as_of)
    return acc.select("account_id", _signup=acc.signup_date.cast("timestamp"))


def _milestone_times(ws, as_of: dt.date, names: Sequence[str]) -> pd.DataFrame:
    """First ``completed_at`` per account and milestone (``account_id, milestone, at``)."""
    m = ws.table("onboarding_milestones", columns=["account_id", "milestone", "completed_at"])
    m = m.filter(m.milestone.isin(list(names)))
    acc = _scoped_accounts(ws, as_of)
    j = m.join(acc, "account_id")
    j = j.filter(j.completed_at >= j._signup, j.completed_at < _end_ts(as_of))
    out = j.group_by(["account_id", "milestone"]).agg(at=j.completed_at.min()).to_pandas()
    out["account_id"] = out["account_id"].astype("str")
    return out


def _events_time(ws, as_of: dt.date, cond: Condition) -> pd.DataFrame:
    """When each account first meets an events condition (``account_id, at``).

    ``at_least`` N events of the set, all of them if ``within_days`` is None (the N-th
    event), else N events on at most ``within_days`` consecutive calendar days (the
    first event closing such a window: the event N-1 rows earlier in time order is
    fewer than ``within_days`` calendar days before it).
    """
    cols = ["account_id", "event_at"] + (["event_name"] if cond.events else [])
    ev = ws.table("usage_events", columns=cols)
    if cond.events:
        ev = ev.filter(ev.event_name.isin(list(cond.events)))
    acc = _scoped_accounts(ws, as_of)
    j = ev.join(acc, "account_id")
    j = j.filter(j.event_at >= j._signup, j.event_at < _end_ts(as_of))
    j = j.select("account_id", "event_at")
    n = cond.at_least
    w = ibis.window(group_by=j.account_id, order_by=j.event_at)
    if cond.within_days is None:
        if n == 1:
            res = j.group_by("account_id").agg(at=j.event_at.min())
        else:
            r = j.mutate(_rn=ibis.row_number().over(w))
            res = r.filter(r._rn == n - 1).select("account_id", at=r.event_at)
    else:
        r = j.mutate(_prev=j.event_at.lag(n - 1).over(w)) if n > 1 else j.mutate(
            _prev=j.event_at)
        r = r.filter(r._prev.notnull(),
                     r.event_at.date().delta(r._prev.date(), unit="day") < cond.within_days)
        res = r.group_by("account_id").agg(at=r.event_at.min())
    out = res.to_pandas()
    out["account_id"] = out["account_id"].astype("str")
    return out


def _users_time(ws, as_of: dt.date, cond: Condition) -> pd.DataFrame:
    """When each account's K-th distinct user had a first event (``account_id, at``)."""
    cols = ["account_id", "event_at", "user_id"] + (["event_name"] if cond.events else [])
    ev = ws.table("usage_events", columns=cols)
    ev = ev.filter(ev.user_id.notnull())
    if cond.events:
        ev = ev.filter(ev.event_name.isin(list(cond.events)))
    acc = _scoped_accounts(ws, as_of)
    j = ev.join(acc, "account_id")
    j = j.filter(j.event_at >= j._signup, j.event_at < _end_ts(as_of))
    first = j.group_by(["account_id", "user_id"]).agg(_first=j.event_at.min())
    k = cond.at_least
    if k == 1:
        res = first.group_by("account_id").agg(at=first._first.min())
    else:
        w = ibis.window(group_by=first.account_id, order_by=first._first)
        r = first.mutate(_rn=ibis.row_number().over(w))
        res = r.filter(r._rn == k - 1).select("account_id", at=r._first)
    out = res.to_pandas()
    out["account_id"] = out["account_id"].astype("str")
    return out


def _last_milestones(ws, as_of: dt.date) -> pd.DataFrame:
    """Latest milestone of any name per account (``account_id, last_milestone, last_at``)."""
    if not ws.has("onboarding_milestones"):
        return pd.DataFrame({"account_id": pd.Series([], dtype="str"),
                             "last_milestone": pd.Series([], dtype="str"),
                             "last_at": pd.Series([], dtype="datetime64[us]")})
    m = ws.table("onboarding_milestones", columns=["account_id", "milestone", "completed_at"])
    acc = _scoped_accounts(ws, as_of)
    j = m.join(acc, "account_id")
    j = j.filter(j.completed_at >= j._signup, j.completed_at < _end_ts(as_of))
    out = j.group_by("account_id").agg(last_milestone=j.milestone.argmax(j.completed_at),
                                       last_at=j.completed_at.max()).to_pandas()
    out["account_id"] = out["account_id"].astype("str")
    return out


def _open_tickets(ws, as_of: dt.date) -> pd.DataFrame | None:
    """Tickets open at the end of the as-of date per account (None without the data)."""
    if not ws.has("support_tickets", "resolved_at"):
        return None
    t = ws.table("support_tickets", columns=["account_id", "opened_at", "resolved_at"])
    end = _end_ts(as_of)
    t = t.filter(t.opened_at < end, t.resolved_at.isnull() | (t.resolved_at >= end))
    out = t.group_by("account_id").agg(open_tickets=t.count()).to_pandas()
    out["account_id"] = out["account_id"].astype("str")
    return out


@dataclass
class _Data:
    """Everything per account that the onboarding analyses share."""

    accounts: pd.DataFrame  # indexed by account_id
    conditions: pd.DataFrame  # account_id x condition key -> first time it holds
    reached: pd.DataFrame  # account_id x stage name -> reached_at
    as_of: dt.date
    criteria: Criteria


def _collect(ws, criteria, as_of=None, extra: Sequence[str] = ()) -> _Data:
    crit = load_criteria(criteria)
    crit.check(ws)
    as_of = _resolve_as_of(ws, as_of)
    extra = [c for c in dict.fromkeys(extra) if c]
    optional = [c for c in ("account_name", "segment", "csm_owner", "kickoff_date")
                if ws.has("accounts", c)]
    cols = ["account_id", "signup_date", *optional]
    cols += [c for c in extra if c not in cols]
    acc_t = ws.table("accounts", columns=cols)
    acc_t = acc_t.filter(acc_t.signup_date <= as_of).select(*cols)
    acc = acc_t.to_pandas()
    acc["account_id"] = acc["account_id"].astype("str")
    for c in ("signup_date", "kickoff_date"):
        if c in acc:
            acc[c] = pd.to_datetime(acc[c]).astype("datetime64[us]")
    acc = acc.set_index("account_id", drop=False).sort_index()
    acc.index.name = None

    # clock start
    seg = acc["segment"] if "segment" in acc else pd.Series(pd.NA, index=acc.index)
    chosen = seg.map(lambda s: crit.clock_by_segment.get(str(s), crit.clock_start)
                     if not is_missing(s) else crit.clock_start).astype("str")
    start = pd.Series(pd.NaT, index=acc.index, dtype="datetime64[us]")
    for col in CLOCK_COLUMNS:
        if col in acc:
            start = start.mask(chosen == col, acc[col])
    source = chosen.where(start.notna())
    if crit.if_no_clock_start:
        fb = crit.if_no_clock_start
        use = start.isna() & acc[fb].notna()
        start = start.mask(use, acc[fb])
        source = source.mask(use, fb)
    acc["clock_column"] = chosen
    acc["clock_start"] = start
    acc["clock_source"] = source.astype("str").where(source.notna())

    # churn (retention's definition, not recomputed)
    churn = pd.Series(pd.NaT, index=acc.index, dtype="datetime64[us]")
    if ws.has("subscriptions"):
        from cs_analysis.retention import account_lifetimes

        lt = account_lifetimes(ws, as_of=as_of)
        if not lt.empty:
            lt_churn = pd.Series(pd.to_datetime(lt["churn_date"]).astype("datetime64[us]")
                                 .to_numpy(), index=lt["account_id"].astype("str"))
            churn = lt_churn.reindex(acc.index).astype("datetime64[us]")
    acc["churn_date"] = churn

    # conditions (engine), then stages (per account, pandas)
    conds: dict[str, pd.Series] = {}
    milestones = crit.milestones
    if milestones:
        first = _milestone_times(ws, as_of, milestones)
        for name in milestones:
            rows = first[first["milestone"] == name]
            conds[f"milestone:{name}"] = pd.Series(
                pd.to_datetime(rows["at"]).to_numpy(), index=rows["account_id"].to_numpy())
    for s in crit.stages:
        for c in s.conditions:
            if c.key in conds:
                continue
            if c.kind == "events":
                got = _events_time(ws, as_of, c)
            elif c.kind == "active_users":
                got = _users_time(ws, as_of, c)
            else:
                continue
            conds[c.key] = pd.Series(pd.to_datetime(got["at"]).to_numpy(),
                                     index=got["account_id"].to_numpy())
    cond_df = pd.DataFrame(index=acc.index)
    for key, series in conds.items():
        cond_df[key] = series.reindex(acc.index).astype("datetime64[us]")
    reached = pd.DataFrame(index=acc.index)
    for s in crit.stages:
        times = cond_df[[c.key for c in s.conditions]]
        at = times.max(axis=1, skipna=False) if s.mode == "all" else times.min(axis=1)
        if s.requires:
            both = pd.concat([at, reached[s.requires]], axis=1)
            at = both.max(axis=1, skipna=False)
        reached[s.name] = at.astype("datetime64[us]")
    return _Data(acc, cond_df, reached, as_of, crit)


def _stage_frame(data: _Data, stage: Stage, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The :func:`time_to_value` rows of one stage."""
    acc = data.accounts
    as_of = pd.Timestamp(data.as_of)
    start = acc["clock_start"]
    reached_at = data.reached[stage.name]
    reached_day = reached_at.dt.normalize()
    churn = acc["churn_date"]
    no_clock = start.isna()
    not_started = ~no_clock & (start > as_of)
    running = ~no_clock & ~not_started
    reached = running & reached_at.notna() & (churn.isna() | (reached_day < churn))
    churned = running & ~reached & churn.notna()
    in_progress = running & ~reached & ~churned
    status = pd.Series(np.select(
        [no_clock.to_numpy(), not_started.to_numpy(), reached.to_numpy(), churned.to_numpy()],
        ["no_clock_start", "not_started", "reached", "churned_before"], "in_progress"),
        index=acc.index, dtype="str")
    end = reached_day.where(reached, churn.where(churned, as_of))
    days = ((end - start).dt.days.astype("float").clip(lower=0)).where(running)
    seg = acc["segment"] if "segment" in acc else pd.Series(pd.NA, index=acc.index)
    target = seg.map(stage.target_for).astype("float")
    within = pd.Series(pd.NA, index=acc.index, dtype="boolean")
    within = within.mask(reached, days <= target)
    beyond = (churned | in_progress) & (days > target)
    within = within.mask(beyond, False)
    within = within.mask(target.isna() | ~running, pd.NA)
    out = pd.DataFrame({
        "account_id": acc["account_id"].astype("str"),
        "stage": stage.name,
        "stage_label": stage.label,
    })
    for col in ("account_name", "segment", "csm_owner"):
        if col in acc:
            out[col] = acc[col]
    for col in extra:
        if col not in out:
            out[col] = acc[col]
    out["signup_date"] = acc["signup_date"]
    out["clock_start"] = start
    out["clock_source"] = acc["clock_source"]
    out["reached_at"] = reached_at.where(reached)
    out["status"] = status
    out["reached"] = reached.astype(bool)
    out["days"] = days
    out["churn_date"] = churn
    out["target_days"] = target
    out["within_target"] = within
    return out.reset_index(drop=True)


# ======================================================================================
# Time to value
# ======================================================================================
def time_to_value(ws, criteria=None, stage: str | None = None, *, as_of=None,
                  by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Per account and stage: clock start, time the stage was reached, or censoring.

    Definitions (metrics.md, "Onboarding"): the **clock start** is ``signup_date`` or
    ``kickoff_date`` as the criteria say (per segment if they say so); an account
    without it is reported with status ``no_clock_start`` (unless the criteria name a
    date to start from instead), not guessed. A **stage is reached at** the first moment
    all of its conditions hold (``any:``: one of them). **TTV** = whole days from the
    clock-start date to the date of the reached time (0 when reached before the clock
    started). How each account is treated (``status``):

    - ``reached``: reached by the as-of date while still a customer; ``days`` = TTV.
    - ``in_progress``: not reached by the as-of date; censored there (``days`` = as-of
      date - clock start).
    - ``churned_before``: churned (:func:`cs_analysis.retention.account_lifetimes`)
      before reaching the stage ("churned before value"); censored at the churn date.
    - ``no_clock_start``: the clock's date is missing; left out of every estimate.
    - ``not_started``: the clock starts after the as-of date; left out.

    Only milestones and events from the account's ``signup_date`` up to the as-of date
    count; duplicated milestone rows count once (the first), and milestones reached out
    of order are fine (each condition has its own time).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace; accounts signing up after the as-of date are
        left out.
    criteria : Criteria, str, Path or mapping, optional
        Completion criteria (:func:`load_criteria`); default
        :func:`default_criteria_path`.
    stage : str, optional
        One stage's name; default every stage (one row per account and stage).
    as_of : date or str, optional
        Default: the workspace's as-of date.
    by : str or list of str, optional
        Extra ``accounts`` columns to carry along.

    Returns
    -------
    pandas.DataFrame
        ``account_id``, ``stage``, ``stage_label``, ``account_name`` / ``segment`` /
        ``csm_owner`` (when present), the ``by`` columns, ``signup_date``,
        ``clock_start`` (NaT without one), ``clock_source`` (the column it came from),
        ``reached_at`` (NaT unless reached), ``status``, ``reached`` (bool: the event of
        the Kaplan-Meier estimate), ``days`` (TTV or time to censoring; NaN without a
        running clock), ``churn_date``, ``target_days`` (NaN without a target),
        ``within_target`` (True: reached within target; False: reached later, or
        censored after the target passed; NA: censored before the target).
    """
    extra = _by_list(by)
    data = _collect(ws, criteria, as_of, extra)
    stages = [data.criteria.stage(stage)] if stage is not None else data.criteria.stages
    frames = [_stage_frame(data, s, extra) for s in stages]
    return pd.concat(frames, ignore_index=True)


def _by_list(by) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


# -- Kaplan-Meier: cs_analysis.survival (one convention: median = first t with S(t) <= 0.5)
def _z(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def _groups(frame: pd.DataFrame, by: str | None) -> pd.Series:
    if by is None:
        return pd.Series(ALL_ACCOUNTS, index=frame.index, dtype="str")
    return frame[by].astype("str").where(frame[by].notna(), MISSING)


def _stage_ttv(ws, criteria, stage, as_of, by, ttv) -> tuple[pd.DataFrame, Stage]:
    crit = load_criteria(criteria)
    st = crit.stage(stage)
    if ttv is None:
        ttv = time_to_value(ws, crit, st.name, as_of=as_of, by=[by] if by else None)
    else:
        ttv = ttv[ttv["stage"] == st.name]
        if by is not None and by not in ttv:
            raise ValueError(f"the ttv frame has no {by!r} column; pass by={by!r} to "
                             "time_to_value")
    return ttv, st


# ======================================================================================
# Summary and curves
# ======================================================================================
def ttv_summary(ws, criteria=None, by: str | None = "segment", *, stage: str | None = None,
                as_of=None, percentiles: Sequence[float] = (0.25, 0.75), alpha: float = 0.05,
                small_sample: int = 30, ttv: pd.DataFrame | None = None) -> pd.DataFrame:
    """Kaplan-Meier median and percentiles of days to a stage, share within target, counts.

    Definitions (metrics.md): TTV as in :func:`time_to_value` (censored at the as-of
    date, or at the churn date for accounts that churned before the stage). The
    **median TTV** and the percentiles come from the Kaplan-Meier estimate S(t) of the
    share not yet at the stage after t days: the p-th percentile is the smallest t with
    S(t) <= 1 - p (the convention of lifelines and most textbooks; NaN when fewer than
    that share have reached it within follow-up), with the statsmodels ``quantile_ci``
    interval (inverted tests on the cloglog scale). **Share within target** = 1 -
    S(target) from the same estimate, not completed / all; its interval is the Greenwood
    interval on the log(-log) scale. When a group's accounts have different targets
    (grouping by anything but segment), the estimate runs on days / target and the share
    is 1 - S(1), which equals 1 - S(target) when the target is common.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    criteria : Criteria, str, Path or mapping, optional
        Default :func:`default_criteria_path`.
    by : str, optional
        An ``accounts`` column (one row per value; nulls labelled ``"(missing)"``), or
        None for one row over every account.
    stage : str, optional
        Default: the last stage ("value").
    as_of : date or str, optional
        Default: the workspace's as-of date.
    percentiles : list of float
        Other percentiles than the median (0.25 -> ``p25_days``).
    alpha : float
        1 - confidence level of the intervals.
    small_sample : int
        Groups with fewer accounts in the estimate are flagged ``small_sample``.
    ttv : DataFrame, optional
        A :func:`time_to_value` frame for the same workspace, criteria, stage and as-of
        date (with the ``by`` column), to avoid computing it again.

    Returns
    -------
    pandas.DataFrame
        One row per group: ``group``, ``stage``, ``accounts`` (in the estimate),
        ``reached``, ``in_progress``, ``churned_before``, ``no_clock_start``,
        ``not_started``, ``target_days`` (NaN when mixed or none), ``share_within_target``,
        ``within_lower``, ``within_upper``, ``median_days``, ``median_lower``,
        ``median_upper``, ``p<q>_days`` / ``_lower`` / ``_upper`` per percentile,
        ``small_sample``. ``attrs["by"]`` holds ``by``.
    """
    ttv, st = _stage_ttv(ws, criteria, stage, as_of, by, ttv)
    z = _z(alpha)
    groups = _groups(ttv, by)
    rows = []
    for group, g in ttv.groupby(groups, sort=True):
        obs = g[g["status"].isin(_OBSERVED)]
        counts = g["status"].value_counts()
        row: dict[str, Any] = {"group": group, "stage": st.name, "accounts": len(obs)}
        for s in STATUSES:
            row[s] = int(counts.get(s, 0))
        targets = obs["target_days"].dropna().unique()
        row["target_days"] = float(targets[0]) if len(targets) == 1 and obs[
            "target_days"].notna().all() else math.nan
        row.update(_within_share(obs, z))
        km = kaplan_meier(obs["days"], obs["reached"]) if len(obs) else None
        for p in (0.5, *percentiles):
            name = "median" if p == 0.5 else f"p{round(p * 100):d}"
            if km is None:
                row.update({f"{name}_days": math.nan, f"{name}_lower": math.nan,
                            f"{name}_upper": math.nan})
                continue
            lo, hi = km.quantile_ci(p, alpha)
            row.update({f"{name}_days": km.quantile(p), f"{name}_lower": lo,
                        f"{name}_upper": hi})
        row["small_sample"] = len(obs) < small_sample
        rows.append(row)
    cols = ["group", "stage", "accounts", *STATUSES, "target_days", "share_within_target",
            "within_lower", "within_upper"]
    for p in (0.5, *percentiles):
        name = "median" if p == 0.5 else f"p{round(p * 100):d}"
        cols += [f"{name}_days", f"{name}_lower", f"{name}_upper"]
    cols.append("small_sample")
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["by"] = by
    return out


def _within_share(obs: pd.DataFrame, z: float) -> dict[str, float]:
    """1 - S(1) on days / target (= 1 - S(target) for one target), with its interval."""
    ok = obs[obs["target_days"].notna()]
    nan = {"share_within_target": math.nan, "within_lower": math.nan, "within_upper": math.nan}
    if ok.empty:
        return nan
    target = ok["target_days"].to_numpy(float)
    days = ok["days"].to_numpy(float)
    # days / target; a 0-day target: 0 when reached on day 0, else past it (2 > 1)
    scaled = np.where(target > 0, days / np.where(target > 0, target, 1.0),
                      np.where(days > 0, 2.0, 0.0))
    km = kaplan_meier(scaled, ok["reached"])
    s, se = km.at(1.0)
    if is_missing(s):
        return nan
    lo, hi = loglog_interval(s, se, z)
    return {"share_within_target": 1 - s,
            "within_lower": 1 - hi if not is_missing(hi) else math.nan,
            "within_upper": 1 - lo if not is_missing(lo) else math.nan}


def ttv_curves(ws, criteria=None, by: str | None = "segment", *, stage: str | None = None,
               as_of=None, alpha: float = 0.05, ttv: pd.DataFrame | None = None
               ) -> pd.DataFrame:
    """Cumulative share of accounts at a stage after each number of days (1 - KM).

    The Kaplan-Meier estimate of :func:`ttv_summary` drawn as a step function:
    ``reached_share`` = 1 - S(days), with the pointwise Greenwood interval on the
    log(-log S) scale. Censoring as in :func:`time_to_value`.

    Parameters
    ----------
    ws, criteria, by, stage, as_of, alpha, ttv
        As for :func:`ttv_summary`.

    Returns
    -------
    pandas.DataFrame
        ``group``, ``stage``, ``days``, ``reached_share``, ``lower``, ``upper``,
        ``at_risk`` (accounts not yet there and still observed just before ``days``),
        ``events`` (reached at ``days``), ``target_days`` (the group's target when it
        has one). The first row per group is day 0; a last row carries the curve to the
        longest follow-up.
    """
    ttv, st = _stage_ttv(ws, criteria, stage, as_of, by, ttv)
    z = _z(alpha)
    groups = _groups(ttv, by)
    parts = []
    for group, g in ttv.groupby(groups, sort=True):
        obs = g[g["status"].isin(_OBSERVED)]
        if obs.empty:
            continue
        km = kaplan_meier(obs["days"], obs["reached"])
        days = [0.0, *km.times]
        surv = [1.0, *km.surv]
        se = [0.0, *km.se]
        at_risk = [len(obs), *km.n_risk]
        events = [0, *km.n_events]
        if km.max_time > days[-1]:
            days.append(km.max_time)
            surv.append(surv[-1])
            se.append(se[-1])
            at_risk.append(int((obs["days"] >= km.max_time).sum()))
            events.append(0)
        bands = [loglog_interval(s, e, z) for s, e in zip(surv, se, strict=True)]
        lower = [1 - (hi if not is_missing(hi) else s) for (lo, hi), s in zip(bands, surv,
                                                                           strict=True)]
        upper = [1 - (lo if not is_missing(lo) else s) for (lo, hi), s in zip(bands, surv,
                                                                           strict=True)]
        targets = obs["target_days"].dropna().unique()
        parts.append(pd.DataFrame({
            "group": group, "stage": st.name, "days": days,
            "reached_share": [1 - s for s in surv], "lower": lower, "upper": upper,
            "at_risk": np.asarray(at_risk, dtype="int64"),
            "events": np.asarray(events, dtype="int64"),
            "target_days": float(targets[0]) if len(targets) == 1 else math.nan}))
    cols = ["group", "stage", "days", "reached_share", "lower", "upper", "at_risk", "events",
            "target_days"]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({c: [] for c in cols})
    out.attrs["by"] = by
    return out


# ======================================================================================
# Stalled onboardings
# ======================================================================================
def stalled_accounts(ws, criteria=None, idle_days: int = 14, *, stage: str | None = None,
                     as_of=None, include_moving: bool = False) -> pd.DataFrame:
    """Onboardings that stopped moving or ran past their target, riskiest first.

    Definition (metrics.md): **stalled** = the stage is not reached, the account has not
    churned (status ``in_progress`` of :func:`time_to_value`), and either no milestone
    (of any name) for ``idle_days`` days (counting from the clock start when there is
    none, or when the last one came before the clock started) or past the segment's
    target (days in onboarding > target days).

    Risk order: accounts with both reasons first, then by days over target (as a share
    of the target), then by days without progress, then by open tickets.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    criteria : Criteria, str, Path or mapping, optional
        Default :func:`default_criteria_path`.
    idle_days : int
        Days without a milestone that make an onboarding stalled.
    stage : str, optional
        The stage not yet reached; default the last stage ("value").
    as_of : date or str, optional
        Default: the workspace's as-of date.
    include_moving : bool
        Also return the onboardings that are not stalled (``stalled`` False), after the
        stalled ones.

    Returns
    -------
    pandas.DataFrame
        ``risk_rank``, ``account_id``, ``account_name``, ``segment``, ``csm_owner`` (when
        present), ``stage_label``, ``clock_start``, ``days_in_onboarding``,
        ``target_days``, ``days_over_target`` (NaN within target), ``stages_reached``,
        ``last_milestone``, ``last_milestone_at``, ``days_since_progress``,
        ``next_step`` (the first unmet condition of the first stage not reached, in the
        criteria's order), ``next_stage``, ``open_tickets`` (open at the end of the as-of
        date; NA without ticket data), ``past_target``, ``idle``, ``stalled``,
        ``reasons``.
    """
    if int(idle_days) < 1:
        raise ValueError(f"idle_days must be at least 1, got {idle_days}")
    data = _collect(ws, criteria, as_of)
    crit = data.criteria
    st = crit.stage(stage)
    frame = _stage_frame(data, st)
    frame = frame[frame["status"] == "in_progress"].set_index("account_id", drop=False)
    frame.index.name = None
    as_of_ts = pd.Timestamp(data.as_of)
    last = _last_milestones(ws, data.as_of).set_index("account_id")
    frame["last_milestone"] = last["last_milestone"].reindex(frame.index)
    frame["last_milestone_at"] = pd.to_datetime(last["last_at"]).reindex(frame.index)
    progress = frame["last_milestone_at"].dt.normalize()
    since = progress.where(progress.notna() & (progress > frame["clock_start"]),
                           frame["clock_start"])
    frame["days_since_progress"] = (as_of_ts - since).dt.days.astype("float")
    frame["days_in_onboarding"] = frame["days"]
    frame["days_over_target"] = (frame["days"] - frame["target_days"]).where(
        frame["days"] > frame["target_days"])
    frame["past_target"] = (frame["days"] > frame["target_days"]).fillna(False).astype(bool)
    frame["idle"] = (frame["days_since_progress"] >= idle_days).astype(bool)
    frame["stalled"] = frame["past_target"] | frame["idle"]
    if not include_moving:
        frame = frame[frame["stalled"]]

    order = crit.stage_names[: crit.stage_names.index(st.name) + 1]
    reached_sets, next_steps, next_stages = [], [], []
    for acc_id in frame.index:
        done = [crit.stage(n).label for n in crit.stage_names
                if pd.notna(data.reached.at[acc_id, n])]
        reached_sets.append(", ".join(done))
        step, which = "", ""
        for name in order:
            s = crit.stage(name)
            if pd.notna(data.reached.at[acc_id, name]):
                continue
            unmet = [c for c in s.conditions if pd.isna(data.conditions.at[acc_id, c.key])]
            if unmet:
                step, which = unmet[0].describe(), s.label
                if s.mode == "any" and len(unmet) > 1:
                    step = " or ".join(c.describe() for c in unmet)
                break
        next_steps.append(step)
        next_stages.append(which)
    frame["stages_reached"] = pd.Series(reached_sets, index=frame.index, dtype="str")
    frame["next_step"] = pd.Series(next_steps, index=frame.index, dtype="str")
    frame["next_stage"] = pd.Series(next_stages, index=frame.index, dtype="str")
    tickets = _open_tickets(ws, data.as_of)
    if tickets is None:
        frame["open_tickets"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    else:
        frame["open_tickets"] = (tickets.set_index("account_id")["open_tickets"]
                                 .reindex(frame.index).fillna(0).astype("int64"))
    reasons = []
    for _, r in frame.iterrows():
        parts = []
        if r["past_target"]:
            parts.append(f"{int(r['days_over_target'])} days past the {int(r['target_days'])}"
                         "-day target")
        if r["idle"]:
            what = "no milestone" if pd.isna(r["last_milestone"]) else "no new milestone"
            parts.append(f"{what} for {int(r['days_since_progress'])} days")
        reasons.append("; ".join(parts))
    frame["reasons"] = pd.Series(reasons, index=frame.index, dtype="str")
    frame["_n"] = frame["past_target"].astype(int) + frame["idle"].astype(int)
    frame["_over"] = (frame["days_over_target"] / frame["target_days"].where(
        frame["target_days"] > 0)).fillna(-1.0)
    frame["_tickets"] = frame["open_tickets"].astype("Float64").fillna(0).astype(float)
    frame = frame.sort_values(["stalled", "_n", "_over", "days_since_progress", "_tickets",
                               "account_id"],
                              ascending=[False, False, False, False, False, True])
    frame["risk_rank"] = np.arange(1, len(frame) + 1)
    cols = ["risk_rank", "account_id", "account_name", "segment", "csm_owner", "stage_label",
            "clock_start", "days_in_onboarding", "target_days", "days_over_target",
            "stages_reached", "last_milestone", "last_milestone_at", "days_since_progress",
            "next_step", "next_stage", "open_tickets", "past_target", "idle", "stalled",
            "reasons"]
    return frame[[c for c in cols if c in frame.columns]].reset_index(drop=True)


# ======================================================================================
# Time to value and retention
# ======================================================================================
@dataclass(frozen=True)
class TTVRetention:
    """Result of :func:`ttv_vs_retention`.

    Attributes
    ----------
    buckets : pandas.DataFrame
        Retention after a landmark by TTV bucket: ``bucket``, ``order``, ``accounts``,
        ``churned``, ``account_years``, ``churn_rate`` (churns per account-year after
        the landmark) with ``rate_lower`` / ``rate_upper`` (exact Poisson interval),
        ``retained_12m`` (Kaplan-Meier share still a customer 365 days after the
        landmark) with ``retained_lower`` / ``retained_upper``, ``hazard_ratio`` /
        ``hr_lower`` / ``hr_upper`` / ``p_value`` (Cox, vs the fastest bucket),
        ``small_sample``, ``landmark_days``.
    cox : pandas.DataFrame
        Hazard ratios: ``model``, ``term``, ``reference``, ``hazard_ratio``, ``lower``,
        ``upper``, ``p_value``, ``accounts`` / ``events`` (in the term's group), ``n`` /
        ``n_events`` (in the model), ``strata``.
    accounts : pandas.DataFrame
        One row per account in the target-landmark model: ``account_id``, ``segment``,
        ``landmark`` (date), ``within_target``, ``years_after``, ``churned``.
    excluded : dict
        Accounts left out of the target landmark model, by reason.
    note : str
        How the analysis avoids immortal-time bias, in plain words.
    """

    buckets: pd.DataFrame
    cox: pd.DataFrame
    accounts: pd.DataFrame
    excluded: Mapping[str, int]
    note: str


_LANDMARK_NOTE = (
    "Landmark analysis: each account is followed from a fixed point after its clock start "
    "(its segment's target, or {h} days for the buckets) and grouped by what it had "
    "reached by then. Only accounts still customers at that point count. Grouping by the "
    "final time-to-value instead would credit slow onboarders with the months they had to "
    "survive to finish (immortal-time bias) and make slow onboarding look safe. A "
    "landmark was chosen over a time-varying covariate because 'reached value within "
    "target' is known exactly at the target date, which is when a CSM can act on it.")


def ttv_vs_retention(ws, criteria=None, *, stage: str | None = None,
                     buckets: Sequence[int] = (15, 30, 45, 60, 90), as_of=None,
                     alpha: float = 0.05, small_sample: int = 30) -> TTVRetention:
    """Does faster time-to-value go with better retention? Landmark hazards and Cox.

    Two landmark analyses (time-to-value as in :func:`time_to_value`, churn dates from
    :func:`cs_analysis.retention.account_lifetimes`):

    - **Within target** (Cox): each account with a target is followed from its
      landmark = clock start + its segment's target days, if the landmark is on or
      before the as-of date and the account had not churned by then. Covariate: the
      stage was *not* reached within the target (reference: reached within target).
      Cox proportional hazards (statsmodels ``PHReg``, Efron ties) of the time from the
      landmark to churn (censored at the as-of date), stratified by segment (each
      segment has its own baseline hazard). ``exp(b)`` is the churn hazard ratio.
    - **TTV buckets**: accounts still customers ``buckets[-1]`` days after the clock
      start are grouped by days to the stage (``<= 15``, ``16-30``, ...; "not within
      90 days" for the rest) and followed from that landmark: churns per account-year
      (exact Poisson interval), Kaplan-Meier retention 365 days after the landmark, and
      Cox hazard ratios vs the fastest bucket (stratified by segment).

    Following accounts from a landmark fixed in advance avoids immortal-time bias (see
    :attr:`TTVRetention.note`).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    criteria : Criteria, str, Path or mapping, optional
        Default :func:`default_criteria_path`.
    stage : str, optional
        Default: the last stage ("value").
    buckets : list of int
        Upper bounds (days, inclusive) of the TTV buckets; the last one is the landmark.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    alpha : float
        1 - confidence level.
    small_sample : int
        Buckets with fewer accounts are flagged.

    Returns
    -------
    TTVRetention
    """
    edges = [int(b) for b in buckets]
    if not edges or any(b <= 0 for b in edges) or edges != sorted(set(edges)):
        raise ValueError(f"buckets must be increasing whole days > 0, got {list(buckets)}")
    ttv, st = _stage_ttv(ws, criteria, stage, as_of, None, None)
    as_of_d = _resolve_as_of(ws, as_of)
    as_of_ts = pd.Timestamp(as_of_d)
    z = _z(alpha)
    obs = ttv[ttv["status"].isin(_OBSERVED)].copy()
    seg = obs["segment"] if "segment" in obs else pd.Series(ALL_ACCOUNTS, index=obs.index)
    obs["_stratum"] = seg.astype("str").where(seg.notna(), MISSING)

    # -- landmark at the target ------------------------------------------------------
    excluded = {"no_target": int(obs["target_days"].isna().sum())}
    lm = obs[obs["target_days"].notna()].copy()
    lm["landmark"] = lm["clock_start"] + pd.to_timedelta(lm["target_days"], unit="D")
    future = lm["landmark"] > as_of_ts
    excluded["landmark_after_as_of"] = int(future.sum())
    lm = lm[~future]
    gone = lm["churn_date"].notna() & (lm["churn_date"] <= lm["landmark"])
    excluded["churned_before_landmark"] = int(gone.sum())
    lm = lm[~gone]
    lm["within_target"] = (lm["reached"] & (lm["days"] <= lm["target_days"])).astype(bool)
    end = lm["churn_date"].where(lm["churn_date"].notna(), as_of_ts)
    lm["days_after"] = (end - lm["landmark"]).dt.days.astype(float)
    lm["churned"] = lm["churn_date"].notna()
    cox_rows = []
    x = pd.DataFrame({"missed_target": (~lm["within_target"]).astype(float)})
    cox_rows += _cox_rows(
        "within target (landmark at the target)", x, lm, {"missed_target": (
            "did not reach the stage within target", "reached within target",
            ~lm["within_target"])}, z)

    # -- landmark at the last bucket edge -----------------------------------------------
    h = edges[-1]
    bk = obs.copy()
    bk["landmark"] = bk["clock_start"] + pd.Timedelta(days=h)
    bk = bk[bk["landmark"] <= as_of_ts]
    bk = bk[~(bk["churn_date"].notna() & (bk["churn_date"] <= bk["landmark"]))]
    labels = _bucket_labels(edges)
    order = np.full(len(bk), len(edges))
    days = bk["days"].to_numpy(float)
    reached = bk["reached"].to_numpy(bool)
    for i in range(len(edges) - 1, -1, -1):
        order = np.where(reached & (days <= edges[i]), i, order)
    bk["order"] = order
    bk["bucket"] = [labels[i] for i in order]
    end = bk["churn_date"].where(bk["churn_date"].notna(), as_of_ts)
    bk["days_after"] = (end - bk["landmark"]).dt.days.astype(float)
    bk["churned"] = bk["churn_date"].notna()
    present = sorted(bk["order"].unique())
    ref = present[0] if present else 0
    xb = pd.DataFrame({f"b{i}": (bk["order"] == i).astype(float) for i in present if i != ref})
    terms = {f"b{i}": (labels[i], labels[ref], (bk["order"] == i).to_numpy()) for i in present
             if i != ref}
    bucket_cox = _cox_rows(f"TTV buckets (landmark at {h} days)", xb, bk, terms, z)
    cox_rows += bucket_cox
    hr = {r["term"]: r for r in bucket_cox}
    rows = []
    for i in present:
        g = bk[bk["order"] == i]
        k, years = int(g["churned"].sum()), float(g["days_after"].sum()) / 365.25
        lo, hi = _poisson_ci(k, years, alpha)
        km = kaplan_meier(g["days_after"], g["churned"])
        s, se = km.at(365.0)
        slo, shi = loglog_interval(s, se, z)
        r = hr.get(labels[i], {})
        rows.append({"bucket": labels[i], "order": int(i), "accounts": len(g), "churned": k,
                     "account_years": years,
                     "churn_rate": k / years if years > 0 else math.nan,
                     "rate_lower": lo, "rate_upper": hi, "retained_12m": s,
                     "retained_lower": slo, "retained_upper": shi,
                     "hazard_ratio": r.get("hazard_ratio", 1.0 if i == ref else math.nan),
                     "hr_lower": r.get("lower", math.nan), "hr_upper": r.get("upper", math.nan),
                     "p_value": r.get("p_value", math.nan),
                     "small_sample": len(g) < small_sample, "landmark_days": h})
    bucket_cols = ["bucket", "order", "accounts", "churned", "account_years", "churn_rate",
                   "rate_lower", "rate_upper", "retained_12m", "retained_lower",
                   "retained_upper", "hazard_ratio", "hr_lower", "hr_upper", "p_value",
                   "small_sample", "landmark_days"]
    accounts = lm.assign(years_after=lm["days_after"] / 365.25)
    accounts = accounts[[c for c in ("account_id", "segment", "landmark", "within_target",
                                     "years_after", "churned") if c in accounts]]
    return TTVRetention(buckets=pd.DataFrame(rows, columns=bucket_cols),
                        cox=pd.DataFrame(cox_rows, columns=_COX_COLS),
                        accounts=accounts.reset_index(drop=True), excluded=excluded,
                        note=_LANDMARK_NOTE.format(h=h))


_COX_COLS = ["model", "term", "reference", "hazard_ratio", "lower", "upper", "p_value",
             "accounts", "events", "n", "n_events", "strata"]


def _bucket_labels(edges: Sequence[int]) -> list[str]:
    labels, lo = [], 0
    for i, e in enumerate(edges):
        labels.append(f"≤ {e} days" if i == 0 else f"{lo + 1}–{e} days")
        lo = e
    labels.append(f"not within {edges[-1]} days")
    return labels


def _cox_rows(model: str, x: pd.DataFrame, frame: pd.DataFrame, terms: Mapping, z: float
              ) -> list[dict]:
    """Stratified Cox fit of ``frame.days_after`` / ``churned`` on ``x``; one row per term."""
    import statsmodels.api as sm

    time = frame["days_after"].to_numpy(float)
    status = frame["churned"].to_numpy(int)
    strata = frame["_stratum"].to_numpy()
    n, n_events = len(frame), int(status.sum())
    rows = []
    fit = None
    usable = [c for c in x.columns if x[c].nunique() > 1]
    if n_events > 0 and usable:
        try:
            fit = sm.PHReg(time, x[usable].to_numpy(float), status=status, strata=strata,
                           ties="efron").fit(disp=False)
        except (np.linalg.LinAlgError, ValueError):  # pragma: no cover - degenerate data
            fit = None
    for name, (term, reference, mask) in terms.items():
        mask = np.asarray(mask, dtype=bool)
        row = {"model": model, "term": term, "reference": reference, "hazard_ratio": math.nan,
               "lower": math.nan, "upper": math.nan, "p_value": math.nan,
               "accounts": int(mask.sum()), "events": int(status[mask].sum()), "n": n,
               "n_events": n_events, "strata": "segment"}
        if fit is not None and name in usable:
            j = usable.index(name)
            b, se = float(fit.params[j]), float(fit.bse[j])
            row.update(hazard_ratio=math.exp(b), lower=math.exp(b - z * se),
                       upper=math.exp(b + z * se), p_value=float(fit.pvalues[j]))
        rows.append(row)
    return rows


def _poisson_ci(k: int, exposure: float, alpha: float) -> tuple[float, float]:
    """Exact (Garwood) interval of a rate k / exposure."""
    from scipy.stats import chi2

    if exposure <= 0:
        return math.nan, math.nan
    lo = 0.0 if k == 0 else chi2.ppf(alpha / 2, 2 * k) / 2
    hi = chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2
    return float(lo) / exposure, float(hi) / exposure


# ======================================================================================
# Tickets during onboarding
# ======================================================================================
def onboarding_tickets(ws, criteria=None, *, stage: str | None = None, by: str | None = None,
                       as_of=None, alpha: float = 0.05) -> pd.DataFrame:
    """Support tickets opened during onboarding, by category, per account-week.

    Each account with a running clock (status ``reached``, ``in_progress`` or
    ``churned_before`` in :func:`time_to_value`) is **onboarding** from midnight of its
    clock-start date until the stage was reached (its ``reached_at``), or, when it was
    not, until its churn date or the end of the as-of date. A ticket counts when its
    ``opened_at`` falls in that window. The rate is tickets / account-weeks of
    onboarding (the summed window lengths / 7 days), with an exact Poisson interval.
    For comparison, the same rate **after** onboarding: from ``reached_at`` to the churn
    date or the end of the as-of date, for accounts that reached the stage;
    ``rate_ratio`` = during / after. Null categories are labelled ``"(missing)"``.

    The join of tickets to onboarding windows runs in the engine.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace; needs ``support_tickets.category``.
    criteria : Criteria, str, Path or mapping, optional
        Default :func:`default_criteria_path`.
    stage : str, optional
        The stage that ends onboarding; default the last stage ("value").
    by : str, optional
        An ``accounts`` column to split by (column ``group``).
    as_of : date or str, optional
        Default: the workspace's as-of date.
    alpha : float
        1 - confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per (group and) category, most frequent first: ``group``, ``category``,
        ``tickets``, ``accounts_with_tickets``, ``accounts`` (onboarding in the group),
        ``account_weeks``, ``per_account_week``, ``lower``, ``upper``, ``share`` (of the
        group's onboarding tickets), ``after_tickets``, ``after_account_weeks``,
        ``after_per_account_week``, ``rate_ratio``.
    """
    ws.table("support_tickets", columns=["account_id", "opened_at", "category"])
    ttv, _ = _stage_ttv(ws, criteria, stage, as_of, by, None)
    as_of_d = _resolve_as_of(ws, as_of)
    end_day = pd.Timestamp(as_of_d) + _DAY
    obs = ttv[ttv["status"].isin(_OBSERVED)].copy()
    obs["group"] = _groups(obs, by)
    w0 = obs["clock_start"]
    stop = obs["churn_date"].where(obs["status"] == "churned_before", end_day)
    w1 = obs["reached_at"].where(obs["reached"], stop)
    w1 = w1.where(w1 > w0, w0)
    a0 = obs["reached_at"].where(obs["reached"])
    a1 = obs["churn_date"].where(obs["churn_date"].notna(), end_day)
    windows = pd.DataFrame({
        "account_id": obs["account_id"].astype("str"), "_g": obs["group"].astype("str"),
        "_w0": w0.astype("datetime64[us]"), "_w1": w1.astype("datetime64[us]"),
        "_a0": a0.astype("datetime64[us]"), "_a1": a1.astype("datetime64[us]")})
    weeks = windows.assign(
        during=(windows["_w1"] - windows["_w0"]).dt.total_seconds() / (7 * 86400),
        after=((windows["_a1"] - windows["_a0"]).dt.total_seconds() / (7 * 86400)).clip(
            lower=0).fillna(0.0))
    exposure = weeks.groupby("_g").agg(accounts=("account_id", "size"),
                                       account_weeks=("during", "sum"),
                                       after_account_weeks=("after", "sum"))
    cols = ["group", "category", "tickets", "accounts_with_tickets", "accounts",
            "account_weeks", "per_account_week", "lower", "upper", "share", "after_tickets",
            "after_account_weeks", "after_per_account_week", "rate_ratio"]
    if windows.empty:
        return pd.DataFrame({c: [] for c in cols})
    t = ws.table("support_tickets", columns=["account_id", "opened_at", "category"])
    t = t.filter(t.opened_at < _ts(as_of_d + dt.timedelta(days=1)))
    w = ibis.memtable(windows)
    j = t.join(w, "account_id")
    cat = j.category.cast("string").fill_null(MISSING)
    during = (j.opened_at >= j._w0) & (j.opened_at < j._w1)
    after = j._a0.notnull() & (j.opened_at >= j._a0) & (j.opened_at < j._a1)
    j = j.mutate(_cat=cat, _during=during.cast("int64"), _after=after.cast("int64"))
    j = j.filter((j._during + j._after) > 0)
    agg = j.group_by(["_g", "_cat"]).agg(
        tickets=j._during.sum(), after_tickets=j._after.sum(),
        accounts_with_tickets=j.account_id.nunique(where=j._during == 1)).to_pandas()
    if agg.empty:
        return pd.DataFrame({c: [] for c in cols})
    agg = agg.rename(columns={"_g": "group", "_cat": "category"})
    agg = agg.join(exposure, on="group")
    agg["tickets"] = agg["tickets"].astype("int64")
    agg["after_tickets"] = agg["after_tickets"].astype("int64")
    agg["accounts_with_tickets"] = agg["accounts_with_tickets"].astype("int64")
    agg["per_account_week"] = agg["tickets"] / agg["account_weeks"]
    cis = [_poisson_ci(int(k), float(e), alpha) for k, e in zip(agg["tickets"],
                                                              agg["account_weeks"],
                                                              strict=True)]
    agg["lower"] = [c[0] for c in cis]
    agg["upper"] = [c[1] for c in cis]
    agg["share"] = agg["tickets"] / agg.groupby("group")["tickets"].transform("sum")
    agg["after_per_account_week"] = (agg["after_tickets"] / agg["after_account_weeks"]).where(
        agg["after_account_weeks"] > 0)
    agg["rate_ratio"] = (agg["per_account_week"] / agg["after_per_account_week"]).where(
        agg["after_tickets"] > 0)
    agg = agg.sort_values(["group", "tickets", "category"], ascending=[True, False, True])
    out = agg[cols].reset_index(drop=True)
    out.attrs["by"] = by
    return out


# ======================================================================================
# Does a CS activity help?
# ======================================================================================
OUTCOMES = ("ttv", "retention_12m", "nps")


@dataclass(frozen=True)
class ActivityEffect:
    """Result of :func:`activity_effect`.

    Attributes
    ----------
    summary : pandas.DataFrame
        Two rows, ``estimate`` = ``"naive"`` and ``"adjusted"``: ``activity``,
        ``outcome``, ``measure``, ``treated_accounts``, ``control_accounts``,
        ``treated_value``, ``control_value``, ``difference`` (treated - control),
        ``lower``, ``upper``, ``p_value``, ``strata_used``, ``strata_dropped``,
        ``treated_dropped`` (treated accounts in strata without a comparison),
        ``adjusted_for``.
    strata : pandas.DataFrame
        One row per stratum of the adjusted estimate: the ``adjust_for`` columns (binned
        for numbers), ``treated``, ``control``, ``treated_value``, ``control_value``,
        ``difference``, ``se``, ``weight``, ``used``.
    accounts : pandas.DataFrame
        One row per eligible account: ``account_id``, ``treated``, ``stratum`` and the
        outcome's inputs.
    statement : str
        The result in words, saying it is an association.
    """

    summary: pd.DataFrame
    strata: pd.DataFrame
    accounts: pd.DataFrame
    statement: str


def activity_effect(ws, activity: str, outcome: str = "ttv",
                    adjust_for: Sequence[str] = ("segment", "employees"), *, criteria=None,
                    stage: str | None = None, window_days: int = 30, horizon_days: int = 180,
                    bins: int = 4, as_of=None, alpha: float = 0.05) -> ActivityEffect:
    """Do accounts that received a CS activity do better? Naive and adjusted differences.

    **Treated** accounts had at least one ``cs_activities`` row of ``activity`` within the
    first ``window_days`` days of their onboarding clock (clock start <= ``occurred_at``
    < clock start + ``window_days``; for ``outcome="ttv"`` also before the stage was
    reached). Accounts whose window has not closed by the as-of date, or without a clock
    start, are left out (the treatment is not known yet). Outcomes, each
    censoring-aware:

    - ``"ttv"``: restricted mean days to the stage up to ``horizon_days``
      (the area under the Kaplan-Meier curve S(t) of :func:`time_to_value` from 0 to
      the horizon; accounts never reaching it count as the horizon), with the
      Kaplan-Meier variance ``sum A_j^2 d_j / (n_j (n_j - d_j))``, A_j the area under S
      from event time t_j to the horizon. Negative difference = faster.
    - ``"retention_12m"``: Kaplan-Meier share still a customer 365 days after signup
      (:func:`cs_analysis.retention.account_lifetimes`), Greenwood variance. Accounts
      that churned before their window closed are left out (they had no chance to get
      the activity).
    - ``"nps"``: NPS = (promoters - detractors) / responses x 100 of the ``nps``
      responses the accounts gave after their window closed, up to the as-of date (with
      ``respondent_id``, each respondent's latest response per calendar quarter);
      delta-method variance (promoters 9-10, detractors 0-6; responses treated as
      independent).

    The **naive** difference compares all treated with all other eligible accounts. The
    **adjusted** one compares them within strata of ``adjust_for``: categorical columns
    as they are (nulls as ``"(missing)"``), numeric ones cut into ``bins`` quantile bins
    within each combination of the categorical ones. Strata with fewer than two treated
    or two untreated accounts are dropped (counted). The stratum differences are
    averaged with weights proportional to their treated accounts (the effect among the
    accounts that received the activity); variance = sum of weight^2 x (variance
    treated + variance untreated). Intervals are normal, ``difference +- z x se``.

    This is an association, not proof of an effect: accounts that received the activity
    may differ in ways not in ``adjust_for``.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace; needs ``cs_activities``.
    activity : str
        A ``cs_activities.activity`` value, e.g. ``"training"``.
    outcome : str
        ``"ttv"``, ``"retention_12m"`` or ``"nps"``.
    adjust_for : list of str
        ``accounts`` columns.
    criteria : Criteria, str, Path or mapping, optional
        Onboarding criteria (clock start, stage); default :func:`default_criteria_path`.
    stage : str, optional
        For ``"ttv"``; default the last stage ("value").
    window_days : int
        Days from the clock start in which the activity counts.
    horizon_days : int
        Horizon of the restricted mean TTV.
    bins : int
        Quantile bins of numeric ``adjust_for`` columns.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    alpha : float
        1 - confidence level.

    Returns
    -------
    ActivityEffect
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome={outcome!r} is not supported; expected one of "
                         f"{list(OUTCOMES)}")
    if int(window_days) < 1 or int(horizon_days) < 1 or int(bins) < 1:
        raise ValueError("window_days, horizon_days and bins must be at least 1")
    adjust_for = _by_list(adjust_for)
    as_of_d = _resolve_as_of(ws, as_of)
    as_of_ts = pd.Timestamp(as_of_d)
    acts = ws.table("cs_activities", columns=["account_id", "activity", "occurred_at"])
    known = _known(ws, "cs_activities", "activity")
    if activity not in known:
        raise ValueError(f"no cs_activities of activity {activity!r}; the workspace's "
                         f"activities are: {', '.join(known) or '(none)'}")
    ttv = time_to_value(ws, criteria, stage if outcome == "ttv" else None, as_of=as_of_d,
                        by=adjust_for)
    crit = load_criteria(criteria)
    st = crit.stage(stage) if outcome == "ttv" else crit.stages[-1]
    ttv = ttv[ttv["stage"] == st.name]
    base = ttv[ttv["status"].isin(_OBSERVED)].copy()
    base["_w0"] = base["clock_start"]
    base["_w1"] = base["clock_start"] + pd.Timedelta(days=int(window_days))
    base = base[base["_w1"] <= as_of_ts + _DAY]
    if outcome == "ttv":
        cut = base["reached_at"].where(base["reached"])
        base["_w1c"] = cut.where(cut.notna() & (cut < base["_w1"]), base["_w1"])
    else:
        base["_w1c"] = base["_w1"]
    windows = base[["account_id", "_w0", "_w1c"]].astype(
        {"account_id": "str", "_w0": "datetime64[us]", "_w1c": "datetime64[us]"})
    a = acts.filter(acts.activity == activity, acts.occurred_at < _end_ts(as_of_d))
    treated_ids: set[str] = set()
    if not windows.empty:
        w = ibis.memtable(windows)
        j = a.join(w, "account_id")
        j = j.filter(j.occurred_at >= j._w0, j.occurred_at < j._w1c)
        treated_ids = set(j.select("account_id").distinct().to_pandas()["account_id"]
                          .astype("str"))
    base["treated"] = base["account_id"].isin(treated_ids)

    if outcome == "ttv":
        base["_time"] = base["days"].astype(float)
        base["_event"] = base["reached"].astype(int)
        measure = (f"restricted mean days to {st.label.lower()} (up to {int(horizon_days)} "
                   "days)")
    elif outcome == "retention_12m":
        from cs_analysis.retention import account_lifetimes

        lt = account_lifetimes(ws, as_of=as_of_d).set_index("account_id")
        base = base[base["account_id"].isin(lt.index)].copy()
        life = lt.reindex(base["account_id"])
        churn = pd.to_datetime(life["churn_date"]).to_numpy()
        alive = pd.isna(churn) | (churn > base["_w1"].to_numpy())
        base = base[alive].copy()
        life = lt.reindex(base["account_id"])
        base["_time"] = life["lifetime_days"].to_numpy(float)
        base["_event"] = life["churned"].to_numpy(int)
        measure = "share still a customer 365 days after signup"
    else:
        resp = _nps_responses(ws, as_of_d, base[["account_id", "_w1"]])
        base = base.merge(resp, on="account_id", how="left")
        for c in ("responses", "promoters", "detractors"):
            base[c] = base[c].fillna(0).astype("int64")
        base = base[base["responses"] > 0].copy()
        measure = "NPS of responses after the window (points)"

    strata_cols = []
    for col in adjust_for:
        lab = f"_s_{col}"
        base[lab] = base[col].astype("str").where(base[col].notna(), MISSING)
        strata_cols.append((col, lab))
    cat = [lab for col, lab in strata_cols
           if not (pd.api.types.is_numeric_dtype(base[col])
                   and not pd.api.types.is_bool_dtype(base[col]))]
    for col, lab in strata_cols:
        if lab in cat:
            continue
        base[lab] = _quantile_bins(base, col, cat, int(bins))
    labs = [lab for _, lab in strata_cols]
    stratum = pd.Series(ALL_ACCOUNTS, index=base.index, dtype="str")
    for k, lab in enumerate(labs):
        part = base[lab].astype("str")
        stratum = part if k == 0 else stratum + " · " + part
    base["stratum"] = stratum

    def arm(frame):
        if outcome == "ttv":
            return _rmst(frame["_time"], frame["_event"], float(horizon_days))
        if outcome == "retention_12m":
            km = kaplan_meier(frame["_time"], frame["_event"])
            s, se = km.at(365.0)
            return s, se ** 2 if not is_missing(se) else math.nan
        return _nps(frame)

    z = _z(alpha)
    t_all, c_all = base[base["treated"]], base[~base["treated"]]
    rows = []
    if len(t_all) and len(c_all):
        (tv, tvar), (cv, cvar) = arm(t_all), arm(c_all)
        diff, se = tv - cv, math.sqrt(tvar + cvar)
    else:
        tv = cv = diff = se = math.nan
    rows.append(_effect_row("naive", tv, cv, diff, se, len(t_all), len(c_all), z))
    strata_rows = []
    for key, g in base.groupby(labs if labs else "stratum", sort=True, dropna=False):
        t, c = g[g["treated"]], g[~g["treated"]]
        row = dict(zip(adjust_for, key if isinstance(key, tuple) else (key,), strict=False))
        row.update(treated=len(t), control=len(c), treated_value=math.nan,
                   control_value=math.nan, difference=math.nan, se=math.nan, weight=0.0,
                   used=False)
        if len(t) >= 2 and len(c) >= 2:
            (a_v, a_var), (b_v, b_var) = arm(t), arm(c)
            if not any(is_missing(v) for v in (a_v, a_var, b_v, b_var)):
                row.update(treated_value=a_v, control_value=b_v, difference=a_v - b_v,
                           se=math.sqrt(a_var + b_var), used=True)
        strata_rows.append(row)
    strata = pd.DataFrame(strata_rows)
    used = strata[strata["used"]] if not strata.empty else strata
    if len(used):
        wts = used["treated"] / used["treated"].sum()
        strata.loc[used.index, "weight"] = wts
        adj = float((wts * used["difference"]).sum())
        adj_se = float(math.sqrt((wts ** 2 * used["se"] ** 2).sum()))
        tv_a = float((wts * used["treated_value"]).sum())
        cv_a = float((wts * used["control_value"]).sum())
        rows.append(_effect_row("adjusted", tv_a, cv_a, adj, adj_se, int(used["treated"].sum()),
                                int(used["control"].sum()), z))
    else:
        rows.append(_effect_row("adjusted", math.nan, math.nan, math.nan, math.nan, 0, 0, z))
    summary = pd.DataFrame(rows)
    summary.insert(1, "activity", activity)
    summary.insert(2, "outcome", outcome)
    summary.insert(3, "measure", measure)
    n_dropped = int((~strata["used"]).sum()) if not strata.empty else 0
    summary["strata_used"] = [1, len(used)]
    summary["strata_dropped"] = [0, n_dropped]
    summary["treated_dropped"] = [0, int(strata.loc[~strata["used"], "treated"].sum())
                                  if not strata.empty else 0]
    summary["adjusted_for"] = ", ".join(adjust_for) or "(nothing)"
    keep = ["account_id", "treated", "stratum"] + (
        ["_time", "_event"] if outcome != "nps" else ["responses", "promoters", "detractors"])
    accounts = base[keep].rename(columns={"_time": "time", "_event": "event"}).reset_index(
        drop=True)
    statement = _effect_statement(summary, activity, outcome, adjust_for, window_days, alpha)
    return ActivityEffect(summary=summary, strata=strata, accounts=accounts,
                          statement=statement)


def _effect_row(estimate, tv, cv, diff, se, nt, nc, z) -> dict:
    from scipy.stats import norm

    ok = not (is_missing(diff) or is_missing(se)) and se > 0
    return {"estimate": estimate, "treated_accounts": int(nt), "control_accounts": int(nc),
            "treated_value": tv, "control_value": cv, "difference": diff,
            "lower": diff - z * se if ok else math.nan,
            "upper": diff + z * se if ok else math.nan,
            "p_value": float(2 * norm.sf(abs(diff / se))) if ok else math.nan}


def _quantile_bins(frame: pd.DataFrame, col: str, within: list[str], bins: int) -> pd.Series:
    """Quantile bin labels of a numeric column within groups of ``within`` columns."""
    out = pd.Series(MISSING, index=frame.index, dtype="str")
    parts = [g.index for _, g in frame.groupby(within, sort=False)] if within else [
        frame.index]
    for idx in parts:
        x = frame.loc[idx, col].astype(float)
        ok = x.notna()
        if not ok.any():
            continue
        ranks = x[ok].rank(method="first")
        q = np.ceil(ranks / len(ranks) * bins).astype(int).clip(1, bins)
        for b in sorted(q.unique()):
            members = q[q == b].index
            lo, hi = x[members].min(), x[members].max()
            out[members] = f"{col} {_num(lo)}–{_num(hi)}"
    return out


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def _rmst(time, event, tau: float) -> tuple[float, float]:
    """Restricted mean up to ``tau`` of a Kaplan-Meier curve, and its variance."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    if len(time) == 0:
        return math.nan, math.nan
    km = kaplan_meier(time, event)
    keep = km.times < tau
    t, s = km.times[keep], km.surv[keep]
    n, d = km.n_risk[keep], km.n_events[keep]
    grid = np.r_[0.0, t, tau]
    level = np.r_[1.0, s]
    widths = np.diff(grid)
    area = float((level * widths).sum())
    # area under S from each event time to tau
    tail = np.cumsum((level * widths)[::-1])[::-1][1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(tail > 0, tail ** 2 * d / (n * (n - d)), 0.0)
    return area, float(np.nansum(terms))


def _nps(frame: pd.DataFrame) -> tuple[float, float]:
    n = float(frame["responses"].sum())
    if n <= 0:
        return math.nan, math.nan
    pp, pd_ = frame["promoters"].sum() / n, frame["detractors"].sum() / n
    return 100 * (pp - pd_), 100 ** 2 * (pp + pd_ - (pp - pd_) ** 2) / n


def _nps_responses(ws, as_of: dt.date, windows: pd.DataFrame) -> pd.DataFrame:
    """Per account: NPS responses, promoters, detractors after its window (engine)."""
    cols = ["account_id", "survey", "score", "responded_at"]
    has_resp = ws.has("survey_responses", "respondent_id")
    sr = ws.table("survey_responses", columns=cols + (["respondent_id"] if has_resp else []))
    sr = sr.filter(sr.survey == "nps", sr.responded_at < _end_ts(as_of))
    w = ibis.memtable(windows.astype({"account_id": "str", "_w1": "datetime64[us]"}))
    j = sr.join(w, "account_id")
    j = j.filter(j.responded_at >= j._w1)
    if has_resp:
        wave = j.responded_at.year() * 4 + j.responded_at.quarter()
        j = j.mutate(_wave=wave)
        win = ibis.window(group_by=[j.account_id, j.respondent_id, j._wave],
                          order_by=ibis.desc(j.responded_at))
        j = j.mutate(_rn=ibis.row_number().over(win))
        j = j.filter(j.respondent_id.isnull() | (j._rn == 0))
    agg = j.group_by("account_id").agg(
        responses=j.count(), promoters=(j.score >= 9).cast("int64").sum(),
        detractors=(j.score <= 6).cast("int64").sum()).to_pandas()
    agg["account_id"] = agg["account_id"].astype("str")
    return agg


def _effect_statement(summary, activity, outcome, adjust_for, window_days, alpha) -> str:
    naive, adj = summary.iloc[0], summary.iloc[1]
    level = f"{(1 - alpha) * 100:.0f}%"
    unit = {"ttv": " days", "retention_12m": " points", "nps": " NPS points"}[outcome]
    scale = 100.0 if outcome == "retention_12m" else 1.0

    def fmt(r):
        if is_missing(r["difference"]):
            return "not computable"
        return (f"{r['difference'] * scale:+.1f}{unit} ({level} CI "
                f"{r['lower'] * scale:+.1f} to {r['upper'] * scale:+.1f})")

    what = {"ttv": "time to value (restricted mean days; negative = faster)",
            "retention_12m": "12-month retention", "nps": "NPS"}[outcome]
    adj_text = ", ".join(adjust_for) or "nothing"
    return (f"Accounts that received {activity} within {window_days} days of their "
            f"onboarding start, compared with those that did not, on {what}: naive "
            f"difference {fmt(naive)} ({int(naive['treated_accounts'])} vs "
            f"{int(naive['control_accounts'])} accounts); comparing accounts with the same "
            f"{adj_text}: {fmt(adj)}. This is an association, not proof that {activity} "
            "causes the difference: accounts that received it may differ in other ways "
            f"that are not adjusted for.")


def stalled_per_owner(stalled: pd.DataFrame) -> pd.DataFrame:
    """Stalled onboardings per CSM and reason, for :func:`cs_analysis.charts.stalled_by_owner`.

    Parameters
    ----------
    stalled : pandas.DataFrame
        :func:`stalled_accounts` output.

    Returns
    -------
    pandas.DataFrame
        ``csm_owner`` (``"(no CSM)"`` when null), ``reason`` ("past target and idle",
        "past target" or "no recent milestone"), ``accounts``.
    """
    if stalled.empty:
        return pd.DataFrame({"csm_owner": [], "reason": [], "accounts": []})
    owner = (stalled["csm_owner"].astype("str").where(stalled["csm_owner"].notna(),
                                                      "(no CSM)")
             if "csm_owner" in stalled else pd.Series("(all)", index=stalled.index))
    reason = np.select([stalled["past_target"] & stalled["idle"], stalled["past_target"]],
                       ["past target and idle", "past target"], "no recent milestone")
    frame = pd.DataFrame({"csm_owner": owner, "reason": reason})
    return frame.groupby(["csm_owner", "reason"], as_index=False).size().rename(
        columns={"size": "accounts"})
