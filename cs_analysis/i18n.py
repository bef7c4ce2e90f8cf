"""Languages of the labels people read: English (the source) and Japanese.

Data keys, column names and function arguments stay English everywhere; only what a
person reads changes: dashboard titles, questions, filter labels, KPI tiles, chart and
table headers, friendly errors, the landing page.

The mechanism is gettext's, through Babel:

- code marks a label with ``_("...")`` (``N_("...")`` for a module-level constant that is
  translated later); the English text is the message id, so English needs no catalogue;
- one catalogue per other language, ``cs_analysis/locale/<lang>/LC_MESSAGES/cs_analysis.po``,
  read with Babel (:func:`babel.messages.pofile.read_po`) when a language is first used
  (no compiled ``.mo`` to keep in step); regenerate the template with
  ``python -m cs_analysis.i18n extract`` (Babel's extraction over the package plus the
  dashboards' header cells), and ``tests/test_i18n.py`` fails when a label lacks a
  translation or a catalogue holds a message no code uses;
- placeholders are ``str.format`` fields: ``_("{n} accounts", n=12)``.

Which language: :func:`resolve_language` (an explicit choice, e.g. ``?lang=ja`` in a
dashboard's URL, then ``$CS_ANALYSIS_LANG`` -- set by ``cs-analysis serve --lang`` --,
then the workspace setting ``language``, then English).

Adding labels for a new dashboard (e.g. ``cs_analysis/dashboard/health.py``): write
``_ = self.t`` in the method and wrap each label in ``_("...")``, then add the messages
with their Japanese to the ``.po`` file (``python -m cs_analysis.i18n missing`` lists them;
``python -m cs_analysis.i18n update`` adds them, empty, and drops unused ones, as
``pybabel update`` would).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import parse_qs

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "N_",
    "catalogue",
    "catalogue_path",
    "extract",
    "language_from_query",
    "normalize",
    "resolve_language",
    "translator",
]

#: Languages with labels; the first is the source language of the message ids.
LANGUAGES = ("en", "ja")
DEFAULT_LANGUAGE = "en"
#: Name shown for each language in a switch, in that language.
LANGUAGE_NAMES = {"en": "English", "ja": "日本語"}
DOMAIN = "cs_analysis"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
#: Environment variable holding the server's language (``cs-analysis serve --lang``).
ENV = "CS_ANALYSIS_LANG"


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark ``message`` for extraction without translating it (translated where shown)."""
    return message


def normalize(lang) -> str | None:
    """``"ja"``, ``"ja-JP"``, ``"ja_JP.UTF-8"``, ``"JA"`` → ``"ja"``; unknown or empty → None."""
    if not lang:
        return None
    code = str(lang).strip().lower().replace("_", "-").split(".")[0].split("-")[0]
    return code if code in LANGUAGES else None


def language_from_query(query: str | None = None) -> str | None:
    """The ``lang`` parameter of a URL query (default ``$QUERY_STRING``, set by Voila)."""
    query = os.environ.get("QUERY_STRING", "") if query is None else query
    values = parse_qs(query.lstrip("?")).get("lang") or []
    return normalize(values[-1]) if values else None


def resolve_language(lang=None, ws=None) -> str:
    """The language to show (a code of :data:`LANGUAGES`).

    ``lang``, else ``$CS_ANALYSIS_LANG``, else the workspace's ``language`` setting, else
    English. Unknown codes are skipped, never an error (a
    typo in a URL must not break a dashboard).
    """
    for candidate in (lang, os.environ.get(ENV),
                      (getattr(ws, "config", None) or {}).get("language")):
        code = normalize(candidate)
        if code:
            return code
    return DEFAULT_LANGUAGE


