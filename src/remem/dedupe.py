"""When a near-duplicate is really a duplicate: the guard behind every dense-cosine NOOP.

Dense similarity cannot tell "Alice is allergic to peanuts" from "Alice is not allergic to peanuts", "10 mg" from
"40 mg", or "room 101" from "room 102" (cosine 0.93-0.99 with the packaged MiniLM): a cosine threshold alone
would throw away exactly the facts that change something. So a text close to an existing memory is a duplicate
only if it **adds no word**: every word of it (lower-cased, ``\\w+`` runs, so digits, negations, weekdays and
single letters count; only the articles a/an/the are ignored) already occurs in the existing memory. Anything
else is new information and goes where new information goes (the maintenance agent in the pipeline, an ADD in
the writer). Exact duplicates (same normalised text) are NOOPs without this check.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+")
_IGNORED = frozenset({"a", "an", "the"})


def words(text: str) -> set[str]:
    """The lower-cased ``\\w+`` words of ``text``, without articles."""
    return {w for w in _WORD.findall(text.lower()) if w not in _IGNORED}


def adds_nothing(new: str, existing: str) -> bool:
    """True if every word of ``new`` already occurs in ``existing`` (see the module docstring)."""
    return words(new) <= words(existing)
