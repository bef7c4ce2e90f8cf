"""Write the YAML part of the hostile-input corpus (run once; files committed).

One folder per kind of YAML file the package reads besides mappings: ``criteria/``
(onboarding criteria), ``themes/`` and ``expansion/`` (theme-format dictionaries),
``journeys/`` (journey maps), ``workshop/`` (workshop drafts: journey maps read back by a
workshop session), ``coverage/`` (coverage rules), ``capacity/`` (capacity models),
``pipeline/`` (sales pipelines, YAML and CSV). Each folder gets the same generic hostile
cases (alias bomb, deep nesting, duplicate keys, not YAML, tabs, binary, UTF-16, empty,
wrong top level, unknown key) built on a small correct file, plus cases of its own.
The expected outcome of every case is in ``tests/test_bad_inputs.py``.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

CRITERIA = """clock_start: kickoff_date
if_no_clock_start: signup_date
stages:
  - name: setup_complete
    all:
      - milestone: account_configured
    target_days: {SMB: 30}
  - name: value_realized
    requires: setup_complete
    any:
      - events: [report_shared]
        at_least: 3
        within_days: 14
"""
THEMES = """description: A small theme dictionary.
themes:
  pricing:
    label: Pricing / 料金
    keywords: [price, 料金]
    patterns:
      - '\\bper[- ]user\\b'
  support:
    keywords: [support, サポート]
"""
EXPANSION = """description: Expansion signals.
themes:
  more_seats:
    label: More seats / 席数追加
    keywords: [more seats, ライセンス追加]
  new_sites:
    keywords: [new office, 新拠点]
"""
JOURNEY = """title: CS journey
team: cs
version: 1
persona:
  name: Operations manager
  role: owner
  domain: business
stages:
  - name: Kickoff
    owner: cs
  - name: Set-up
    owner: cs
"""
COVERAGE = """description: Who gets a CSM.
rules:
  - name: enterprise
    tier: high
    when:
      segment: Enterprise
  - name: large
    tier: low
    when:
      mrr: {at_least: 5000, below: 20000}
default: tech
"""
PIPELINE = """pipeline:
  - {month: 2027-01, segment: SMB, new_accounts: 3}
  - {month: 2027-02, segment: SMB, new_accounts: 4}
"""
CAPACITY = (HERE.parents[2] / "data" / "capacity_model.yml").read_text(encoding="utf-8")

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True))


def generic(ok: str, top: str) -> dict[str, str | bytes]:
    """The hostile cases every kind gets; ``top`` is the file's main key."""
    first = next(t for t in ok.splitlines() if t and not t.startswith("#"))
    return {
        "ok": ok,
        "ok_bom": "\ufeff" + ok,
        "alias_bomb": BOMB + f"{top}: *i\n",
        "deep_flow_nesting": f"{top}: " + "[" * 5000 + "]" * 5000 + "\n",
        "deep_block_nesting": f"{top}:\n" + "".join(
            "  " * i + f"k{i}:\n" for i in range(1, 80)) + "  " * 80 + "x: 1\n",
        "duplicate_top_key": ok + first + "\n",
        "not_yaml": f"{top}:\n  - a\n b: [\n",
        "tab_indent": f"{top}:\n\tx: 1\n",
        "binary_junk": b"\xff\xfe\x00\x01" + top.encode() + b"\x00\x9c\x80\x81",
        "utf16": ok.encode("utf-16"),
        "empty": "",
        "comments_only": "# nothing here\n",
        "top_level_list": "- " + top + "\n",
        "top_level_scalar": "just text\n",
        "unknown_top_key": ok + "colour: blue\n",
        "huge_key": ok + "x" * 20_000 + ": y\n",
        "nul_in_text": ok.replace(first, first + "\x00", 1),
        "merge_key_bomb": BOMB + f"{top}: {{<<: *i}}\n",
        "python_tag": ok + "x: !!python/object/apply:os.system ['echo hi']\n",
    }


