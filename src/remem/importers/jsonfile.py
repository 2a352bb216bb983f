"""Reading an export file: bounded in size and nesting before it is parsed, errors with their position.

An export is read whole (a chat export is one JSON document), so two limits keep a hostile or mistaken file
from taking the machine down; both are checked before ``json.loads`` sees the text:

* **Size**: at most ``max_bytes`` bytes of JSON (default :data:`MAX_IMPORT_BYTES`, 256 MiB), counted as read —
  the plain file, or the ``conversations.json`` member of an export zip *as it decompresses*, so a small zip
  holding gigabytes (a zip bomb) is stopped after ``max_bytes + 1`` bytes, whatever its header claims.
  Reading holds the text and its Python objects at once: about 5 times the file's size in memory (172 MB of
  ChatGPT-shaped JSON: 868 MB peak RSS; review 2 saw 906 MB for a 300 MB ``conversations.json``).
  ``import_export(..., max_bytes=...)`` / ``remem import --max-bytes`` raises the limit for a larger export.
* **Nesting**: lists and objects at most :data:`MAX_IMPORT_NESTING` (64) deep. The format samples in
  ``tests/data/imports/`` nest 4 to 8 deep; ``"[" * 200000`` would otherwise end in a ``RecursionError``
  inside the parser. The check is vectorised (numpy, 1 MiB at a time): on a 172 MB ChatGPT-shaped file dense
  in brackets and escaped quotes it took 1.4 to 2.6 s on the shared 2-core dev machine, where decoding and
  parsing took 5.4 s.

Every refusal is an :class:`~remem.errors.ImportFormatError` naming the file and, where there is one, the
line and column (``export.json:3:17: ...``).
"""

from __future__ import annotations

import codecs
import json
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import ImportFormatError

#: Default largest JSON document an import reads (bytes, after decompression): 256 MiB.
MAX_IMPORT_BYTES = 256 * 1024 * 1024
#: Deepest nesting of JSON lists and objects an import accepts.
MAX_IMPORT_NESTING = 64
_CHUNK = 1 << 20
_QUOTE, _BACKSLASH = 0x22, 0x5C
_OPEN, _CLOSE = (0x5B, 0x7B), (0x5D, 0x7D)


def _too_big(where: object, max_bytes: int) -> ImportFormatError:
    return ImportFormatError(
        f"{where}: more than {max_bytes:,} bytes of JSON, the import limit (raise it with --max-bytes / "
        "max_bytes= if this export is genuine)", path=str(where), limit=max_bytes)


