"""CS operations: coverage tiers beyond MRR, today's workload and the CSM hiring plan.

Public API

- :func:`load_rules` -- read a coverage-rule file
  (``cs_analysis/defaults/coverage_rules.yml``): ordered rules over account attributes
  assigning ``high``, ``low`` or ``tech`` touch.
- :func:`account_attributes` -- the attributes rules can use: every ``accounts`` column
  plus the derived ``mrr`` and ``products``.
- :func:`assign_coverage` -- tier and the rule that fired, per account; agreement with
  ``accounts.touch_model``.
- :func:`evaluate_coverage` -- per tier: accounts, MRR, time-to-value, retention and
  ticket load; the groups of accounts whose outcomes look like another tier's.
- :func:`load_model` -- read a capacity model (``cs_analysis/defaults/capacity_model.yml``).
- :func:`workload` -- hours per CSM and per tier at the as-of date, overloaded CSMs,
  concurrent onboardings against the limit.
- :func:`load_pipeline` -- read a sales pipeline (new accounts per month and segment).
- :func:`plan_inputs` / :func:`plan_capacity` / :func:`capacity_plan` -- hours,
  onboardings in flight, CSMs needed per month and hiring dates (ramp included), for
  scenarios side by side. :func:`plan_capacity` is pure arithmetic on the small frames
  of :func:`plan_inputs` (what the dashboard's sliders redraw).

Definitions
-----------
- **MRR** of an account: metrics.md, "MRR of an account at a date"
  (:func:`cs_analysis.retention.mrr_at`, not recomputed here). **products**: the number
  of distinct ``subscriptions.product`` values among the subscriptions covering the date
  (``start_date <= d < end_date``).
- **Tier** of an account: the tier of the first rule (in file order) whose conditions all
  hold; the file's ``default`` tier when none does (without one the account is reported
  and has no tier).
- **Phase** of a live account at the as-of date: ``onboarding`` while it has not reached
  the value stage of the onboarding criteria (:func:`cs_analysis.onboarding.time_to_value`,
  status ``in_progress``) within ``onboarding.max_days`` of its clock start; else
  ``renewal`` when a running subscription (term of at least ``renewal_min_term_months``
  when ``term_months`` is known) has its ``renewal_date`` in the next
  ``renewal_window_days`` days; else ``adoption``.
- **Hours** of an account in a month = ``hours_per_account_month[tier][phase]`` of the
  capacity model. A CSM's **capacity** = ``csm.hours_per_month`` x
  ``csm.utilisation_target``; a CSM is **overloaded** when the hours of their book exceed it.
- **CSMs needed** in a month = hours / capacity of one CSM (``csms_needed_fte``), rounded
  up (``csms_needed``). A new hire's capacity in their k-th month (k = 1 the month they
  join) is ``k / (ramp_months + 1)`` of a full CSM up to k = ``ramp_months``, then 1.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from cs_analysis.config import (
    YamlContext,
    default_file,
    read_source,
    read_text,
    read_yaml,
    validate,
)
from cs_analysis.errors import CSAnalysisError, check_choice, check_number, short
from cs_analysis.results import Result
from cs_analysis.time import (
    on_or_before,
    period_label,
    period_of,
    resolve_as_of,
)

__all__ = [
    "DERIVED_ATTRIBUTES",
    "NO_CSM",
    "PHASES",
    "TIERS",
    "CapacityError",
    "CapacityModel",
    "CapacityPlan",
    "Condition",
    "Coverage",
    "CoverageError",
    "CoverageEvaluation",
    "CoverageRules",
    "PlanInputs",
    "Rule",
    "Workload",
    "account_attributes",
    "assign_coverage",
    "capacity_plan",
    "default_model_path",
    "default_pipeline_path",
    "default_rules_path",
    "evaluate_coverage",
    "load_model",
    "load_pipeline",
    "load_rules",
    "per_csm_hours",
    "plan_capacity",
    "plan_inputs",
    "workload",
]

#: Coverage tiers, most help first.
TIERS = ("high", "low", "tech")
#: Lifecycle phases of an account, for the hours it needs.
PHASES = ("onboarding", "adoption", "renewal")
#: Attributes computed from other tables that rules may use besides ``accounts`` columns.
DERIVED_ATTRIBUTES = {
    "mrr": "MRR at the date (sum of the covering subscriptions' mrr)",
    "products": "distinct products among the subscriptions covering the date",
}
#: Label of accounts without a CSM (pooled / tech touch) in workload tables.
NO_CSM = "(no CSM)"
_MONTH_DAYS = 365.25 / 12


class CoverageError(CSAnalysisError, ValueError):
    """A coverage-rule file is malformed."""


class CapacityError(CSAnalysisError, ValueError):
    """A capacity model or pipeline file is malformed, or does not fit the workspace."""


def default_rules_path() -> Path:
    """The default coverage rules (``cs_analysis/defaults/coverage_rules.yml``)."""
    return default_file("coverage_rules.yml")


def default_model_path() -> Path:
    """The default capacity model (``cs_analysis/defaults/capacity_model.yml``)."""
    return default_file("capacity_model.yml")


def default_pipeline_path() -> Path:
    """The example pipeline (``cs_analysis/defaults/pipeline_example.csv``)."""
    return default_file("pipeline_example.csv")


# ======================================================================================
# Coverage rules
# ======================================================================================
class _RuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1)
    tier: Literal["high", "low", "tech"]
    when: dict[str, Any] | None = None  # none (or empty): a catch-all
    description: str = ""


class _RulesModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    description: str = ""
    default: Literal["high", "low", "tech"] | None = None
    rules: list[_RuleModel] = Field(min_length=1)


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Condition:
    """One condition of a rule: the attribute is one of ``values``, or within a range.

    ``values`` (a tuple) for ``plan: Enterprise`` or ``industry: [Logistics, Retail]``;
    ``at_least`` / ``below`` for ``mrr: {at_least: 5000}`` (``at_least <= x < below``).
    A missing value never satisfies a condition.
    """

    attribute: str
    values: tuple | None = None
    at_least: float | None = None
    below: float | None = None
    line: int | None = None

    def describe(self) -> str:
        """The condition in words (``mrr >= 5000``, ``plan in Pro, Enterprise``)."""
        if self.values is not None:
            if len(self.values) == 1:
                return f"{self.attribute} = {self.values[0]}"
            return f"{self.attribute} in {', '.join(map(str, self.values))}"
        parts = []
        if self.at_least is not None:
            parts.append(f"{self.attribute} >= {self.at_least:g}")
        if self.below is not None:
            parts.append(f"{self.attribute} < {self.below:g}")
        return " and ".join(parts)

    def mask(self, values: pd.Series) -> pd.Series:
        """Where the condition holds (False for missing values)."""
        if self.values is not None:
            if pd.api.types.is_numeric_dtype(values):
                wanted = [v for v in self.values if _is_number(v)]
                return values.isin(wanted) & values.notna()
            return values.astype("object").isin(list(self.values)) & values.notna()
        x = pd.to_numeric(values, errors="coerce")
        out = x.notna()
        if self.at_least is not None:
            out &= x >= self.at_least
        if self.below is not None:
            out &= x < self.below
        return out.fillna(False).astype(bool)

    def within(self, other: Condition) -> bool:
        """True when every value satisfying this condition satisfies ``other`` too."""
        if self.attribute != other.attribute:
            return False
        if other.values is not None:
            return self.values is not None and set(self.values) <= set(other.values)
        if self.values is not None:
            return all(_is_number(v) and (other.at_least is None or v >= other.at_least)
                       and (other.below is None or v < other.below) for v in self.values)
        lo_ok = other.at_least is None or (self.at_least is not None
                                           and self.at_least >= other.at_least)
        hi_ok = other.below is None or (self.below is not None and self.below <= other.below)
        return lo_ok and hi_ok


@dataclass(frozen=True)
class Rule:
    """A rule: when every condition holds (and no earlier rule fired), assign ``tier``."""

    name: str
    tier: str
    conditions: tuple[Condition, ...]
    line: int | None = None
    description: str = ""

    @property
    def catch_all(self) -> bool:
        """A rule without conditions fires for every account that reaches it."""
        return not self.conditions

    def describe(self) -> str:
        """The conditions in words ("every account" for a catch-all)."""
        return " and ".join(c.describe() for c in self.conditions) or "every account"

    def shadowed_by(self, earlier: Rule) -> bool:
        """True when ``earlier`` fires for every account this rule would fire for."""
        mine = {c.attribute: c for c in self.conditions}
        return all(c.attribute in mine and mine[c.attribute].within(c)
                   for c in earlier.conditions)


@dataclass(frozen=True)
class CoverageRules:
    """Ordered coverage rules as read from a file (:func:`load_rules`).

    Attributes
    ----------
    rules : tuple of Rule
    default : str or None
        Tier of accounts no rule matches (None: they are reported, with no tier).
    source : str
        File name, for messages.
    warnings : tuple of str
        Problems found in the file alone (rules that can never fire), with lines.
    """

    rules: tuple[Rule, ...]
    default: str | None = None
    source: str = "<rules>"
    description: str = ""
    warnings: tuple[str, ...] = ()
    lines: Mapping[tuple, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def attributes(self) -> list[str]:
        """Attributes used by any rule, in order of first use."""
        return list(dict.fromkeys(c.attribute for r in self.rules for c in r.conditions))

    def where(self, rule: Rule, attribute: str | None = None) -> str:
        """``<source>, line N (rule 'x')`` for messages."""
        line = rule.line
        if attribute is not None:
            line = next((c.line for c in rule.conditions if c.attribute == attribute), line)
        at = f", line {line}" if line else ""
        return f"coverage rules {self.source}{at} (rule {rule.name!r})"

    def to_frame(self) -> pd.DataFrame:
        """The rules as a table: ``order``, ``rule``, ``tier``, ``conditions``, ``line``."""
        return pd.DataFrame([{"order": i + 1, "rule": r.name, "tier": r.tier,
                              "conditions": r.describe(), "line": r.line}
                             for i, r in enumerate(self.rules)])


def load_rules(source=None) -> CoverageRules:
    """Read and check a coverage-rule file.

    The file holds ``rules:``, a list in priority order; each rule has a ``name``, a
    ``tier`` (``high``, ``low`` or ``tech``) and ``when:``, a mapping of attribute to
    condition: a value (``plan: Enterprise``), a list of values (``industry: [Logistics,
    Retail]``) or a range (``mrr: {at_least: 5000, below: 20000}``, i.e.
    ``at_least <= x < below``). Every condition must hold. A rule without ``when`` fires
    for every account that reaches it (a catch-all). Optional ``default:`` tier for
    accounts no rule matches.

    Mistakes in the file's shape are errors naming the line. Rules that can never fire
    (after a catch-all, or whose conditions are at least as narrow as an earlier rule's
    of the same attributes, e.g. the identical condition) are kept and listed in
    :attr:`CoverageRules.warnings` with their lines; the attribute names and values are
    checked against a workspace by :func:`assign_coverage` (its notes).

    Parameters
    ----------
    source : str, Path, mapping or CoverageRules, optional
        A YAML file, the parsed content, or rules already loaded. Default
        :func:`default_rules_path`.

    Raises
    ------
    CoverageError
        ``coverage rules <file>, line N (<path>): ...``.
    """
    if isinstance(source, CoverageRules):
        return source
    data, ctx = read_source(source, "coverage rules", CoverageError, default_rules_path())
    if not isinstance(data, Mapping):
        raise ctx.error((), f"expected a mapping with `rules:`, got {short(data)}")
    model = validate(_RulesModel, data, ctx)
    rules = []
    for i, r in enumerate(model.rules):
        conds = tuple(_condition(attr, raw, ("rules", i, "when", attr), ctx)
                      for attr, raw in (r.when or {}).items())
        rules.append(Rule(r.name, r.tier, conds, ctx.lines.get(("rules", i)), r.description))
    names = [r.name for r in rules]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        i = len(names) - 1 - names[::-1].index(dup[0])
        raise ctx.error(("rules", i, "name"), f"rule name {dup[0]!r} is used twice; "
                        "names must be unique (they label each account's tier)")
    out = CoverageRules(tuple(rules), model.default,
                        ctx.source, model.description, (), dict(ctx.lines))
    warnings = []
    for j, rule in enumerate(rules):
        for earlier in rules[:j]:
            if rule.shadowed_by(earlier):
                why = ("comes after the catch-all" if earlier.catch_all else
                       "has the same condition as" if earlier.shadowed_by(rule)
                       else "is narrower than")
                warnings.append(f"{out.where(rule)}: can never fire: it {why} rule "
                                f"{earlier.name!r} (line {earlier.line}), which fires first")
                break
    return replace(out, warnings=tuple(warnings))


def _condition(attr: str, raw, path: tuple, ctx: YamlContext) -> Condition:
    line = ctx.lines.get(path)
    scalar = (str, int, float)
    if isinstance(raw, bool) or raw is None:
        raise ctx.error(path, f"expected a value, a list of values or a range "
                        f"({{at_least: .., below: ..}}), got {short(raw)}")
    if isinstance(raw, scalar):
        return Condition(attr, (raw,), line=line)
    if isinstance(raw, list):
        if not raw or any(isinstance(v, bool) or not isinstance(v, scalar) for v in raw):
            raise ctx.error(path, f"expected a non-empty list of values, got {short(raw)}")
        return Condition(attr, tuple(raw), line=line)
    if isinstance(raw, Mapping):
        unknown = set(raw) - {"at_least", "below"}
        if unknown or not raw:
            bad = sorted(map(str, unknown))[0] if unknown else "(nothing)"
            raise ctx.error(path + ((bad,) if unknown else ()),
                            f"a range takes `at_least` and/or `below`, got {bad!r}",
                            key_line=bool(unknown))
        for k, v in raw.items():
            if not _is_number(v):
                raise ctx.error(path + (k,), f"`{k}` must be a number, got {short(v)}")
        lo, hi = raw.get("at_least"), raw.get("below")
        if lo is not None and hi is not None and lo >= hi:
            raise ctx.error(path, f"at_least ({lo:g}) must be below `below` ({hi:g}): no "
                            "value satisfies this range, so the rule could never fire")
        return Condition(attr, None, None if lo is None else float(lo),
                         None if hi is None else float(hi), line)
    raise ctx.error(path, f"expected a value, a list of values or a range, got {short(raw)}")


# -- account attributes -------------------------------------------------------------------
def account_attributes(ws, *, as_of=None, measured_at: str = "as_of") -> pd.DataFrame:
    """The attributes coverage rules can use, one row per account.

    Every ``accounts`` column, plus ``mrr`` (:func:`cs_analysis.retention.mrr_at`) and
    ``products`` (distinct products of the subscriptions covering the date, counted in
    the engine; absent without a ``product`` column).

    Parameters
    ----------
    ws : Workspace
    as_of : date or str, optional
        Default: the workspace's as-of date.
    measured_at : {"as_of", "start"}
        ``"as_of"``: the book at the as-of date (accounts with a subscription covering
        it). ``"start"``: every account that was ever a customer by the as-of date,
        measured on its first subscription's start date (the attributes a coverage
        decision at onboarding would have seen; what :func:`evaluate_coverage` uses, so
        churned accounts keep the tier they had).

    Returns
    -------
    pandas.DataFrame
        ``account_id``, the ``accounts`` columns, ``measured_on`` (date), ``mrr``,
        ``products``.
    """
    import ibis

    from cs_analysis.retention import mrr_at

    check_choice("measured_at", measured_at, ("as_of", "start"))
    as_of = resolve_as_of(ws, as_of)
    acc = ws.table("accounts")
    acc = acc.filter(acc.signup_date <= as_of).to_pandas()
    acc["account_id"] = acc["account_id"].astype("str")
    has_end = ws.has("subscriptions", "end_date")
    has_product = ws.has("subscriptions", "product")
    cols = ["account_id", "start_date"] + (["end_date"] if has_end else []) + (
        ["product"] if has_product else [])
    subs = ws.table("subscriptions", columns=cols)
    if not has_end:
        subs = subs.mutate(end_date=ibis.null("date"))
    subs = subs.filter(subs.start_date <= as_of)
    if measured_at == "as_of":
        mrr = mrr_at(ws, as_of)
        mrr["measured_on"] = pd.Timestamp(as_of)
        live = subs.filter(subs.end_date.isnull() | (subs.end_date > as_of))
        if has_product:
            prod = live.group_by("account_id").agg(products=live["product"].nunique())
        else:
            prod = None
    else:
        first = subs.group_by("account_id").agg(first_start=subs.start_date.min())
        pairs = first.to_pandas().rename(columns={"first_start": "date"})
        pairs["account_id"] = pairs["account_id"].astype("str")
        mrr = mrr_at(ws, pairs).rename(columns={"date": "measured_on"})
        if has_product:
            j = subs.join(first, "account_id")
            j = j.filter(j.start_date <= j.first_start,
                         j.end_date.isnull() | (j.end_date > j.first_start))
            prod = j.group_by("account_id").agg(products=j["product"].nunique())
        else:
            prod = None
    mrr["account_id"] = mrr["account_id"].astype("str")
    out = acc.merge(mrr[["account_id", "measured_on", "mrr"]], on="account_id", how="inner")
    if prod is not None:
        p = prod.to_pandas()
        p["account_id"] = p["account_id"].astype("str")
        out = out.merge(p, on="account_id", how="left")
        out["products"] = out["products"].fillna(0).astype("int64")
    out["measured_on"] = pd.to_datetime(out["measured_on"])
    return out.sort_values("account_id").reset_index(drop=True)


# -- assignment ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Coverage(Result):
    """Tiers assigned by coverage rules (:func:`assign_coverage`).

    Attributes
    ----------
    accounts : DataFrame
        One row per account: ``account_id``, ``account_name`` / ``segment`` /
        ``csm_owner`` (when present), ``mrr``, ``products`` (when known), ``tier``,
        ``rule``, ``rule_line``, ``touch_model`` and ``agrees`` (when present).
    rules : DataFrame
        Per rule (and ``(default)`` / ``(no rule)``): ``order``, ``rule``, ``tier``,
        ``conditions``, ``line``, ``accounts``, ``mrr``.
    agreement : DataFrame
        ``touch_model``, ``tier``, ``accounts``, ``share`` (of the touch_model's
        accounts); empty without ``touch_model``.
    agreement_rate : float
        Share of accounts whose rule tier equals their ``touch_model`` (NaN without it).
    """

    accounts: pd.DataFrame = field(repr=False)
    rules: pd.DataFrame = field(repr=False)
    agreement: pd.DataFrame = field(repr=False)
    agreement_rate: float
    as_of: dt.date
    source: str
    title = "Coverage tiers by rule"

    def summary(self) -> pd.DataFrame:
        """Accounts and MRR per rule, in priority order."""
        return self.rules


def assign_coverage(ws, rules=None, *, as_of=None, measured_at: str = "as_of") -> Coverage:
    """Tier and the rule that fired, per account; compared with ``accounts.touch_model``.

    An account's tier is the tier of the first rule (in file order) whose conditions all
    hold on its attributes (:func:`account_attributes`: ``accounts`` columns, ``mrr`` at
    the date per metrics.md and ``products``); the file's ``default`` when none holds.

    Problems are reported in ``notes`` (file and line), never silently ignored: rules
    that can never fire (after a catch-all, same or narrower conditions than an earlier
    rule), attributes the workspace does not have (not an ``accounts`` column nor
    ``mrr`` / ``products``: the rule never fires), values no account has, range
    conditions on text attributes, rules that fire for no account, and accounts that no
    rule matches.

    Parameters
    ----------
    ws : Workspace
    rules : str, Path, mapping or CoverageRules, optional
        Default :func:`default_rules_path`.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    measured_at : {"as_of", "start"}
        See :func:`account_attributes`. Default: the live book at the as-of date.

    Returns
    -------
    Coverage
    """
    rules = load_rules(rules)
    as_of = resolve_as_of(ws, as_of)
    attrs = account_attributes(ws, as_of=as_of, measured_at=measured_at)
    notes = list(rules.warnings)
    known = [c for c in attrs.columns if c != "measured_on"]
    broken: set[str] = set()
    for rule in rules.rules:
        for c in rule.conditions:
            where = rules.where(rule, c.attribute)
            if c.attribute not in attrs.columns or c.attribute == "measured_on":
                notes.append(f"{where}: unknown attribute {c.attribute!r}, so the rule never "
                             f"fires; the attributes are {', '.join(known)}")
                broken.add(rule.name)
                continue
            col = attrs[c.attribute]
            if c.values is None and not pd.api.types.is_numeric_dtype(col):
                notes.append(f"{where}: {c.attribute} is text, so at_least / below never "
                             "hold; list the values instead")
                broken.add(rule.name)
            elif c.values is not None:
                present = set(col.dropna().tolist())
                missing = [v for v in c.values if v not in present]
                if len(missing) == len(c.values):
                    shown = sorted(map(str, present))[:12]
                    notes.append(f"{where}: no account has {c.attribute} "
                                 f"{', '.join(map(repr, missing))}, so the rule never fires"
                                 f"; values in the data: {', '.join(shown)}"
                                 + (" …" if len(present) > 12 else ""))
                elif missing:
                    notes.append(f"{where}: no account has {c.attribute} "
                                 f"{', '.join(map(repr, missing))} (other values match)")
    tier = pd.Series(pd.NA, index=attrs.index, dtype="object")
    fired = pd.Series(pd.NA, index=attrs.index, dtype="object")
    line = pd.Series(pd.NA, index=attrs.index, dtype="object")
    open_ = pd.Series(True, index=attrs.index)
    for rule in rules.rules:
        if rule.name in broken:
            continue
        m = open_.copy()
        for c in rule.conditions:
            m &= c.mask(attrs[c.attribute])
        tier[m], fired[m], line[m] = rule.tier, rule.name, rule.line
        open_ &= ~m
    if rules.default is not None:
        tier[open_], fired[open_] = rules.default, "(default)"
    elif open_.any():
        notes.append(f"coverage rules {rules.source}: {int(open_.sum()):,} accounts match no "
                     "rule and have no tier; add a catch-all rule or `default:`")
        fired[open_] = "(no rule)"
    out = attrs[[c for c in ("account_id", "account_name", "segment", "plan", "industry",
                             "employees", "csm_owner") if c in attrs]].copy()
    out["mrr"] = attrs["mrr"]
    if "products" in attrs:
        out["products"] = attrs["products"]
    out["tier"], out["rule"] = tier, fired
    out["rule_line"] = pd.array(line, dtype="Int64")
    if "touch_model" in attrs:
        out["touch_model"] = attrs["touch_model"]
        known_touch = out["touch_model"].notna() & out["tier"].notna()
        out["agrees"] = (out["touch_model"] == out["tier"]).where(known_touch)
        k = out[known_touch]
        agreement = (k.groupby(["touch_model", "tier"]).size().rename("accounts")
                     .reset_index())
        agreement["share"] = agreement["accounts"] / agreement.groupby("touch_model")[
            "accounts"].transform("sum")
        rate = float((k["touch_model"] == k["tier"]).mean()) if len(k) else math.nan
    else:
        agreement = pd.DataFrame(columns=["touch_model", "tier", "accounts", "share"])
        rate = math.nan
        notes.append("accounts has no touch_model column: no comparison with today's "
                     "coverage")
    per = out.groupby("rule", dropna=False).agg(accounts=("account_id", "size"),
                                                 mrr=("mrr", "sum"))
    rows = []
    for i, r in enumerate(rules.rules):
        n = int(per["accounts"].get(r.name, 0))
        rows.append({"order": i + 1, "rule": r.name, "tier": r.tier,
                     "conditions": r.describe(), "line": r.line, "accounts": n,
                     "mrr": float(per["mrr"].get(r.name, 0.0))})
        if n == 0 and r.name not in broken and not any(r.name in w and "never fire" in w
                                                      for w in rules.warnings):
            notes.append(f"{rules.where(r)}: fires for no account in this workspace "
                         "(earlier rules take every account it matches, or none matches)")
    for extra, t in (("(default)", rules.default), ("(no rule)", None)):
        if extra in per.index:
            rows.append({"order": len(rows) + 1, "rule": extra, "tier": t,
                         "conditions": "no rule matched", "line": None,
                         "accounts": int(per.loc[extra, "accounts"]),
                         "mrr": float(per.loc[extra, "mrr"])})
    table = pd.DataFrame(rows)
    table["line"] = pd.array(table["line"], dtype="Int64")
    return Coverage(out.reset_index(drop=True), table, agreement, rate, as_of, rules.source,
                    notes=tuple(notes))


# -- evaluation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CoverageEvaluation(Result):
    """Whether a coverage rule puts the accounts that need help where help is.

    Attributes
    ----------
    tiers : DataFrame
        One row per tier: ``tier``, ``accounts`` (ever customers, by the rule at their
        start), ``live_accounts``, ``mrr`` (at the as-of date), ``median_start_mrr``,
        ``median_ttv_days`` (+ ``_lower`` / ``_upper``), ``share_within_target``,
        ``still_onboarding``, ``retention_12m`` (Kaplan-Meier share still a customer 365
        days after signup), ``churned``, ``tickets``, ``account_months``,
        ``tickets_per_account_month``.
    groups : DataFrame
        Per tier and attribute value (``tier``, ``attribute``, ``value``, ``accounts``,
        ``median_ttv_days``, ``rest_median_ttv_days``, ``ttv_ratio``, ``ttv_p``,
        ``ttv_p_adjusted``, ``tickets_per_account_month``, ``rest_tickets_per_account_month``,
        ``ticket_ratio``, ``ticket_p``, ``ticket_p_adjusted``, ``slower``, ``busier``,
        ``looks_like``): each group compared with the rest of its tier.
    mismatches : DataFrame
        The accounts of flagged groups: ``account_id``, ``account_name``, ``tier``,
        ``rule``, ``looks_like``, ``group``, ``status``, ``days``, ``target_days``,
        ``tickets``, ``tickets_per_account_month``.
    coverage : Coverage
        The assignment the evaluation used (``measured_at="start"``).
    """

    tiers: pd.DataFrame = field(repr=False)
    groups: pd.DataFrame = field(repr=False)
    mismatches: pd.DataFrame = field(repr=False)
    coverage: Coverage = field(repr=False)
    as_of: dt.date
    title = "How the coverage rule performs"

    @property
    def flagged(self) -> pd.DataFrame:
        """The groups whose outcomes look like another tier's."""
        return self.groups[self.groups["looks_like"].notna()].reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """The per-tier outcomes."""
        return self.tiers


