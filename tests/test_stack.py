"""The version pins of stack-notes.md hold, and the Ibis operations they protect work."""

import duckdb
import ibis
import pandas as pd
import sqlglot
from packaging.version import Version


def test_pinned_versions_are_installed():
    # ibis 12 calls DuckDBPyConnection.fetch_arrow_table, removed in duckdb 2.0
    assert Version(duckdb.__version__) < Version("2")
    # from sqlglot 30.18 Ibis's DROP VIEW loses its name on DuckDB (ibis issues 12101, 12124)
    assert Version(sqlglot.__version__) < Version("30.18")
    assert hasattr(duckdb.DuckDBPyConnection, "fetch_arrow_table")


def test_ibis_table_lifecycle_on_duckdb():
    """create_table, overwrite, .cache() and drop_table: what the sqlglot pin protects."""
    con = ibis.duckdb.connect()
    df = pd.DataFrame({"account_id": ["001", "002"], "mrr": [10.0, 20.0]})
    t = con.create_table("t", df)
    assert t.mrr.sum().execute() == 30.0
    con.create_table("t", df.assign(mrr=[1.0, 2.0]), overwrite=True)
    assert con.table("t").mrr.sum().execute() == 3.0
    cached = con.table("t").filter(lambda x: x.mrr > 1).cache()
    assert cached.count().execute() == 1
    con.drop_table("t")
    assert "t" not in con.list_tables()
