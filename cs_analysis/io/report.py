"""The validation report: problems, their groups, the report and the load errors.

Each broken rule becomes a :class:`Problem` (file, rows as the user sees them, column,
value, what was expected); :class:`Collector` groups them by table, rule and column,
keeping the first few of each group with the group's total, and builds the
:class:`Report` that ``cs-analysis validate`` prints.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from cs_analysis.errors import CSAnalysisError

if TYPE_CHECKING:
    from cs_analysis.io.readers import Source

#: Problems kept per (table, rule, column) group; the group keeps the total count.
MAX_EXAMPLES = 5
#: Rows listed per duplicated key or unknown account id (the total is always given).
MAX_ROWS_PER_VALUE = 20

# Rule names (the ``rule`` of a Problem).
R_MAPPING = "mapping"
R_UNREADABLE = "unreadable file"
R_HEADER = "header not found"
R_MISSING_COLUMN = "missing column"
R_EXTRA_CELLS = "extra cells"
R_NULL = "missing value"
R_PARSE = {"date": "unparseable date", "timestamp": "unparseable timestamp",
           "float": "unparseable number", "int": "unparseable whole number"}
R_DUPLICATE = "duplicate key"
R_RANGE = "out of range"
R_SCALE = "outside survey scale"
R_VOCAB = "not in vocabulary"
R_ORDER = "date order"
R_UNKNOWN_ACCOUNT = "unknown account"
R_COLUMN_TYPE = "unsupported column type"
R_FORMULA = "formula without a value"
#: Rules about the mapping or a file as a whole (counted in entries, not rows).
_ENTRY_RULES = (R_MAPPING, R_UNREADABLE, R_HEADER, R_MISSING_COLUMN, R_COLUMN_TYPE)

EXPECT = {
    "date": "a date such as 2024-04-01, 2024/04/01 or 2024/4/1 (a time such as 9:05 may "
            "follow), 20240401, or an Excel serial date such as 45383; year 1900 or later",
    "timestamp": "a timestamp such as 2024-04-01 09:05, 2024/4/1 9:05, "
                 "2024-04-01T09:05:00+09:00, or an Excel serial date such as 45383.38; "
                 "year 1900 or later",
    "float": "a number such as 1200, -3.5 or 1,200 (point as the decimal separator)",
    "int": "a whole number such as 12",
}


# ----------------------------------------------------------------------------------------
# Problems and the report
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One broken rule at one place in a source file (or the mapping file).

    Parameters
    ----------
    rule : str
        Short rule name (``"unparseable date"``, ``"duplicate key"``, ...).
    table : str or None
        Canonical table (None for problems of the mapping file as a whole).
    file : str or None
        The file as named in the mapping (relative to its folder), or the mapping file.
    column : str or None
        Canonical column.
    source_column : str or None
        The header in the source file.
    rows : tuple of int
        Rows as the user sees them: CSV line numbers (header = line 1), Excel sheet rows,
        Parquet rows (first row 1). Possibly truncated: see ``n_rows``.
    row_label : str
        ``"line"`` (CSV) or ``"row"``.
    value : object
        The bad value, as found in the file.
    expected : str
        What was expected.
    n_rows : int
        Number of rows involved (``len(rows)`` unless truncated).
    entry : str or None
        The mapping entry concerned (``tables.accounts.columns.signup_date``).
    """

    rule: str
    table: str | None
    file: str | None
    column: str | None = None
    source_column: str | None = None
    rows: tuple[int, ...] = ()
    row_label: str = "line"
    value: Any = None
    expected: str = ""
    n_rows: int = 0
    entry: str | None = None

    def where(self) -> str:
        """Where the problem is: file, rows and column, as one phrase."""
        parts = [self.file or "?"]
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows)
            label = self.row_label + ("s" if len(self.rows) > 1 else "")
            more = self.n_rows - len(self.rows)
            parts.append(f"{label} {shown}" + (f" (+{more} more)" if more > 0 else ""))
        if self.entry:
            parts.append(f"entry {self.entry}")
        if self.column:
            src = (f" ({self.source_column})"
                   if self.source_column and self.source_column != self.column else "")
            parts.append(f"column {self.column}{src}")
        return ", ".join(parts)

    def __str__(self) -> str:
        value = "" if self.value is None else f": {_show(self.value)}"
        return f"{self.where()}{value} — {self.rule}; expected {self.expected}"


@dataclass
class ProblemGroup:
    """The problems of one rule on one column of one table.

    Parameters
    ----------
    table, rule, column, source_column, expected
        As in :class:`Problem`.
    total : int
        How many rows (or entries) break the rule.
    examples : list of Problem
        The first ones, in file order.
    detail : str
        Extra counts (e.g. how many distinct values are duplicated).
    """

    table: str | None
    rule: str
    column: str | None
    source_column: str | None
    expected: str
    total: int = 0
    examples: list[Problem] = field(default_factory=list)
    detail: str = ""