def _band(employees: pd.Series) -> pd.Series:
    bins = [-np.inf, 50, 250, 1000, np.inf]
    labels = ["<50", "50-249", "250-999", "1000+"]
    return pd.cut(pd.to_numeric(employees, errors="coerce"), bins, right=False,
                  labels=labels).astype("object")


def _ticket_counts(ws, as_of: dt.date) -> pd.DataFrame | None:
    """Tickets opened on or before the as-of date, per account (counted in the engine)."""
    if not ws.has("support_tickets"):
        return None
    t = ws.table("support_tickets", columns=["account_id", "opened_at"])
    t = t.filter(on_or_before(t.opened_at, as_of, ws.timezone))
    out = t.group_by("account_id").agg(tickets=t.count()).to_pandas()
    out["account_id"] = out["account_id"].astype("str")
    return out


def _holm(p: pd.Series) -> pd.Series:
    """Holm-adjusted p-values (NaN stay NaN)."""
    ok = p.dropna()
    if ok.empty:
        return p.copy()
    from statsmodels.stats.multitest import multipletests

    adj = pd.Series(multipletests(ok.to_numpy(), method="holm")[1], index=ok.index)
    return adj.reindex(p.index)


def _logrank(days, reached, in_group) -> float:
    from statsmodels.duration.survfunc import survdiff

    if in_group.sum() == 0 or (~in_group).sum() == 0 or reached.sum() == 0:
        return math.nan
    try:
        _, p = survdiff(np.asarray(days, float), np.asarray(reached, int),
                        np.asarray(in_group, int))
    except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
        return math.nan
    return float(p)


