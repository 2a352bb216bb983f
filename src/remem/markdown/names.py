"""Names on disk: user ids and categories as file-system names, safely and reversibly.

A user's memories live in ``<root>/<name>/`` and a category's in ``<name>.md``; ``name`` is :func:`encode` of the
user id or category:

- ``a``–``z``, ``0``–``9`` and ``_ - . @ +`` stand for themselves;
- an upper-case letter is ``^`` + the letter in lower case (``Alice`` → ``^alice``), so two ids that differ only in
  case never share a directory on a case-insensitive file system (macOS, Windows);
- every other character is percent-encoded, byte by byte of its UTF-8 form (``acme:alice`` → ``acme%3Aalice``;
  ``/``, ``\\``, NUL, ``%`` and ``^`` included), so a name never contains a path separator;
- a leading or trailing ``.`` is percent-encoded (``..`` is never a name; Windows drops trailing dots);
- a name whose stem (before the first ``.``) is reserved — Windows device names ``CON PRN AUX NUL COM0-9 LPT0-9``
  on every OS, and for categories also ``profile``, ``trash`` and ``uncategorized`` (remem's own files) — gets its
  first character percent-encoded (``nul`` → ``%6Eul``).

:func:`decode` is the exact inverse and refuses names that :func:`encode` would not produce. A name longer than
:data:`MAX_NAME_BYTES` is refused (file systems allow 255 bytes per name).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ValidationError

PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.@+")
WINDOWS_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(10)] + [f"lpt{i}" for i in range(10)]
)
#: File names remem itself uses in a user's directory (``<name>.md``).
PROFILE, TRASH, UNCATEGORIZED = "profile", "trash", "uncategorized"
OWN_FILES = frozenset([PROFILE, TRASH, UNCATEGORIZED])
MAX_NAME_BYTES = 255  # NAME_MAX of ext4, APFS, NTFS
_PERCENT = re.compile(r"%([0-9A-F]{2})")


def _escape(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8"))


def encode(value: str, *, reserved: frozenset[str] = WINDOWS_RESERVED, what: str = "name") -> str:
    """The file-system name of ``value`` (see the module docstring); ValidationError if empty or too long."""
    if not value:
        raise ValidationError(f"an empty {what} has no file name")
    out = []
    for ch in value:
        if ch in PLAIN:
            out.append(ch)
        elif "A" <= ch <= "Z":
            out.append("^" + ch.lower())
        else:
            out.append(_escape(ch))
    if out[0] == ".":
        out[0] = "%2E"
    if out[-1] == ".":
        out[-1] = "%2E"
    name = "".join(out)
    if name.split(".", 1)[0] in reserved:
        name = _escape(name[0]) + name[1:]
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValidationError(
            f"the {what} is too long for a file name in the Markdown store ({len(name)} bytes encoded; "
            f"at most {MAX_NAME_BYTES})", field=what)
    return name


def decode(name: str, *, reserved: frozenset[str] = WINDOWS_RESERVED, what: str = "name") -> str:
    """The value :func:`encode` turned into ``name``; ValidationError if ``name`` is not such a name."""
    out = bytearray()
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "%":
            m = _PERCENT.match(name, i)
            if m is None:
                raise ValidationError(f"{name!r} is not a {what} file name (bad % escape)")
            out.append(int(m.group(1), 16))
            i += 3
        elif ch == "^" and i + 1 < len(name) and "a" <= name[i + 1] <= "z":
            out += name[i + 1].upper().encode()
            i += 2
        elif ch in PLAIN:
            out += ch.encode()
            i += 1
        else:
            raise ValidationError(f"{name!r} is not a {what} file name (character {ch!r})")
    try:
        value = out.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{name!r} is not a {what} file name (not UTF-8)") from None
    if not value or encode(value, reserved=reserved, what=what) != name:
        raise ValidationError(f"{name!r} is not a {what} file name in canonical form "
                              f"(remem would write {encode(value, reserved=reserved, what=what) if value else '?'})")
    return value


def category_reserved() -> frozenset[str]:
    return WINDOWS_RESERVED | OWN_FILES


def user_dir(root: Path, user_id: str) -> Path:
    """``root/<encoded user id>``; the user id is validated first (``InvalidUserIdError``), and the result is
    checked to be a direct child of ``root`` (a belt to the encoding's braces)."""
    from ..validation import check_user_id

    name = encode(check_user_id(user_id), what="user id")
    path = root / name
    if path.parent != root or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ValidationError(f"user id {user_id!r} does not map to a directory inside {root}")
    return path


def user_of_dir(name: str) -> str:
    """The user id of a directory name (ValidationError if it is not one remem writes)."""
    from ..validation import check_user_id

    return check_user_id(decode(name, what="user id"))


def category_file(category: str) -> str:
    """``<encoded category>.md``."""
    return encode(category, reserved=category_reserved(), what="category") + ".md"


def category_of_file(filename: str) -> str:
    """The category a ``<name>.md`` file holds (ValidationError if the name is not in remem's form)."""
    return decode(filename.removesuffix(".md"), reserved=category_reserved(), what="category")