@dataclass
class Report:
    """What validation found, readable by an analyst (:meth:`summary`).

    Attributes
    ----------
    mapping : str
        The mapping file (or ``"<mapping>"`` for an in-memory mapping).
    groups : list of ProblemGroup
        Problems grouped by table, rule and column.
    rows : dict
        Rows per table that are (or would be) loaded.
    dropped : dict
        Rows dropped per table because their ``account_id`` is not in ``accounts``
        (only with ``drop_unknown_accounts=True``).
    dropped_ids : dict
        The first few dropped account ids per table.
    skipped_blank : dict
        Rows skipped per table because every cell was empty.
    sources : dict
        Per table, how each file was read (kind, encoding).
    settings : dict
        Workspace settings from the mapping file.
    notes : list of str
        Observations that are not errors (e.g. a survey named ``NPS`` rather than
        ``nps``, which gets no scale check and which analyses will not find as NPS).
    """

    mapping: str
    groups: list[ProblemGroup] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_ids: dict[str, list[str]] = field(default_factory=dict)
    skipped_blank: dict[str, int] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no rule is broken."""
        return not self.groups

    @property
    def problems(self) -> list[Problem]:
        """The problems kept (the first few of each group), group by group."""
        return [p for g in self.groups for p in g.examples]

    @property
    def totals(self) -> dict[tuple[str | None, str, str | None], int]:
        """Total count per ``(table, rule, column)``."""
        return {(g.table, g.rule, g.column): g.total for g in self.groups}

    def to_frame(self) -> pd.DataFrame:
        """The problems kept, one row each, with their group's total."""
        rows = []
        for g in self.groups:
            for p in g.examples:
                rows.append({"table": p.table, "rule": p.rule, "file": p.file,
                             "rows": ", ".join(map(str, p.rows)), "column": p.column,
                             "source_column": p.source_column,
                             "value": None if p.value is None else _show(p.value),
                             "expected": p.expected, "group_total": g.total})
        cols = ["table", "rule", "file", "rows", "column", "source_column", "value",
                "expected", "group_total"]
        return pd.DataFrame(rows, columns=cols)

    def summary(self) -> str:
        """The report as text: the problems, or "all N tables valid" with rows per table."""
        out = []
        if self.ok:
            out.append(f"{self.mapping}: all {len(self.rows)} tables valid")
        else:
            n = sum(g.total for g in self.groups)
            tables = len({g.table for g in self.groups})
            out.append(f"{self.mapping}: {_plural(n, 'problem')} of "
                       f"{_plural(len(self.groups), 'kind')} in {_plural(tables, 'table')}; "
                       "nothing can be loaded until they are fixed")
        for g in self.groups:
            out.append("")
            head = f"[{g.table or 'mapping file'}] {g.rule}"
            if g.column:
                src = (f" (source column {g.source_column!r})"
                       if g.source_column and g.source_column != g.column else "")
                head += f" in {g.column}{src}"
            counts = []
            if g.rule not in _ENTRY_RULES:
                counts.append(_plural(g.total, "row"))
            if g.detail:
                counts.append(g.detail)
            listed = sum(max(p.n_rows, 1) for p in g.examples)
            if g.rule not in _ENTRY_RULES and g.total > listed:
                counts.append(f"first {len(g.examples)} shown")
            out.append(head + (f": {', '.join(counts)}" if counts else ""))
            out.append(f"    expected {g.expected}")
            for p in g.examples:
                out.append("    " + _example_line(p))
        if self.rows:
            out.append("")
            out.append("rows per table:" if self.ok else "rows read per table:")
            width = max(len(t) for t in self.rows)
            for t, n in self.rows.items():
                src = "; ".join(self.sources.get(t, []))
                out.append(f"  {t:<{width}}  {n:>11,}  {src}")
        for t, n in self.dropped.items():
            ids = self.dropped_ids.get(t, [])
            more = ", …" if len(ids) >= MAX_ROWS_PER_VALUE else ""
            out.append(f"dropped {_plural(n, 'row')} of {t} whose account_id is not in "
                       f"accounts (ids: {', '.join(ids)}{more})")
        for t, n in self.skipped_blank.items():
            out.append(f"skipped {_plural(n, 'empty row')} in {t}")
        for note in self.notes:
            out.append(f"note: {note}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.summary()


class LoadError(CSAnalysisError, RuntimeError):
    """A load stopped because validation found problems; nothing was written.

    ``str()`` is the full report; the :class:`Report` is in ``.report``.
    """

    def __init__(self, report: Report):
        super().__init__(report.summary())
        self.report = report


class OutputError(CSAnalysisError, ValueError):
    """The workspace cannot be written where asked (``--out``); nothing was changed.

    ``str()`` is one line naming the path and the reason: the path is an input (the
    mapping or a source file), a folder, a file that is not a workspace, in a place that
    cannot be written, or the disk filled up while writing.
    """


class MappingError(CSAnalysisError, ValueError):
    """The mapping file is invalid; ``str()`` lists every problem, ``.report`` holds them."""

    def __init__(self, report: Report):
        super().__init__(report.summary())
        self.report = report


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' * (n != 1)}"


def _show(v) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, pd.Timestamp | dt.datetime):
        return str(v)
    return repr(v) if not isinstance(v, int | float) else str(v)