def _rate_p(k_g: float, e_g: float, k_r: float, e_r: float) -> float:
    """Two-sided exact test of equal Poisson rates (conditional binomial)."""
    from scipy.stats import binomtest

    n = int(k_g + k_r)
    if n == 0 or e_g <= 0 or e_r <= 0:
        return math.nan
    return float(binomtest(int(k_g), n, e_g / (e_g + e_r)).pvalue)


_UP = {"tech": "low", "low": "high"}
_DOWN = {"high": "low", "low": "tech"}


def evaluate_coverage(ws, rules=None, *, as_of=None, criteria=None, stage: str | None = None,
                      attributes: Sequence[str] = ("industry", "segment", "plan", "region",
                                                   "employees_band", "products"),
                      min_accounts: int = 20, alpha: float = 0.05, min_ratio: float = 1.25
                      ) -> CoverageEvaluation:
    """Per tier: accounts, MRR, time-to-value, retention and ticket load; the misfits.

    Every account that was a customer by the as-of date gets the tier the rules give on
    the attributes of its first subscription's start (:func:`assign_coverage` with
    ``measured_at="start"``): the decision a CS team makes at onboarding, so churned
    accounts keep their tier. Per tier:

    - **time-to-value** to the value stage: Kaplan-Meier median and share within target
      (:func:`cs_analysis.onboarding.ttv_summary`, metrics.md "Onboarding");
    - **retention**: Kaplan-Meier share still a customer 365 days after signup, from
      :func:`cs_analysis.retention.account_lifetimes` (metrics.md churn date / lifetime);
    - **ticket load**: support tickets opened on or before the as-of date (local days)
      per account-month of customer lifetime (signup to churn or the as-of date);
    - **health**: not included: the workspace has no health score yet (only raw CSM
      ratings); the notes say so.

    Misfits: within each tier, every group of accounts sharing an attribute value (e.g.
    ``industry = Logistics``) with at least ``min_accounts`` accounts is compared with
    the rest of its tier. A group **looks like another tier** when it onboards slower
    (Kaplan-Meier median at least ``min_ratio`` times the rest's, log-rank test) or
    raises tickets at a higher rate (at least ``min_ratio`` times, exact Poisson test),
    with Holm-adjusted p-values below ``alpha`` across all groups tested: such accounts
    need the help of the next tier up (``looks_like``: tech -> low -> high). High-touch
    groups that onboard faster and raise fewer tickets than the rest (both significant)
    look like the next tier down.

    Parameters
    ----------
    ws : Workspace
    rules : str, Path, mapping or CoverageRules, optional
        Default :func:`default_rules_path`.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    criteria : optional
        Onboarding criteria (:func:`cs_analysis.onboarding.load_criteria`).
    stage : str, optional
        Default: the criteria's last ("value") stage.
    attributes : list of str
        Attributes whose values form the groups compared (``employees_band``: <50,
        50-249, 250-999, 1000+). Attributes the workspace lacks are skipped.
    min_accounts : int
        Smallest group compared.
    alpha : float
        Family-wise error level of the comparisons (Holm).
    min_ratio : float
        Smallest ratio (slower or busier) worth flagging.

    Returns
    -------
    CoverageEvaluation
    """
    from cs_analysis.errors import check_alpha, check_int
    from cs_analysis.onboarding import load_criteria, time_to_value, ttv_summary
    from cs_analysis.retention import account_lifetimes
    from cs_analysis.survival import kaplan_meier

    alpha = check_alpha(alpha)
    min_accounts = check_int("min_accounts", min_accounts, minimum=2)
    min_ratio = check_number("min_ratio", min_ratio, minimum=1.0)
    as_of = resolve_as_of(ws, as_of)
    cov = assign_coverage(ws, rules, as_of=as_of, measured_at="start")
    notes = list(cov.notes)
    acc = cov.accounts
    tiers_present = [t for t in TIERS if (acc["tier"] == t).any()]
    crit = load_criteria(criteria)
    st = crit.stage(stage)
    ttv = time_to_value(ws, crit, st.name, as_of=as_of)
    ttv["account_id"] = ttv["account_id"].astype("str")
    ttv = ttv.merge(acc[["account_id", "tier"]], on="account_id", how="inner")
    ttv = ttv[ttv["tier"].notna()]
    summ = ttv_summary(ws, crit, by="tier", stage=st.name, as_of=as_of,
                       ttv=ttv.assign(tier=ttv["tier"].astype("str")))
    summ = summ.set_index("tier")  # the grouping column is named after `by`
    life = account_lifetimes(ws, as_of=as_of)
    life["account_id"] = life["account_id"].astype("str")
    life = life.merge(acc[["account_id", "tier"]], on="account_id", how="inner")
    counts = _ticket_counts(ws, as_of)
    life["account_months"] = life["lifetime_days"].clip(lower=1) / _MONTH_DAYS
    if counts is None:
        notes.append("no support_tickets table: ticket load is not measured")
        life["tickets"] = np.nan
    else:
        life = life.merge(counts, on="account_id", how="left")
        life["tickets"] = life["tickets"].fillna(0).astype(float)
    from cs_analysis.retention import mrr_at

    now = mrr_at(ws, as_of)
    now["account_id"] = now["account_id"].astype("str")
    now = now.merge(acc[["account_id", "tier"]], on="account_id", how="inner")
    rows = []
    for t in tiers_present:
        a = acc[acc["tier"] == t]
        lt = life[life["tier"] == t]
        s = summ.loc[t] if t in summ.index else None
        km = kaplan_meier(lt["lifetime_days"], lt["churned"]) if len(lt) else None
        ret = km.at(365)[0] if km is not None else math.nan
        n_now = now[now["tier"] == t]
        tickets = float(lt["tickets"].sum()) if counts is not None else math.nan
        months = float(lt["account_months"].sum())
        rows.append({
            "tier": t, "accounts": len(a), "live_accounts": int((n_now["mrr"] > 0).sum()),
            "mrr": float(n_now["mrr"].sum()), "median_start_mrr": float(a["mrr"].median()),
            "median_ttv_days": s["median_days"] if s is not None else math.nan,
            "median_ttv_lower": s["median_lower"] if s is not None else math.nan,
            "median_ttv_upper": s["median_upper"] if s is not None else math.nan,
            "share_within_target": s["share_within_target"] if s is not None else math.nan,
            "still_onboarding": int(s["in_progress"]) if s is not None else 0,
            "retention_12m": ret, "churned": int(lt["churned"].sum()),
            "tickets": tickets, "account_months": months,
            "tickets_per_account_month": tickets / months if months else math.nan,
        })
    tiers = pd.DataFrame(rows)
    notes.append("health: no health score is built for this workspace yet, so tiers are "
                 "not compared on health")

    # -- groups within each tier --------------------------------------------------------
    frame = ttv[["account_id", "tier", "days", "reached", "status", "target_days"]].merge(
        acc.drop(columns=["tier"]), on="account_id", how="left")
    frame = frame.merge(life[["account_id", "tickets", "account_months"]], on="account_id",
                        how="left")
    if "employees" in frame:
        frame["employees_band"] = _band(frame["employees"])
    observed = frame["status"].isin(["reached", "in_progress", "churned_before"])
    absent = [a for a in attributes if a not in frame]
    if absent:
        notes.append(f"not compared (no such attribute in this workspace): "
                     f"{', '.join(absent)}")
    grows = []
    for t in tiers_present:
        ft = frame[(frame["tier"] == t) & observed]
        for attr in attributes:
            if attr not in ft:
                continue
            vals = ft[attr].astype("object")
            for v, n in vals.value_counts().items():
                if n < min_accounts or n == len(ft):
                    continue
                g = (vals == v).to_numpy()
                kg = kaplan_meier(ft["days"][g], ft["reached"][g])
                kr = kaplan_meier(ft["days"][~g], ft["reached"][~g])
                mg, mr = kg.quantile(0.5), kr.quantile(0.5)
                tg, eg = ft["tickets"][g].sum(), ft["account_months"][g].sum()
                tr, er = ft["tickets"][~g].sum(), ft["account_months"][~g].sum()
                rg = tg / eg if eg else math.nan
                rr = tr / er if er else math.nan
                grows.append({
                    "tier": t, "attribute": attr, "value": v, "accounts": int(n),
                    "median_ttv_days": mg, "rest_median_ttv_days": mr,
                    "ttv_ratio": mg / mr if mr else math.nan,
                    "ttv_p": _logrank(ft["days"], ft["reached"], g),
                    "tickets_per_account_month": rg,
                    "rest_tickets_per_account_month": rr,
                    "ticket_ratio": rg / rr if rr else math.nan,
                    "ticket_p": _rate_p(tg, eg, tr, er) if counts is not None else math.nan,
                })
    cols = ["tier", "attribute", "value", "accounts", "median_ttv_days",
            "rest_median_ttv_days", "ttv_ratio", "ttv_p", "ttv_p_adjusted",
            "tickets_per_account_month", "rest_tickets_per_account_month", "ticket_ratio",
            "ticket_p", "ticket_p_adjusted", "slower", "busier", "looks_like"]
    groups = pd.DataFrame(grows, columns=[c for c in cols if c not in (
        "ttv_p_adjusted", "ticket_p_adjusted", "slower", "busier", "looks_like")])
    groups["ttv_p_adjusted"] = _holm(groups["ttv_p"])
    groups["ticket_p_adjusted"] = _holm(groups["ticket_p"])
    sig_t = groups["ttv_p_adjusted"] < alpha
    sig_k = groups["ticket_p_adjusted"] < alpha
    groups["slower"] = sig_t & (groups["ttv_ratio"] >= min_ratio)
    groups["busier"] = sig_k & (groups["ticket_ratio"] >= min_ratio)
    faster = sig_t & (groups["ttv_ratio"] <= 1 / min_ratio)
    quieter = sig_k & (groups["ticket_ratio"] <= 1 / min_ratio)
    up = (groups["slower"] | groups["busier"]) & groups["tier"].isin(list(_UP))
    down = faster & quieter & (groups["tier"] == "high")
    groups["looks_like"] = pd.Series(
        np.where(up, groups["tier"].map(_UP), np.where(down, groups["tier"].map(_DOWN), None)),
        index=groups.index, dtype="object")
    groups = groups[cols].sort_values(["tier", "ttv_p"], key=lambda s: s.map(
        {t: i for i, t in enumerate(TIERS)}) if s.name == "tier" else s).reset_index(drop=True)
    for _, g in groups[groups["looks_like"].notna()].iterrows():
        what = " and ".join(w for w, f in (
            (f"onboard {g['ttv_ratio']:.1f}x slower (median {g['median_ttv_days']:.0f} vs "
             f"{g['rest_median_ttv_days']:.0f} days)", g["slower"]),
            (f"raise {g['ticket_ratio']:.1f}x the tickets", g["busier"])) if f) or (
            "onboard faster with fewer tickets")
        notes.append(f"{g['tier']}-touch accounts with {g['attribute']} = {g['value']} "
                     f"({g['accounts']}) {what} than the rest of the tier: they look like "
                     f"{g['looks_like']}-touch accounts")
    mism = []
    for _, g in groups[groups["looks_like"].notna()].iterrows():
        m = frame[(frame["tier"] == g["tier"]) & (frame[g["attribute"]].astype("object")
                                                  == g["value"])]
        mism.append(m.assign(looks_like=g["looks_like"],
                             group=f"{g['attribute']} = {g['value']}"))
    mcols = ["account_id", "account_name", "segment", "tier", "rule", "looks_like", "group",
             "status", "days", "target_days", "tickets", "tickets_per_account_month"]
    if mism:
        mm = pd.concat(mism, ignore_index=True)
        mm["tickets_per_account_month"] = mm["tickets"] / mm["account_months"]
        mm = mm.drop_duplicates("account_id")
        mm = mm[[c for c in mcols if c in mm]].sort_values(
            ["tier", "group", "days"], ascending=[True, True, False]).reset_index(drop=True)
    else:
        mm = pd.DataFrame(columns=mcols)
    if groups.empty:
        notes.append(f"no group of at least {min_accounts} accounts to compare within a tier")
    return CoverageEvaluation(tiers, groups, mm, cov, as_of, notes=tuple(notes))


