"""Hand edits of Markdown files become changes of the one write path, with history events by actor ``file``.

:meth:`Syncer.sync` runs under the user's write lock (:meth:`remem.writer.Writer.user_lock`). It is called by
the writer whenever it takes a user's lock (so every write starts from the files as they are), and by the store
before a read of a user whose files changed. It:

1. reads the files that differ from what the store last wrote (a content hash per file; remem's own writes are
   fingerprinted, so they are never taken for edits);
2. parses them; a file with a problem — not UTF-8, a damaged id comment, an id twice, an id of another user, a
   text or category remem refuses — is *not applied*: its memories keep their last good state, the file is left
   as it is (nothing a person wrote is overwritten: writes over it are refused), and the problem is reported
   with file and line (logged once, in :class:`SyncReport`, ``remem sync``);
3. compares each memory with what the store holds: a line without an id comment is an ADD; a changed text,
   category (a line moved to another file or section), kind, date, source ids… an UPDATE (version + 1); a line
   removed (or moved into ``trash.md``) a DELETE — a restorable tombstone, never an erasure; a line moved out of
   ``trash.md`` a RESTORE; each event keeps the old text and names the file and line;
4. embeds the new texts, makes all of it one :meth:`~remem.writer.Writer.apply`, and rewrites the edited files in
   canonical form (ids added to new lines, sections and order normalised).

A user directory that has files but no cache (copied in, cloned from git, cache removed) is *adopted*: its
memories are compared with the history's last snapshots instead — equal ones are taken as they are, others
recorded as above — and embedded.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from ..errors import ConfigurationError, MarkdownConflictError, RememError
from ..models import EventType, HistoryEvent, MemoryEvent, MemoryRecord, content_hash, new_id, utcnow
from ..stores.base import MemoryFilter
from ..validation import check_categories, check_text
from ..writer.types import Change
from .files import decode, sha256
from .fmt import (
    TRASH_FILE,
    FileProblem,
    Item,
    ParsedFile,
    file_of,
    item_categories,
    item_lines,
    parse,
    placement,
)
from .names import OWN_FILES, category_file, category_of_file
from .orphans import Orphan
from .state import StaleFile
from .versions import Version

if TYPE_CHECKING:
    from ..writer import Writer
    from .state import UserState
    from .store import MarkdownStore

log = logging.getLogger("remem.markdown")
ACTOR = "file"
#: Rounds of one sync that apply the edits on disk: a person who keeps saving is caught up with by the next sync
#: (a write waits for at most this many).
ROUNDS = 4
#: Rounds of one sync in all, at most this many times ``rounds``: each applies the edits on disk or one displaced
#: save; a person saving faster than a round takes makes a new displaced save each time, and a writer must not
#: wait for them to stop (what is left is applied by the next sync, oldest first).
ORPHAN_ROUNDS = 4
#: Rounds of one sync in all, whatever ``rounds`` is.
MAX_ROUNDS = 64
#: Times the files may change again while a round applies them before the sync gives up (MarkdownConflictError).
RETRIES = 8
ANYONE = MemoryFilter(user_id=None, all_users=True, deleted=None)


class SyncReport(BaseModel):
    """What one sync of one user did: the files applied, the events recorded, and the files it could not read."""

    user_id: str
    files: list[str] = Field(default_factory=list, description="edited files that were applied")
    events: list[MemoryEvent] = Field(default_factory=list, description="ADD/UPDATE/DELETE/RESTORE by actor 'file'")
    problems: list[FileProblem] = Field(default_factory=list, description="files left unapplied, with file:line")
    embedded: int = 0


def _max_chars() -> int:
    from ..config import Settings

    try:
        return Settings.from_env().max_text_chars
    except ConfigurationError:
        return Settings.model_fields["max_text_chars"].default  # type: ignore[no-any-return]


def editable(item: Item) -> tuple[Any, ...]:
    """What a person can change about a memory in a file (bookkeeping — times of creation and update, version —
    is remem's)."""
    f = item.fields
    return (item.text, tuple(item_categories(item)), f.get("kind", "fact"), f.get("at"), tuple(f.get("src", ())),
            f.get("speaker"), f.get("role"), f.get("session"), f.get("seq"), f.get("meta", {}))


def _key(item: Item) -> str:
    """:func:`editable` as a hashable value."""
    return json.dumps(editable(item), sort_keys=True, default=str, ensure_ascii=False)


@dataclass
class Base:
    """The version of a file a displaced save was made from (what remem had written or accepted there): its
    memories by id, and its lines without an id — hand lines of an accepted edit, which the sync that accepted it
    has added since (their ids are in the store, not in this version)."""

    items: dict[str, Item]
    new: list[Item] = field(default_factory=list)
    #: Lines of the save that are such a line as it was (matched once per base line by :meth:`match`).
    kept: set[int] = field(default_factory=set)
    #: Such base lines the save no longer has (the person removed a line the sync had added).
    dropped: list[Item] = field(default_factory=list)

    def match(self, pf: ParsedFile | None) -> None:
        """Find the lines of the save ``pf`` without an id that the base held as they are: already added, so not
        added again (a line twice in the base matches two lines of the save)."""
        left = Counter(_key(i) for i in self.new)
        self.kept = set()
        for item in pf.items if pf else []:
            if item.id is None and left[key := _key(item)] > 0:
                left[key] -= 1
                self.kept.add(item.line)
        self.dropped = []
        for item in self.new:
            if left[key := _key(item)] > 0:
                left[key] -= 1
                self.dropped.append(item)


def unchanged(item: Item, base: Base) -> bool:
    """Whether ``item`` is in ``base`` (a displaced save's base) as it is."""
    if item.id is None:
        return item.line in base.kept
    before = base.items.get(item.id)
    return before is not None and editable(before) == editable(item)


def as_written(record: MemoryRecord) -> Item:
    """The record as the store writes it, read back (so a text the format cannot hold exactly is not taken for
    an edit)."""
    text = "\n".join(item_lines(record, deleted=record.is_deleted)) + "\n"
    return parse(text, name="_.md", path="", category=placement(record)[1]).items[0]


class Written:
    """:func:`editable` of :func:`as_written` per record, kept while the store holds that very record object (a
    sync compares every memory of an edited file: this spares re-rendering the unchanged ones each round)."""

    def __init__(self) -> None:
        self._seen: dict[str, dict[str, tuple[MemoryRecord, tuple[Any, ...]]]] = {}

    def __call__(self, record: MemoryRecord) -> tuple[Any, ...]:
        seen = self._seen.setdefault(record.user_id, {})
        hit = seen.get(record.id)
        if hit is not None and hit[0] is record:
            return hit[1]
        value = editable(as_written(record))
        seen[record.id] = (record, value)
        return value

    def forget(self, user_id: str) -> None:
        """Drop a user's records (their erasure)."""
        self._seen.pop(user_id, None)


def keep(state: UserState, name: str, data: bytes | None, problems: list[FileProblem]) -> None:
    """Keep a save remem displaced and could not apply beside its file, as ``<name>.conflict-<UTC time>`` (not a
    ``.md`` file: never read as memories), and say so in the log."""
    if data is None:
        return
    copy = f"{name}.conflict-{utcnow().strftime('%Y%m%dT%H%M%S.%fZ')}"
    folder = state.folder(create=True)
    assert folder is not None
    with folder:
        folder.write(copy, data)
    detail = "; ".join(str(p) for p in problems[:3]) or "not applied before the store closed"
    log.warning("markdown store: a save of %s made while remem wrote it was kept as %s (%s): merge it by hand",
                state.files / name, state.files / copy, detail)


@dataclass
class _Plan:
    changes: list[Change] = field(default_factory=list)
    events: list[HistoryEvent] = field(default_factory=list)


class Syncer:
    """Applies one user's hand edits through ``writer`` (see the module docstring)."""

    def __init__(self, writer: Writer, store: MarkdownStore) -> None:
        self.writer, self.store = writer, store
        self.max_chars = _max_chars()
        self.written = Written()

    def holds_lock(self, user_id: str) -> bool:
        return self.writer.locks.held(user_id)

    def sync(self, user_id: str, *, rounds: int = ROUNDS, drain: bool = False) -> SyncReport:
        """Apply the user's edited files (see the module docstring); the report lists what was applied and every
        file still left unapplied. Raises what the write path raises (the edits stay on disk, unapplied), and
        MarkdownConflictError when a file changed again during each of :data:`RETRIES` attempts to apply it.
        ``drain``: apply every displaced save (up to :data:`MAX_ROUNDS` rounds), not :data:`ORPHAN_ROUNDS` times
        ``rounds`` (what a write waits for)."""
        report = SyncReport(user_id=user_id)
        with self.writer.user_lock(user_id):
            stale = applied = 0
            for total in range(MAX_ROUNDS):
                # The writer's lock excludes every other write of this user; the store's state lock is taken only
                # around state access (never while embedding, nor while reading other users' ids). Saves are
                # applied in the order they were written (a later one may have been made from an earlier one): a
                # displaced save older than the edits on disk goes first (its write displaces them in turn).
                with self.store.state(user_id) as state:
                    edits, adopted = state.pending_edits(), state.adopted
                    orphan = None if adopted else state.next_orphan(edits)
                if not (edits or adopted or orphan) or (orphan is None and applied == rounds) or \
                        (total == ORPHAN_ROUNDS * rounds and not drain):
                    if orphan is not None:
                        self._put_back(state, orphan)
                    break
                applied += orphan is None
                try:
                    if orphan is None:
                        self._apply(state, edits, report)
                    else:
                        self._apply(state, {orphan.name: orphan.theirs}, report, orphan=orphan)
                except StaleFile as exc:  # changed again while it was applied: read it again
                    self._put_back(state, orphan)
                    stale += 1
                    if stale > RETRIES:
                        raise MarkdownConflictError(
                            f"{exc.context.get('path')} changed on disk during each of {stale} attempts to apply it; "
                            "nothing of the last attempt was written: retry", **exc.context) from None
                except BaseException:
                    self._put_back(state, orphan)
                    raise
            with self.store.state(user_id) as state:
                report.problems = [p for _, problems in sorted(state.broken.items()) for p in problems[1]]
        return report

    def _put_back(self, state: UserState, orphan: Orphan | None) -> None:
        if orphan is not None:
            with self.store.state(state.user_id) as locked:
                locked.orphans.insert(0, orphan)

    @staticmethod
    def _parse_base(state: UserState, name: str, data: bytes | None) -> list[Item]:
        text = data.decode("utf-8", "replace") if data is not None else ""
        category = None if name.removesuffix(".md") in OWN_FILES else category_of_file(name)
        return parse(text, name=name, path=str(state.files / name), category=category).items

    def _bases(self, state: UserState, edits: Mapping[str, bytes | None], parsed: Mapping[str, ParsedFile | None],
               orphan: Orphan | None) -> dict[str, Base]:
        """The version each save was made from, where it is not what remem last wrote (for a displaced save:
        always), as a :class:`Base` (see remem.markdown.versions). Called with the state lock held."""
        out: dict[str, bytes | None] = {}
        among = orphan.versions if orphan is not None else ()
        for name, pf in parsed.items():
            data = edits[name]
            save = state.versions.find(name, data, among) if data is not None and pf is not None else None
            made_from = self._made_from(state, pf, save, among) if save is not None and pf is not None else None
            if orphan is not None:
                out[name] = made_from.data if made_from is not None else orphan.base
            elif made_from is not None and made_from.sha != (state.stamps[name].sha if name in state.stamps else None):
                out[name] = made_from.data
        bases: dict[str, Base] = {}
        for name, data in out.items():
            items = self._parse_base(state, name, data)
            bases[name] = Base({i.id: i for i in items if i.id is not None}, [i for i in items if i.id is None])
        return bases

    def _made_from(self, state: UserState, pf: ParsedFile, save: Version, among: Iterable[Version]
                   ) -> Version | None:
        """Rules 1-2 of remem.markdown.versions: the version appended to; else the newest one read before the save
        that holds the save's ids of this file (None: rule 3, what remem last wrote)."""
        name = save.name
        needed = {i.id for i in pf.items if i.id is not None and (r := state.records.get(i.id)) is not None
                  and file_of(r) == name}
        for version, certain in state.versions.bases(save, among):
            if version.sha == save.sha and not certain:
                continue  # a save identical to an older version is a revert to it (`cp backup`), not "no change"
            if certain or needed <= self._ids(state, version):
                return version
        return None

    def _ids(self, state: UserState, version: Version) -> frozenset[str]:
        if version.ids is None:
            version.ids = frozenset(i.id for i in self._parse_base(state, version.name, version.data)
                                    if i.id is not None)
        return version.ids

    # -- reading ---------------------------------------------------------------------------------------------
    def _read(self, state: UserState, edits: Mapping[str, bytes | None]
              ) -> tuple[dict[str, ParsedFile | None], dict[str, list[FileProblem]]]:
        parsed: dict[str, ParsedFile | None] = {}
        broken: dict[str, list[FileProblem]] = {}
        for name, data in edits.items():
            path = str(state.files / name)
            if data is None:
                parsed[name] = None
                continue
            text, problem = decode(data, path)
            category, name_problem = self._category(name, path)
            if problem or name_problem:
                broken[name] = [p for p in (problem, name_problem) if p is not None]
                continue
            assert text is not None
            result = parse(text, name=name, path=path, category=category)
            if result.problems:
                broken[name] = result.problems
            else:
                parsed[name] = result
        return parsed, broken

    @staticmethod
    def _category(name: str, path: str) -> tuple[str | None, FileProblem | None]:
        if name.removesuffix(".md") in OWN_FILES:
            return None, None
        try:
            return category_of_file(name), None
        except RememError:
            try:
                hint = f"; e.g. {category_file(check_categories([name.removesuffix('.md')])[0])}"
            except RememError:
                hint = ""
            return None, FileProblem(path=path, line=1, message=f"{name} is not a category file name remem writes "
                                     f"(lower-case a-z 0-9 _ - . @ + and %XX escapes): rename it{hint}")

    # -- checking --------------------------------------------------------------------------------------------
    def _check(self, state: UserState, parsed: dict[str, ParsedFile | None], broken: dict[str, list[FileProblem]],
               latest: Mapping[str, HistoryEvent], bases: Mapping[str, Base]) -> None:
        """Move files with per-item problems (duplicate or foreign ids, refused texts) from parsed to broken. In a
        displaced save (``bases``), only the items the person changed are checked."""
        changed = set(parsed) | set(broken)
        where: dict[str, list[tuple[str, int]]] = {}
        for r in state.records.values():
            # a deleted memory's line in an edited file while trash.md is not edited: taken out of the trash (a
            # RESTORE, as moving the line), never "an id twice"; one the person's base held is unchanged (stays)
            if file_of(r) not in changed and not (r.is_deleted and TRASH_FILE not in changed):
                where.setdefault(r.id, []).append((file_of(r), 0))
        bad: dict[str, list[FileProblem]] = {}

        def problem(name: str, line: int, message: str) -> None:
            bad.setdefault(name, []).append(FileProblem(path=str(state.files / name), line=line, message=message))

        unknown: dict[str, tuple[str, int]] = {}
        for name, pf in parsed.items():
            for item in pf.items if pf else []:
                if name in bases and unchanged(item, bases[name]):
                    continue
                self._check_item(name, item, problem)
                if item.id is not None:
                    where.setdefault(item.id, []).append((name, item.line))
                    if item.id not in state.records and item.id not in latest:
                        unknown[item.id] = (name, item.line)
        for memory_id, places in where.items():
            if len(places) > 1:
                for name, line in places:
                    if name in parsed:
                        others = ", ".join(f"{n}:{ln}" if ln else n for n, ln in places if (n, ln) != (name, line))
                        problem(name, line, f"memory id {memory_id} appears more than once (also {others})")
        for r in self.store.get(list(unknown), ANYONE) if unknown else []:
            if r.user_id != state.user_id:
                name, line = unknown[r.id]
                problem(name, line, f"memory id {r.id} belongs to another user: remove the comment to make this "
                        "line a new memory")
        for name, problems in bad.items():
            parsed.pop(name, None)
            broken.setdefault(name, []).extend(sorted(problems, key=lambda p: p.line))

    def _check_item(self, name: str, item: Item, problem: Any) -> None:
        try:
            check_text(item.text, self.max_chars)
            check_categories(item_categories(item))
        except RememError as exc:
            problem(name, item.line, str(exc))
        if item.id is None and name == TRASH_FILE:
            problem(name, item.line, "a new memory in trash.md: write new memories in a category file")

    # -- planning --------------------------------------------------------------------------------------------
    def _plan(self, state: UserState, parsed: dict[str, ParsedFile | None], broken_text: str,
              latest: Mapping[str, HistoryEvent], bases: Mapping[str, Base]) -> _Plan:
        """The changes and events that make the store hold what the parsed files say. A file with a base (a save
        remem displaced, see remem.markdown.orphans) contributes only what the person changed from that base."""
        plan, now, user = _Plan(), utcnow(), state.user_id
        seen: set[str] = set()
        removed: set[str] = set()
        spare = self._spare(state, parsed)
        for name, pf in sorted(parsed.items()):
            trash = name == TRASH_FILE
            ids = {i.id for i in pf.items if i.id} if pf else set()
            removed |= {i for i in bases[name].items if i not in ids} if name in bases else set()
            for item in pf.items if pf else []:
                seen.add(item.id or "")
                same = spare.get((name, item.text)) if item.id is None else None
                if name in bases and unchanged(item, bases[name]):
                    if same:  # a line of the base without id (remem has given it one since): that memory
                        seen.add(same.pop(0))
                    continue  # as remem had written it: what the store holds now stands
                if same:
                    seen.add(same.pop(0))  # the memory itself, its id comment gone: unchanged
                    continue
                where = f"{name}:{item.line}"
                old = state.records.get(item.id) if item.id else None
                snapshot = latest[item.id].snapshot if item.id is not None and item.id in latest else None
                if old is None and snapshot is not None:
                    record = self._new(item, user, trash, now)
                    if record == snapshot:
                        plan.changes.append(Change(user, snapshot.id, None, snapshot))
                    else:
                        self._edit(plan, snapshot, item, trash, now, where, before=None)
                elif old is None:
                    record = self._new(item, user, trash, now)
                    plan.changes.append(Change(user, record.id, None, record))
                    plan.events.append(HistoryEvent(memory_id=record.id, user_id=user, event=EventType.ADD,
                                                    new_text=record.text, actor=ACTOR, created_at=now,
                                                    reason=f"added in {where}", snapshot=record))
                elif editable(item) != self.written(old) or old.is_deleted != trash:
                    self._edit(plan, old, item, trash, now, where, before=old)
        for name, base in bases.items():  # a line the base had without id, gone from the save: that memory
            for item in base.dropped:
                if same := spare.get((name, item.text)):
                    removed.add(same.pop(0))
        for r in state.records.values():
            name = file_of(r)
            if name in bases or r.id in removed:
                gone = r.id in removed  # a displaced save: only lines the person removed from remem's version
            else:
                gone = name in parsed  # a file as it is on disk: every line not in it
            if gone and r.id not in seen and r.id not in broken_text and not r.is_deleted:
                deleted = r.model_copy(update={"deleted_at": now, "updated_at": now})
                plan.changes.append(Change(user, r.id, r, deleted))
                plan.events.append(HistoryEvent(memory_id=r.id, user_id=user, event=EventType.DELETE, old_text=r.text,
                                                actor=ACTOR, created_at=now, snapshot=deleted,
                                                reason=f"line removed from {name}"))
        return plan

    @staticmethod
    def _spare(state: UserState, parsed: Mapping[str, ParsedFile | None]) -> dict[tuple[str, str], list[str]]:
        """Live memories of the edited files whose id is in none of them, by (file, text): a line of that file
        with that text and no id comment is that memory (a buffer read before remem gave the line its id, or a
        comment deleted by hand), not a new one."""
        present = {i.id for pf in parsed.values() if pf for i in pf.items if i.id}
        spare: dict[tuple[str, str], list[str]] = {}
        for r in sorted(state.records.values(), key=lambda r: (r.created_at, r.id)):
            name = file_of(r)
            if name in parsed and name != TRASH_FILE and not r.is_deleted and r.id not in present:
                spare.setdefault((name, r.text), []).append(r.id)
        return spare

    @staticmethod
    def _fields(item: Item) -> dict[str, Any]:
        f = item.fields
        return {"text": item.text, "hash": content_hash(item.text), "kind": f.get("kind", "fact"),
                "categories": check_categories(item_categories(item)),
                "observed_at": f.get("at"), "source_ids": list(f.get("src", [])), "speaker": f.get("speaker"),
                "role": f.get("role"), "session_id": f.get("session"), "seq": f.get("seq"),
                "metadata": dict(f.get("meta", {}))}

    def _new(self, item: Item, user_id: str, trash: bool, now: Any) -> MemoryRecord:
        f = item.fields
        created = f.get("created", now)
        return MemoryRecord(id=item.id or new_id(), user_id=user_id, created_at=created,
                            updated_at=f.get("updated", created), version=f.get("v", 1),
                            deleted_at=(f.get("deleted") or now) if trash else None, **self._fields(item))

    def _edit(self, plan: _Plan, old: MemoryRecord, item: Item, trash: bool, now: Any, where: str, *,
              before: MemoryRecord | None) -> None:
        update: dict[str, Any] = {"updated_at": now}
        if editable(item) != self.written(old):
            update |= self._fields(item) | {"version": old.version + 1}
        if trash != old.is_deleted:
            update["deleted_at"] = now if trash else None
        new = old.model_copy(update=update)
        text_changed = new.text != old.text
        kind: EventType
        old_text: str | None
        new_text: str | None
        if trash and not old.is_deleted:
            kind, old_text, new_text = EventType.DELETE, old.text, new.text if text_changed else None
        elif old.is_deleted and not trash:
            kind, old_text, new_text = EventType.RESTORE, old.text if text_changed else None, new.text
        else:
            kind, old_text, new_text = EventType.UPDATE, old.text, new.text
        plan.changes.append(Change(old.user_id, old.id, before, new))
        plan.events.append(HistoryEvent(memory_id=old.id, user_id=old.user_id, event=kind, old_text=old_text,
                                        new_text=new_text, actor=ACTOR, created_at=now, snapshot=new,
                                        reason=f"hand edit in {where}"))

    # -- applying --------------------------------------------------------------------------------------------
    def _apply(self, state: UserState, edits: Mapping[str, bytes | None], report: SyncReport,
               orphan: Orphan | None = None) -> None:
        """One round: read, check, plan, embed and apply ``edits`` (name -> content; None: the file is gone), or
        the displaced save ``orphan`` (the disk holds remem's version). A save is compared with the version it was
        made from (:meth:`_bases`, :meth:`_plan`)."""
        parsed, broken = self._read(state, edits)
        with self.store.state(state.user_id) as locked:
            bases = self._bases(locked, edits, parsed, orphan)
        for name, base in bases.items():
            base.match(parsed.get(name))
        latest = self.writer.history.latest(state.user_id) if state.adopted or any(
            i.id not in state.records for pf in parsed.values() if pf for i in pf.items if i.id) else {}
        self._check(state, parsed, broken, latest, bases)
        for name in [n for n in broken if orphan is not None]:
            keep(state, name, edits[name], broken.pop(name))
        known_broken = [n for n in state.broken if n not in edits]
        broken_text = "\n".join(data.decode("utf-8", "replace")
                                for data in state.contents([*broken, *known_broken]).values())
        plan = self._plan(state, parsed, broken_text, latest, bases)
        texts = {c.memory_id: c.after.text for c in plan.changes
                 if c.after is not None and (c.before is None or c.before.text != c.after.text)}
        vectors: dict[str, np.ndarray] = {}
        if texts:
            ids = list(texts)
            vectors = dict(zip(ids, self.writer.embedder.embed([texts[i] for i in ids]), strict=True))
        with self.store.state(state.user_id) as locked:
            assert locked is state
            if parsed or plan.changes:
                with state.accepting({n: edits[n] for n in parsed if orphan is None}):
                    if plan.changes or plan.events:
                        self.writer.apply(plan.changes, plan.events, vectors=vectors)
                    state.commit(state.records, state.vectors, set(), force=set(parsed), displace=True)
            for name in parsed:
                if orphan is None:
                    state.broken.pop(name, None)
                data = edits[name]
                version = state.versions.find(name, data, orphan.versions if orphan else ()) if data is not None else None
                if version is not None:
                    version.applied = True  # the store holds it now: a base for saves made from it
            for name, problems in broken.items():
                data = edits.get(name)
                known = state.broken.get(name)
                sha = sha256(data) if data is not None else ""
                if known is None or known[0] != sha:
                    for p in problems:
                        log.warning("markdown store: %s (the file is left as it is; its memories keep their last "
                                    "good state)", p)
                state.broken[name] = (sha, problems)
        report.files += [n for n in sorted(parsed) if n not in report.files]
        report.embedded += len(vectors)
        report.events += [MemoryEvent(event=e.event, memory_id=e.memory_id, text=e.new_text, old_text=e.old_text,
                                      reason=e.reason) for e in plan.events]
