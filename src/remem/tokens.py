"""Counting LLM tokens offline: OpenAI's ``cl100k_base`` BPE through ``tiktoken``, with its ranks shipped in remem.

``tiktoken`` downloads an encoding's rank file on first use, which fails without internet; remem ships
``cl100k_base.tiktoken`` (gzipped, ``remem/assets/``) and checks it against the sha256 that tiktoken itself pins
for that file (``tiktoken_ext.openai_public``) before building the :class:`tiktoken.Encoding` from it, so the
counts are exactly tiktoken's. Special-token strings in user text are counted as ordinary text.

Why ``cl100k_base`` (GPT-4 / GPT-3.5): measured on the dev data (``../shared``), over the LoCoMo turns
(``"Speaker: text"``, 28,902 cl100k tokens) ``o200k_base`` (GPT-4o and later) counts 0.966x, the packaged
all-MiniLM WordPiece tokenizer 1.019x, an older Claude tokenizer (shipped in litellm) 1.023x; over the
LongMemEval_S dev haystacks (2.08M tokens) 0.985x, 1.059x and 1.064x. So a cl100k budget is slightly
conservative for current OpenAI models and within ~2-6% of the others; its rank file is half the size of
o200k's (0.78 MB gzipped).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

ENCODING = "cl100k_base"
RANKS_PATH = Path(__file__).parent / "assets" / "cl100k_base.tiktoken.gz"
#: sha256 of the uncompressed rank file, as pinned by tiktoken 0.14 (``tiktoken_ext/openai_public.py``).
RANKS_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
#: cl100k's pre-tokenisation pattern (``tiktoken_ext/openai_public.py``).
PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
           r"""\s*[\r\n]|\s+(?!\S)|\s""")

_lock = threading.Lock()
_encoding: Any = None


def load_ranks(path: Path = RANKS_PATH, expected: str = RANKS_SHA256) -> dict[bytes, int]:
    """The BPE ranks of a gzipped ``.tiktoken`` file (one ``base64-token rank`` per line), sha256-checked.

    Raises ConfigurationError when the file is missing, unreadable or not the expected file.
    """
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ConfigurationError(f"cannot read the token rank file {path}: {exc}", path=str(path)) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ConfigurationError(f"token rank file {path} has sha256 {digest}, expected {expected}; reinstall remem",
                                 path=str(path), sha256=digest)
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}


def encoding() -> Any:
    """The shared ``tiktoken.Encoding`` for ``cl100k_base`` (built once per process, ~0.2 s; thread-safe)."""
    global _encoding
    if _encoding is None:
        with _lock:
            if _encoding is None:
                try:
                    import tiktoken
                except ImportError as exc:  # pragma: no cover - a dependency of remem
                    raise ConfigurationError("token counting needs the package 'tiktoken'") from exc
                _encoding = tiktoken.Encoding(name=ENCODING, pat_str=PATTERN, mergeable_ranks=load_ranks(),
                                              special_tokens={})
    return _encoding


def count_tokens(text: str) -> int:
    """Number of ``cl100k_base`` tokens of ``text`` (special-token strings count as plain text)."""
    if not text:
        return 0
    return len(encoding().encode_ordinary(text))


def count_many(texts: list[str]) -> list[int]:
    """:func:`count_tokens` of each text (a loop: tiktoken's batch call starts a thread pool per call, which
    costs more than it saves on the short texts counted here)."""
    encode = encoding().encode_ordinary
    return [len(encode(t)) if t else 0 for t in texts]


__all__ = ["ENCODING", "count_many", "count_tokens", "encoding", "load_ranks"]
