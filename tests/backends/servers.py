"""Throwaway database servers for the backend test leg: a PostgreSQL cluster and Spark.

Both start on demand and stop at the end of the test session; neither touches anything
outside a temporary folder, and both listen on 127.0.0.1 only.

- PostgreSQL: ``initdb`` into a temporary folder, ``pg_ctl start`` on a free port, run as
  an unprivileged user (CI runs as root, and PostgreSQL refuses to run as root). The
  binaries come from Debian's ``postgresql`` package (``.ci/run`` installs it).
- Spark: a ``local[2]`` SparkSession in UTC (Debian's ``openjdk-17-jre-headless``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from serving import free_port


def require(ok: bool, what: str) -> None:
    """Skip when ``what`` is not installed; in CI (``$CI``) fail instead."""
    import pytest

    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing in CI (.ci/run installs it)")
        pytest.skip(f"{what} not installed")


def pg_bindir() -> Path | None:
    """Folder of Debian's PostgreSQL server binaries (newest version), if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).resolve().parent if which else None


class PostgresServer:
    """A throwaway PostgreSQL cluster: ``with PostgresServer() as pg: pg.url``."""

    def __init__(self):
        self.bindir = pg_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (Debian: postgresql)")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="cs-pg-"))
        self.data = self.root / "data"
        self.user = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            for name in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
            os.chmod(self.root, 0o700)

    def _run(self, *args, check=True, timeout=120):
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user.pw_name, "--", *cmd]
        return subprocess.run(cmd, check=check, timeout=timeout, capture_output=True,
                              text=True, cwd=self.root)

    @property
    def url(self) -> str:
        return f"postgres://cs@127.0.0.1:{self.port}/cs"

    def start(self) -> PostgresServer:
        self._run("initdb", "-D", str(self.data), "-U", "cs", "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync")
        opts = (f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c timezone=UTC")
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l",
                  str(self.root / "log"), "-w", "-t", "60", "start")
        deadline = time.monotonic() + 60
        while True:  # wait for readiness, not a fixed time
            r = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {r.stdout}{r.stderr}")
            time.sleep(0.2)
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "cs", "cs")
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def spark_session():
    """A ``local[2]`` SparkSession in UTC, quiet and small (tests only)."""
    from pyspark.sql import SparkSession

    scratch = tempfile.mkdtemp(prefix="cs-spark-")
    return (SparkSession.builder.master("local[2]").appName("cs_analysis-tests")
            .config("spark.sql.warehouse.dir", f"{scratch}/warehouse")
            .config("spark.local.dir", scratch)
            .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={scratch}")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.default.parallelism", "2")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.memory", "1g")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .getOrCreate())
