"""Long memories, findable in every part: the text is stored whole, and indexed as linked *chunks*.

An embedder reads a window (all-MiniLM-L6-v2: 256 word pieces, about 1,000 characters of English); a pasted
document or a long message beyond it would be found only by its beginning. A memory longer than
:data:`CHUNK_THRESHOLD` characters therefore gets extra index points: records of kind ``chunk``, each holding
about :data:`CHUNK_CHARS` characters of the text (cut at a paragraph, sentence or word boundary, overlapping by
:data:`OVERLAP_CHARS`), with the memory's user, categories and time, and ``parent_id`` naming the memory.

Chunks are index entries, not memories: reads (``get``, ``list``, counts, export, ``remem doctor``) never see
them (:class:`~remem.stores.base.MemoryFilter` excludes the kind unless asked), history does not record them,
and search maps a chunk hit to its memory (:attr:`remem.models.SearchHit.chunk` says which part matched). They
are written with the memory in the same store call, by the one write path (:mod:`remem.writer`), and their ids
are derived from the memory's id and the part number, so rewriting or erasing them needs no lookup.
"""

from __future__ import annotations

import re
import uuid

from .models import MemoryRecord

#: Characters per chunk: ≈ 256 word pieces of English prose (MiniLM's window), measured on LoCoMo/LongMemEval
#: turns at ≈ 4.1 characters per word piece.
CHUNK_CHARS = 1000
#: Overlap between consecutive chunks, so a sentence cut by a boundary is whole in one of them.
OVERLAP_CHARS = 150
#: Texts up to this length are one index point (a short tail is not worth a second point).
CHUNK_THRESHOLD = 1200

_NAMESPACE = uuid.UUID("6f1c1f33-58a4-4d39-9a4d-2a1b8c0d9e11")
_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"[.!?。！？]\s"), re.compile(r"\n"), re.compile(r"\s"))


def needs_chunks(text: str) -> bool:
    return len(text) > CHUNK_THRESHOLD


def split(text: str, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    """Consecutive overlapping parts of ``text``, each at most ``size`` characters, cut at the latest
    paragraph, sentence, line or word break in the second half of the window (else at ``size``)."""
    parts: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            window = text[start:end]
            for pattern in _BREAKS:
                cuts = [m.end() for m in pattern.finditer(window) if m.end() > size // 2]
                if cuts:
                    end = start + cuts[-1]
                    break
        piece = text[start:end].strip()
        if piece:
            parts.append(piece)
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
        while start < end and not text[start - 1].isspace() and not text[start].isspace():
            start += 1  # begin the overlap at a word boundary
    return parts


def chunk_id(parent_id: str, part: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{parent_id}:{part}"))


def chunk_ids(record: MemoryRecord | None) -> list[str]:
    """The ids of the chunks ``record`` has in the index (none for a short text or no record)."""
    if record is None or record.kind == "chunk" or not needs_chunks(record.text):
        return []
    return [chunk_id(record.id, i) for i in range(len(split(record.text)))]


def chunks_of(record: MemoryRecord) -> list[MemoryRecord]:
    """The chunk records of a long memory (empty for a short one)."""
    if record.kind == "chunk" or not needs_chunks(record.text):
        return []
    return [
        MemoryRecord(
            id=chunk_id(record.id, i), user_id=record.user_id, text=part, kind="chunk", parent_id=record.id,
            seq=i, categories=record.categories, created_at=record.created_at, updated_at=record.updated_at,
            observed_at=record.observed_at or record.created_at, source_ids=record.source_ids,
            deleted_at=record.deleted_at,
        )
        for i, part in enumerate(split(record.text))
    ]
