"""The one shape of analysis results: a small dataclass with ``summary()`` and HTML display.

Analyses return either a tidy :class:`pandas.DataFrame` or a result object derived from
:class:`Result`. A result object

- holds its frames and its metadata (grain, ``by``, as-of date, assumptions) as fields,
  never in ``DataFrame.attrs``;
- answers :meth:`Result.summary` with the short frame or text a notebook shows;
- displays itself in Jupyter as its title, its notes and that summary (customer text is
  escaped: a name or comment is never trusted as HTML).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["Result"]


@dataclass(frozen=True)
class Result:
    """Base of every analysis result object.

    Subclasses are frozen dataclasses; they override :meth:`summary` (and may set
    :attr:`title`) and add fields for their frames and metadata.
    """

    #: Notes a reader must see beside the numbers (assumptions, fallbacks, small samples).
    notes: tuple[str, ...] = field(default=(), kw_only=True)

    #: Heading shown above the summary.
    title = "Result"

    def summary(self) -> pd.DataFrame | str:
        """The short frame or text a notebook shows for this result."""
        raise NotImplementedError

    def _repr_html_(self) -> str:
        body = self.summary()
        if isinstance(body, pd.DataFrame):
            inner = body.to_html(index=False, escape=True, na_rep="–", max_rows=60)
        else:
            inner = f"<p>{html.escape(str(body))}</p>"
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        notes = f"<ul>{notes}</ul>" if notes else ""
        return f"<div><strong>{html.escape(self.title)}</strong>{notes}{inner}</div>"

    def __str__(self) -> str:
        body = self.summary()
        text = body.to_string(index=False) if isinstance(body, pd.DataFrame) else str(body)
        notes = "".join(f"\n- {n}" for n in self.notes)
        return f"{self.title}{notes}\n{text}"