def _example_line(p: Problem) -> str:
    loc = p.file or ""
    if p.rows:
        label = p.row_label + ("s" if len(p.rows) > 1 else "")
        more = p.n_rows - len(p.rows)
        loc += f" {label} {', '.join(map(str, p.rows))}" + (f" (+{more} more)" if more > 0
                                                             else "")
    if p.entry:
        loc += f" [{p.entry}]"
    return loc + ("" if p.value is None else f": {_show(p.value)}")



def one_line(exc: BaseException) -> str:
    """An exception's message on one line, cut to 300 characters."""
    return " ".join(str(exc).split())[:300]


# ----------------------------------------------------------------------------------------
# Collecting problems
# ----------------------------------------------------------------------------------------
@dataclass
class _Example:
    src: Source | None
    file: str | None
    recs: tuple[int, ...]
    value: Any
    n_rows: int
    entry: str | None = None


class Collector:
    """Problems grouped by (table, rule, column): first N examples and the totals."""

    def __init__(self, limit: int):
        self.limit = limit
        self.groups: dict[tuple, dict] = {}

    def _group(self, table, rule, column, source_column, expected) -> dict:
        key = (table, rule, column)
        if key not in self.groups:
            self.groups[key] = {"source_column": source_column, "expected": expected,
                                "total": 0, "examples": [], "detail": ""}
        return self.groups[key]

    def add_one(self, rule, table, file, *, column=None, source_column=None, entry=None,
                value=None, expected="", lines=()):
        """One problem of the mapping or of a file as a whole (``lines``: of the mapping)."""
        # mapping problems each have their own expectation: group them by entry
        key_col = column if rule not in (R_MAPPING, R_UNREADABLE) else (entry or column
                                                                        or file)
        g = self._group(table, rule, key_col, source_column, expected)
        g["total"] += 1
        g["examples"].append((_Example(None, file, tuple(lines), value, 0, entry), expected, column,
                              source_column))

    def add_rows(self, table, rule, column, source_column, expected, src, recs, values):
        """One problem per row (the first few kept; all counted)."""
        g = self._group(table, rule, column, source_column, expected)
        g["total"] += len(recs)
        room = self.limit - len(g["examples"])
        for r, v in zip(recs[:max(room, 0)], values[:max(room, 0)], strict=True):
            g["examples"].append((_Example(src, src.display, (int(r),), v, 1), expected,
                                  column, source_column))

    def add_value(self, table, rule, column, source_column, expected, src, recs, value,
                  n_rows):
        """One value spanning several rows (a duplicated key, an unknown account)."""
        g = self._group(table, rule, column, source_column, expected)
        g["examples"].append((_Example(src, src.display, tuple(int(r) for r in recs), value,
                                       n_rows), expected, column, source_column))

    def set_total(self, table, rule, column, total, detail=""):
        """Set a group's total and detail (when rows were counted elsewhere)."""
        g = self.groups[(table, rule, column)]
        g["total"], g["detail"] = total, detail

    def report(self, mapping: str, settings: dict) -> Report:
        """The :class:`Report`, with rows as the user sees them."""
        needed: dict[int, tuple[Source, set[int]]] = {}
        for g in self.groups.values():
            for ex, *_ in g["examples"]:
                if ex.src is not None:
                    needed.setdefault(id(ex.src), (ex.src, set()))[1].update(ex.recs)
        rows = {k: src.rows_of(recs) for k, (src, recs) in needed.items()}
        groups = []
        for (table, rule, key_col), g in self.groups.items():
            examples = []
            for ex, expected, column, source_column in g["examples"]:
                vis = tuple(rows[id(ex.src)][r] for r in ex.recs) if ex.src else ex.recs
                examples.append(Problem(
                    rule=rule, table=table, file=ex.file, column=column,
                    source_column=source_column, rows=vis,
                    row_label=ex.src.row_label if ex.src else "line", value=ex.value,
                    expected=expected, n_rows=max(ex.n_rows, len(vis)), entry=ex.entry))
            column = key_col if rule not in (R_MAPPING, R_UNREADABLE) else None
            groups.append(ProblemGroup(table, rule, column, g["source_column"], g["expected"],
                                       g["total"], examples, g["detail"]))
        return Report(mapping, groups=groups, settings=settings)