# ======================================================================================
# Capacity model
# ======================================================================================
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _PhaseHours(_Strict):
    onboarding: float = Field(ge=0)
    adoption: float = Field(ge=0)
    renewal: float = Field(ge=0)


class _Csm(_Strict):
    hours_per_month: float = Field(gt=0)
    utilisation_target: float = Field(gt=0, le=1)
    ramp_months: int = Field(ge=0, le=24)
    headcount: int | None = Field(default=None, ge=0)


class _Onboarding(_Strict):
    months: int = Field(ge=1, le=24)
    max_days: int = Field(default=120, ge=1)
    concurrent_limit: int = Field(ge=1)
    specialists: int = Field(ge=0)
    tiers: list[Literal["high", "low", "tech"]] = Field(default_factory=lambda: ["high", "low"])


class _Scenario(_Strict):
    description: str = ""
    new_account_tiers: dict[str, str | dict[str, float]] = Field(default_factory=dict)
    pipeline_factor: float = Field(default=1.0, ge=0)
    month_factors: dict[str, float] = Field(default_factory=dict)
    hours_factor: dict[Literal["high", "low", "tech"], float] = Field(default_factory=dict)
    utilisation_target: float | None = Field(default=None, gt=0, le=1)


class _ModelFile(_Strict):
    description: str = ""
    hours_per_account_month: dict[Literal["high", "low", "tech"], _PhaseHours]
    renewal_window_days: int = Field(ge=0, le=365)
    renewal_min_term_months: int = Field(default=12, ge=1)
    csm: _Csm
    onboarding: _Onboarding
    new_account_tiers: dict[str, str | dict[str, float]]
    scenarios: dict[str, _Scenario] = Field(default_factory=dict)


