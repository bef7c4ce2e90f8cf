"""Reading export files: encodings, headers, and chunks of raw cells (CSV, Excel, Parquet).

Source files are only ever opened for reading.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cs_analysis.contract import TABLES
from cs_analysis.io.mapping import FORMATS, TableMapping
from cs_analysis.io.report import (
    R_COLUMN_TYPE,
    R_HEADER,
    R_MISSING_COLUMN,
    R_UNREADABLE,
    Collector,
    one_line,
)
from cs_analysis.io.values import cell_text

#: Rows read, parsed and validated at a time (bounded memory for large event files).
CHUNK_ROWS = 500_000


def _chunk_rows() -> int:
    """:data:`CHUNK_ROWS` as set on the package (``cs_analysis.io.CHUNK_ROWS``) or here."""
    import cs_analysis.io as pkg

    return getattr(pkg, "CHUNK_ROWS", CHUNK_ROWS)


# ----------------------------------------------------------------------------------------
# Encodings
# ----------------------------------------------------------------------------------------
#: Characters of Japanese text: kana, kanji (with the compatibility ideographs such as 﨑),
#: CJK punctuation, full- and half-width forms, enclosed characters (①, ㈱).
_JAPANESE = re.compile(r"[\u3000-\u30ff\u3200-\u33ff\u3400-\u4dbf\u4e00-\u9fff"
                       r"\uf900-\ufaff\uff01-\uff9f\u2460-\u24ff]")
#: Encodings to suggest when a file's encoding cannot be told with confidence.
#: charset-normalizer's guesses that rule CP932 out (Korean and Chinese code pages).
_OTHER_CJK = {codecs.lookup(e).name for e in (
    "cp949", "euc_kr", "johab", "iso2022_kr", "gb2312", "gbk", "gb18030", "hz", "big5",
    "big5hkscs", "cp950")}
ENCODING_HINT = ("cp1252 (Western European Excel exports: Señor, Frédéric, Ærø), cp949 "
                 "(Korean), gb18030 (Chinese), cp932 (Japanese) or utf-8")


def detect_encoding(path) -> str:
    """The text encoding of a CSV export, when it can be told with confidence.

    Only UTF-8 and CP932 are recognised: a wrong guess among the single-byte code pages
    (Latin-1, Windows-1250/1252, ...) or the East Asian double-byte ones turns names into
    mojibake without a word, so any other file needs ``encoding:`` in the mapping.

    Parameters
    ----------
    path : str or Path
        The file (only read).

    Returns
    -------
    str
        ``"utf-8-sig"`` (UTF-8 with a byte-order mark), ``"utf-8"`` (also ASCII), or
        ``"cp932"`` (Japanese: Excel on Japanese Windows writes CP932, and decoding it as
        ``shift_jis_2004`` silently turns 髙 into 郄).

    Raises
    ------
    ValueError
        When the text is neither (with charset-normalizer's guess, to check and then
        name with ``encoding:`` in the mapping).
    """
    return _detect_encoding(Path(path))[0]


def _detect_encoding(path: Path) -> tuple[str, str]:
    with open(path, "rb") as f:
        head = f.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig", "byte-order mark"
        if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            return "utf-16", "byte-order mark"
        f.seek(0)
        window = b""
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            m = re.search(rb"[\x80-\xff]", block)
            if m:
                start = block.rfind(b"\n", 0, m.start()) + 1
                window = block[start:] + f.read(1 << 20)
                break
    if not window:
        return "utf-8", "ASCII only"
    cut = window.rfind(b"\n")
    if cut > 0:
        window = window[:cut]
    try:
        window.decode("utf-8")
        return "utf-8", "detected"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(window).best()
    other_cjk = best is not None and codecs.lookup(best.encoding).name in _OTHER_CJK
    if not other_cjk and _looks_cp932(window):
        return "cp932", "detected"
    guess = f"; it may be {best.encoding}" if best is not None else ""
    raise ValueError(f"text in UTF-8 or CP932; this file is neither{guess}, and encodings "
                     "are never guessed: name it with `encoding:` in this table's entry of "
                     f"the mapping, e.g. {ENCODING_HINT}")


def _looks_cp932(window: bytes) -> bool:
    """Whether bytes are Japanese text in CP932 with high confidence.

    They must decode as CP932 into Japanese characters only (at least 80% of the non-ASCII
    ones), and some two-byte character must have a trail byte of 0x80 or more: Western
    text decoded as CP932 (é followed by a letter reads as a kanji) never does.
    """
    try:
        text = window.decode("cp932")
    except UnicodeDecodeError:
        return False
    non_ascii = [ch for ch in text if ord(ch) > 127]
    if not non_ascii or sum(1 for ch in non_ascii if _JAPANESE.match(ch)) < 0.8 * len(
            non_ascii):
        return False
    # Korean and Chinese double-byte text decodes as CP932 into half-width katakana mixed
    # with kanji; Japanese exports use half-width katakana sparingly
    if sum(1 for ch in non_ascii if "\uff61" <= ch <= "\uff9f") > 0.5 * len(non_ascii):
        return False
    i, n = 0, len(window)
    while i < n:
        b = window[i]
        if 0x81 <= b <= 0x9F or 0xE0 <= b <= 0xFC:  # a lead byte
            if i + 1 < n and window[i + 1] >= 0x80:
                return True
            i += 2
        else:
            i += 1
    return False


# ----------------------------------------------------------------------------------------
# Sources: one file of one table
# ----------------------------------------------------------------------------------------
@dataclass
class Source:
    """One file of one table as it is being read (kind, encoding, headers, positions)."""

    index: int
    table: str
    path: Path
    shown: str
    kind: str
    header_row: int = 1
    encoding: str | None = None
    encoding_how: str = ""
    delimiter: str = ","
    sheet: str | None = None
    headers: list[str] = field(default_factory=list)
    has_quotes: bool = False
    data_offset: int = 0
    used: dict[str, int] = field(default_factory=dict)
    #: Parquet: the Arrow type of each column.
    types: list = field(default_factory=list)
    #: Excel: formula cells without a saved result, ``{record: [(position, "C5: =A1")]}``.
    formulas: dict[int, list[tuple[int, str]]] = field(default_factory=dict)

    @property
    def row_label(self) -> str:
        """``line`` (CSV) or ``row`` (Excel, Parquet), as the report names rows."""
        return "line" if self.kind == "csv" else "row"

    @property
    def display(self) -> str:
        """The file as the report names it (with the sheet for Excel)."""
        return f"{self.shown} [{self.sheet}]" if self.kind == "xlsx" and self.sheet else \
            self.shown

    def describe(self) -> str:
        """How the file was read, for the report (kind, encoding)."""
        if self.kind == "csv":
            how = f", {self.encoding_how}" if self.encoding_how else ""
            return f"{self.display} (csv, {self.encoding}{how})"
        return f"{self.display} ({self.kind})"

    def rows_of(self, recs) -> dict[int, int]:
        """User-visible row numbers of 0-based data record indices."""
        recs = sorted(set(int(r) for r in recs))
        if self.kind == "parquet":
            return {r: r + 1 for r in recs}
        if self.kind == "csv" and self.has_quotes and recs:
            return _csv_lines(self, recs)
        return {r: self.header_row + 1 + r for r in recs}


def _csv_lines(src: Source, recs: list[int]) -> dict[int, int]:
    """Line where each record starts, counting quoted line breaks (one pass, stops early)."""
    need, last = set(recs), recs[-1]
    out: dict[int, int] = {}
    # errors="replace": counting lines needs no exact text, and a file that cannot be
    # decoded further on (reported separately) must not break the report
    with open(src.path, encoding=src.encoding, errors="replace", newline="") as f:
        for _ in range(src.header_row - 1):
            if not f.readline():  # the end of the file (a header_row far below it)
                break
        reader = csv.reader(f, delimiter=src.delimiter)
        next(reader, None)
        prev = reader.line_num
        for rec, _row in enumerate(reader):
            if rec in need:
                out[rec] = src.header_row - 1 + prev + 1
            prev = reader.line_num
            if rec >= last:
                break
    for r in recs:  # should not happen; fall back to the simple count
        out.setdefault(r, src.header_row + 1 + r)
    return out


def open_source(index, tm: TableMapping, path: Path, shown: str, col: Collector,
                 entry: str) -> Source | None:
    """Open one file and read its headers; a file that cannot be read is reported (None)."""
    kind = tm.format or FORMATS.get(path.suffix.lower())
    if kind is None:
        col.add_one(R_UNREADABLE, tm.name, shown, entry=entry,
                    expected="a .csv, .tsv, .txt, .xlsx or .parquet file (or set `format:`)"
                    + ("; save .xls files as .xlsx or CSV" if path.suffix.lower() == ".xls"
                       else ""), value=path.suffix)
        return None
    src = Source(index, tm.name, path, shown, kind, header_row=tm.header_row)
    try:
        if kind == "csv":
            _open_csv(src, tm)
        elif kind == "xlsx":
            _open_xlsx(src, tm)
        else:
            import pyarrow.parquet as pq

            schema = pq.ParquetFile(path).schema_arrow
            src.headers, src.types = list(schema.names), list(schema.types)
    except Exception as exc:  # any reader failure is reported, not raised
        expected = {"csv": "a CSV file", "xlsx": "an Excel .xlsx workbook",
                    "parquet": "a Parquet file"}[kind]
        if isinstance(exc, UnicodeDecodeError):
            expected = (f"text in {src.encoding} ({one_line(exc)}); set `encoding:` in the "
                        "mapping (cp932, utf-8, utf-8-sig)")
        elif isinstance(exc, _SourceError):
            expected = str(exc)
        else:
            expected += f" that can be read ({type(exc).__name__}: {one_line(exc)})"
        col.add_one(R_UNREADABLE, tm.name, src.display, entry=entry, expected=expected)
        return None
    return src


class _SourceError(ValueError):
    pass


def _open_csv(src: Source, tm: TableMapping) -> None:
    if tm.encoding and codecs.lookup(tm.encoding).name == "shift_jis":
        # Excel's "Shift_JIS" is CP932, a superset that also decodes 髙, 﨑, ①, ㈱ ...
        src.encoding, src.encoding_how = "cp932", f"{tm.encoding} in the mapping, read as cp932"
    elif tm.encoding:
        src.encoding, src.encoding_how = tm.encoding, "from the mapping"
    else:
        try:
            src.encoding, src.encoding_how = _detect_encoding(src.path)
        except ValueError as exc:
            raise _SourceError(str(exc)) from None
    src.delimiter = tm.delimiter or ("\t" if src.path.suffix.lower() == ".tsv" else ",")
    with open(src.path, encoding=src.encoding, newline="") as f:
        for _ in range(src.header_row - 1):
            if not f.readline():  # the end of the file (a header_row far below it)
                break
        header = next(csv.reader(f, delimiter=src.delimiter), None)
    if not header:
        raise _SourceError(f"a header on line {src.header_row} (the file is empty there)")
    src.headers = [h.strip().lstrip("\ufeff") for h in header]
    if codecs.lookup(src.encoding).name.startswith(("utf-16", "utf-32")):
        raise _SourceError("a CSV in UTF-8 or CP932 (save it again as \"CSV UTF-8\")")
    with open(src.path, "rb") as f:
        head = f.read(1 << 20)
        newline = b"\n" if b"\n" in head or b"\r" not in head else b"\r"
        offset, seen = 0, 0
        f.seek(0)
        while seen < src.header_row:
            block = f.read(1 << 20)
            if not block:
                offset = f.tell()
                break
            pos = -1
            while seen < src.header_row:
                pos = block.find(newline, pos + 1)
                if pos < 0:
                    break
                seen += 1
            if seen == src.header_row:
                offset = f.tell() - len(block) + pos + 1
            if b'"' in block:
                src.has_quotes = True
        src.data_offset = offset
        while not src.has_quotes and (block := f.read(1 << 20)):
            src.has_quotes = b'"' in block


def _open_xlsx(src: Source, tm: TableMapping) -> None:
    import openpyxl

    wb = openpyxl.load_workbook(src.path, read_only=True, data_only=True)
    try:
        if tm.sheet is None:
            ws = wb.worksheets[0]
        elif str(tm.sheet) in wb.sheetnames:
            ws = wb[str(tm.sheet)]
        else:
            raise _SourceError(f"a sheet named {tm.sheet!r}; the workbook's sheets are: "
                               f"{', '.join(wb.sheetnames)}")
        src.sheet = ws.title
        header = next(ws.iter_rows(min_row=src.header_row, max_row=src.header_row,
                                   values_only=True), None)
    finally:
        wb.close()
    if not header or all(h is None for h in header):
        raise _SourceError(f"a header on sheet row {src.header_row} (it is empty)")
    src.headers = ["" if h is None else cell_text(h).strip() for h in header]


def match_headers(src: Source, tm: TableMapping, col: Collector,
                   entry: str) -> dict[str, int] | None:
    """Canonical column -> position in the source file, reporting what is missing."""
    spec = TABLES[tm.name]
    headers = src.headers
    positions: dict[str, list[int]] = {}
    for i, h in enumerate(headers):
        positions.setdefault(h, []).append(i)
    norm: dict[str, list[int]] = {}
    for i, h in enumerate(headers):
        norm.setdefault(_norm_header(h), []).append(i)
    listing = ", ".join(h for h in headers if h) or "(none)"
    used: dict[str, int] = {}
    ok = True
    for canon, header in tm.columns.items():
        hits = positions.get(header) or positions.get(header.strip())
        if not hits:
            hits = norm.get(_norm_header(header))
        if not hits:
            col.add_one(R_HEADER, tm.name, src.display, column=canon, source_column=header,
                        entry=f"{entry}.columns.{canon}", value=header,
                        expected=f"one of the file's headers: {listing}")
            ok = False
        elif len(hits) > 1:
            col.add_one(R_HEADER, tm.name, src.display, column=canon, source_column=header,
                        entry=f"{entry}.columns.{canon}", value=header,
                        expected=f"a header that appears once (it is in columns "
                                 f"{', '.join(str(h + 1) for h in hits)})")
            ok = False
        else:
            used[canon] = hits[0]
    taken = set(used.values())
    twice = set()
    for canon in spec.names():  # headers that already are canonical names (also ＩＤ, " id ")
        if canon in used or canon in tm.columns:
            continue
        hits = [i for i in norm.get(_norm_header(canon), []) if i not in taken]
        if len(hits) == 1:
            used[canon] = hits[0]
        elif len(hits) > 1:
            twice.add(canon)
            col.add_one(R_HEADER, tm.name, src.display, column=canon, source_column=canon,
                        entry=f"{entry}.columns.{canon}", value=canon,
                        expected=f"a header that appears once (it is in columns "
                                 f"{', '.join(str(h + 1) for h in hits)}); map one of them "
                                 f"with `{canon}: <header>` or rename the other")
            ok = False
    taken = set(used.values())
    for i, h in enumerate(headers):  # extra columns named by prefix (attr_*)
        if h in spec and h not in used and h not in tm.columns and i not in taken \
                and len(positions[h]) == 1:
            used[h] = i
    missing = [c for c in spec.required if c not in used and c not in tm.columns
               and c not in twice]
    for c in missing:
        col.add_one(R_MISSING_COLUMN, tm.name, src.display, column=c,
                    entry=f"{entry}.columns",
                    expected=f"a mapping `{c}: <header>` (a required column of {tm.name}); "
                             f"the file's headers: {listing}")
    if ok and src.kind == "parquet":
        import pyarrow.types as pat

        for canon, i in used.items():
            t = src.types[i]
            if pat.is_nested(t) or pat.is_binary(t) or pat.is_large_binary(t):
                col.add_one(R_COLUMN_TYPE, tm.name, src.display, column=canon,
                            source_column=headers[i], entry=f"{entry}.columns.{canon}",
                            value=str(t),
                            expected=f"a column of single values (text, numbers, dates) for "
                                     f"{canon}; the Parquet column {headers[i]!r} holds {t}")
                ok = False
    return used if ok and not missing else None


def _norm_header(h: str) -> str:
    return unicodedata.normalize("NFKC", h).strip().casefold()


# ----------------------------------------------------------------------------------------
# Reading chunks
# ----------------------------------------------------------------------------------------
def iter_chunks(src: Source, bar=None) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Yield ``(raw cells, 0-based record indices)`` of the columns ``src.used`` needs.

    The frame's columns are the source positions (ints), plus :data:`OVERFLOW` for CSV.
    """
    positions = sorted(set(src.used.values()))
    if src.kind == "csv":
        yield from _csv_chunks(src, positions, bar)
    elif src.kind == "xlsx":
        yield from _xlsx_chunks(src, positions, bar)
    else:
        yield from _parquet_chunks(src, positions, bar)


