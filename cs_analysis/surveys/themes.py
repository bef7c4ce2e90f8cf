"""Verbatim comments tagged with the themes of an editable dictionary.

- :func:`load_themes` / :func:`read_dictionary` -- read and check a dictionary (YAML,
  ``cs_analysis/defaults/themes.yml`` by default; English and Japanese), with file and line in every
  error (:mod:`cs_analysis.config`: safe YAML loader, pydantic schema).
- :func:`tag_comments` -- tag any texts with a dictionary's themes (a boolean column per
  theme). Loading and tagging are generic: any dictionary in the same format (an
  "expansion signals" list, say) is read with :func:`read_dictionary` and applied with
  :func:`tag_comments` or :meth:`ThemeDictionary.match`.
- :func:`themes` -- counts, shares and example quotes per group of survey responses.

Matching is safe on any text: keywords are literal words, and a pattern that could
backtrack catastrophically (a repeated group that itself repeats or alternates, such as
``(a+)+`` or ``(x|y)*``) is refused when the dictionary is read, so tagging never hangs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict

from cs_analysis import config
from cs_analysis.config import default_file
from cs_analysis.errors import CSAnalysisError, check_alpha, check_int, short
from cs_analysis.results import Result
from cs_analysis.surveys._base import (
    SMALL_SAMPLE,
    SurveyError,
    as_list,
    dedup_frame,
    groups_text,
    is_workspace,
    normalize_text,
    responses,
)

__all__ = ["DEFAULT_THEMES", "NO_THEME", "Theme", "ThemeDictionary", "ThemeDictionaryError",
           "ThemeResult", "load_themes", "read_dictionary", "tag_comments", "themes"]

#: The default theme dictionary, committed with the project.
DEFAULT_THEMES = default_file("themes.yml")
#: Label of comments that match no theme.
NO_THEME = "(no theme)"


class ThemeDictionaryError(CSAnalysisError, ValueError):
    """A theme dictionary that cannot be used, with the file, line and what was expected."""


# == the file's schema =========================================================================
def _text(value):
    if not isinstance(value, str):
        raise ValueError("must be text (put it in quotes)")
    return value


def _text_list(value):
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ValueError("must be a list of text, e.g. [price, pricing]")
    return value


def _mapping(value):
    if not isinstance(value, dict):
        raise ValueError("must be a mapping: one entry per theme (name, then keywords "
                         "and/or patterns)")
    return value


_Text = Annotated[str, BeforeValidator(_text)]
_TextList = Annotated[list[_Text], BeforeValidator(_text_list)]


class _ThemeSpec(BaseModel):
    """One theme: an optional label, keywords and/or patterns."""

    model_config = ConfigDict(extra="forbid", strict=True)
    label: _Text | None = None
    keywords: _TextList = []
    patterns: _TextList = []


class _DictionaryFile(BaseModel):
    """The file: an optional description and the themes."""

    model_config = ConfigDict(extra="forbid", strict=True)
    description: _Text | None = None
    themes: Annotated[dict, BeforeValidator(_mapping)] | None = None


# == safe patterns ===============================================================================
def _risky(parsed) -> bool:
    """Whether a parsed expression has a repeat over something that repeats or branches."""
    from re import _constants as c

    def inner(items) -> bool:  # contains a repeat (max > 1) or an alternation
        for op, av in items:
            if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
                if av[1] > 1:
                    return True
                if inner(av[2]):
                    return True
            elif op is c.BRANCH:
                return True
            elif op is c.SUBPATTERN:
                if inner(av[3]):
                    return True
            elif op in (c.ASSERT, c.ASSERT_NOT):
                if inner(av[1]):
                    return True
        return False

    def walk(items) -> bool:
        for op, av in items:
            if op in (c.MAX_REPEAT, c.MIN_REPEAT):
                if av[1] > 1 and inner(av[2]):
                    return True
                if walk(av[2]):
                    return True
            elif op is c.SUBPATTERN:
                if walk(av[3]):
                    return True
            elif op is c.BRANCH:
                if any(walk(b) for b in av[1]):
                    return True
            elif op in (c.ASSERT, c.ASSERT_NOT):
                if walk(av[1]):
                    return True
        return False

    return walk(parsed)


def compile_pattern(pattern: str) -> re.Pattern:
    """A dictionary pattern compiled for safe matching (NFKC, case-insensitive).

    Raises
    ------
    ValueError
        The pattern is not a valid regular expression, matches empty text (it would tag
        every comment), or repeats a group that itself repeats or alternates
        (``(a+)+``, ``(x|xy)*``): such patterns can take exponential time on some texts
        (catastrophic backtracking), so they are refused rather than allowed to hang
        the tagging. The message says what to write instead.
    """
    from re import _parser

    text = unicodedata.normalize("NFKC", pattern)
    try:
        rx = re.compile(text, re.IGNORECASE)
        parsed = _parser.parse(text, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {exc}"
                         ) from None
    if rx.search(""):
        raise ValueError(f"pattern {pattern!r} matches empty text, so it would tag every "
                         "comment")
    if _risky(list(parsed)):
        raise ValueError(f"pattern {pattern!r} repeats a group that itself repeats or "
                         "has alternatives (like (a+)+ or (x|y)*): it can take exponential "
                         "time on some comments; list the words as keywords, or repeat "
                         "single characters only (e.g. .{0,6} or [a-z]+)")
    return rx


# == the dictionary ==============================================================================
@dataclass(frozen=True)
class Theme:
    """One theme of a :class:`ThemeDictionary`.

    Attributes
    ----------
    name : str
        Identifier (``pricing``).
    label : str
        Text shown in charts (default: the name).
    keywords : tuple of str
        Words or phrases; see :class:`ThemeDictionary` for how they match.
    patterns : tuple of str
        Regular expressions searched in the normalized comment.
    """

    name: str
    label: str
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    @property
    def regex(self) -> re.Pattern:
        """One compiled expression matching any keyword or pattern of the theme.

        Raises :class:`ThemeDictionaryError` for a pattern :func:`compile_pattern` refuses.
        """
        parts = [_keyword_regex(k) for k in self.keywords]
        for p in self.patterns:
            try:
                compile_pattern(p)
            except ValueError as exc:
                raise ThemeDictionaryError(f"theme {self.name!r}: {exc}") from None
            parts.append(f"(?:{unicodedata.normalize('NFKC', p)})")
        return re.compile("|".join(parts), re.IGNORECASE)


def _keyword_regex(keyword: str) -> str:
    k = normalize_text(keyword).strip()
    if k[:1].isascii() and k[:1].isalnum():
        return r"(?<![0-9a-z])" + re.escape(k)
    return re.escape(k)
@dataclass(frozen=True)
class ThemeDictionary:
    """Themes with the keywords and patterns that tag a comment with them.

    Matching: the comment and each keyword are normalized (Unicode NFKC, so full-width
    and half-width forms agree, then case folding). A keyword starting with a Latin
    letter or digit must start a word (``report`` matches ``reporting``, ``use`` does
    not match ``because``); any other keyword, e.g. Japanese, matches as a substring
    anywhere, since Japanese text has no spaces between words. Patterns are Python
    regular expressions searched case-insensitively in the normalized comment. A comment
    may get several themes.

    Attributes
    ----------
    themes : tuple of Theme
        In the dictionary's order.
    source : str
        Where it was read from (for messages).
    """

    themes: tuple[Theme, ...]
    source: str = "<dict>"
    _compiled: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def names(self) -> list[str]:
        """Theme names in order."""
        return [t.name for t in self.themes]

    @property
    def labels(self) -> dict[str, str]:
        """Theme name to label."""
        return {t.name: t.label for t in self.themes}

    def match(self, texts) -> pd.DataFrame:
        """Boolean frame: one row per text (index kept), one column per theme."""
        s = pd.Series(texts) if not isinstance(texts, pd.Series) else texts
        raw = [x if isinstance(x, str) else "" for x in s]
        uniq, inverse = np.unique(np.asarray(raw, dtype=object), return_inverse=True)
        norm = [normalize_text(x) for x in uniq]  # each distinct text is matched once
        out = {}
        for t in self.themes:
            rx = self._compiled.get(t.name)
            if rx is None:
                rx = self._compiled[t.name] = t.regex
            hit = np.fromiter((bool(rx.search(x)) for x in norm), dtype=bool, count=len(norm))
            out[t.name] = hit[inverse] if len(raw) else np.zeros(0, dtype=bool)
        return pd.DataFrame(out, index=s.index, dtype=bool)




def load_themes(dictionary=None) -> ThemeDictionary:
    """Read and check a theme dictionary.

    The file is YAML with a ``themes:`` mapping; each theme has an optional ``label``, and
    ``keywords`` (list of text) and/or ``patterns`` (list of regular expressions); an
    optional top-level ``description``. See ``cs_analysis/defaults/themes.yml`` for a
    commented example.

    Parameters
    ----------
    dictionary : None, str, Path, Mapping or ThemeDictionary
        None or ``"themes.yml"``: the project's default dictionary
        (:data:`DEFAULT_THEMES`). A path to a YAML file (a bare file name that does not
        exist where given is looked for in the project's ``data/`` folder). A mapping
        shaped like the file. A :class:`ThemeDictionary` is returned as is.

    Returns
    -------
    ThemeDictionary

    Raises
    ------
    ThemeDictionaryError
        Naming the file, the line and what was expected: a missing file, invalid YAML, a
        theme or key given twice, an unknown key (a typo such as ``keyword:``), a theme
        without keywords or patterns, a keyword that is not text or is empty, an invalid
        regular expression, a pattern that matches empty text or could backtrack
        catastrophically (:func:`compile_pattern`).
    """
    if isinstance(dictionary, ThemeDictionary):
        return dictionary
    if isinstance(dictionary, str | Path):
        path = Path(dictionary)
        if not path.exists() and path.parent == Path("."):
            candidate = DEFAULT_THEMES.parent / path.name
            if candidate.exists():
                path = candidate
        if not path.exists():
            raise ThemeDictionaryError(
                f"theme dictionary not found: {path} (also looked in "
                f"{DEFAULT_THEMES.parent}); copy cs_analysis/defaults/themes.yml and edit it")
        dictionary = path
    return read_dictionary(DEFAULT_THEMES if dictionary is None else dictionary)


def read_dictionary(source, *, label: str = "theme dictionary",
                    error: type[Exception] = ThemeDictionaryError) -> ThemeDictionary:
    """Read and check any dictionary in the theme file format (themes, keywords, patterns).

    The generic reader behind :func:`load_themes`, for other dictionaries of the same
    shape (e.g. expansion signals): ``label`` and ``error`` name the file kind and the
    exception in messages.

    Parameters
    ----------
    source : str, Path or Mapping
        A path to a YAML file, or a mapping shaped like the file.
    label : str
        What the file is, for messages (``"theme dictionary"``).
    error : type of Exception
        The exception raised for a mistake (default :class:`ThemeDictionaryError`).

    Returns
    -------
    ThemeDictionary

    Raises
    ------
    error
        ``"<label> <file>, line N (<key path>): <what was expected>"``.
    """
    if not isinstance(source, Mapping | str | Path):
        raise error(f"dictionary={short(source)}: expected a path to a YAML file, a "
                    "mapping or a ThemeDictionary")
    data, ctx = config.read_source(source, label, error)
    where = "the mapping given" if isinstance(source, Mapping) else str(source)
    return _build(data, ctx, where)


def _build(data, ctx: config.YamlContext, source: str) -> ThemeDictionary:
    """Check parsed content against the schema, then what a schema cannot say."""
    if data is None:
        raise ctx.error((), "the file is empty; expected a 'themes:' mapping")
    if not isinstance(data, dict):
        raise ctx.error((), "the file must be a mapping with a 'themes:' key (one entry "
                            "per theme)")
    spec = config.validate(_DictionaryFile, data, ctx)
    if spec.themes is None:
        raise ctx.error((), "no 'themes:' key; expected 'themes:' with one entry per theme")
    if not spec.themes:
        raise ctx.error(("themes",), "'themes' is empty; define at least one theme")
    out = []
    for name, body in spec.themes.items():
        at = ("themes", name)
        if not isinstance(name, str):
            raise ctx.error(("themes",), f"a theme name must be text, got {short(name)} "
                                         "(YAML reads yes/no/on/off as true/false and "
                                         "digits as numbers: put the name in quotes)")
        if not name.strip():
            raise ctx.error(at, "a theme name is empty", key_line=True)
        if name.strip() == NO_THEME:
            raise ctx.error(at, f"{NO_THEME!r} is reserved for comments that match no theme",
                            key_line=True)
        if not isinstance(body, dict):
            raise ctx.error(at, f"theme {name!r} must be a mapping with keywords and/or "
                                f"patterns, got {short(body)}")
        theme = config.validate(_ThemeSpec, body, ctx, at=at)
        for key in ("keywords", "patterns"):
            for i, value in enumerate(getattr(theme, key)):
                if not value.strip():
                    raise ctx.error((*at, key, i), f"theme {name!r}: an empty entry in {key} "
                                                   "would match every comment")
                if key == "patterns":
                    try:
                        compile_pattern(value)
                    except ValueError as exc:
                        raise ctx.error((*at, key, i), f"theme {name!r}: {exc}") from None
        if not theme.keywords and not theme.patterns:
            raise ctx.error(at, f"theme {name!r} has no keywords and no patterns",
                            key_line=True)
        out.append(Theme(name=name.strip(), label=theme.label or name.strip(),
                         keywords=tuple(theme.keywords), patterns=tuple(theme.patterns)))
    return ThemeDictionary(themes=tuple(out), source=source)


def tag_comments(comments, dictionary=None) -> pd.DataFrame:
    """Tag texts with the themes of a dictionary.

    Parameters
    ----------
    comments : pandas.Series or list of str
        The texts (missing values get no theme). A Series keeps its index.
    dictionary : optional
        What :func:`load_themes` accepts (default: ``cs_analysis/defaults/themes.yml``).

    Returns
    -------
    pandas.DataFrame
        One row per text: ``comment``, ``themes`` (tuple of theme names, in dictionary
        order; empty when none matches), then one boolean column per theme.
    """
    d = load_themes(dictionary)
    s = comments if isinstance(comments, pd.Series) else pd.Series(list(comments), dtype="str")
    flags = d.match(s)
    names = np.asarray(d.names, dtype=object)
    values = flags.to_numpy()
    tags = [tuple(names[row]) for row in values]
    out = pd.DataFrame({"comment": s, "themes": pd.Series(tags, index=s.index, dtype=object)})
    return pd.concat([out, flags], axis=1)




class _SummaryFrame(pd.DataFrame):
    """The summary frame, also callable: ``result.summary`` and ``result.summary()``.

    ``ThemeResult.summary`` was a field before results shared :class:`Result`; code that
    reads it as an attribute keeps working while new code calls ``summary()``.
    """

    def __call__(self) -> pd.DataFrame:
        return pd.DataFrame(self)


@dataclass(frozen=True)
class ThemeResult(Result):
    """Result of :func:`themes`.

    Attributes
    ----------
    shares : pandas.DataFrame
        Per group (one column named after each ``by`` column) and theme: ``theme``,
        ``label``, ``mentions`` (comments with the theme), ``comments`` (comments in the
        group), ``share`` = mentions / comments with its Wilson interval ``lower`` /
        ``upper``, ``small_sample``. A ``"(no theme)"`` row counts comments matching no
        theme. Also :meth:`summary` (and, as before, ``result.summary``).
    comments : pandas.DataFrame
        One row per comment (the responses' columns) with ``themes`` (comma-separated
        names, ``""`` for none); newest first.
    tagged : pandas.DataFrame
        One row per comment and theme (long form, for custom counts).
    quotes : pandas.DataFrame
        Up to ``quotes`` newest comments per theme (and category, when grouped by it).
    dictionary : ThemeDictionary
        The dictionary used.
    by : tuple of str
        The group columns.
    """

    shares: pd.DataFrame
    comments: pd.DataFrame
    tagged: pd.DataFrame
    quotes: pd.DataFrame
    dictionary: ThemeDictionary
    by: tuple[str, ...] = ()

    title = "Comment themes"

    @property
    def summary(self) -> _SummaryFrame:  # type: ignore[override]
        """The shares per group and theme (callable, as every result's ``summary()``)."""
        return _SummaryFrame(self.shares)


def themes(ws_or_frame, dictionary="themes.yml", *, survey: str | Sequence[str] | None = None,
           by: str | Sequence[str] | None = "category", quotes: int = 3,
           small_sample: int = SMALL_SAMPLE, alpha: float = 0.05, dedup: bool = True,
           as_of=None, wave: str = "quarter", timezone: str | None = None) -> ThemeResult:
    """Tag verbatim comments with themes; counts, shares and example quotes per group.

    Comments are tagged with :func:`tag_comments` (see :class:`ThemeDictionary` for the
    matching rules: keywords and regular expressions, English words from their start,
    Japanese as substrings). A comment may have several themes, so shares within a group
    can add up to more than 100%. **share** = comments mentioning the theme / comments in
    the group (responses with a non-blank comment), with a Wilson interval. With
    ``dedup`` (default) the responses are one per respondent per survey wave, the latest,
    as for the scores.

    Parameters
    ----------
    ws_or_frame : Workspace or pandas.DataFrame
        A workspace, or a frame of responses (e.g. :func:`responses`) with ``comment``.
    dictionary : optional
        What :func:`load_themes` accepts (default: ``cs_analysis/defaults/themes.yml``).
    survey : str or list of str, optional
        Only these surveys' comments (default: every survey).
    by : str or list of str, optional
        Group columns: ``category`` (promoter / passive / detractor for NPS),
        ``segment``, ``respondent_role``, ... None: all comments together.
    quotes : int
        Example quotes per theme (and category), newest first; 0 for none.
    small_sample : int
        Groups with fewer comments are flagged.
    alpha : float
        1 - confidence level of the intervals.
    dedup : bool
        One response per respondent per wave (False: every comment).
    as_of : date or str, optional
        Only responses on or before it (default the workspace's as-of date).
    wave : {"quarter", "month", "year"}
        The survey wave of the deduplication.
    timezone : str, optional
        As in :func:`cs_analysis.surveys.nps` (frames only).

    Returns
    -------
    ThemeResult
        ``shares`` (also ``summary()``), ``comments``, ``tagged``, ``quotes``, the
        ``dictionary`` and ``by``.
    """
    from statsmodels.stats.proportion import proportion_confint

    alpha = check_alpha(alpha, error=SurveyError)
    quotes = check_int("quotes", quotes, minimum=0, error=SurveyError)
    small_sample = check_int("small_sample", small_sample, minimum=1, error=SurveyError)
    d = load_themes(dictionary)
    by_cols = as_list(by)
    if is_workspace(ws_or_frame):
        df = responses(ws_or_frame, survey, wave=wave, dedup=dedup, as_of=as_of,
                       comments_only=True)
    elif isinstance(ws_or_frame, pd.DataFrame):
        df = ws_or_frame
        if "comment" not in df.columns:
            raise SurveyError("the responses frame has no 'comment' column")
        if survey is not None and "survey" in df.columns:
            df = df[df["survey"].isin(as_list(survey))]
        if dedup and {"respondent_id", "responded_at"} <= set(df.columns):
            df = dedup_frame(df, wave, timezone)  # idempotent on a frame of responses()
        df = df[df["comment"].notna() & (df["comment"].astype("str").str.strip() != "")]
    else:
        raise SurveyError(f"expected a Workspace or a DataFrame of survey responses, got "
                          f"{type(ws_or_frame).__name__}")
    missing = [c for c in by_cols if c not in df.columns]
    if missing:
        raise SurveyError(f"by={missing[0]!r}: the responses have no such column; available: "
                          f"{', '.join(c for c in df.columns if not c.startswith('attr_'))}")
    df = groups_text(df.reset_index(drop=True), by_cols)
    tags = tag_comments(df["comment"].astype("str"), d)
    flags = tags[d.names]
    comments = df.assign(themes=[", ".join(t) for t in tags["themes"]])
    if "responded_at" in comments.columns:
        comments = comments.sort_values("responded_at", ascending=False, kind="stable")
    # long form: one row per comment and theme, plus "(no theme)"
    long = flags.assign(**{NO_THEME: ~flags.any(axis=1)}).stack()
    long = long[long].reset_index().rename(columns={"level_0": "_row", "level_1": "theme"})
    tagged = df.loc[long["_row"]].reset_index(drop=True).assign(theme=long["theme"].to_numpy())
    labels = {**d.labels, NO_THEME: NO_THEME}
    order = {name: i for i, name in enumerate([*d.names, NO_THEME])}
    rows = []
    groups = df.groupby(by_cols, sort=True) if by_cols else [((), df)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        n = len(g)
        counts = flags.loc[g.index].sum()
        counts[NO_THEME] = int((~flags.loc[g.index].any(axis=1)).sum())
        for name in [*d.names, NO_THEME]:
            k = int(counts[name])
            lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
            rows.append({**dict(zip(by_cols, key, strict=True)), "theme": name,
                         "label": labels[name], "mentions": k, "comments": n,
                         "share": k / n, "lower": max(float(lo), 0.0),
                         "upper": min(float(hi), 1.0),
                         "small_sample": n < small_sample})
    summary = pd.DataFrame(rows, columns=[*by_cols, "theme", "label", "mentions", "comments",
                                          "share", "lower", "upper", "small_sample"])
    if not summary.empty:
        summary["_o"] = summary["theme"].map(order)
        summary = (summary.sort_values([*by_cols, "mentions", "_o"],
                                       ascending=[True] * len(by_cols) + [False, True])
                   .drop(columns="_o").reset_index(drop=True))
    quote_keys = ["theme"] + (["category"] if "category" in by_cols else [])
    q = tagged[tagged["theme"] != NO_THEME]
    if "responded_at" in q.columns:
        q = q.sort_values("responded_at", ascending=False, kind="stable")
    q = q.groupby(quote_keys, sort=True).head(quotes) if quotes else q.iloc[0:0]
    keep = [c for c in ("theme", "category", "responded_at", "account_id", "account_name",
                        "segment", "respondent_role", "survey", "score", "comment")
            if c in q.columns]
    q = q[keep].sort_values(quote_keys, kind="stable").reset_index(drop=True)
    notes = ()
    if len(df) and (summary["small_sample"]).any():
        notes = (f"groups with fewer than {small_sample} comments are flagged "
                 "small_sample: their shares are anecdotal",)
    return ThemeResult(shares=summary, comments=comments.reset_index(drop=True),
                       tagged=tagged, quotes=q, dictionary=d, by=tuple(by_cols), notes=notes)


