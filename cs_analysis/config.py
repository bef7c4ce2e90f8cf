"""Reading the YAML files users edit, with line numbers: the one configuration mechanism.

Every YAML file the package reads (mappings, onboarding criteria, theme and expansion
dictionaries, journey maps, health models, coverage rules, capacity models) goes through
here, and every mistake in one is reported with the file, the line, the key path and the
value found:

- :func:`read_yaml` parses the text with a safe loader that refuses duplicate keys (both
  lines named), alias bombs, very deep nesting and oversized files, and records where
  each value and key sits (:func:`yaml_lines`);
- :func:`validate` checks the parsed data against a pydantic model (the schema of that
  file) and turns the first schema error into ``<label> <file>, line N (<path>): ...``
  through :class:`YamlContext`; semantic checks that a schema cannot express raise
  :meth:`YamlContext.error` themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cs_analysis.errors import short

__all__ = ["MAX_ALIASES", "MAX_BYTES", "MAX_DEPTH", "YamlContext", "default_file", "path_text",
           "read_text", "read_yaml", "short", "validate", "yaml_lines"]

#: Largest YAML file read (bytes): configuration files are small.
MAX_BYTES = 5_000_000
#: Most aliases (``*name``) one file may use: anchors expand, and a few nested ones blow up.
MAX_ALIASES = 100
#: Deepest nesting of mappings and sequences.
MAX_DEPTH = 50
#: Most values a file may hold once its aliases are expanded.
MAX_NODES = 200_000


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

    seen: set[int] = set()

    def walk(node, path):
        values[path] = node.start_mark.line + 1
        if id(node) in seen:  # an alias: its lines are recorded where it was defined
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                sub = path + (k.value,)
                keys[sub] = k.start_mark.line + 1
                walk(v, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, path + (i,))

    try:
        root = _compose_checked(text)
    except (yaml.YAMLError, _YamlLimit):
        return values, keys
    if root is not None:
        walk(root, ())
    return values, keys


def default_file(*parts: str):
    """Path of a default file shipped with the package (``cs_analysis/defaults/...``).

    The defaults (onboarding criteria, theme and expansion dictionaries, journey maps,
    coverage rules, capacity model, example pipeline) are package data read through
    :mod:`importlib.resources`, so an installed package (not only a checkout) finds them.
    A team edits a copy and passes its path.
    """
    from importlib.resources import files
    from pathlib import Path

    return Path(str(files("cs_analysis").joinpath("defaults", *parts)))


def path_text(path: tuple) -> str:
    """A key path as text: ``("stages", 0, "name")`` → ``stages[0].name``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


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

    if len(text) > MAX_BYTES:
        raise error(f"{label} {source}: the file is {len(text):,} characters long; a "
                    f"configuration file may have at most {MAX_BYTES:,}")
    try:
        root = _compose_checked(text)
        data = yaml.SafeLoader(text).construct_document(root) if root is not None else None
    except _YamlLimit as exc:
        raise error(f"{label} {source}, line {exc.line}: {exc}") from None
    except yaml.reader.ReaderError as exc:  # a control character: no mark, a position
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise error(f"{label} {source}, line {line}: not valid YAML (character "
                    f"#x{exc.character:04x} is not allowed in a YAML file)") from None
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
        ``"<label> <path>: no such file"``, ``"...: is a folder, not a file"``,
        ``"...: not UTF-8 text (...); save it as UTF-8"`` or
        ``"...: cannot read the file (...)"``.
    """
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise error(f"{label} {path}: is a folder, not a file")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise error(f"{label} {path}: no such file") from None
    except UnicodeDecodeError as exc:
        utf16 = path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
        raise error(f"{label} {path}: not UTF-8 text ({'UTF-16' if utf16 else exc.reason} "
                    f"at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise error(f"{label} {path}: cannot read the file ({exc})") from exc


def read_source(source, label: str, error: type[Exception], default=None
                ) -> tuple[Any, YamlContext]:
    """Parsed content and line context of a YAML file, or of content given as a mapping.

    The one entry of every configuration reader: ``source`` is a path (``None`` or
    ``""``: ``default``) or a mapping given in code (then messages name ``<mapping>`` and
    no line).

    Raises
    ------
    error
        As :func:`read_text` and :func:`read_yaml`.
    """
    from pathlib import Path

    if isinstance(source, Mapping):
        return dict(source), YamlContext(label, "<mapping>", {}, {}, error)
    if source is None or (isinstance(source, str) and not source.strip()):
        if default is None:
            raise error(f"{label}: no file given")
        source = default
    path = Path(source)
    return read_yaml(read_text(path, label, error), label, str(path), error)


class _YamlLimit(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


def _compose_checked(text: str):
    """Compose the YAML node graph, refusing duplicate keys, alias bombs and deep nesting.

    Aliases are counted as the composer meets them (an anchor reused many times, or
    anchors nesting anchors, expand exponentially when constructed); depth is checked on
    the node tree before anything is constructed.
    """
    import yaml

    class Loader(yaml.SafeLoader):
        aliases = 0
        depth = 0
        marks: dict = {}  # start of the node being composed at each depth

        def compose_node(self, parent, index):
            # refuse very deep nesting as it is met: recursing into thousands of levels
            # first costs seconds (and a RecursionError); nesting just past the limit is
            # reported below, at the line of the first node too deep
            if Loader.depth >= 2 * MAX_DEPTH:
                raise _YamlLimit(f"nested deeper than {MAX_DEPTH} levels",
                                 Loader.marks[MAX_DEPTH].line + 1)
            Loader.marks[Loader.depth] = self.peek_event().start_mark
            if self.check_event(yaml.AliasEvent):
                Loader.aliases += 1
                if Loader.aliases > MAX_ALIASES:
                    mark = self.peek_event().start_mark
                    raise _YamlLimit(f"more than {MAX_ALIASES} aliases (*name); expand "
                                     "them by hand", mark.line + 1)
            Loader.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                Loader.depth -= 1

    loader = Loader(text)
    try:
        root = loader.get_single_node()
    except RecursionError:
        raise _YamlLimit(f"nested deeper than {MAX_DEPTH} levels", 1) from None
    finally:
        loader.dispose()
    if root is None:
        return None
    stack = [(root, 1)]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _YamlLimit(f"nested deeper than {MAX_DEPTH} levels", node.start_mark.line + 1)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in first:
                        raise _YamlLimit(
                            f"duplicate key {k.value!r} (first on line {first[k.value]}, "
                            f"again on line {k.start_mark.line + 1}); keep one",
                            k.start_mark.line + 1)
                    first[k.value] = k.start_mark.line + 1
                stack.append((v, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, depth + 1) for v in node.value)
    sizes: dict[int, int] = {}

    def size(node) -> int:  # values once aliases are expanded (depth already bounded)
        if id(node) not in sizes:
            if isinstance(node, yaml.MappingNode):
                n = 1 + sum(size(v) for _, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                n = 1 + sum(size(v) for v in node.value)
            else:
                n = 1
            sizes[id(node)] = min(n, MAX_NODES + 1)
        return sizes[id(node)]

    if size(root) > MAX_NODES:
        raise _YamlLimit(f"the aliases (*name) expand to more than {MAX_NODES:,} values; "
                         "write the values out instead", 1)
    return root


def validate(model, data, ctx: YamlContext, *, at: tuple = ()):
    """Check ``data`` against a pydantic model; the first error names file and line.

    Parameters
    ----------
    model : type of pydantic.BaseModel
        The schema of the file (or of the part at ``at``). Models should set
        ``extra="forbid"`` so an unknown key is an error, and ``strict`` where a text
        must not pass for a number.
    data : Any
        The parsed YAML (or the part at ``at``).
    ctx : YamlContext
        Where the data came from.
    at : tuple
        Key path of ``data`` within the file.

    Returns
    -------
    model instance

    Raises
    ------
    ctx.error_type
        ``"<label> <file>, line N (<path>): <what was expected>, got <value>"``.
    """
    import pydantic

    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (
            p.startswith("function-") or p in {"tagged-union", "list", "dict", "int", "str",
                                               "float", "bool"})))
        path = at + loc
        kind, msg = err["type"], err["msg"]
        if kind == "extra_forbidden":
            allowed = ", ".join(sorted(_fields_at(model, loc[:-1])))
            message = f"unknown key {loc[-1]!r}; the allowed keys are {allowed}"
            raise ctx.error(path, message, key_line=True) from None
        if kind == "missing":
            raise ctx.error(path, f"`{loc[-1]}` is required") from None
        got = err.get("input")
        message = msg[0].lower() + msg[1:] if msg else kind
        if kind.startswith("value_error"):
            message = msg.removeprefix("Value error, ")
        raise ctx.error(path, f"{message}, got {short(got)}") from None


def _fields_at(model, loc: tuple) -> list[str]:
    """Field names of the (nested) model at ``loc``, for "allowed keys" messages."""
    import typing

    current = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            return []
        ann = fields[part].annotation
        found = None
        stack = [ann]
        while stack:
            a = stack.pop()
            if isinstance(a, type) and hasattr(a, "model_fields"):
                found = a
                break
            stack.extend(typing.get_args(a))
        if found is None:
            return []
        current = found
    return [f.alias or name for name, f in getattr(current, "model_fields", {}).items()]