OVERFLOW = -1


class _AfterHeader(io.RawIOBase):
    """A CSV file seen from its data rows, behind a synthetic header ``c0,…,cN``.

    The synthetic header has one column more than the real one, so pandas reads every
    row's first extra cell into it (a row with too many cells is reported, not shifted).
    """

    def __init__(self, prefix: bytes, f, offset: int):
        self._prefix, self._f = prefix, f
        f.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._f.read(len(b))
        b[: len(data)] = data
        return len(data)


def _csv_chunks(src, positions, bar):
    n = len(src.headers)
    header = src.delimiter.join(f"c{i}" for i in range(n + 1)) + "\n"
    start = 0
    with open(src.path, "rb") as raw_file:
        stream = io.BufferedReader(_AfterHeader(header.encode("ascii"), raw_file,
                                                src.data_offset))
        reader = pd.read_csv(
            stream, encoding=src.encoding, sep=src.delimiter, header=0,
            usecols=positions + [n], dtype=str, na_filter=False,
            keep_default_na=False, skip_blank_lines=False, index_col=False,
            chunksize=_chunk_rows(), engine="c",
        )
        with reader:
            for chunk in reader:
                recs = np.arange(start, start + len(chunk), dtype=np.int64)
                start += len(chunk)
                chunk.columns = [int(c[1:]) if int(c[1:]) < n else OVERFLOW
                                 for c in chunk.columns]
                chunk.index = recs
                if bar is not None:
                    bar.update(raw_file.tell() - bar.n)
                yield chunk, recs


