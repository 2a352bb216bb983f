"""LangGraph long-term memory on remem: ``graph.compile(store=RememStore(memory))``.

Install ``remem[langgraph]``. :class:`RememStore` is a ``langgraph.store.base.BaseStore``: ``put``, ``get``,
``search`` (with ``query=`` for semantic search), ``delete`` and ``list_namespaces``, sync and async (``aput``,
``aget``, … run the same code in a worker thread, as :class:`remem.AsyncMemory` does).

How a namespace maps onto remem
-------------------------------
* One label of the namespace is the **remem user** (``user_label``, default 0: ``("alice", "memories")``).
  It is the isolation boundary: every read and write is one :class:`remem.Memory` call scoped to that user, so
  ``search(("alice",), query=...)`` can never return bob's items. A ``search`` whose prefix does not reach the
  user label is refused (``InvalidNamespaceError``).
* **Which users a store reaches.** ``RememStore(memory, users=["alice"])`` (or ``users="alice"``) binds the
  store to those users: an operation on any other user's namespace is refused (``InvalidNamespaceError``), and
  ``list_namespaces()`` without a user in its prefix lists only theirs. An unbound store (``users=None``, the
  default) reaches every user its namespaces name — the graph's code chooses the user, as in LangGraph — but
  ``list_namespaces()`` without a user in its prefix (no prefix, a ``"*"`` at the user label, a suffix only) is
  refused unless the host built it with ``list_all_users=True``: listing across users (every tenant's, on a
  shared server) is an admin's explicit choice, never a default.
* The other labels become **categories**: ``("alice", "memories", "work")`` is stored with the categories
  ``langgraph``, ``langgraph/memories`` and ``langgraph/memories/work`` (lower-cased like every remem
  category; a path longer than 64 characters is replaced by ``langgraph#<sha256 prefix>``), so a prefix search is
  one category filter in the store. The exact namespace is kept in the memory's metadata and checked again.
* An **item** is one ``fact`` memory. Its text is what remem embeds and BM25 indexes: by default every string in
  the value, one per line (``{"text": "Alice is vegan"}`` is the memory "Alice is vegan"); with LangGraph's
  ``index`` fields (``index={"fields": [...]}`` on the store, or ``put(..., index=[...])``; ``"$"`` is the whole
  value as JSON) the text at those paths. A value with no text there is stored as its JSON and found by
  ``filter`` only. The text is cut to ``REMEM_MAX_TEXT_CHARS``. The value itself, the namespace and the key
  are stored under ``metadata["langgraph"]``. Its id is ``uuid5(namespace, key)``, so ``get`` is one lookup.
* ``delete`` is remem's soft delete (restorable, in history). A key put again after a delete becomes a new
  memory (``uuid5`` of namespace, key and a counter), so a key deleted ``n`` times costs ``n + 1`` lookups.
* ``search(query=...)`` is remem's hybrid search (dense + BM25, RRF) over the prefix's category; items put with
  ``index=False`` (or whose index fields are absent) are found by ``filter`` only. ``SearchItem.score`` is the
  fused score; a query search with a ``filter`` looks at the best 1,000 candidates at most. Without a query,
  items come newest first. ``filter`` matches values like LangGraph's own stores (exact values, nested objects,
  ``$eq $ne $gt $gte $lt $lte``), applied after the store's category filter.
* TTLs are not supported (``supports_ttl = False``): LangGraph refuses ``ttl=`` before calling the store.
* **Limits.** Namespace labels follow LangGraph's rules (non-empty, no ``.``) and remem's label rules (no
  control characters, no lone surrogate); a key must be storable text (no NUL, no lone surrogate). The value,
  namespace and key are kept in the memory's metadata, so together they obey remem's metadata limits: JSON
  types (no NaN), values nested at most 6 deep (8 levels of metadata minus two for ``langgraph.value``) and
  16 KiB as JSON. Beyond them, ``put`` raises :class:`remem.ValidationError` naming the path.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from langgraph.store.base.embed import get_text_at_path
from pydantic import ValidationError as PydanticValidationError

from ..bounds import bad_char, shown
from ..errors import ConfigurationError, NotFoundError, ValidationError
from ..memory.aio import AsyncMemory
from ..memory.core import Memory
from ..models import MemoryRecord
from ..validation import check_user_id

SOURCE = "langgraph"
#: uuid5 namespace of item ids (fixed: ids must stay the same across versions).
ITEM_NAMESPACE = uuid.UUID("6f1d8a52-3c1e-5b7a-9d2e-4a8f0c6b1e37")
MAX_CATEGORY = 64
PAGE = 1000
MAX_SEARCH = 1000


class RememStore(BaseStore):
    """A LangGraph store on a :class:`remem.Memory` (see the module docstring for the mapping).

    ``memory``: a :class:`remem.Memory` or :class:`remem.AsyncMemory`. ``user_label``: index of the namespace
    label that names the remem user. ``index``: LangGraph's index config; only ``fields`` is used (remem embeds
    with its own embedder, so ``embed``/``dims`` are refused with a ``ConfigurationError``). ``users``: the
    only users this store reaches (one id or several); ``list_all_users``: let an unbound store's
    ``list_namespaces`` list every user's namespaces (see the module docstring).
    """

    supports_ttl = False

    def __init__(self, memory: Memory | AsyncMemory, *, user_label: int = 0,
                 index: Mapping[str, Any] | None = None, users: str | Iterable[str] | None = None,
                 list_all_users: bool = False) -> None:
        self.memory: Memory = memory.sync if isinstance(memory, AsyncMemory) else memory
        if not isinstance(user_label, int) or user_label < 0:
            raise ValidationError(f"user_label must be a non-negative integer, got {user_label!r}")
        self.user_label = user_label
        if isinstance(users, str):
            users = [users]
        self.users: list[str] | None = None if users is None else sorted({check_user_id(u) for u in users})
        if self.users is not None and not self.users:
            raise ConfigurationError("users=[] binds the store to nobody: name at least one user, or None")
        if list_all_users and self.users is not None:
            raise ConfigurationError("list_all_users=True is for a store not bound to users (users=None)")
        self.list_all_users = bool(list_all_users)
        config = dict(index or {})
        extra = set(config) - {"fields"}
        if extra:
            raise ConfigurationError(f"RememStore index config takes only 'fields' (remem embeds with its own "
                                     f"embedder: choose it with Memory(embedder=...)); got {sorted(extra)}")
        self.fields: list[str] | None = list(config["fields"]) if config.get("fields") else None

    # -- BaseStore ----------------------------------------------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order (a later op sees the effect of an earlier one)."""
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, PutOp):
                self._put(op)
                results.append(None)
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise ValidationError(f"unknown store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))

    # -- mapping ------------------------------------------------------------------------------------------
    def _user(self, namespace: tuple[str, ...]) -> str:
        _check_labels(namespace)
        if len(namespace) <= self.user_label:
            raise InvalidNamespaceError(
                f"namespace {namespace} has no user label at position {self.user_label}: remem scopes every "
                "read and write to one user")
        return self._allowed(check_user_id(namespace[self.user_label]))

    def _allowed(self, user: str) -> str:
        if self.users is not None and user not in self.users:
            raise InvalidNamespaceError(f"user {user!r} is not one of this store's users ({', '.join(self.users)})")
        return user

    def _rest(self, namespace: tuple[str, ...]) -> tuple[str, ...]:
        return namespace[: self.user_label] + namespace[self.user_label + 1 :]

    @staticmethod
    def _category(rest: tuple[str, ...]) -> str:
        name = "/".join((SOURCE, *rest))
        if len(name) > MAX_CATEGORY:
            name = f"{SOURCE}#{hashlib.sha256(name.encode('utf-8')).hexdigest()[:24]}"
        return name

    def _categories(self, namespace: tuple[str, ...]) -> list[str]:
        rest = self._rest(namespace)
        return [self._category(rest[:n]) for n in range(len(rest) + 1)]

    @staticmethod
    def _id(namespace: tuple[str, ...], key: str, generation: int) -> str:
        return str(uuid.uuid5(ITEM_NAMESPACE, json.dumps([list(namespace), key, generation])))

    def _find(self, namespace: tuple[str, ...], key: str) -> tuple[int, MemoryRecord | None]:
        """(generation, live record) of an item, or (the next free generation, None)."""
        user = self._user(namespace)
        generation = 0
        while True:
            try:
                record = self.memory.get(self._id(namespace, key, generation), user_id=user, include_deleted=True)
            except NotFoundError:
                return generation, None
            if record.deleted_at is None:
                return generation, record
            generation += 1

    def _text(self, value: Mapping[str, Any], index: list[str] | None) -> tuple[str, bool]:
        """The text remem embeds for a value and whether the value had anything at its index fields."""
        texts: list[str] = []
        paths = index if index is not None else self.fields
        if paths is None:
            texts = [t for t in _strings(value) if t.strip()]
        for path in paths or []:
            texts.extend(t for t in get_text_at_path(dict(value), path) if t.strip())
        indexed = bool(texts)
        text = "\n".join(texts) if indexed else json.dumps(dict(value), sort_keys=True, ensure_ascii=False)
        return text[: self.memory.settings.max_text_chars], indexed

    # -- operations ---------------------------------------------------------------------------------------
    def _get(self, op: GetOp) -> Item | None:
        _, record = self._find(op.namespace, op.key)
        if record is None:
            return None
        meta = record.metadata[SOURCE]
        return Item(namespace=tuple(meta["namespace"]), key=meta["key"], value=meta["value"],
                    created_at=record.created_at, updated_at=record.updated_at)

    def _put(self, op: PutOp) -> None:
        user = self._user(op.namespace)
        generation, live = self._find(op.namespace, op.key)
        if op.value is None:
            if live is not None:
                self.memory.delete(live.id, user_id=user, actor=SOURCE,
                                   reason="deleted through the LangGraph store")
            return
        if not isinstance(op.value, Mapping):
            raise ValidationError(f"a LangGraph store value must be a mapping, got {type(op.value).__name__}")
        value = dict(op.value)
        if not isinstance(op.key, str) or (problem := bad_char(op.key)) is not None:
            raise ValidationError(f"key {shown(op.key)} of {op.namespace} "
                                  f"{problem or 'must be a string'}", field="key")
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"value of {op.namespace}/{op.key} is not JSON-serialisable: {exc}") from exc
        if op.index is False:
            text, indexed = self._text(value, None)[0], False
        else:
            text, indexed = self._text(value, None if op.index is None else list(op.index))
        meta = {SOURCE: {"namespace": list(op.namespace), "key": op.key, "value": value, "indexed": indexed}}
        categories = self._categories(op.namespace)
        try:
            if live is not None:
                self.memory.update(live.id, text, user_id=user, categories=categories, metadata=meta, actor=SOURCE)
                return
            record = MemoryRecord(id=self._id(op.namespace, op.key, generation), user_id=user, text=text,
                                  kind="fact", categories=categories, metadata=meta)
        except PydanticValidationError as exc:  # a value beyond the metadata limits (module docstring)
            first = exc.errors()[0]
            raise ValidationError(f"cannot store {op.namespace}/{shown(op.key)}: "
                                  f"{first['msg'].removeprefix('Value error, ')}", field="value") from None
        self.memory.add_records([record], actor=SOURCE, dedupe=False)

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        user = self._user(prefix)
        category = self._category(self._rest(prefix))
        if op.limit <= 0 or op.offset < 0:
            return []
        want = op.offset + op.limit

        def keep(record: MemoryRecord, *, needs_index: bool) -> bool:
            meta = record.metadata.get(SOURCE)
            if not isinstance(meta, dict) or tuple(meta["namespace"])[: len(prefix)] != prefix:
                return False
            if needs_index and not meta.get("indexed", True):
                return False
            return not op.filter or _matches(meta["value"], op.filter)

        found: list[SearchItem] = []
        if op.query:
            asked = min(MAX_SEARCH, max(want * 2, 10))
            while True:
                hits = self.memory.search(op.query, user_id=user, categories=[category], kinds=["fact"],
                                          limit=asked, expand_neighbors=0, dedupe=False)
                found = [_item(h.record, h.score) for h in hits if keep(h.record, needs_index=True)]
                if len(found) >= want or len(hits) < asked or asked >= MAX_SEARCH:
                    break
                asked = min(MAX_SEARCH, asked * 4)
        else:
            for record in self._scan(user, category):
                if keep(record, needs_index=False):
                    found.append(_item(record))
                    if len(found) >= want:
                        break
        return found[op.offset : want]

    def _scan(self, user: str, category: str) -> Iterator[MemoryRecord]:
        """The user's live items in a category, newest first, page by page."""
        offset: int | None = 0
        while offset is not None:
            page = self.memory.list(user_id=user, categories=[category], kinds=["fact"], offset=offset, limit=PAGE)
            yield from page.items
            offset = page.next_offset

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = tuple(op.match_conditions or ())
        for c in conditions:
            _check_labels(tuple(label for label in c.path if label != "*"))
        users = self._users_named(conditions)
        namespaces: set[tuple[str, ...]] = set()
        for user in users:
            for record in self._scan(user, SOURCE):
                meta = record.metadata.get(SOURCE)
                if not isinstance(meta, dict):
                    continue
                ns = tuple(meta["namespace"])
                if all(_namespace_matches(c, ns) for c in conditions):
                    namespaces.add(ns[: op.max_depth] if op.max_depth is not None else ns)
        return sorted(namespaces)[op.offset : op.offset + op.limit]

    def _users_named(self, conditions: Sequence[MatchCondition]) -> list[str]:
        """The one user a prefix condition names; else the store's users, or every user when the host opted in
        (``list_all_users``); else ``InvalidNamespaceError``."""
        for c in conditions:
            if c.match_type == "prefix" and len(c.path) > self.user_label and c.path[self.user_label] != "*":
                return [self._allowed(check_user_id(c.path[self.user_label]))]
        if self.users is not None:
            return list(self.users)
        if self.list_all_users:
            return self.memory.users()
        raise InvalidNamespaceError(
            "list_namespaces without a user in the prefix would list every user's namespaces: give the user "
            f"(prefix with the user at position {self.user_label}), bind the store (RememStore(memory, "
            "users=[...])) or, for an admin's view, build it with list_all_users=True")