def _read_at_most(fh: IO[bytes], max_bytes: int) -> bytearray:
    """Up to ``max_bytes + 1`` bytes, read 1 MiB at a time into one growing buffer (no second copy)."""
    buf = bytearray()
    while len(buf) <= max_bytes:
        chunk = fh.read(min(_CHUNK, max_bytes + 1 - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def read_bounded(path: Path, *, max_bytes: int = MAX_IMPORT_BYTES, zip_member: str | None = None
                 ) -> tuple[bytearray, str]:
    """The file's bytes (or its zip member's, decompressed) and the name to show in errors.

    Raises ``ImportFormatError`` when the file cannot be read, is not a readable zip, lacks ``zip_member``
    or holds more than ``max_bytes`` bytes.
    """
    try:
        if zip_member is not None and path.is_file() and zipfile.is_zipfile(path):
            return _read_member(path, zip_member, max_bytes)
        with path.open("rb") as fh:  # read, not stat(): a FIFO or /dev/zero has no size to trust
            raw = _read_at_most(fh, max_bytes)
    except OSError as exc:
        raise ImportFormatError(f"cannot read {path}: {exc.strerror or exc}", path=str(path)) from None
    if len(raw) > max_bytes:
        raise _too_big(path, max_bytes)
    return raw, str(path)


def _read_member(path: Path, member: str, max_bytes: int) -> tuple[bytearray, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [i for i in archive.infolist() if i.filename == member or i.filename.endswith("/" + member)]
            if not infos:
                raise ImportFormatError(f"{path}: the archive has no {member}", path=str(path))
            info = infos[0]
            shown = f"{path}:{info.filename}"
            if info.file_size > max_bytes:  # what the header claims; the read below is bounded regardless
                raise _too_big(shown, max_bytes)
            with archive.open(info) as fh:
                raw = _read_at_most(fh, max_bytes)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise ImportFormatError(f"{path}: not a readable zip archive ({exc})", path=str(path)) from None
    except RuntimeError as exc:  # zipfile's word for an encrypted member
        raise ImportFormatError(f"{path}: cannot read {member} from the archive ({exc})", path=str(path)) from None
    if len(raw) > max_bytes:
        raise _too_big(shown, max_bytes)
    return raw, shown


_STEP = np.zeros(256, dtype=np.int8)
_STEP[[0x5B, 0x7B]] = 1  # [ {
_STEP[[0x5D, 0x7D]] = -1  # ] }
_BRACKET = _STEP != 0


def nesting_offset(raw: bytes | bytearray, limit: int) -> int | None:
    """The byte offset of the first ``[`` or ``{`` nested deeper than ``limit`` (brackets inside JSON strings do
    not count), or None. A quote preceded by an odd run of backslashes is escaped."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return None
    data = np.frombuffer(raw, dtype=np.uint8)
    depth = 0
    in_string = 0
    for start in range(0, len(data), _CHUNK):
        chunk = data[start : start + _CHUNK]
        brackets = np.flatnonzero(_BRACKET[chunk])
        quotes = np.flatnonzero(chunk == _QUOTE)
        if quotes.size:
            quotes = quotes[~_escaped(data, quotes + start)]
        # a bracket is text when an odd number of real quotes (plus the string open at the chunk's start) precede it
        outside = (np.searchsorted(quotes, brackets) + in_string) % 2 == 0
        kept = brackets[outside]
        levels = np.cumsum(_STEP[chunk[kept]], dtype=np.int64) + depth
        over = np.flatnonzero(levels > limit)
        if over.size:
            return start + int(kept[over[0]])
        if levels.size:
            depth = int(levels[-1])
        in_string = (in_string + len(quotes)) % 2
    return None


def _escaped(data: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """Which quotes (global offsets) follow an odd run of backslashes. Runs are counted back a step at a time
    for the quotes still in a run (runs are short); a run longer than 64 is counted with one vectorised pass."""
    escaped = np.zeros(len(quotes), dtype=bool)
    active = np.flatnonzero(data[np.maximum(quotes - 1, 0)] == _BACKSLASH)
    active = active[quotes[active] > 0]
    back = 1
    while active.size:
        if back > 64:
            return _escaped_long(data, quotes)
        escaped[active] = ~escaped[active]  # one more backslash before these quotes
        back += 1
        active = active[quotes[active] >= back]
        active = active[data[quotes[active] - back] == _BACKSLASH]
    return escaped


def _escaped_long(data: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    lo = int(quotes[0])
    while lo > 0 and data[lo - 1] == _BACKSLASH:
        lo -= 1
    span = data[lo : int(quotes[-1])]
    offsets = np.arange(lo, lo + len(span), dtype=np.int64)
    plain = np.maximum.accumulate(np.where(span != _BACKSLASH, offsets, lo - 1))  # last non-backslash so far
    after = quotes > lo  # a quote at ``lo`` has no backslash before it
    runs = (quotes - 1) - plain[np.maximum(quotes - 1 - lo, 0)]
    return np.asarray(after & (runs % 2 == 1))


def _line_column(raw: bytes | bytearray, offset: int) -> tuple[int, int]:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[line_start:offset].decode("utf-8", "replace")) + 1
    return raw.count(b"\n", 0, offset) + 1, column


def parse_json(raw: bytes | bytearray, where: str, *, max_nesting: int = MAX_IMPORT_NESTING) -> Any:
    """``raw`` as a JSON value; ``ImportFormatError`` with the line and column of an encoding or syntax error or
    of the first bracket nested deeper than ``max_nesting``. The bytes are let go before parsing (a caller that
    hands them over, as :func:`read_json` does, holds the text and its objects, not the bytes too)."""
    if raw.startswith(codecs.BOM_UTF8):  # noqa: FURB188 - bytearray.removeprefix copies even without a BOM
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ImportFormatError(f"{where}:{line}: not valid UTF-8", path=where, line=line) from None
    if not text or text.isspace():
        raise ImportFormatError(f"{where} is empty", path=where)
    deep = nesting_offset(raw, max_nesting)
    if deep is not None:
        line, column = _line_column(raw, deep)
        raise ImportFormatError(f"{where}:{line}:{column}: JSON nested more than {max_nesting} levels deep",
                                path=where, line=line, column=column)
    del raw
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"{where}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})", path=where,
                                line=exc.lineno, column=exc.colno) from None


def read_json(path: Path, *, zip_member: str | None = None, max_bytes: int = MAX_IMPORT_BYTES) -> Any:
    """The JSON value of ``path`` (or of its zip's ``zip_member``), within the module's limits."""
    return parse_json(*read_bounded(path, max_bytes=max_bytes, zip_member=zip_member))
