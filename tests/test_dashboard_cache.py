"""The on-disk cache of dashboard views that the kernels of a served dashboard share.

A view read back must look exactly like the one computed (the widgets' HTML and chart
specs, byte for byte); a reloaded workspace, another workspace, a corrupt file, or
concurrent writers must never show a wrong or broken view.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path

import altair as alt
import pandas as pd
import pytest

from cs_analysis.dashboard import (
    AccountHealthDashboard,
    RetentionDashboard,
    VoiceOfCustomerDashboard,
)
from cs_analysis.dashboard import cache as vc
from cs_analysis.dashboard.base import KPI, Panel, View
from cs_analysis.formatting import fmt_money
from cs_analysis.workspace import open_workspace


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    root = tmp_path / "views"
    monkeypatch.setenv(vc.ENV, str(root))
    return root


@pytest.fixture
def demo_copy(small_demo_path, tmp_path):
    """A private copy of the small demo (tests replace and copy the file)."""
    path = tmp_path / "ws" / "demo.duckdb"
    path.parent.mkdir()
    shutil.copy(small_demo_path, path)
    return path


def shown(app) -> dict:
    """Everything the page shows: the widgets' HTML and every chart's spec."""
    return {"message": app._message.value, "kpis": app._kpis.value,
            "heads": [box.children[0].value for box in app._charts.children],
            "bodies": [getattr(box.children[1], "value", None) for box in app._charts.children],
            "charts": {k: w.spec for k, w in app._chart_widgets.items()},
            "table": app._table.value, "download": app._download.value,
            "prepare": app._prepare.layout.display}


def entries(root) -> list:
    return sorted(p for p in root.rglob("*.view") if not p.name.startswith(".tmp-"))


def test_off_unless_enabled(demo_copy, monkeypatch):
    monkeypatch.delenv(vc.ENV, raising=False)
    app = RetentionDashboard.launch(str(demo_copy))
    assert app._shared() is None
    monkeypatch.setenv(vc.ENV, "off")
    assert RetentionDashboard.launch(str(demo_copy))._shared() is None


def test_dashboards_with_state_beyond_their_filters_never_share():
    from cs_analysis.dashboard import (
        AccountDashboard,
        JourneyWorkshopDashboard,
        SharedGoalsDashboard,
    )

    assert RetentionDashboard.share_views
    assert not any(c.share_views for c in (AccountDashboard, JourneyWorkshopDashboard,
                                           SharedGoalsDashboard))


def test_only_launch_shares_views(demo_copy, cache_dir):
    # built directly, the dashboard's arguments are unknown: nothing is shared
    app = RetentionDashboard(open_workspace(demo_copy))
    assert app._shared() is None and not cache_dir.exists()


@pytest.mark.parametrize("cls", [RetentionDashboard, AccountHealthDashboard,
                                 VoiceOfCustomerDashboard])
def test_hit_shows_the_same_view_as_a_fresh_compute(cls, demo_copy, cache_dir):
    fresh = cls.launch(str(demo_copy))
    assert fresh.error is None
    assert fresh._shared().misses == 1 and fresh._shared().hits == 0
    assert len(entries(cache_dir)) == 1
    cached = cls.launch(str(demo_copy))
    assert cached._shared().hits == 1 and cached._shared().misses == 0
    assert shown(cached) == shown(fresh)
    assert [(k.label, k.text, k.n, k.detail, k.warning) for k in cached.kpis] == \
        [(k.label, k.text, k.n, k.detail, k.warning) for k in fresh.kpis]
    pd.testing.assert_frame_equal(cached.table, fresh.table)
    assert cached.csv_href == fresh.csv_href

    # a filter change: computed (and stored) by the first kernel, read by the second
    name, widget = next((n, w) for n, w in fresh.filters.items()
                        if hasattr(w, "options") and len(w.options) > 1)
    other = widget.options[1]
    value = other[1] if isinstance(other, tuple) else other
    fresh.filters[name].value = value
    cached.filters[name].value = value
    assert cached._shared().hits == 2
    assert shown(cached) == shown(fresh)


def test_language_is_part_of_the_key(demo_copy, cache_dir):
    en = RetentionDashboard.launch(str(demo_copy), lang="en")
    ja = RetentionDashboard.launch(str(demo_copy), lang="ja")
    assert ja._shared().hits == 0
    assert shown(ja)["kpis"] != shown(en)["kpis"]
    again = RetentionDashboard.launch(str(demo_copy), lang="ja")
    assert again._shared().hits == 1 and shown(again) == shown(ja)


def test_a_reloaded_workspace_misses_and_drops_the_old_version(demo_copy, cache_dir):
    first = RetentionDashboard.launch(str(demo_copy))
    old_folder = first._shared().folder
    assert old_folder.exists()
    # what `cs-analysis load` does: a new file renamed over the old one
    tmp = demo_copy.with_suffix(".new")
    shutil.copy(demo_copy, tmp)
    os.replace(tmp, demo_copy)
    again = RetentionDashboard.launch(str(demo_copy))
    assert again._shared().version != first._shared().version
    assert again._shared().hits == 0 and again._shared().misses == 1
    assert not old_folder.exists(), "entries of the previous version are deleted"
    assert shown(again) == shown(first)  # same content, computed again


def test_settings_and_scope_are_part_of_the_version(demo_copy):
    ws = open_workspace(demo_copy)
    assert vc.workspace_version(ws) == vc.workspace_version(open_workspace(demo_copy))
    assert vc.workspace_version(ws) != vc.workspace_version(
        open_workspace(demo_copy, as_of="2024-01-31"))
    assert vc.workspace_version(ws) != vc.workspace_version(ws.where(segment="SMB"))


def test_never_read_across_workspaces(demo_copy, cache_dir, tmp_path):
    twin = tmp_path / "twin" / "demo.duckdb"
    twin.parent.mkdir()
    shutil.copy(demo_copy, twin)  # same bytes, another workspace
    a = RetentionDashboard.launch(str(demo_copy))
    b = RetentionDashboard.launch(str(twin))
    assert b._shared().hits == 0 and b._shared().misses == 1
    assert a._shared().folder.parent != b._shared().folder.parent
    # an entry moved into the other workspace's folder is refused (its key names the file)
    params = a.params()
    a_key = a._shared_key(params)
    b_key = b._shared_key(params)
    b._shared().path(b_key).unlink()
    shutil.copy(a._shared().path(a_key), b._shared().path(b_key))
    assert b._shared().get(b_key) is None


def test_launch_arguments_key_files_by_content(demo_copy, cache_dir, tmp_path):
    from cs_analysis.health import default_model_path

    model = tmp_path / "model.yml"
    shutil.copy(default_model_path(), model)
    a = AccountHealthDashboard.launch(str(demo_copy), model=str(model))
    assert a._shared().misses == 1
    b = AccountHealthDashboard.launch(str(demo_copy), model=str(model))
    assert b._shared().hits == 1
    model.write_text(model.read_text() + "\n# edited\n")
    c = AccountHealthDashboard.launch(str(demo_copy), model=str(model))
    assert c._shared().hits == 0


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flip"])
def test_corrupt_entry_is_ignored_and_recomputed(damage, demo_copy, cache_dir, capfd):
    first = RetentionDashboard.launch(str(demo_copy))
    (path,) = entries(cache_dir)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # one byte changed in the JSON part: the checksum catches it
        i = len(vc._MAGIC) + 65 + 40
        path.write_bytes(data[:i] + bytes([data[i] ^ 1]) + data[i + 1:])
    again = RetentionDashboard.launch(str(demo_copy))
    assert again.error is None
    assert again._shared().hits == 0 and again._shared().misses == 1
    assert shown(again) == shown(first)
    assert vc._decode(path.read_bytes())[0]["key"], "the entry is rewritten whole"
    third = RetentionDashboard.launch(str(demo_copy))
    assert third._shared().hits == 1


def test_an_unsafe_folder_turns_the_cache_off(demo_copy, cache_dir, capfd):
    cache_dir.mkdir(mode=0o700)
    os.chmod(cache_dir, 0o777)
    app = RetentionDashboard.launch(str(demo_copy))
    assert app.error is None and app._shared() is None
    assert "view cache off" in capfd.readouterr().err


# -- the entry format, without a dashboard --------------------------------------------------
def _view(i: int) -> View:
    frame = pd.DataFrame({"account": [f"a{j}" for j in range(50)],
                          "mrr": [float(j * i) for j in range(50)],
                          "when": pd.date_range("2024-01-01", periods=50, tz=None)})
    chart = alt.Chart(frame).mark_bar().encode(x="account", y="mrr")
    return View(kpis=[KPI("Writer", float(i), format=lambda x: f"writer {x:.0f}", n=i)],
                panels=[Panel("bars", "Bars", chart=chart, caption=f"from {i}")],
                table=frame, table_formats={"mrr": lambda x: fmt_money(x, "USD")},
                scope=f"writer {i}")


def _cache(root, ws_file: str = "/nowhere/ws.duckdb") -> vc.ViewCache:
    return vc.ViewCache(Path(root), "ws", ws_file, "v1", "tests.Dummy", {})


def test_round_trip_of_a_view(tmp_path):
    cache = _cache(tmp_path)
    view = _view(7)
    key = cache.key({"segment": "All"}, "en")
    assert cache.put(key, view)
    back = cache.get(key)
    assert back.kpis[0].text == "writer 7" and back.kpis[0].value == 7.0
    assert back.panels[0].chart.to_dict() == view.panels[0].chart.to_dict()
    pd.testing.assert_frame_equal(back.table, view.table)
    assert back.table_formats["mrr"](49 * 7.0) == fmt_money(49 * 7.0, "USD")
    assert back.scope == "writer 7"
    assert cache.get(cache.key({"segment": "SMB"}, "en")) is None


def _writer(root: str, i: int, rounds: int, key: str) -> None:
    cache = _cache(root)
    for _ in range(rounds):
        assert cache.put(key, _view(i))


def _reader(root: str, rounds: int, key: str, out) -> None:
    cache = _cache(root)
    seen = set()
    for _ in range(rounds):
        view = cache.get(key)
        if view is not None:
            i = int(view.kpis[0].value)
            # a view read back is whole: its parts all come from one writer
            assert view.scope == f"writer {i}" and view.panels[0].caption == f"from {i}"
            assert view.table["mrr"].iloc[-1] == 49.0 * i
            seen.add(i)
    out.put(sorted(seen))


def test_concurrent_writers_never_corrupt_an_entry(tmp_path):
    ctx = multiprocessing.get_context("fork")
    root = tmp_path / "views"
    key = _cache(root).key({"segment": "All"}, "en")
    out = ctx.Queue()
    writers = [ctx.Process(target=_writer, args=(str(root), i, 15, key)) for i in range(1, 7)]
    readers = [ctx.Process(target=_reader, args=(str(root), 60, key, out)) for _ in range(2)]
    for p in writers + readers:
        p.start()
    for p in writers + readers:
        p.join(180)
        assert p.exitcode == 0
    seen = [out.get(timeout=5) for _ in readers]
    assert any(seen), "the readers saw entries while writers wrote"
    final = _cache(root).get(key)
    assert final is not None and 1 <= int(final.kpis[0].value) <= 6
    assert not list(root.rglob(".tmp-*")), "no temporary file left behind"


def test_size_is_bounded_least_recently_used_first(tmp_path, monkeypatch):
    cache = _cache(tmp_path)
    keys = [cache.key({"n": i}, "en") for i in range(6)]
    cache.put(keys[0], _view(1))
    size = cache.path(keys[0]).stat().st_size
    monkeypatch.setattr(vc, "max_bytes", lambda: int(size * 3.5))
    for i, key in enumerate(keys[1:], start=1):
        os.utime(cache.path(keys[i - 1]), (1_000_000 + i, 1_000_000 + i))
        cache.put(key, _view(i + 1))
    left = [k for k in keys if cache.path(k).exists()]
    assert left == keys[-3:]


def test_a_view_that_cannot_be_stored_safely_is_not_stored(tmp_path, capfd):
    cache = _cache(tmp_path)
    view = _view(1)
    view.kpis[0] = KPI("Odd", object())  # not a number: refused, never pickled
    assert cache.put(cache.key({}, "en"), view) is False
    assert not entries(tmp_path)
    assert "not stored" in capfd.readouterr().err