@dataclass(frozen=True)
class CapacityModel:
    """A capacity model (:func:`load_model`); every number is a CS-leader assumption.

    Attributes
    ----------
    hours : dict
        ``{tier: {phase: hours per account per month}}``.
    renewal_window_days : int
        Days before a renewal date in which an account is in the renewal phase.
    renewal_min_term_months : int
        Contracts shorter than this (monthly plans) have no renewal window.
    csm_hours_per_month, utilisation_target : float
        Working hours of a CSM per month and the share of them for account work.
    ramp_months : int
        Months before a new hire carries a full book (capacity k/(ramp+1) in month k).
    headcount : int or None
        CSMs on staff; None counts the ``csm_owner`` values of the live book.
    onboarding_months : int
        Months a new account spends onboarding in the plan.
    concurrent_limit, specialists : int
        Onboardings one specialist runs at once; specialists on staff.
    onboarding_tiers : tuple of str
        Tiers whose onboardings a specialist runs (tech touch onboards itself).
    onboarding_max_days : int
        An onboarding still open after this many days (stalled for good) counts as
        adoption in the workload.
    new_account_tiers : dict
        ``{segment: {tier: share}}`` for pipeline accounts.
    scenarios : dict
        Named overrides (see :func:`capacity_plan`).
    """

    hours: Mapping[str, Mapping[str, float]]
    renewal_window_days: int
    csm_hours_per_month: float
    utilisation_target: float
    ramp_months: int
    onboarding_months: int
    concurrent_limit: int
    specialists: int
    new_account_tiers: Mapping[str, Mapping[str, float]]
    renewal_min_term_months: int = 12
    headcount: int | None = None
    onboarding_tiers: tuple[str, ...] = ("high", "low")
    onboarding_max_days: int = 120
    scenarios: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = "<model>"

    @property
    def csm_capacity(self) -> float:
        """Hours of account work one fully ramped CSM carries per month."""
        return self.csm_hours_per_month * self.utilisation_target

    def ramp(self, k: int) -> float:
        """Capacity (share of a full CSM) of a hire in their k-th month (k = 1 on joining)."""
        if k < 1:
            return 0.0
        return min(1.0, k / (self.ramp_months + 1))

    def hours_frame(self) -> pd.DataFrame:
        """``tier``, ``phase``, ``hours`` (per account per month)."""
        return pd.DataFrame([{"tier": t, "phase": p, "hours": float(self.hours[t][p])}
                             for t in TIERS if t in self.hours for p in PHASES])

    def with_changes(self, *, hours_factor: Mapping[str, float] | None = None,
                     hours: Mapping[str, Mapping[str, float]] | None = None,
                     utilisation_target: float | None = None,
                     new_account_tiers: Mapping | None = None) -> CapacityModel:
        """A copy with scaled or replaced hours, utilisation or new-account tiers."""
        h = {t: dict(v) for t, v in (hours or self.hours).items()}
        for t, f in (hours_factor or {}).items():
            h[t] = {p: x * float(f) for p, x in h[t].items()}
        nat = dict(self.new_account_tiers)
        for seg, v in (new_account_tiers or {}).items():
            nat[seg] = {v: 1.0} if isinstance(v, str) else dict(v)
        return replace(self, hours=h, new_account_tiers=nat,
                       utilisation_target=utilisation_target or self.utilisation_target)


def load_model(source=None) -> CapacityModel:
    """Read and check a capacity model file (``cs_analysis/defaults/capacity_model.yml``).

    Raises
    ------
    CapacityError
        ``capacity model <file>, line N (<path>): ...`` for a missing key, a value of
        the wrong type (3.0 is not a whole number, a text is not a number), an unknown
        key, a tier missing from ``hours_per_account_month`` or a segment's tier shares
        that do not add up to 1.
    """
    if isinstance(source, CapacityModel):
        return source
    data, ctx = read_source(source, "capacity model", CapacityError, default_model_path())
    if not isinstance(data, Mapping):
        raise ctx.error((), f"expected a mapping, got {short(data)}")
    m = validate(_ModelFile, data, ctx)
    missing = [t for t in TIERS if t not in m.hours_per_account_month]
    if missing:
        raise ctx.error(("hours_per_account_month",),
                        f"hours for tier(s) {', '.join(missing)} are missing; give "
                        "onboarding, adoption and renewal hours for high, low and tech")
    nat = {seg: _tier_shares(v, ("new_account_tiers", seg), ctx)
           for seg, v in m.new_account_tiers.items()}
    scen = {}
    for name, s in m.scenarios.items():
        for seg, v in s.new_account_tiers.items():
            _tier_shares(v, ("scenarios", name, "new_account_tiers", seg), ctx)
        for month in s.month_factors:
            _month_label(month, ("scenarios", name, "month_factors", month), ctx)
        scen[name] = s.model_dump()
    return CapacityModel(
        hours={t: h.model_dump() for t, h in m.hours_per_account_month.items()},
        renewal_window_days=m.renewal_window_days,
        renewal_min_term_months=m.renewal_min_term_months,
        csm_hours_per_month=m.csm.hours_per_month,
        utilisation_target=m.csm.utilisation_target, ramp_months=m.csm.ramp_months,
        headcount=m.csm.headcount, onboarding_months=m.onboarding.months,
        concurrent_limit=m.onboarding.concurrent_limit,
        specialists=m.onboarding.specialists,
        onboarding_tiers=tuple(m.onboarding.tiers), new_account_tiers=nat,
        onboarding_max_days=m.onboarding.max_days,
        scenarios=scen, source=ctx.source)