def _check_labels(namespace: tuple[str, ...]) -> None:
    """LangGraph's label rules (also for ops passed straight to ``batch``, which skip BaseStore's checks) and
    remem's: no control character, no lone surrogate (a label becomes part of a category)."""
    for label in namespace:
        if (not isinstance(label, str) or not label or "." in label or bad_char(label) is not None
                or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in label)):
            raise InvalidNamespaceError(
                f"invalid namespace label {shown(label)} in {shown(namespace, 120)}: labels are non-empty strings without "
                "'.', control characters or lone surrogates")


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, depth first in key order (the default text of an item)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _item(record: MemoryRecord, score: float | None = None) -> SearchItem:
    meta = record.metadata[SOURCE]
    return SearchItem(namespace=tuple(meta["namespace"]), key=meta["key"], value=meta["value"],
                      created_at=record.created_at, updated_at=record.updated_at, score=score)


def _namespace_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    pairs = zip(namespace, path) if condition.match_type == "prefix" else zip(reversed(namespace), reversed(path))
    return all(p == "*" or n == p for n, p in pairs)


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda a, b: a == b,
    "$ne": lambda a, b: a != b,
    "$gt": lambda a, b: a is not None and a > b,
    "$gte": lambda a, b: a is not None and a >= b,
    "$lt": lambda a, b: a is not None and a < b,
    "$lte": lambda a, b: a is not None and a <= b,
}


def _matches(value: Any, condition: Any) -> bool:
    """LangGraph's filter semantics: a dict of field -> exact value, nested dict, or ``{"$op": operand}``."""
    if isinstance(condition, dict):
        if any(k.startswith("$") for k in condition):
            for op, operand in condition.items():
                if op not in OPERATORS:
                    raise ValidationError(f"unsupported filter operator {op!r} (use {', '.join(OPERATORS)})")
                try:
                    if not OPERATORS[op](value, operand):
                        return False
                except TypeError:
                    return False
            return True
        if not isinstance(value, dict):
            return False
        return all(_matches(value.get(k), v) for k, v in condition.items())
    return bool(value == condition)
