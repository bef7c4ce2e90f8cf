import re
from pathlib import Path

from cs_analysis import contract

SHARED = Path(__file__).resolve().parents[2] / "shared" / "design" / "data-contract.md"


def test_ten_tables_in_contract_order():
    assert contract.TABLE_NAMES == (
        "accounts", "subscriptions", "usage_events", "onboarding_milestones",
        "survey_responses", "support_tickets", "stakeholders", "health_inputs",
        "cs_activities", "feature_requests",
    )


def test_id_columns_are_strings_and_dates_are_typed():
    for t in contract.TABLES.values():
        for c in t.columns:
            if c.name.endswith("_id"):
                assert c.dtype == "string", (t.name, c.name)
            if c.name.endswith("_date"):
                assert c.dtype == "date", (t.name, c.name)
            if c.name.endswith("_at"):
                assert c.dtype == "timestamp", (t.name, c.name)


def test_spec_matches_the_design_document():
    """Every table's required and optional columns equal those in data-contract.md."""
    if not SHARED.exists():  # the doc lives beside the repo, as in CI
        import pytest

        pytest.skip("shared/design not beside the repository")
    rows = [ln for ln in SHARED.read_text().splitlines() if ln.startswith("| `")]
    assert len(rows) == 10
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        name = cells[0].strip("`")
        names = lambda cell: [  # noqa: E731
            n for n in re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cell))
            if not n.endswith("_")
        ]
        spec = contract.spec(name)
        assert spec.required == names(cells[2]), name
        assert spec.optional == names(cells[3]), name


def test_markdown_table_is_generated_from_the_spec():
    md = contract.markdown_table()
    for name, t in contract.TABLES.items():
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| `{name}`"))
        for c in t.columns:
            assert f"`{c.name}`" in line


def test_survey_scales_nps_is_fixed_and_others_configurable():
    assert contract.survey_scale("nps", {"nps": (1, 5)}) == (0.0, 10.0)
    assert contract.survey_scale("csat", {"csat": (1, 7)}) == (1.0, 7.0)
    assert contract.survey_scale("ces") == (1.0, 7.0)
    assert contract.survey_scale("custom") is None


def test_readme_data_section_is_the_generated_table():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- contract:start -->")[1].split("<!-- contract:end -->")[0]
    assert section.strip() == contract.markdown_table().strip()
