"""The data contract in code: one spec per canonical table.

This module is the single source of truth for ``../shared/design/data-contract.md``.
The loader (:mod:`cs_analysis.io`), the validator, the demo generator
(:mod:`cs_analysis.demo`), the workspace (:mod:`cs_analysis.workspace`) and the
README's data section (:func:`markdown_table`) all read these specs.

Conventions (from the contract)
-------------------------------
- names are ``snake_case`` English whatever the source headers are;
- ``*_id`` columns are strings (``00042`` stays ``00042``);
- ``*_date`` is a calendar date, ``*_at`` a timestamp stored as naive UTC;
- money is a float in the workspace currency;
- required columns must be present and non-null; optional columns may be absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Logical column types and the DuckDB/SQL type each is stored as.
SQL_TYPES = {
    "string": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "float": "DOUBLE",
    "int": "BIGINT",
}

#: Default survey scales (inclusive ``(low, high)``); CSAT and CES are configurable
#: per workspace, NPS is always 0–10.
DEFAULT_SURVEY_SCALES: dict[str, tuple[float, float]] = {
    "nps": (0, 10),
    "csat": (1, 5),
    "ces": (1, 7),
}


@dataclass(frozen=True)
class Column:
    """One column of a canonical table.

    Parameters
    ----------
    name : str
        Canonical ``snake_case`` name.
    dtype : str
        One of :data:`SQL_TYPES` keys.
    required : bool
        Must be present and non-null in every row.
    unique : bool
        Values must be unique within the table.
    min, max : float, optional
        Inclusive numeric range.
    allowed : tuple of str, optional
        Closed vocabulary; values outside it are errors.
    description : str
        What the column holds, for the docs table.
    """

    name: str
    dtype: str
    required: bool = False
    unique: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    description: str = ""

    def __post_init__(self):  # noqa: D105
        if self.dtype not in SQL_TYPES:
            raise ValueError(f"column {self.name}: unknown dtype {self.dtype!r}")

    @property
    def sql_type(self) -> str:
        """The SQL type this column is stored as."""
        return SQL_TYPES[self.dtype]

    def rule_text(self) -> str:
        """Human-readable summary of the rules on this column (for docs and errors)."""
        parts = [self.dtype]
        if self.unique:
            parts.append("unique")
        if self.min is not None and self.max is not None:
            parts.append(f"{_num(self.min)}–{_num(self.max)}")
        elif self.min is not None:
            parts.append(f"≥ {_num(self.min)}")
        if self.allowed:
            parts.append(" / ".join(f"`{a}`" for a in self.allowed))
        return ", ".join(parts)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class TableSpec:
    """The spec of one canonical table.

    Parameters
    ----------
    name : str
        Canonical table name.
    row : str
        What one row is, in CS terms.
    columns : tuple of Column
        Required and optional columns, in canonical order.
    references_accounts : bool
        ``account_id`` must exist in ``accounts`` (a foreign key).
    ordered : tuple of (str, str)
        Pairs ``(earlier, later)``: when both are present, ``later`` must not be
        before ``earlier`` (e.g. ``end_date`` before ``start_date`` is an error).
    extra_prefix : str, optional
        Extra columns whose name starts with this prefix are kept (as floats),
        e.g. survey driver ratings ``attr_*``.
    """

    name: str
    row: str
    columns: tuple[Column, ...]
    references_accounts: bool = True
    ordered: tuple[tuple[str, str], ...] = ()
    extra_prefix: str | None = None
    _by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):  # noqa: D105
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    def __getitem__(self, name: str) -> Column:
        """Column spec by name (``attr_*`` extras resolve to a float column)."""
        if name in self._by_name:
            return self._by_name[name]
        if self.extra_prefix and name.startswith(self.extra_prefix):
            return Column(name, "float", description="driver rating")
        raise KeyError(f"{self.name} has no column {name!r}")

    def __contains__(self, name: str) -> bool:
        """Whether ``name`` is a column (or an allowed extra) of this table."""
        return name in self._by_name or bool(
            self.extra_prefix and name.startswith(self.extra_prefix)
        )

    @property
    def required(self) -> list[str]:
        """Names of the required columns."""
        return [c.name for c in self.columns if c.required]

    @property
    def optional(self) -> list[str]:
        """Names of the optional columns."""
        return [c.name for c in self.columns if not c.required]

    @property
    def unique(self) -> list[str]:
        """Names of the columns whose values must be unique."""
        return [c.name for c in self.columns if c.unique]

    def names(self) -> list[str]:
        """All canonical column names, in order."""
        return [c.name for c in self.columns]


def _c(name, dtype, **kw) -> Column:
    return Column(name, dtype, **kw)


def _req(name, dtype, **kw) -> Column:
    return Column(name, dtype, required=True, **kw)


TOUCH = ("high", "low", "tech")

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in [
        TableSpec(
            "accounts",
            "a customer company",
            (
                _req("account_id", "string", unique=True, description="customer id"),
                _req("signup_date", "date", description="contract signup date"),
                _c("account_name", "string"),
                _c("segment", "string", description="e.g. SMB / Mid-Market / Enterprise"),
                _c("plan", "string"),
                _c("region", "string"),
                _c("industry", "string"),
                _c("employees", "int", min=0),
                _c("csm_owner", "string"),
                _c("kickoff_date", "date", description="onboarding kickoff meeting"),
                _c("touch_model", "string", allowed=TOUCH),
            ),
            references_accounts=False,
        ),
        TableSpec(
            "subscriptions",
            "a contract line over a period at a constant MRR",
            (
                _req("account_id", "string"),
                _req("start_date", "date"),
                _req("mrr", "float", min=0, description="monthly recurring revenue"),
                _c("end_date", "date", description="first day without service; null = running"),
                _c("product", "string"),
                _c("subscription_id", "string"),
                _c("renewal_date", "date",
                   description="next renewal of a running contract"),
                _c("term_months", "int", min=1, description="contract term in months"),
                _c("seats", "int", min=0, description="licensed users"),
            ),
            ordered=(("start_date", "end_date"),),
        ),
        TableSpec(
            "usage_events",
            "one product event",
            (
                _req("account_id", "string"),
                _req("event_at", "timestamp"),
                _c("user_id", "string"),
                _c("event_name", "string"),
                _c("feature", "string"),
            ),
        ),
        TableSpec(
            "onboarding_milestones",
            "an account reaching a milestone",
            (
                _req("account_id", "string"),
                _req("milestone", "string"),
                _req("completed_at", "timestamp"),
            ),
        ),
        TableSpec(
            "survey_responses",
            "one answer to one survey",
            (
                _req("response_id", "string", unique=True),
                _req("account_id", "string"),
                _req("survey", "string", description="`nps`, `csat`, `ces` or another name"),
                _req("score", "float", description="on the survey's scale"),
                _req("responded_at", "timestamp"),
                _c("respondent_id", "string", description="= stakeholders.person_id if known"),
                _c("respondent_role", "string"),
                _c("touchpoint", "string"),
                _c("comment", "string"),
            ),
            extra_prefix="attr_",
        ),
        TableSpec(
            "support_tickets",
            "one ticket",
            (
                _req("ticket_id", "string", unique=True),
                _req("account_id", "string"),
                _req("opened_at", "timestamp"),
                _c("first_response_at", "timestamp"),
                _c("resolved_at", "timestamp"),
                _c("priority", "string"),
                _c("product", "string"),
                _c("category", "string"),
                _c("csat", "float", min=1, max=5),
            ),
            ordered=(("opened_at", "resolved_at"), ("opened_at", "first_response_at")),
        ),
        TableSpec(
            "stakeholders",
            "a person at a customer",
            (
                _req("account_id", "string"),
                _req("person_id", "string"),
                _req("role", "string", description="executive sponsor, decision maker, …"),
                _c("name", "string"),
                _c("title", "string"),
                _c("domain", "string", allowed=("business", "technical")),
                _c("influence", "int", min=1, max=5),
                _c("sentiment", "int", min=-2, max=2),
                _c("decision_style", "string", allowed=("top_down", "bottom_up", "balanced")),
                _c("left_at", "timestamp"),
            ),
        ),
        TableSpec(
            "health_inputs",
            "a CSM's qualitative read of an account at a date",
            (
                _req("account_id", "string"),
                _req("as_of", "date"),
                _req("csm_rating", "int", min=1, max=5),
                _c("note", "string"),
            ),
        ),
        TableSpec(
            "cs_activities",
            "one CS touch or play with an account",
            (
                _req("account_id", "string"),
                _req("activity", "string", description="kickoff, training, qbr, …"),
                _req("occurred_at", "timestamp"),
                _c("owner", "string"),
                _c("channel", "string", allowed=TOUCH),
                _c("outcome", "string"),
            ),
        ),
        TableSpec(
            "feature_requests",
            "one product request raised by a customer",
            (
                _req("request_id", "string", unique=True),
                _req("account_id", "string"),
                _req("title", "string"),
                _req("created_at", "timestamp"),
                _c("person_id", "string"),
                _c("source", "string", description="survey, ticket, meeting, roundtable"),
                _c("theme", "string"),
                _c("status", "string", allowed=("open", "planned", "shipped", "declined")),
                _c("status_at", "timestamp"),
            ),
        ),
    ]
}

#: Table names in load order (``accounts`` first: every other table refers to it).
TABLE_NAMES: tuple[str, ...] = tuple(TABLES)

#: The columns (table, column) whose latest value defines the default as-of date
#: (metrics.md, "as-of date").
AS_OF_SOURCES: tuple[tuple[str, str], ...] = (
    ("usage_events", "event_at"),
    ("subscriptions", "start_date"),
    ("onboarding_milestones", "completed_at"),
    ("survey_responses", "responded_at"),
    ("support_tickets", "opened_at"),
    ("support_tickets", "resolved_at"),
    ("cs_activities", "occurred_at"),
)


def spec(name: str) -> TableSpec:
    """Return the spec of table ``name``, with a clear error for unknown names."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(
            f"unknown table {name!r}; the contract's tables are: {', '.join(TABLE_NAMES)}"
        ) from None