def _tier_shares(v, path: tuple, ctx: YamlContext) -> dict[str, float]:
    if isinstance(v, str):
        if v not in TIERS:
            raise ctx.error(path, f"expected a tier (high, low or tech), got {short(v)}")
        return {v: 1.0}
    bad = [k for k in v if k not in TIERS]
    if bad:
        raise ctx.error(path + (bad[0],), f"unknown tier {bad[0]!r}; expected high, low or "
                        "tech", key_line=True)
    if any(x < 0 for x in v.values()) or abs(sum(v.values()) - 1) > 1e-6:
        raise ctx.error(path, f"tier shares must be >= 0 and add up to 1, got "
                        f"{sum(v.values()):g}")
    return {k: float(x) for k, x in v.items()}


def _month_label(text, path: tuple, ctx: YamlContext) -> int:
    try:
        d = dt.date.fromisoformat(f"{text}-01") if isinstance(text, str) and len(
            text) == 7 else None
    except ValueError:
        d = None
    if d is None:
        raise ctx.error(path, f"expected a month like 2027-03, got {short(text)}",
                        key_line=True)
    return period_of(d, "month")


# ======================================================================================
# Workload today
# ======================================================================================
@dataclass(frozen=True)
class Workload(Result):
    """Hours of CS work at the as-of date (:func:`workload`).

    Attributes
    ----------
    accounts : DataFrame
        ``account_id``, ``account_name``, ``segment``, ``csm_owner``, ``tier``,
        ``phase``, ``hours``.
    per_csm : DataFrame
        ``csm_owner`` (``(no CSM)`` for pooled accounts), ``accounts``, one column per
        phase (accounts in it), ``hours``, ``capacity_hours``, ``utilisation`` (hours /
        working hours), ``load`` (hours / capacity), ``overloaded``.
    per_tier : DataFrame
        ``tier``, ``phase``, ``accounts``, ``hours_per_account``, ``hours``.
    onboardings : DataFrame
        One row: ``in_flight``, ``specialists``, ``concurrent_limit``, ``capacity``,
        ``over_limit``.
    """

    accounts: pd.DataFrame = field(repr=False)
    per_csm: pd.DataFrame = field(repr=False)
    per_tier: pd.DataFrame = field(repr=False)
    onboardings: pd.DataFrame = field(repr=False)
    as_of: dt.date
    title = "CS workload today"

    @property
    def overloaded(self) -> list[str]:
        """CSMs whose book needs more hours than their capacity."""
        return self.per_csm.loc[self.per_csm["overloaded"].fillna(False).astype(bool),
                                "csm_owner"].tolist()

    def summary(self) -> pd.DataFrame:
        """The per-CSM table."""
        return self.per_csm


def _phases(ws, model: CapacityModel, as_of: dt.date, ids: pd.Series, criteria=None
            ) -> pd.Series:
    """Phase of each account at ``as_of`` (onboarding > renewal > adoption)."""
    import ibis

    from cs_analysis.onboarding import load_criteria, time_to_value

    crit = load_criteria(criteria)
    ttv = time_to_value(ws, crit, crit.stage().name, as_of=as_of)
    going = (ttv["status"] == "in_progress") & (ttv["days"] <= model.onboarding_max_days)
    onboarding = set(ttv.loc[going, "account_id"].astype("str"))
    renewal: set[str] = set()
    if ws.has("subscriptions", "renewal_date") and model.renewal_window_days > 0:
        cols = ["account_id", "start_date", "renewal_date"] + [
            c for c in ("end_date", "term_months") if ws.has("subscriptions", c)]
        s = ws.table("subscriptions", columns=cols)
        end = s.end_date if "end_date" in cols else ibis.null("date")
        horizon = as_of + dt.timedelta(days=model.renewal_window_days)
        pred = [s.start_date <= as_of, end.isnull() | (end > as_of),
                s.renewal_date > as_of, s.renewal_date <= horizon]
        if "term_months" in cols:
            pred.append(s.term_months.isnull() | (s.term_months >= model.renewal_min_term_months))
        r = s.filter(*pred).select("account_id").distinct().to_pandas()
        renewal = set(r["account_id"].astype("str"))
    ids = ids.astype("str")
    return pd.Series(np.where(ids.isin(onboarding), "onboarding",
                              np.where(ids.isin(renewal), "renewal", "adoption")),
                     index=ids.index, dtype="object")


