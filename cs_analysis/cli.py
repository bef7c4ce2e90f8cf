"""The ``cs-analysis`` command.

Subcommands
-----------
demo      build the synthetic demo workspace
validate  check exports against the data contract through a mapping file
load      build a workspace from exports (atomic: a failed load changes nothing);
          --out a .duckdb file or a postgres:// schema
serve     serve the dashboards with Voila
contract  print the data contract as a Markdown table
"""

from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
    from cs_analysis.demo import build_demo

    path = build_demo(args.out, accounts=args.accounts, seed=args.seed,
                      parquet_dir=args.parquet_dir, progress=not args.quiet)
    print(f"demo workspace written to {path}")
    return 0


def _validate(args) -> int:
    from cs_analysis.errors import CSAnalysisError
    from cs_analysis.io import validate

    try:
        report = validate(args.config, drop_unknown_accounts=args.drop_unknown_accounts)
    except CSAnalysisError as exc:
        return _fail(exc)
    print(report.summary())
    return 0 if report.ok else 1


def _load(args) -> int:
    from cs_analysis.errors import CSAnalysisError
    from cs_analysis.io import LoadError, load
    from cs_analysis.io.postgres import is_postgres_url, parse_target, shown_url

    out = args.out
    if is_postgres_url(out):  # never print the password of a URL
        try:
            shown = f"schema {parse_target(out).schema} on {shown_url(out)}"
        except CSAnalysisError as exc:
            return _fail(exc)
    else:
        shown = out
    try:
        report = load(args.config, out, drop_unknown_accounts=args.drop_unknown_accounts,
                      progress=not args.quiet)
    except LoadError as exc:
        print(str(exc), file=sys.stderr)
        print(f"\nnothing was written; {shown} is unchanged", file=sys.stderr)
        return 1
    except CSAnalysisError as exc:  # --out refused, a full disk, a server: one line
        return _fail(exc)
    print(report.summary())
    print(f"workspace written to {shown}")
    return 0


def _fail(exc: Exception) -> int:
    """Print a package error as one line on stderr; exit status 1."""
    print("cs-analysis: error: " + " ".join(str(exc).split()), file=sys.stderr)
    return 1


def _serve(args) -> int:
    from cs_analysis.serve import serve

    return serve(workspace=args.workspace, port=args.port, host=args.host, token=args.token,
                 preheat=not args.no_preheat, open_browser=False,
                 allow_no_token=args.allow_no_token, pool_size=args.pool_size,
                 redact=args.redact, lang=args.lang)


def _contract(args) -> int:
    from cs_analysis.contract import markdown_table

    print(markdown_table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and ``--help``)."""
    p = argparse.ArgumentParser(prog="cs-analysis", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="build the synthetic demo workspace")
    d.add_argument("--accounts", type=int, default=None, help="number of accounts")
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--out", default=None, help="workspace file (default data/demo.duckdb)")
    d.add_argument("--parquet-dir", default=None,
                   help="also keep the tables as Parquet files in this folder")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_demo)

    for name, func, helptext in (
        ("validate", _validate, "check exports against the contract"),
        ("load", _load, "build a workspace from exports"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--config", required=True, help="mapping file (YAML)")
        s.add_argument("--drop-unknown-accounts", action="store_true",
                       help="drop child rows whose account_id is not in accounts (reported)")
        if name == "load":
            s.add_argument("--out", required=True,
                           help="workspace file to write (.duckdb), or a PostgreSQL schema: "
                                "postgres://user@host:5432/db?schema=name (one transaction)")
            s.add_argument("--quiet", action="store_true")
        s.set_defaults(func=func)

    v = sub.add_parser("serve", help="serve the dashboards with Voila")
    v.add_argument("--workspace", default=None,
                   help="workspace path or Ibis URL (default: the demo, built if missing)")
    v.add_argument("--port", type=int, default=8866)
    v.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default localhost only)")
    v.add_argument("--token", default=None,
                   help="require this token (or set CS_ANALYSIS_TOKEN) when sharing")
    v.add_argument("--no-preheat", action="store_true", help="disable preheated kernels")
    # serve options added with cs_analysis/serve.py (see docs/serving.md)
    v.add_argument("--allow-no-token", action="store_true",
                   help="allow a non-localhost --host without a token (e.g. behind an "
                        "authenticating proxy)")
    v.add_argument("--pool-size", type=int, default=None,
                   help="preheated kernels per dashboard (default 1, or "
                        "$CS_ANALYSIS_POOL_SIZE)")
    v.add_argument("--redact", action="store_true",
                   help="for sharing outside the CS team: mask people's names, e-mails and "
                        "phones and show accounts under stable aliases in every table, CSV "
                        "and chart")
    v.add_argument("--lang", choices=("en", "ja"), default=None,
                   help="language of the dashboards' labels when a page's URL has no "
                        "?lang= (default $CS_ANALYSIS_LANG, else the workspace's `language` "
                        "setting, else en)")
    v.set_defaults(func=_serve)

    c = sub.add_parser("contract", help="print the data contract as Markdown")
    c.set_defaults(func=_contract)
    return p


def main(argv=None) -> int:
    """Entry point of ``cs-analysis``."""
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
