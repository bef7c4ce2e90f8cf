"""Demo workspaces at benchmark sizes, built once and cached.

``demo_workspace(accounts, data_dir)`` returns the folder ``<data_dir>/demo-<accounts>/``
holding ``workspace.duckdb`` (``cs_analysis.demo.build_demo(path, accounts=N, seed=7)``)
and ``parquet/`` (every table as Parquet, usage events as part files), built on first use
and reused afterwards. A build is written to a temporary folder and renamed when complete,
so an interrupted build is never mistaken for a finished one. The 100k build (~60M events)
takes several minutes.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

SEED = 7


def demo_workspace(accounts: int, data_dir: Path, progress: bool = False) -> Path:
    """The cached demo folder for ``accounts`` (built if missing)."""
    from cs_analysis.demo import build_demo

    folder = Path(data_dir) / f"demo-{accounts}"
    if (folder / "workspace.duckdb").exists():
        return folder
    tmp = Path(data_dir) / f".demo-{accounts}.building"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    build_demo(tmp / "workspace.duckdb", accounts=accounts, seed=SEED,
               parquet_dir=tmp / "parquet", progress=progress)
    seconds = time.perf_counter() - t0
    import duckdb

    con = duckdb.connect(str(tmp / "workspace.duckdb"), read_only=True)
    events = con.execute("select count(*) from usage_events").fetchone()[0]
    con.close()
    (tmp / "meta.json").write_text(json.dumps(
        {"accounts": accounts, "seed": SEED, "events": events, "build_seconds": seconds}))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def meta(folder: Path) -> dict:
    """What the build recorded (accounts, events, build seconds)."""
    return json.loads((Path(folder) / "meta.json").read_text())


if __name__ == "__main__":  # python -m benchmarks.demo_cache 1000 10000 [--data-dir D]
    args = sys.argv[1:]
    data = Path(__file__).resolve().parent / "data"
    if "--data-dir" in args:
        i = args.index("--data-dir")
        data = Path(args[i + 1])
        del args[i:i + 2]
    for n in args:
        f = demo_workspace(int(float(n)), data)
        print(n, f, meta(f), flush=True)