def survey_scale(survey: str, scales: dict | None = None) -> tuple[float, float] | None:
    """Inclusive score range of ``survey`` (None for surveys without a known scale)."""
    merged = {**DEFAULT_SURVEY_SCALES, **(scales or {})}
    merged["nps"] = DEFAULT_SURVEY_SCALES["nps"]  # NPS is 0–10, whatever config says
    rng = merged.get(survey)
    return None if rng is None else (float(rng[0]), float(rng[1]))


def create_table_sql(name: str, columns: list[str] | None = None) -> str:
    """``CREATE TABLE`` statement for a canonical table.

    ``columns`` selects which columns exist (canonical order kept, ``attr_*`` extras
    appended as DOUBLE); by default all of the contract's columns.
    """
    t = spec(name)
    names = t.names() if columns is None else list(columns)
    ordered = [c for c in t.names() if c in names]
    ordered += [c for c in names if c not in ordered]
    cols = [f'"{c}" {t[c].sql_type}' for c in ordered]
    return f'CREATE TABLE "{name}" ({", ".join(cols)})'


def markdown_table() -> str:
    """The contract as a Markdown table, generated from the specs (for the README)."""
    lines = [
        "| table | one row is | required columns | optional columns |",
        "|---|---|---|---|",
    ]
    for t in TABLES.values():

        def fmt(c: Column) -> str:
            extra = c.rule_text().removeprefix(c.dtype).lstrip(", ")
            notes = "; ".join(x for x in (extra, c.description) if x)
            return f"`{c.name}`" + (f" ({notes})" if notes else "")

        req = ", ".join(fmt(c) for c in t.columns if c.required)
        opt = ", ".join(fmt(c) for c in t.columns if not c.required) or "—"
        if t.extra_prefix:
            opt += f", any `{t.extra_prefix}*` columns"
        lines.append(f"| `{t.name}` | {t.row} | {req} | {opt} |")
    return "\n".join(lines)
