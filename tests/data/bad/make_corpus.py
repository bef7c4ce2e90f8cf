"""Write the hostile-input corpus of ``tests/test_bad_inputs.py`` (run once; files committed).

``mappings/<case>.yml``: mapping files (their exports are ``base/``); ``exports/<case>.csv``
(or ``.xlsx`` / ``.parquet``): exports of ``accounts``, or of the table named before ``__``
(``subscriptions__end_before_start.csv``), each read through a mapping the test writes.
The expected outcome of every case is in the test module.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

ACC = "account_id,signup_date,account_name,segment,employees,touch_model\n"
GOOD = [
    "A1,2024-01-01,Acme,SMB,10,high",
    "A2,2024-02-01,Globex,Enterprise,500,low",
    "A3,2024-03-01,Initech,SMB,20,tech",
]
MAP_HEAD = "tables:\n  accounts:\n    file: ../base/accounts.csv\n"


def acc(*rows: str, header: str = ACC, nl: str = "\n") -> bytes:
    return (header + nl.join(rows) + nl).replace("\n", nl).encode("utf-8")


def mappings() -> dict[str, str | bytes]:
    bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "tables: *i\n"
    return {
        "ok_minimal": MAP_HEAD,
        "ok_bom": "\ufeff" + MAP_HEAD,
        "ok_anchors": MAP_HEAD + "    date_format: &f '%Y-%m-%d'\n"
                      "  subscriptions:\n    file: ../base/subscriptions.csv\n"
                      "    date_format: *f\n",
        "duplicate_column_key": MAP_HEAD + "    columns:\n      account_name: account_name\n"
                                           "      account_name: segment\n",
        "duplicate_table": MAP_HEAD + "  accounts:\n    file: ../base/accounts.csv\n",
        "duplicate_top_key": MAP_HEAD + "tables: {}\n",
        "alias_bomb": bomb,
        "deep_flow_nesting": "tables: " + "[" * 5000 + "]" * 5000 + "\n",
        "deep_block_nesting": "tables:\n" + "".join(
            "  " * (i + 1) + f"k{i}:\n" for i in range(120)) + "  " * 121 + "v\n",
        "not_yaml": "tables: [unclosed\n",
        "tab_indent": "tables:\n\taccounts:\n\t\tfile: ../base/accounts.csv\n",
        "empty": "",
        "top_level_list": "- tables\n- accounts\n",
        "top_level_scalar": "just some words\n",
        "unknown_top_key": MAP_HEAD + "tabels: {}\n",
        "unknown_table": MAP_HEAD + "  customers:\n    file: ../base/accounts.csv\n",
        "unknown_table_key": MAP_HEAD + "    colums: {account_id: id}\n",
        "unknown_column": MAP_HEAD + "    columns: {acount_name: account_name}\n",
        "missing_file_key": "tables:\n  accounts:\n    columns: {account_id: account_id}\n",
        "file_not_found": "tables:\n  accounts:\n    file: ../base/nope.csv\n",
        "glob_no_match": "tables:\n  accounts:\n    file: ../base/nothing_*.csv\n",
        "file_is_a_list_of_maps": "tables:\n  accounts:\n    file: [{a: 1}]\n",
        "bad_timezone": "workspace:\n  timezone: Mars/Olympus\n" + MAP_HEAD,
        "bad_as_of": "workspace:\n  as_of: yesterday\n" + MAP_HEAD,
        "nps_scale": "workspace:\n  survey_scales: {nps: [1, 5]}\n" + MAP_HEAD,
        "scale_reversed": "workspace:\n  survey_scales: {csat: [5, 1]}\n" + MAP_HEAD,
        "scale_text": "workspace:\n  survey_scales: {csat: [low, high]}\n" + MAP_HEAD,
        "workspace_list": "workspace: [UTC]\n" + MAP_HEAD,
        "unknown_setting": "workspace:\n  timezon: UTC\n" + MAP_HEAD,
        "bad_format": MAP_HEAD + "    format: xls\n",
        "bad_encoding": MAP_HEAD + "    encoding: klingon\n",
        "long_delimiter": MAP_HEAD + "    delimiter: ';;'\n",
        "header_row_zero": MAP_HEAD + "    header_row: 0\n",
        "header_row_text": MAP_HEAD + "    header_row: '2'\n",
        "header_row_far_below": MAP_HEAD + "    header_row: 1000000000\n",
        "header_row_float": MAP_HEAD + "    header_row: 1.5\n",
        "date_format_q": MAP_HEAD + "    date_format: '%Y-%m-%Q'\n",
        "date_format_stray": MAP_HEAD + "    date_format: '%Y-%m-%d %'\n",
        "date_format_iso_year_alone": MAP_HEAD + "    date_format: '%G'\n",
        "date_format_week_without_day": MAP_HEAD + "    date_format: {signup_date: '%Y-%U'}\n",
        "date_format_no_directive": MAP_HEAD + "    date_format: 'YYYY-MM-DD'\n",
        "date_format_wrong_column": MAP_HEAD + "    date_format: {segment: '%Y'}\n",
        "values_booleans": MAP_HEAD + "    values:\n      touch_model: {yes: high}\n",
        "values_nested": MAP_HEAD + "    values:\n      segment: {SMB: [a, b]}\n",
        "values_not_a_map": MAP_HEAD + "    values:\n      segment: SMB\n",
        "columns_list": MAP_HEAD + "    columns: [account_id, signup_date]\n",
        "column_header_list": MAP_HEAD + "    columns: {account_id: [a, b]}\n",
        "no_accounts": "tables:\n  subscriptions:\n    file: ../base/subscriptions.csv\n",
        "tables_empty": "tables: {}\n",
        "tables_null": "tables:\n",
        "binary_junk": b"\xff\xfe\x00\x01tables\x00\x9c\x80\x81",
        "utf16": MAP_HEAD.encode("utf-16"),
        "header_not_in_file": MAP_HEAD + "    columns: {account_id: Customer ID}\n",
        "huge_key": MAP_HEAD + "    columns: {" + "x" * 20_000 + ": y}\n",
    }


def exports() -> dict[str, bytes]:
    a, b, c = GOOD
    long_name = "N" * 50_000
    return {
        "ok.csv": acc(*GOOD),
        "ok_crlf.csv": acc(*GOOD, nl="\r\n"),
        "ok_bom.csv": b"\xef\xbb\xbf" + acc(*GOOD),
        "ok_cp932.csv": (ACC + "J1,2024/4/1,髙橋商事,SMB,10,high\n"
                         "J2,2024/4/2,山﨑工業 ㈱,SMB,5,low\n").encode("cp932"),
        "ok_header_only.csv": ACC.encode(),
        "ok_blank_lines.csv": acc(a, "", ",,,,,", b, "   ", c),
        "ok_quoted_newline.csv": acc(a, 'A4,2024-04-01,"two\nlines, and a comma",SMB,1,high'),
        "ok_formula_text.csv": acc("A5,2024-01-01,=cmd|' /C calc'!A0,SMB,1,high",
                                   "A6,2024-01-01,@SUM(1+1),SMB,1,high",
                                   "A7,2024-01-01,+1-2,SMB,1,high"),
        "ok_script_text.csv": acc("A8,2024-01-01,<script>alert(1)</script>,SMB,1,high",
                                  "A9,2024-01-01,'; DROP TABLE accounts;--,SMB,1,high",
                                  "A10,2024-01-01,\x1b[31mred\x1b[0m,SMB,1,high"),
        "ok_long_field.csv": acc(f"A11,2024-01-01,{long_name},SMB,1,high"),
        "ok_fullwidth_header.csv": acc(*GOOD, header=" ａｃｃｏｕｎｔ＿ｉｄ ,signup_date,"
                                       "account_name,segment,employees,touch_model\n"),
        "ok_dates_mixed.csv": acc("B1,2024/4/1,x,SMB,1,high", "B2,20240402,x,SMB,1,high",
                                  "B3,45383,x,SMB,1,high", "B4,2024年4月1日,x,SMB,1,high",
                                  "B5,2024-04-01T23:30:00-05:00,x,SMB,1,high"),
        "ok_cr_only.csv": acc(*GOOD, nl="\r"),
        "ok_wide_header.csv": (",".join(["account_id", "signup_date"]
                                        + [f"x{i}" for i in range(5000)]) + "\n"
                               + "A1,2024-01-01" + "," * 5000 + "\n").encode(),
        "long_line_extra_cells.csv": b"account_id,signup_date\nA1,2024-01-01," + b"x" * 100_000,
        "empty.csv": b"",
        "only_newlines.csv": b"\n\n\n",
        "missing_required_column.csv": b"account_id,account_name\nA1,Acme\n",
        "duplicate_header.csv": acc(a, header="account_id,account_id,signup_date\n"),
        "bad_date.csv": acc(a, "A2,2024-13-01,x,SMB,1,high"),
        "feb_30.csv": acc(a, b, "A3,2024-02-30,x,SMB,1,high"),
        "year_1800.csv": acc(a, "A2,1800-01-01,x,SMB,1,high"),
        "month_first.csv": acc(a, "A2,4/1/2024,x,SMB,1,high"),
        "compact_bad.csv": acc(a, "A2,20240230,x,SMB,1,high"),
        "duplicate_id.csv": acc(a, a),
        "null_id.csv": acc(a, ",2024-01-01,x,SMB,1,high"),
        "extra_cells.csv": acc(a, "A2,2024-01-01,Acme, Inc.,SMB,1,high"),
        "unclosed_quote.csv": acc(a, 'A2,2024-01-01,"never closed,SMB,1,high', c),
        "nul_byte.csv": acc(a, "A2,2024-01-01,x\x00y,SMB,1,high"),
        "employees_text.csv": acc(a, "A2,2024-01-01,x,SMB,ten,high"),
        "employees_negative.csv": acc(a, "A2,2024-01-01,x,SMB,-5,high"),
        "employees_fraction.csv": acc(a, "A2,2024-01-01,x,SMB,3.5,high"),
        "employees_nan.csv": acc(a, "A2,2024-01-01,x,SMB,nan,high"),
        "employees_inf.csv": acc(a, "A2,2024-01-01,x,SMB,inf,high"),
        "employees_huge.csv": acc(a, "A2,2024-01-01,x,SMB,1e30,high"),
        "employees_currency.csv": acc(a, "A2,2024-01-01,x,SMB,$100,high"),
        "touch_model_vocab.csv": acc(a, "A2,2024-01-01,x,SMB,1,very high"),
        "latin1.csv": acc(a).replace(b"Acme", "Señor Núñez, Ærø".encode("latin-1")),
        "cp1252_french.csv": ACC.encode() + "A1,2024-01-01,Hélène Légère,SMB,1,high\n".encode(
            "cp1252"),
        "korean.csv": ACC.encode() + "K1,2024-01-01,김민준,SMB,1,high\n".encode("cp949"),
        "korean_more.csv": ACC.encode() + "K1,2024-01-01,이서연 부산광역시,SMB,1,high\n".encode(
            "euc-kr"),
        "chinese.csv": ACC.encode() + "C1,2024-01-01,王伟 上海市,SMB,1,high\n".encode("gb18030"),
        "utf16.csv": (ACC + a + "\n").encode("utf-16"),
        "binary.csv": bytes(range(256)) * 4,
        "subscriptions__unknown_account.csv":
            b"account_id,start_date,mrr\nA1,2024-01-01,100\nZZ9,2024-01-01,100\n",
        "subscriptions__end_before_start.csv":
            b"account_id,start_date,end_date,mrr\nA1,2024-05-01,2024-04-01,100\n",
        "subscriptions__mrr_yen.csv": "account_id,start_date,mrr\nA1,2024-01-01,¥100\n".encode(),
        "subscriptions__mrr_comma_decimal.csv":
            b'account_id,start_date,mrr\nA1,2024-01-01,"1,20"\n',
        "subscriptions__seats_negative.csv":
            b"account_id,start_date,mrr,seats\nA1,2024-01-01,100,-1\n",
        "subscriptions__term_zero.csv":
            b"account_id,start_date,mrr,term_months\nA1,2024-01-01,100,0\n",
        "subscriptions__renewal_bad.csv":
            b"account_id,start_date,mrr,renewal_date\nA1,2024-01-01,100,next year\n",
        "subscriptions__ok_renewal.csv":
            b"account_id,start_date,mrr,renewal_date,term_months,seats\n"
            b"A1,2024-01-01,100,2025-01-01,12,\"1,500\"\n",
        "not_a_zip.xlsx": b"this is not a workbook",
        "ole_header.xls": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64,
        "broken.parquet": b"PAR1 truncated",
    }


def write(folder: Path = HERE) -> None:
    (folder / "base").mkdir(parents=True, exist_ok=True)
    (folder / "base" / "accounts.csv").write_bytes(acc(*GOOD))
    (folder / "base" / "subscriptions.csv").write_bytes(
        b"account_id,start_date,end_date,mrr\nA1,2024-01-01,,100\nA2,2024-02-01,,900\n")
    for sub in ("mappings", "exports"):
        (folder / sub).mkdir(exist_ok=True)
    for name, text in mappings().items():
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        (folder / "mappings" / f"{name}.yml").write_bytes(data)
    for name, data in exports().items():
        (folder / "exports" / name).write_bytes(data)


if __name__ == "__main__":
    write()
