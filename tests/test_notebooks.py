"""Every notebook (notebooks/*.ipynb) and dashboard (dashboards/*.ipynb) runs top to bottom.

Discovered, so a new notebook is covered without editing this file. Each is executed
with nbclient on the small demo workspace (CS_WORKSPACE = the ``small_demo_path``
fixture), with a time limit per cell. A dashboard that runs but shows a friendly error
(``cs-error``) instead of its view fails too. Every notebook must also be committed with
outputs stripped, open with a markdown cell saying what question it answers and for
whom, and have a ``parameters``-tagged cell reading CS_WORKSPACE.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pytest

from cs_analysis.dashboard import DashboardSpecError, read_info

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("notebooks/*.ipynb")) + sorted(ROOT.glob("dashboards/*.ipynb"))
IDS = [str(p.relative_to(ROOT)) for p in NOTEBOOKS]
#: Seconds any single cell may take on the small demo workspace (2 cores, CI).
CELL_TIMEOUT = 300


def first_markdown(nb) -> str:
    assert nb.cells and nb.cells[0].cell_type == "markdown", (
        "the notebook must open with a markdown cell saying what question it answers "
        "and for whom")
    return nb.cells[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_with_outputs_stripped(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert dirty == [], f"{path.name}: cells {dirty} carry outputs; strip them before committing"
    assert "widgets" not in nb.metadata, f"{path.name}: stored widget state; strip it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_opens_with_question_and_audience(path):
    nb = nbformat.read(path, as_version=4)
    text = first_markdown(nb)
    assert re.search(r"^#\s+\S", text, re.M), f"{path.name}: no '# Title' in the first cell"
    assert "?" in text or re.search(r"\bquestion", text, re.I), (
        f"{path.name}: the first cell does not say what question the notebook answers")
    assert re.search(r"\b(for|who|audience|readers?)\b", text, re.I), (
        f"{path.name}: the first cell does not say whom the notebook is for")
    if path.parent.name == "dashboards":
        try:  # dashboards: the strict form the landing page and the header read
            read_info(path)
        except DashboardSpecError as exc:
            pytest.fail(str(exc))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_has_a_parameters_cell_reading_the_workspace(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected one cell tagged 'parameters'"
    assert "CS_WORKSPACE" in tagged[0].source


def widget_errors(nb) -> list[str]:
    """Texts of widgets that show a friendly error (from the stored widget state)."""
    state = nb.metadata.get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    out = []
    for model in state.values():
        value = model.get("state", {}).get("value")
        if isinstance(value, str) and 'class="cs-error"' in value:
            text = re.sub(r"<style.*?</style>", " ", value, flags=re.S)
            out.append(html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))).strip())
    return out


@pytest.mark.notebook
@pytest.mark.timeout(CELL_TIMEOUT * 4)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_executes_top_to_bottom(path, small_demo_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("CS_WORKSPACE", str(small_demo_path))  # the kernel inherits it
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            allow_errors=False, store_widget_state=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    errors = widget_errors(nb)
    assert errors == [], f"{path.name} shows an error instead of its view: {errors}"
