"""Shared fixtures: small workspaces built in code (never read from the working folder)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from cs_analysis.workspace import open_workspace, write_workspace


def d(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


@pytest.fixture
def tiny_tables():
    """Three accounts, two segments, a few events and subscriptions."""
    accounts = pd.DataFrame({
        "account_id": ["001", "002", "003"],
        "signup_date": [d("2024-01-05"), d("2024-02-10"), d("2024-02-11")],
        "segment": ["SMB", "Enterprise", "SMB"],
        "plan": ["Starter", "Enterprise", "Pro"],
    })
    events = pd.DataFrame({
        "account_id": ["001", "001", "002"],
        "event_at": pd.to_datetime(["2024-01-06 10:00", "2024-03-01 00:00", "2024-05-01 08:00"]),
    })
    subs = pd.DataFrame({
        "account_id": ["001", "002", "003"],
        "start_date": [d("2024-01-05"), d("2024-02-10"), d("2024-02-11")],
        "end_date": [d("2024-04-05"), None, d("2024-06-11")],
        "mrr": [100.0, 900.0, 200.0],
    })
    return {"accounts": accounts, "usage_events": events, "subscriptions": subs}


@pytest.fixture
def tiny_ws(tmp_path, tiny_tables):
    path = write_workspace(tmp_path / "tiny.duckdb", tiny_tables)
    return open_workspace(path)


@pytest.fixture(scope="session")
def small_demo_path(tmp_path_factory):
    """A small demo workspace (300 accounts, fixed seed), built once per test session."""
    from cs_analysis.demo import build_demo

    return build_demo(tmp_path_factory.mktemp("demo") / "small.duckdb", accounts=300, seed=7)


@pytest.fixture(scope="session")
def small_demo(small_demo_path):
    return open_workspace(small_demo_path)


@pytest.fixture(scope="session")
def server(small_demo_path, tmp_path_factory):
    """One `cs-analysis serve` of the small demo, shared by the browser test modules."""
    from serving import serving

    with serving(small_demo_path, tmp_path_factory.mktemp("serve") / "serve.log") as srv:
        yield srv


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, shared by the browser test modules (Playwright's sync API runs
    once per process, so every module uses this one; a module may bring its own server).
    """
    from serving import chromium, require_chromium

    require_chromium()
    with chromium() as b:
        yield b