def catalogue_path(lang: str) -> Path:
    """Where the ``.po`` catalogue of ``lang`` lives."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """Message id → translation for ``lang`` (empty for English, the source language).

    Read once per process with Babel; untranslated and fuzzy entries are left out, so
    they show in English rather than empty.
    """
    from babel.messages.pofile import read_po

    if lang == DEFAULT_LANGUAGE:
        return {}
    with catalogue_path(lang).open("rb") as f:
        cat = read_po(f, locale=lang, domain=DOMAIN)
    return {m.id: m.string for m in cat if m.id and m.string and not m.fuzzy}


def translator(lang=None) -> Callable[..., str]:
    """A function ``t(message, **fields)`` translating into ``lang``.

    It returns the translation of ``message`` (the message itself when none), with
    ``str.format`` fields filled in. One per language (``"ja"`` and ``"ja-JP"`` share
    it): look labels up once per view, not per data row.
    """
    return _translator(normalize(lang) or DEFAULT_LANGUAGE)


@functools.cache
def _translator(lang: str) -> Callable[..., str]:
    table = catalogue(lang)

    def t(message: str, **fields) -> str:
        text = table.get(message, message)
        return text.format(**fields) if fields else text

    t.lang = lang  # type: ignore[attr-defined]
    return t


# -- extraction (tests and maintainers) -------------------------------------------------
def extract(extra: Iterable[str] = ()) -> dict[str, list[str]]:
    """Every message the code marks, with where it is marked.

    Babel's extraction over the package (``_(...)``, ``N_(...)``) plus the dashboards'
    header cells (title, question,
    audience: the landing page and the headers show them) and ``extra``.
    """
    from babel.messages.extract import extract_from_dir

    found: dict[str, list[str]] = {}
    root = Path(__file__).resolve().parent
    for filename, lineno, message, _comments, _ctx in extract_from_dir(
            str(root), method_map=[("**.py", "python")], keywords={"_": None, "N_": None}):
        if isinstance(message, str):
            found.setdefault(message, []).append(f"{filename}:{lineno}")
    for text, where in _header_messages():
        found.setdefault(text, []).append(where)
    for text in extra:
        found.setdefault(text, []).append("extra")
    return found


def _header_messages() -> list[tuple[str, str]]:
    from cs_analysis.dashboard.base import LANDING, dashboards_dir, read_info

    folder = dashboards_dir()
    out = []
    for path in sorted(folder.glob("*.ipynb")):
        if path.name == LANDING:
            continue
        info = read_info(path)
        for text in (info.title, info.question, info.audience):
            out.append((text, path.name))
    return out


def write_template(path=None) -> Path:
    """Write the message template (``cs_analysis.pot``) from :func:`extract`."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    path = Path(path) if path else LOCALE_DIR / f"{DOMAIN}.pot"
    cat = Catalog(domain=DOMAIN, project="cs_analysis")
    for message, where in sorted(extract().items()):
        cat.add(message, locations=[(w.rsplit(":", 1)[0], 0) for w in where[:3]])
    with path.open("wb") as f:
        write_po(f, cat, omit_header=False, sort_output=True)
    return path


def update_catalogue(lang: str, translations: dict[str, str] | None = None) -> list[str]:
    """Bring the catalogue of ``lang`` in step with the code (``pybabel update``'s job).

    Messages :func:`extract` finds and the catalogue lacks are added (with their
    ``translations`` when given, else empty, so :mod:`tests.test_i18n` names them),
    messages no code uses any more are dropped, translations kept; the file is written
    sorted by Babel. Returns the message ids still without a translation.
    """
    from babel.messages.pofile import read_po, write_po

    path = catalogue_path(lang)
    with path.open("rb") as f:
        cat = read_po(f, locale=lang, domain=DOMAIN)
    found = extract()
    translations = dict(translations or {})
    for message in [m.id for m in cat if m.id and m.id not in found]:
        del cat[message]
    for message, where in found.items():
        locations = [(w.rsplit(":", 1)[0], None) for w in dict.fromkeys(
            w.rsplit(":", 1)[0] for w in where)][:3]
        entry = cat.get(message)
        if entry is None:
            flags = ["python-brace-format"] if "{" in message else []
            cat.add(message, translations.get(message, ""), locations=locations, flags=flags)
        elif message in translations:
            entry.string = translations[message]
    with path.open("wb") as f:
        write_po(f, cat, sort_output=True, width=100, include_lineno=False)
    catalogue.cache_clear()
    _translator.cache_clear()
    return sorted(m.id for m in cat if m.id and not m.string)


def main(argv=None) -> int:
    """``python -m cs_analysis.i18n extract|missing|update``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["extract"]:
        print(write_template())
        return 0
    if args[:1] == ["update"]:
        for lang in LANGUAGES[1:]:
            for message in update_catalogue(lang):
                print(f"{lang}: to translate {message!r}")
        return 0
    if args[:1] == ["missing"]:
        found = extract()
        for lang in LANGUAGES[1:]:
            table = catalogue(lang)
            for message in sorted(set(found) - set(table)):
                print(f"{lang}: missing {message!r} ({found[message][0]})")
            for message in sorted(set(table) - set(found)):
                print(f"{lang}: unused {message!r}")
        return 0
    print("usage: python -m cs_analysis.i18n extract|missing|update", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
