"""YAML configuration helpers (cs_analysis.config): line numbers and error messages."""

from __future__ import annotations

import textwrap

import pytest

from cs_analysis.config import YamlContext, path_text, read_text, read_yaml, short, yaml_lines

TEXT = textwrap.dedent("""\
    clock_start: signup
    stages:
      - name: set-up
        all:
          - milestone: sso
      - name: value
    """)


class Oops(ValueError):
    pass


def test_yaml_lines_by_key_path():
    values, keys = yaml_lines(TEXT)
    # counted in TEXT above: line 1 clock_start, 2 stages, 3 first item, 5 its condition
    assert values[("clock_start",)] == 1 and keys[("clock_start",)] == 1
    assert keys[("stages",)] == 2 and values[("stages", 0)] == 3
    assert values[("stages", 0, "all", 0, "milestone")] == 5
    assert keys[("stages", 1, "name")] == 6
    assert yaml_lines("a: [") == ({}, {})


def test_context_names_file_line_and_full_path():
    data, ctx = read_yaml(TEXT, "onboarding criteria", "c.yml", Oops)
    assert data["stages"][1]["name"] == "value"
    err = ctx.error(("stages", 0, "all", 0, "milestone"), "bad")
    assert isinstance(err, Oops)
    assert str(err) == "onboarding criteria c.yml, line 5 (stages[0].all[0].milestone): bad"
    # a missing key: the line of the nearest enclosing value (item 1 starts on line 6)
    assert str(ctx.error(("stages", 1, "all"), "missing")) == (
        "onboarding criteria c.yml, line 6 (stages[1].all): missing")
    assert str(YamlContext("journey map", "<mapping>", {}, {}, Oops).error((), "x")) == (
        "journey map <mapping>: x")


def test_syntax_and_file_errors(tmp_path):
    with pytest.raises(Oops, match=r"^m f.yml, line 2, column \d+: not valid YAML"):
        read_yaml("a: 1\n  b: 2\n", "m", "f.yml", Oops)  # indented key on line 2
    with pytest.raises(Oops, match="no such file"):
        read_text(tmp_path / "nope.yml", "m", Oops)
    (tmp_path / "bom.yml").write_bytes("\ufeffa: 日本".encode())
    assert read_text(tmp_path / "bom.yml", "m", Oops) == "a: 日本"


def test_path_text_and_short():
    assert path_text(("stages", 0, "name")) == "stages[0].name"
    assert path_text(()) == ""
    assert short("x" * 100, 10) == repr("x" * 100)[:9] + "…"
    assert short(3) == "3"
