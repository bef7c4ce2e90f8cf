"""Reading the YAML files users edit (onboarding criteria, journey maps), with line numbers.

Every mistake in such a file is reported with the file, the line, the key path and the
value found: :func:`read_yaml` parses the text and records where each value and key
sits (:func:`yaml_lines`); :class:`YamlContext` turns a key path into that message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["YamlContext", "path_text", "read_text", "read_yaml", "short", "yaml_lines"]


def yaml_lines(text: str) -> tuple[dict, dict]:
    """Line numbers (1-based) of every value and every mapping key, by key path.

    Parameters
    ----------
    text : str
        YAML text.

    Returns
    -------
    (values, keys) : tuple of dict
        ``{path: line}``, a path being a tuple of mapping keys and sequence indexes
        (``()`` is the document). Empty when the text is not valid YAML.
    """
    import yaml

    values: dict[tuple, int] = {}
    keys: dict[tuple, int] = {}

    def walk(node, path):
        values[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                sub = path + (k.value,)
                keys[sub] = k.start_mark.line + 1
                walk(v, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, path + (i,))

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return values, keys
    if root is not None:
        walk(root, ())
    return values, keys


def path_text(path: tuple) -> str:
    """A key path as text: ``("stages", 0, "name")`` → ``stages[0].name``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def short(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (for messages)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class YamlContext:
    """Where we are in a file, for messages: ``<label> <source>, line N (<path>): ...``.

    Parameters
    ----------
    label : str
        What the file is ("onboarding criteria", "journey map").
    source : str
        The file name, or ``"<mapping>"`` for content given in code.
    lines, keys : mapping
        :func:`yaml_lines` of the text (empty for content given in code).
    error : type of Exception
        The exception :meth:`error` builds.
    """

    def __init__(self, label: str, source: str, lines: Mapping[tuple, int],
                 keys: Mapping[tuple, int], error: type[Exception]):
        self.label, self.source, self.lines, self.keys = label, source, lines, keys
        self.error_type = error

    def error(self, path: tuple, message: str, *, key_line: bool = False) -> Exception:
        """The exception for a mistake at ``path`` (the line of its key if ``key_line``).

        Without a line for ``path`` (a missing key), the nearest enclosing value's line
        is given; the message names the full path.
        """
        line = (self.keys.get(path) if key_line else None) or self.lines.get(path)
        p = path
        while line is None and p:
            p = p[:-1]
            line = self.lines.get(p)
        where = path_text(path)
        at = f", line {line}" if line else ""
        loc = f" ({where})" if where else ""
        return self.error_type(f"{self.label} {self.source}{at}{loc}: {message}")


def read_yaml(text: str, label: str, source: str, error: type[Exception]
              ) -> tuple[Any, YamlContext]:
    """Parse YAML text; a syntax error names the file, line and column.

    Parameters
    ----------
    text : str
        The file's text.
    label, source, error
        As for :class:`YamlContext`.

    Returns
    -------
    (data, context) : tuple
        The parsed content and a :class:`YamlContext` with its line numbers.

    Raises
    ------
    error
        ``"<label> <source>, line L, column C: not valid YAML (<problem>)"``.
    """
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{label} {source}{line}: not valid YAML ({problem})") from None
    values, keys = yaml_lines(text)
    return data, YamlContext(label, source, values, keys, error)


def read_text(path, label: str, error: type[Exception]) -> str:
    """The text of a user's file (UTF-8, a byte-order mark allowed), with clear errors.

    Raises
    ------
    error
        ``"<label> <path>: no such file"`` or ``"...: cannot read the file (...)"``.
    """
    from pathlib import Path

    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{label} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{label} {path}: cannot read the file ({exc})") from exc