def _tiers_today(ws, rules, as_of, book: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    notes = []
    if rules is not None:
        cov = assign_coverage(ws, rules, as_of=as_of)
        tier = book["account_id"].map(cov.accounts.set_index("account_id")["tier"])
        notes += list(cov.notes)
        notes.append(f"tiers from the coverage rules {cov.source}, not accounts.touch_model")
    elif "touch_model" in book:
        tier = book["touch_model"]
    else:
        raise CapacityError("workload needs a tier per account: the accounts table has no "
                            "touch_model column; pass coverage rules (rules=...)")
    unknown = tier.isna() | ~tier.isin(TIERS)
    if unknown.any():
        notes.append(f"{int(unknown.sum()):,} live accounts have no tier (high/low/tech) "
                     "and count as tech touch")
        tier = tier.where(~unknown, "tech")
    return tier, notes


def workload(ws, model=None, *, as_of=None, rules=None, criteria=None) -> Workload:
    """Hours per CSM (``csm_owner``) and per tier at the as-of date; overloaded CSMs.

    Every live account (a subscription with MRR covering the as-of date) needs
    ``hours_per_account_month[tier][phase]`` hours a month; its tier is
    ``accounts.touch_model`` (or the coverage ``rules``' tier when given), its phase the
    one at the as-of date: ``onboarding`` (value stage not reached, per the onboarding
    criteria), else ``renewal`` (a running contract of at least
    ``renewal_min_term_months`` renews within ``renewal_window_days``), else
    ``adoption``. A CSM's capacity is ``hours_per_month x utilisation_target``; the CSM
    is overloaded when the book's hours exceed it. Onboardings in flight (tiers run by
    specialists) are compared with ``specialists x concurrent_limit``.

    Parameters
    ----------
    ws : Workspace
    model : str, Path, mapping or CapacityModel, optional
        Default :func:`default_model_path`.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    rules : optional
        Coverage rules whose tiers to use instead of ``touch_model`` (what-if).
    criteria : optional
        Onboarding criteria (default file).

    Returns
    -------
    Workload
    """
    model = load_model(model)
    as_of = resolve_as_of(ws, as_of)
    from cs_analysis.retention import mrr_at

    live = mrr_at(ws, as_of)
    live = live[live["mrr"] > 0]
    acc = ws.table("accounts").to_pandas()
    acc["account_id"] = acc["account_id"].astype("str")
    book = acc[acc["account_id"].isin(live["account_id"].astype("str"))].reset_index(drop=True)
    tier, notes = _tiers_today(ws, rules, as_of, book)
    phase = _phases(ws, model, as_of, book["account_id"], criteria)
    hours = [model.hours[t][p] for t, p in zip(tier, phase, strict=True)]
    csm = book["csm_owner"] if "csm_owner" in book else pd.Series(pd.NA, index=book.index)
    out = pd.DataFrame({"account_id": book["account_id"],
                        "account_name": book.get("account_name"),
                        "segment": book.get("segment"),
                        "csm_owner": csm.where(csm.notna(), NO_CSM).astype("object"),
                        "tier": tier.astype("object"), "phase": phase,
                        "hours": np.asarray(hours, float)})
    per_csm = per_csm_hours(out, model)
    per_tier = (out.groupby(["tier", "phase"]).agg(accounts=("account_id", "size"),
                                                   hours=("hours", "sum")).reset_index())
    per_tier["hours_per_account"] = per_tier["hours"] / per_tier["accounts"]
    per_tier = per_tier[["tier", "phase", "accounts", "hours_per_account", "hours"]]
    in_flight = int(((out["phase"] == "onboarding")
                     & out["tier"].isin(model.onboarding_tiers)).sum())
    cap = model.specialists * model.concurrent_limit
    onboardings = pd.DataFrame([{"in_flight": in_flight, "specialists": model.specialists,
                                 "concurrent_limit": model.concurrent_limit,
                                 "capacity": cap, "over_limit": in_flight > cap}])
    if in_flight > cap:
        notes.append(f"{in_flight} onboardings in flight for {cap} places "
                     f"({model.specialists} specialists x {model.concurrent_limit})")
    over = per_csm.loc[per_csm["overloaded"].fillna(False).astype(bool), "csm_owner"]
    if len(over):
        notes.append(f"overloaded: {', '.join(map(str, over))}")
    return Workload(out, per_csm, per_tier, onboardings, as_of, notes=tuple(notes))


def per_csm_hours(accounts: pd.DataFrame, model) -> pd.DataFrame:
    """The per-CSM table of :class:`Workload` from account-level phase and hours.

    Pure arithmetic (no workspace): the dashboard recomputes it when hours change.

    Parameters
    ----------
    accounts : DataFrame
        ``Workload.accounts`` (``account_id``, ``csm_owner``, ``phase``, ``hours``).
    model : CapacityModel or as :func:`load_model`
    """
    model = load_model(model)
    counts = pd.crosstab(accounts["csm_owner"], accounts["phase"]).reindex(
        columns=list(PHASES), fill_value=0)
    g = accounts.groupby("csm_owner").agg(accounts=("account_id", "size"),
                                          hours=("hours", "sum"))
    per = g.join(counts).reset_index()
    cap = model.csm_capacity
    person = per["csm_owner"] != NO_CSM
    per["capacity_hours"] = np.where(person, cap, np.nan)
    per["utilisation"] = np.where(person, per["hours"] / model.csm_hours_per_month, np.nan)
    per["load"] = np.where(person, per["hours"] / cap, np.nan)
    per["overloaded"] = pd.array(np.where(person, per["hours"] > cap, pd.NA), dtype="boolean")
    return per.sort_values("hours", ascending=False).reset_index(drop=True)


# ======================================================================================
# Pipeline and plan
# ======================================================================================
class _PipelineRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    segment: str = Field(min_length=1)
    new_accounts: int = Field(ge=0)


class _PipelineFile(_Strict):
    description: str = ""
    pipeline: list[dict[str, Any]] = Field(min_length=1)


def load_pipeline(source=None) -> pd.DataFrame:
    """Read a sales pipeline: new accounts per month and segment.

    A CSV file with columns ``month`` (``2027-01``), ``segment`` and ``new_accounts`` (a
    whole number >= 0), or a YAML file with ``pipeline:`` a list of such mappings, or a
    DataFrame with those columns (e.g. this function's output).

    Returns
    -------
    pandas.DataFrame
        ``month`` (label), ``period`` (month number, :func:`cs_analysis.time.period_of`),
        ``segment``, ``new_accounts``; one row per month and segment (duplicates summed
        are refused: each month and segment once).

    Raises
    ------
    CapacityError
        Naming the file, the row (and line) and the column, with what was expected.
    """
    import pydantic

    label = "pipeline"
    if isinstance(source, pd.DataFrame):
        frame = source.drop(columns=["period"], errors="ignore")  # recomputed from month
        rows, where, name = frame.to_dict("records"), None, "<frame>"
        lines = {i: None for i in range(len(rows))}
    else:
        if source is not None and not isinstance(source, str | os.PathLike):
            raise CapacityError(f"{label}: expected a CSV or YAML file or a DataFrame, got "
                                f"{short(source)}")
        path = Path(source) if source is not None else default_pipeline_path()
        name = str(path)
        text = read_text(path, label, CapacityError)
        if path.suffix.lower() in (".yml", ".yaml"):
            data, ctx = read_yaml(text, label, name, CapacityError)
            if not isinstance(data, Mapping):
                raise ctx.error((), f"expected a mapping with `pipeline:`, got {short(data)}")
            m = validate(_PipelineFile, data, ctx)
            rows = m.pipeline
            where = ctx
            lines = {i: ctx.lines.get(("pipeline", i)) for i in range(len(rows))}
        else:
            import csv
            import io

            reader = csv.DictReader(io.StringIO(text))
            header = reader.fieldnames or []
            need = ["month", "segment", "new_accounts"]
            missing = [c for c in need if c not in header]
            if missing:
                raise CapacityError(f"{label} {name}, line 1: column(s) {', '.join(missing)} "
                                    f"missing; expected columns {', '.join(need)}, got "
                                    f"{', '.join(header) or 'none'}")
            rows, lines = [], {}
            for i, r in enumerate(reader):
                extra = r.pop(None, None)
                if extra:
                    raise CapacityError(f"{label} {name}, row {i + 1} (line "
                                        f"{reader.line_num}): more values than columns")
                rows.append({k: r[k] for k in need})
                lines[i] = reader.line_num
            where = None
    out = []
    for i, r in enumerate(rows):
        if where is not None and not isinstance(r, Mapping):
            raise where.error(("pipeline", i), f"expected a mapping with month, segment and "
                              f"new_accounts, got {short(r)}")
        try:
            row = _PipelineRow.model_validate(r)
        except pydantic.ValidationError as exc:
            errs = exc.errors(include_url=False)
            err = next((e for e in errs if e["type"] == "extra_forbidden"), errs[0])
            col = err["loc"][0] if err["loc"] else "?"
            expected = {"month": "a month like 2027-03", "segment": "a segment name",
                        "new_accounts": "a whole number >= 0"}.get(col, err["msg"])
            if err["type"] == "extra_forbidden":
                expected = "only month, segment and new_accounts"
            if err["type"] == "missing":
                expected = "a value"
            ln = f" (line {lines[i]})" if lines.get(i) else ""
            got = r.get(col) if isinstance(r, Mapping) else r
            raise CapacityError(f"{label} {name}, row {i + 1}{ln}, column {col}: expected "
                                f"{expected}, got {short(got)}") from None
        out.append({"month": row.month, "segment": row.segment,
                    "new_accounts": row.new_accounts})
    frame = pd.DataFrame(out, columns=["month", "segment", "new_accounts"])
    dup = frame.duplicated(["month", "segment"], keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        ln = f" (line {lines[i]})" if lines.get(i) else ""
        raise CapacityError(f"{label} {name}, row {i + 1}{ln}: {frame['month'][i]} / "
                            f"{frame['segment'][i]} appears twice; give each month and "
                            "segment once")
    frame["period"] = [period_of(dt.date.fromisoformat(f"{m}-01"), "month")
                       for m in frame["month"]]
    frame["new_accounts"] = frame["new_accounts"].astype("int64")
    return frame[["month", "period", "segment", "new_accounts"]].sort_values(
        ["period", "segment"]).reset_index(drop=True)


@dataclass(frozen=True)
class PlanInputs:
    """What a capacity plan needs from the workspace, computed once (:func:`plan_inputs`).

    Attributes
    ----------
    book : DataFrame
        Live accounts today by ``tier`` and ``phase`` (``accounts``).
    headcount : int
        CSMs on staff (fully ramped).
    pipeline : DataFrame
        :func:`load_pipeline`'s frame.
    as_of : date
    """

    book: pd.DataFrame
    headcount: int
    pipeline: pd.DataFrame
    as_of: dt.date
    notes: tuple[str, ...] = ()


def plan_inputs(ws, model=None, pipeline=None, *, as_of=None, rules=None, criteria=None
                ) -> PlanInputs:
    """The small frames a plan is computed from: today's book by tier and phase, staff.

    Headcount: the model's ``csm.headcount``, else the number of distinct ``csm_owner``
    values among live accounts.
    """
    model = load_model(model)
    pipe = load_pipeline(pipeline)
    wl = workload(ws, model, as_of=as_of, rules=rules, criteria=criteria)
    book = wl.per_tier[["tier", "phase", "accounts"]].copy()
    heads = model.headcount
    notes = list(wl.notes)
    if heads is None:
        heads = int((wl.per_csm["csm_owner"] != NO_CSM).sum())
        notes.append(f"{heads} CSMs on staff (csm_owner values of the live book; set "
                     "csm.headcount in the model to override)")
    segs = set(pipe["segment"]) - set(model.new_account_tiers)
    if segs:
        raise CapacityError(f"capacity model {model.source}: new_account_tiers has no tier "
                            f"for pipeline segment(s) {', '.join(sorted(segs))}; known: "
                            f"{', '.join(model.new_account_tiers)}")
    return PlanInputs(book, heads, pipe, wl.as_of, tuple(notes))


def _renewal_months(model: CapacityModel) -> int:
    return int(round(model.renewal_window_days / _MONTH_DAYS))


def plan_capacity(inputs: PlanInputs, model, *, scenario: str = "base",
                  pipeline_factor: float = 1.0, month_factors: Mapping[str, float] | None = None,
                  hours_factor: Mapping[str, float] | None = None,
                  utilisation_target: float | None = None,
                  new_account_tiers: Mapping | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The plan's arithmetic, month by month (pure: no workspace query).

    For plan month m (the pipeline's months, in order):

    - ``hours_book`` = sum over today's live accounts of hours[tier][phase] at the as-of
      date: today's book keeps today's hours every month (churn and graduation of
      today's onboardings are not projected, so the plan errs on the safe side);
    - a pipeline account signed in month s (new_accounts x ``pipeline_factor`` x the
      month's factor, split over tiers by ``new_account_tiers``) is ``onboarding`` in
      months s .. s + onboarding_months - 1, then ``adoption``, and ``renewal`` in the
      last round(renewal_window_days / 30.44) months of each 12 after signing;
      ``hours_new`` sums hours[tier][phase] over them;
    - ``onboardings_in_flight`` = pipeline accounts of the specialists' tiers in their
      onboarding months; ``specialists_needed`` = ceil(in flight / concurrent_limit);
    - ``csms_needed_fte`` = (hours_book + hours_new) / (hours_per_month x utilisation),
      ``csms_needed`` its ceiling;
    - hires: month by month, while the staff's capacity (headcount + each hire's ramp
      share k / (ramp_months + 1) in their k-th month) is below ``csms_needed_fte``, a
      hire is added who joins ``ramp_months`` months earlier, so they are fully ramped
      that month; when that is before the plan's first month they join in the first
      month and the month is marked ``late``.

    Returns
    -------
    (months, hires) : tuple of DataFrame
        ``months``: ``scenario``, ``month``, ``period``, ``new_accounts``,
        ``hours_book``, ``hours_new``, ``hours``, ``onboardings_in_flight``,
        ``specialists_needed``, ``csms_needed_fte``, ``csms_needed``, ``csms_on_staff``
        (headcount + hires who joined), ``csm_capacity_fte`` (ramp counted),
        ``hires_joining``, ``short`` (capacity below need). ``hires``: ``scenario``,
        ``join_month``, ``needed_from``, ``late``.
    """
    if utilisation_target is not None:
        check_number("utilisation_target", utilisation_target, minimum=0.01, maximum=1.0)
    for t, f in (hours_factor or {}).items():
        check_choice("hours_factor tier", t, TIERS)
        check_number(f"hours_factor[{t!r}]", f, minimum=0)
    model = load_model(model).with_changes(hours_factor=hours_factor,
                                           utilisation_target=utilisation_target,
                                           new_account_tiers=new_account_tiers)
    check_number("pipeline_factor", pipeline_factor, minimum=0)
    pipe = inputs.pipeline
    months_lbl = sorted(set(pipe["month"]), key=lambda m: m)
    if not months_lbl:
        raise CapacityError("the pipeline has no month")
    first = period_of(dt.date.fromisoformat(f"{months_lbl[0]}-01"), "month")
    last = period_of(dt.date.fromisoformat(f"{months_lbl[-1]}-01"), "month")
    periods = list(range(first, last + 1))
    mf = {period_of(dt.date.fromisoformat(f"{k}-01"), "month"): float(v)
          for k, v in (month_factors or {}).items()}
    # new accounts per (period, tier)
    new = {p: dict.fromkeys(TIERS, 0.0) for p in periods}
    for _, r in pipe.iterrows():
        n = r["new_accounts"] * float(pipeline_factor) * mf.get(int(r["period"]), 1.0)
        for t, share in model.new_account_tiers[r["segment"]].items():
            new[int(r["period"])][t] += n * share
    book = inputs.book
    hours_book = float(sum(a * model.hours[t][p] for t, p, a in zip(
        book["tier"], book["phase"], book["accounts"], strict=True)))
    ren = _renewal_months(model)
    rows = []
    for m in periods:
        hours_new = 0.0
        flight = 0.0
        for s in periods:
            if s > m:
                break
            age = m - s
            for t in TIERS:
                n = new[s][t]
                if not n:
                    continue
                if age < model.onboarding_months:
                    ph = "onboarding"
                    if t in model.onboarding_tiers:
                        flight += n
                elif ren and age % 12 >= 12 - ren:
                    ph = "renewal"
                else:
                    ph = "adoption"
                hours_new += n * model.hours[t][ph]
        hours = hours_book + hours_new
        fte = hours / model.csm_capacity
        rows.append({"scenario": scenario, "month": period_label(m, "month"), "period": m,
                     "new_accounts": sum(new[m].values()), "hours_book": hours_book,
                     "hours_new": hours_new, "hours": hours,
                     "onboardings_in_flight": flight,
                     "specialists_needed": math.ceil(round(flight / model.concurrent_limit, 9)),
                     "csms_needed_fte": fte, "csms_needed": math.ceil(round(fte, 9))})
    joins: list[int] = []  # join periods of hires
    late: list[bool] = []
    needed: list[int] = []

    def capacity(m: int) -> float:
        return inputs.headcount + sum(model.ramp(m - j + 1) for j in joins)

    for r in rows:
        m = r["period"]
        while capacity(m) + 1e-9 < r["csms_needed_fte"]:
            j = m - model.ramp_months
            joins.append(max(j, first))
            late.append(j < first)
            needed.append(m)
    for r in rows:
        m = r["period"]
        r["csms_on_staff"] = inputs.headcount + sum(1 for j in joins if j <= m)
        r["csm_capacity_fte"] = capacity(m)
        r["hires_joining"] = sum(1 for j in joins if j == m)
        r["short"] = r["csm_capacity_fte"] + 1e-9 < r["csms_needed_fte"]
    hires = pd.DataFrame({"scenario": scenario,
                          "join_month": [period_label(j, "month") for j in joins],
                          "needed_from": [period_label(n, "month") for n in needed],
                          "late": late}, columns=["scenario", "join_month", "needed_from",
                                                  "late"])
    return pd.DataFrame(rows), hires


@dataclass(frozen=True)
class CapacityPlan(Result):
    """A capacity plan for one or more scenarios (:func:`capacity_plan`).

    Attributes
    ----------
    months : DataFrame
        :func:`plan_capacity`'s month frame, stacked over scenarios.
    hires : DataFrame
        Hiring dates per scenario.
    comparison : DataFrame
        One row per scenario: ``scenario``, ``description``, ``new_accounts``,
        ``peak_hours``, ``peak_csms_needed``, ``hires``, ``first_hire``,
        ``late_hires``, ``peak_onboardings``, ``peak_specialists_needed``.
    inputs : PlanInputs
    """

    months: pd.DataFrame = field(repr=False)
    hires: pd.DataFrame = field(repr=False)
    comparison: pd.DataFrame = field(repr=False)
    inputs: PlanInputs = field(repr=False)
    title = "CSM capacity plan"

    def summary(self) -> pd.DataFrame:
        """Scenarios side by side."""
        return self.comparison


def _compare(months: pd.DataFrame, hires: pd.DataFrame, descriptions: Mapping[str, str]
             ) -> pd.DataFrame:
    rows = []
    for name, g in months.groupby("scenario", sort=False):
        h = hires[hires["scenario"] == name]
        rows.append({"scenario": name, "description": descriptions.get(name, ""),
                     "new_accounts": float(g["new_accounts"].sum()),
                     "peak_hours": float(g["hours"].max()),
                     "peak_csms_needed": int(g["csms_needed"].max()),
                     "hires": len(h),
                     "first_hire": h["join_month"].min() if len(h) else None,
                     "late_hires": int(h["late"].sum()),
                     "peak_onboardings": float(g["onboardings_in_flight"].max()),
                     "peak_specialists_needed": int(g["specialists_needed"].max())})
    return pd.DataFrame(rows)


def capacity_plan(ws, model=None, pipeline=None, *, as_of=None, scenarios=None, rules=None,
                  criteria=None) -> CapacityPlan:
    """A sales pipeline turned into hours, onboardings, CSMs needed and hiring dates.

    Computes :func:`plan_inputs` once (today's book by tier and phase, headcount) and
    runs :func:`plan_capacity` for the base case and each scenario.

    Parameters
    ----------
    ws : Workspace
    model : str, Path, mapping or CapacityModel, optional
        Default :func:`default_model_path`.
    pipeline : str, Path or DataFrame, optional
        Default :func:`default_pipeline_path`.
    as_of : date or str, optional
    scenarios : mapping, optional
        ``{name: overrides}``; overrides are :func:`plan_capacity` keywords
        (``new_account_tiers`` e.g. ``{"Mid-Market": "tech"}``, ``pipeline_factor``,
        ``month_factors`` e.g. ``{"2027-04": 1.5}``, ``hours_factor``,
        ``utilisation_target``) and an optional ``description``. Default: the model
        file's ``scenarios``. The base case (the model as is) always comes first.
    rules, criteria : optional
        As for :func:`workload`.

    Returns
    -------
    CapacityPlan
    """
    model = load_model(model)
    inputs = plan_inputs(ws, model, pipeline, as_of=as_of, rules=rules, criteria=criteria)
    scen = dict(model.scenarios if scenarios is None else scenarios)
    months, hires = plan_capacity(inputs, model, scenario="base")
    all_m, all_h = [months], [hires]
    desc = {"base": "the capacity model and pipeline as they are"}
    for name, over in scen.items():
        over = dict(over)
        desc[name] = over.pop("description", "") or ""
        allowed = {"new_account_tiers", "pipeline_factor", "month_factors", "hours_factor",
                   "utilisation_target"}
        bad = set(over) - allowed
        if bad:
            raise CapacityError(f"scenario {name!r}: unknown setting(s) {sorted(bad)}; "
                                f"expected {sorted(allowed)}")
        over = {k: v for k, v in over.items() if v not in (None, {}, 1.0) or k ==
                "pipeline_factor"}
        m, h = plan_capacity(inputs, model, scenario=name, **over)
        all_m.append(m)
        all_h.append(h)
    months = pd.concat(all_m, ignore_index=True)
    hires = pd.concat(all_h, ignore_index=True)
    notes = list(inputs.notes) + [
        "today's book keeps today's hours every month of the plan (churn and the end of "
        "today's onboardings are not projected)",
        f"new hires ramp over {model.ramp_months} months (capacity k/{model.ramp_months + 1}"
        " in their k-th month) and join early enough to be fully ramped when needed"]
    return CapacityPlan(months, hires, _compare(months, hires, desc), inputs,
                        notes=tuple(notes))