def _xlsx_chunks(src, positions, bar):
    import openpyxl
    from openpyxl.utils import get_column_letter

    wb = openpyxl.load_workbook(src.path, read_only=True, data_only=True)
    try:
        ws = wb[src.sheet]
        cols = idx = positions
        rows: list[tuple] = []
        start = 0

        def frame(rows, start):
            recs = np.arange(start, start + len(rows), dtype=np.int64)
            data = {c: pd.Series([r[k] for r in rows], index=recs, dtype=object)
                    for k, c in enumerate(cols)}
            return pd.DataFrame(data, index=recs, columns=cols), recs

        # formulas are read beside the cached values: a formula cell whose result was
        # never saved (a workbook written by a script, not by Excel) reads as empty
        fwb = openpyxl.load_workbook(src.path, read_only=True, data_only=False)
        formulas = fwb[src.sheet].iter_rows(min_row=src.header_row + 1, values_only=True)
        rec = -1
        for values in ws.iter_rows(min_row=src.header_row + 1, values_only=True):
            rec += 1
            fvalues = next(formulas, ())
            row = tuple(values[i] if i < len(values) else None for i in idx)
            for k, i in enumerate(idx):
                f = fvalues[i] if i < len(fvalues) else None
                if row[k] is None and f is not None and (
                        (isinstance(f, str) and f.startswith("="))
                        or "Formula" in type(f).__name__):
                    text = f if isinstance(f, str) else getattr(f, "text", None) or str(f)
                    cell = f"{get_column_letter(i + 1)}{src.header_row + 1 + rec}"
                    src.formulas.setdefault(rec, []).append((i, f"{cell}: {text}"))
            rows.append(row)
            if len(rows) >= _chunk_rows():
                out = frame(rows, start)
                start += len(rows)
                rows = []
                if bar is not None:
                    bar.update(len(out[1]))
                yield out
        if rows:
            out = frame(rows, start)
            if bar is not None:
                bar.update(len(out[1]))
            yield out
    finally:
        wb.close()
        if "fwb" in locals():
            fwb.close()


def _parquet_chunks(src, positions, bar):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(src.path)
    names = [src.headers[i] for i in positions]
    start = 0
    for batch in pf.iter_batches(batch_size=_chunk_rows(), columns=names):
        df = batch.to_pandas(date_as_object=False)
        df.columns = positions
        for c in df.columns:
            if isinstance(df[c].dtype, pd.CategoricalDtype):
                df[c] = df[c].astype(object)
        recs = np.arange(start, start + len(df), dtype=np.int64)
        start += len(df)
        df.index = recs
        if bar is not None:
            bar.update(len(df))
        yield df, recs
