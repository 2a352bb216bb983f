"""Entity resolution: which node a mention ("Maya", "maya", "my sister Maya") is, or whether it is a new one.

Three steps, cheapest first, over the user's entities (plus the new ones of the same batch):

1. **exact name** — the mention's :func:`~remem.graph.names.name_key` equals an entity's name or alias key
   (and the types agree when both are known). Hints agree when either is missing, when one's content words
   contain the other's ("my sister" / "Alice's sister"), or when their embeddings have cosine ≥
   :attr:`Thresholds.hint_same`. A mention *with* a hint joins the one namesake whose hint agrees (one that has
   a hint first; else the one without a hint, which learns it); a *bare* mention ("Maya") joins the only
   namesake, or, among several, the one without a hint. Anything else — hints that disagree ("Alice's sister"
   vs "Alice's colleague at Acme"), a bare "Maya" when every Maya has a hint — is **ambiguous**.
2. **embedding** — the cosine of the mention's name vector with each entity's name vector (same type, and the
   same :func:`~remem.graph.names.identifiers`: "Room 101" is never "Room 102", "2023 Berlin Marathon" never
   "2024 Berlin Marathon", whatever their cosine — 0.91 and 0.98 with the packaged MiniLM):
   ≥ :attr:`Thresholds.same` is a match (spelling variants: "New York" / "New York City" 0.95 with the packaged
   MiniLM); between :attr:`Thresholds.maybe` and ``same`` is ambiguous ("Maya" / "Maya Chen" 0.78, "Acme" /
   "Acme Corp" 0.83); below ``maybe`` is a new entity ("Lisbon" / "Berlin" 0.49).
3. **confirmation** (only for ambiguous mentions, only with an LM — the pipeline passes one): a short
   ``EntityMatch`` call picks one of the candidates or says "new". Without an LM an ambiguous mention is a
   **new entity** (a wrong merge corrupts facts, a missed one only splits them; ``Graph.merge`` joins two nodes
   by hand). So a bare "Maya" said when Alice's sister and Alice's colleague are both known becomes a third,
   hint-less Maya, which later bare mentions join; reads show each with its hint (:func:`~remem.graph.names.labels`).

The thresholds were read off the packaged embedder (all-MiniLM-L6-v2 int8) on the name pairs above; another
embedder may need others (``Graph(thresholds=...)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..embedders import Embedder
from .models import Entity, EntityType
from .names import identifiers, name_key

_WORD = re.compile(r"\w+")
_WEAK = frozenset(["my", "our", "his", "her", "their", "your", "the", "a", "an", "its", "s", "of", "at", "in"])


@dataclass(frozen=True)
class Thresholds:
    """Cosine thresholds of resolution and lookup (see the module docstring for where they come from)."""

    same: float = 0.90
    maybe: float = 0.75
    hint_same: float = 0.80
    lookup: float = 0.50  # a free-text query names an entity when its cosine with the name reaches this


DEFAULT_THRESHOLDS = Thresholds()


@dataclass
class Mention:
    """A name as a triplet or a host gives it, canonicalised (``hint`` may come from "my sister Maya")."""

    name: str
    key: str
    type: EntityType | None
    hint: str | None
    vector: np.ndarray
    context: str = ""  # the sentence it was mentioned in (shown to the confirmation step)
    ids: frozenset[str] | None = None  # its identifier tokens (default: computed from the name)

    def __post_init__(self) -> None:
        if self.ids is None:
            self.ids = identifiers(self.name)


@dataclass
class Candidate:
    entity: Entity
    score: float
    facts: list[str] = field(default_factory=list)  # a few of its relations, for the confirmation step


#: The confirmation step: (mention, candidates) -> index of the matching candidate, or None for a new entity.
Confirm = Callable[[Mention, Sequence[Candidate]], int | None]


@dataclass
class Decision:
    """What resolution decided for one mention: an existing entity (maybe with a new alias or hint) or a new
    one; ``asked`` says whether the confirmation step was called."""

    entity: Entity
    new: bool
    changed: bool = False
    asked: bool = False


def content_words(text: str | None) -> set[str]:
    return {w for w in _WORD.findall((text or "").casefold()) if w not in _WEAK}


class Resolver:
    """Resolves mentions against a working set of a user's entities (loaded once per batch by the caller)."""

    def __init__(self, embedder: Embedder, entities: Sequence[Entity], vectors: np.ndarray | None,
                 thresholds: Thresholds, confirm: Confirm | None = None,
                 facts_of: Callable[[Entity], list[str]] | None = None) -> None:
        self.embedder, self.thresholds, self.confirm = embedder, thresholds, confirm
        self.entities: list[Entity] = list(entities)
        self._matrix = np.asarray(vectors, dtype=np.float32) if vectors is not None and len(vectors) else None
        self._rows = len(self.entities) if self._matrix is not None else 0  # rows of _matrix in use
        self._by_key: dict[str, list[int]] = {}  # name or alias key -> positions in entities
        self._pos: dict[str, int] = {}  # entity id -> position in entities
        self._by_ids: dict[frozenset[str], list[int]] = {}  # identifier tokens -> positions with those
        for i, e in enumerate(self.entities):
            self._index(i, e)
        self.facts_of = facts_of or (lambda e: [])
        self._hint_vectors: dict[str, np.ndarray] = {}

    def _index(self, position: int, entity: Entity) -> None:
        if entity.id not in self._pos:
            self._by_ids.setdefault(identifiers(entity.name), []).append(position)
        self._pos[entity.id] = position
        for key in self.keys(entity):
            slots = self._by_key.setdefault(key, [])
            if position not in slots:
                slots.append(position)

    @property
    def vectors(self) -> np.ndarray:
        """The name vector of each entity of :attr:`entities`, in order (one row each)."""
        if self._matrix is None:
            return np.zeros((0, 0), dtype=np.float32)
        return self._matrix[: self._rows]

    def _append(self, vector: np.ndarray) -> None:
        """Add a row (the matrix grows by doubling: a batch of n new entities costs O(n) copies, not O(n²))."""
        row = np.asarray(vector, dtype=np.float32)
        if self._matrix is None:
            self._matrix = np.zeros((8, row.shape[0]), dtype=np.float32)
        elif self._rows == len(self._matrix):
            self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix)])
        self._matrix[self._rows] = row
        self._rows += 1

    # -- helpers -------------------------------------------------------------------------------------------
    @staticmethod
    def keys(entity: Entity) -> set[str]:
        return {name_key(entity.name), *(name_key(a) for a in entity.aliases)}

    @staticmethod
    def _types_agree(mention: Mention, entity: Entity) -> bool:
        return mention.type is None or mention.type == entity.type

    def _hint_vector(self, hint: str) -> np.ndarray:
        if hint not in self._hint_vectors:
            self._hint_vectors[hint] = self.embedder.embed([hint])[0]
        return self._hint_vectors[hint]

    def hints_agree(self, a: str | None, b: str | None) -> bool:
        if not a or not b or name_key(a) == name_key(b):
            return True
        wa, wb = content_words(a), content_words(b)
        if wa and wb and (wa <= wb or wb <= wa):
            return True
        return float(self._hint_vector(a) @ self._hint_vector(b)) >= self.thresholds.hint_same

    def _ask(self, mention: Mention, candidates: list[Candidate]) -> tuple[Entity | None, bool]:
        """(chosen entity or None for new, whether the LM was asked)."""
        if self.confirm is None:
            return None, False
        for c in candidates:
            c.facts = self.facts_of(c.entity)[:3]
        choice = self.confirm(mention, candidates)
        return (candidates[choice].entity if choice is not None else None), True

    # -- the decision --------------------------------------------------------------------------------------
    def _namesake(self, mention: Mention, exact: list[Entity]) -> Entity | None:
        """The namesake a mention joins without asking (see the module docstring), or None: ambiguous."""
        if mention.hint:
            agreeing = [e for e in exact if self.hints_agree(mention.hint, e.hint)]
            hinted = [e for e in agreeing if e.hint]
            if len(hinted) == 1:
                return hinted[0]
            return exact[0] if len(exact) == 1 and agreeing else None
        if len(exact) == 1:
            return exact[0]
        bare = [e for e in exact if not e.hint]
        return bare[0] if len(bare) == 1 else None

    def resolve(self, mention: Mention, user_id: str) -> Decision:
        exact = [self.entities[i] for i in self._by_key.get(mention.key, [])
                 if self._types_agree(mention, self.entities[i])]
        if exact:
            found = self._namesake(mention, exact)
            if found is not None:
                return self._join(found, mention)
            chosen, asked = self._ask(mention, [Candidate(e, 1.0) for e in exact][:3])
            if chosen is not None:
                return self._join(chosen, mention, asked=True)
            return self._new(mention, user_id, asked=asked)
        similar = self._similar(mention)
        if similar and similar[0].score >= self.thresholds.same and \
                self.hints_agree(mention.hint, similar[0].entity.hint):
            return self._join(similar[0].entity, mention)
        maybe = similar
        if maybe:
            chosen, asked = self._ask(mention, maybe)
            if chosen is not None:
                return self._join(chosen, mention, asked=True)
            return self._new(mention, user_id, asked=asked)
        return self._new(mention, user_id)

    def _similar(self, mention: Mention) -> list[Candidate]:
        """At most 3 entities of the mention's type *and identifiers* with cosine ≥ ``maybe``, best first."""
        rows = [i for i in self._by_ids.get(mention.ids or frozenset(), []) if i < self._rows]
        if not rows:
            return []
        sims = self.vectors[rows] @ mention.vector
        out: list[Candidate] = []
        for k in np.argsort(-sims):
            e, score = self.entities[rows[int(k)]], float(sims[int(k)])
            if score < self.thresholds.maybe:
                break
            if self._types_agree(mention, e):
                out.append(Candidate(e, score))
                if len(out) == 3:
                    break
        return out

    def _join(self, entity: Entity, mention: Mention, *, asked: bool = False) -> Decision:
        """Match: the entity learns the mention's spelling as an alias, and its hint if it had none."""
        changes: dict[str, object] = {}
        if mention.key not in self.keys(entity):  # a new spelling ("NYC" for "New York"), not a new case
            changes["aliases"] = [*entity.aliases, mention.name]
        if mention.hint and not entity.hint:
            changes["hint"] = mention.hint
        if entity.type == "thing" and mention.type not in (None, "thing"):
            changes["type"] = mention.type
        if not changes:
            return Decision(entity=entity, new=False, asked=asked)
        updated = entity.model_copy(update=changes)
        position = self._pos[entity.id]
        self.entities[position] = updated
        self._index(position, updated)
        return Decision(entity=updated, new=False, changed=True, asked=asked)

    def _new(self, mention: Mention, user_id: str, *, asked: bool = False) -> Decision:
        entity = Entity(user_id=user_id, name=mention.name, type=mention.type or "thing", hint=mention.hint)
        self.entities.append(entity)
        self._append(mention.vector)
        self._index(len(self.entities) - 1, entity)
        return Decision(entity=entity, new=True, asked=asked)