def cases() -> dict[str, dict[str, str | bytes]]:
    crit = {
        "dup_stage_key": CRITERIA.replace("    target_days: {SMB: 30}\n",
                                          "    target_days: {SMB: 30}\n    all: []\n"),
        "at_least_float": CRITERIA.replace("at_least: 3", "at_least: 3.0"),
        "within_days_text": CRITERIA.replace("within_days: 14", "within_days: two weeks"),
        "requires_later": CRITERIA.replace("    all:\n", "    requires: value_realized\n"
                                           "    all:\n", 1),
        "duplicate_stage_name": CRITERIA.replace("name: value_realized",
                                                 "name: setup_complete"),
        "all_and_any": CRITERIA.replace("    target_days: {SMB: 30}\n",
                                        "    any: [{milestone: x}]\n"),
        "no_stages": "clock_start: kickoff_date\nstages: []\n",
        "target_negative": CRITERIA.replace("SMB: 30", "SMB: -1"),
        "ok_events_single_name": CRITERIA.replace("[report_shared]", "report_shared"),
        "mixed_kinds": CRITERIA.replace("- milestone: account_configured",
                                        "- milestone: account_configured\n"
                                        "        events: [x]"),
    }
    theme = {
        "bad_regex": THEMES.replace("\\bper[- ]user\\b", "(unclosed"),
        "backtracking": THEMES.replace("\\bper[- ]user\\b", "(a+)+$"),
        "empty_pattern_match": THEMES.replace("\\bper[- ]user\\b", "x*"),
        "empty_keyword": THEMES.replace("[price, 料金]", "[price, '']"),
        "keyword_number": THEMES.replace("[price, 料金]", "[price, 42]"),
        "no_keywords": THEMES.replace("    keywords: [support, サポート]\n",
                                      "    label: Support\n"),
        "keyword_typo": THEMES.replace("    keywords: [support", "    keyword: [support"),
        "duplicate_theme": THEMES + "  pricing:\n    keywords: [cost]\n",
        "themes_list": "themes:\n  - pricing\n",
        "huge_pattern": THEMES.replace("\\bper[- ]user\\b", "a" * 100_000),
    }
    expansion = {
        "duplicate_keyword_key": EXPANSION.replace(
            "    keywords: [new office, 新拠点]\n",
            "    keywords: [new office]\n    keywords: [新拠点]\n"),
        "nested_quantifier": EXPANSION + "    patterns: ['(\\w+\\s?)*$']\n",
        "label_list": EXPANSION.replace("label: More seats / 席数追加", "label: [a, b]"),
    }
    journey = {
        "unknown_role": JOURNEY.replace("role: owner", "role: king"),
        "version_zero": JOURNEY.replace("version: 1", "version: 0"),
        "version_float": JOURNEY.replace("version: 1", "version: 1.0"),
        "duplicate_stage": JOURNEY.replace("name: Set-up", "name: Kickoff"),
        "no_stages": JOURNEY.split("stages:")[0] + "stages: []\n",
        "missing_title": JOURNEY.replace("title: CS journey\n", ""),
        "stage_typo": JOURNEY.replace("    owner: cs\n", "    ownr: cs\n", 1),
        "persona_list": JOURNEY.split("persona:")[0] + "persona: [a]\nstages:\n"
                        "  - name: Kickoff\n",
        "signal_two_kinds": JOURNEY.replace(
            "  - name: Set-up\n", "  - name: Set-up\n    signal: {milestone: x, "
            "events: [y], at_least: 1}\n"),
    }
    workshop = {
        "ok_saved_version": JOURNEY,
        "truncated_draft": JOURNEY[: len(JOURNEY) // 2],
        "half_written": JOURNEY.replace("stages:", "stages: [").rstrip() + "\n",
        "draft_of_another_kind": CRITERIA,
    }
    coverage = {
        "bad_tier": COVERAGE.replace("tier: low", "tier: medium"),
        "range_text": COVERAGE.replace("at_least: 5000", "at_least: lots"),
        "range_reversed": COVERAGE.replace("at_least: 5000, below: 20000",
                                           "at_least: 20000, below: 5000"),
        "range_unknown": COVERAGE.replace("at_least: 5000", "above: 5000"),
        "rule_without_name": COVERAGE.replace("  - name: large\n", "  -\n"),
        "rules_mapping": "rules:\n  enterprise: high\n",
        "default_bad": COVERAGE.replace("default: tech", "default: nobody"),
        "duplicate_rule_name": COVERAGE.replace("name: large", "name: enterprise"),
        "when_list": COVERAGE.replace("      segment: Enterprise\n",
                                      "      - segment\n"),
    }
    capacity = {
        "shares_not_one": CAPACITY.replace("Mid-Market: {high: 0.3, low: 0.7}",
                                           "Mid-Market: {high: 0.3, low: 0.6}"),
        "hours_text": CAPACITY.replace("hours_per_month: 150", "hours_per_month: lots"),
        "ramp_float": CAPACITY.replace("ramp_months: 3", "ramp_months: 3.0"),
        "tier_missing": CAPACITY.replace(
            "  tech: {onboarding: 0.3, adoption: 0.05, renewal: 0.1}\n", ""),
        "utilisation_negative": CAPACITY.replace("utilisation_target: 0.75",
                                                 "utilisation_target: -0.75"),
        "unknown_tier_share": CAPACITY.replace("SMB: {low: 0.1, tech: 0.9}",
                                               "SMB: {low: 0.1, robot: 0.9}"),
    }
    pipeline = {
        "negative": PIPELINE.replace("new_accounts: 4", "new_accounts: -4"),
        "float_count": PIPELINE.replace("new_accounts: 4", "new_accounts: 4.5"),
        "bad_month": PIPELINE.replace("2027-02", "Feb 2027"),
        "duplicate_row": PIPELINE.replace("2027-02", "2027-01"),
        "row_not_mapping": "pipeline:\n  - 2027-01 SMB 3\n",
        "extra_column": PIPELINE.replace("new_accounts: 4}", "new_accounts: 4, owner: x}"),
        "csv_ok.csv": "month,segment,new_accounts\n2027-01,SMB,3\n2027-02,SMB,4\n",
        "csv_missing_column.csv": "month,segment\n2027-01,SMB\n",
        "csv_extra_value.csv": "month,segment,new_accounts\n2027-01,SMB,3,9\n",
        "csv_text_count.csv": "month,segment,new_accounts\n2027-01,SMB,three\n",
        "csv_binary.csv": b"\xff\xfe\x00m\x00o",
        "csv_empty.csv": "",
        "csv_formula.csv": "month,segment,new_accounts\n2027-01,=cmd|' /C calc'!A0,3\n",
    }
    out = {
        "criteria": {**generic(CRITERIA, "stages"), **crit},
        "themes": {**generic(THEMES, "themes"), **theme},
        "expansion": {**generic(EXPANSION, "themes"), **expansion},
        "journeys": {**generic(JOURNEY, "stages"), **journey},
        "workshop": workshop,
        "coverage": {**generic(COVERAGE, "rules"), **coverage},
        "capacity": {**generic(CAPACITY, "csm"), **capacity},
        "pipeline": {**generic(PIPELINE, "pipeline"), **pipeline},
    }
    return out


def main() -> None:
    for kind, files in cases().items():
        folder = HERE / kind
        folder.mkdir(exist_ok=True)
        for name, content in files.items():
            path = folder / (name if "." in name else f"{name}.yml")
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_bytes(content.encode("utf-8"))


if __name__ == "__main__":
    main()
