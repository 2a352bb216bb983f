"""REMEM_STORE=markdown end to end: hand edits in real files are seen by the next read and recorded in history
(actor ``file``), a broken file is named with file and line and loses nothing, concurrent writes lose no line,
the store survives a crash between its cache and its files, files copied in are adopted, erasure removes the
directory, and the chat agent reads its core facts from profile.md."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from remem import EventType, Memory
from remem.errors import MarkdownConflictError, MarkdownFormatError
from remem.markdown.ops import markdown_store, sync
from remem.markdown.state import COMMITTED


@pytest.fixture
def md(tmp_path: Path) -> Iterator[Memory]:
    with Memory(tmp_path / "home", embedder="fake", store="markdown") as m:
        yield m


def folder(m: Memory, user: str = "alice") -> Path:
    return markdown_store(m).user_path(user)


def add(m: Memory, text: str, category: str = "food", user: str = "alice") -> str:
    memory_id = m.add(text, user_id=user, categories=[category]).events[0].memory_id
    assert memory_id is not None
    return memory_id


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def texts(m: Memory, user: str = "alice", deleted: bool | None = False) -> list[str]:
    return sorted(r.text for r in m.list(user_id=user, deleted=deleted, limit=1000).items)


def test_the_files_are_the_store(md: Memory) -> None:
    tea = add(md, "Alice loves green tea")
    add(md, "Alice lives in Lisbon", "personal_details")
    add(md, "Alice plays football")
    md.add("no category", user_id="alice")
    files = sorted(p.name for p in folder(md).iterdir())
    assert files == ["food.md", "profile.md", "uncategorized.md"]
    food = (folder(md) / "food.md").read_text()
    assert food.startswith("# food\n\n- Alice loves green tea <!-- id=" + tea + " kind=fact created=")
    assert "## personal_details\n\n- Alice lives in Lisbon <!-- id=" in (folder(md) / "profile.md").read_text()
    assert (md.home / "markdown" / ".gitignore").read_text().count(".remem/") == 1


def test_a_hand_edit_is_seen_by_the_next_search_and_recorded(md: Memory) -> None:
    tea = add(md, "Alice loves green tea")
    edit(folder(md) / "food.md", "green tea", "rooibos tea")
    [hit] = md.search("rooibos", user_id="alice", limit=1)
    assert hit.record.id == tea and hit.record.text == "Alice loves rooibos tea" and hit.record.version == 2
    events = md.history(tea, user_id="alice")
    assert [(e.event, e.actor) for e in events] == [(EventType.ADD, "api"), (EventType.UPDATE, "file")]
    assert (events[-1].old_text, events[-1].new_text) == ("Alice loves green tea", "Alice loves rooibos tea")
    assert events[-1].reason == "hand edit in food.md:3"
    assert md.doctor().ok and md.doctor().problems == []
    assert "v=2" in (folder(md) / "food.md").read_text()  # rewritten in canonical form


def test_added_removed_moved_and_restored_lines(md: Memory) -> None:
    tea = add(md, "Alice loves green tea")
    coffee = add(md, "Alice drinks coffee at work")
    food = folder(md) / "food.md"
    lines = food.read_text().split("\n")
    coffee_line = next(line for line in lines if coffee in line)
    food.write_text("\n".join([line for line in lines if line != coffee_line] + ["- Alice hates cilantro", ""]))
    assert texts(md) == ["Alice hates cilantro", "Alice loves green tea"]
    new = next(r for r in md.list(user_id="alice").items if r.text == "Alice hates cilantro")
    assert f"- Alice hates cilantro <!-- id={new.id} kind=fact" in food.read_text()  # its id is written back
    assert [e.event for e in md.history(coffee, user_id="alice")] == [EventType.ADD, EventType.DELETE]
    trash = folder(md) / "trash.md"
    assert coffee in trash.read_text() and "## food" in trash.read_text()
    # moving the line out of the trash into another file restores it with that category
    lines = trash.read_text().split("\n")
    line = next(x for x in lines if coffee in x)
    trash.write_text("\n".join(x for x in lines if x != line))
    (folder(md) / "work.md").write_text(f"# work\n\n{line}\n")
    restored = md.get(coffee, user_id="alice")
    assert restored.categories == ["work"] and not restored.is_deleted
    last = md.history(coffee, user_id="alice")[-1]
    assert (last.event, last.actor) == (EventType.RESTORE, "file")
    # moving a line to another file changes its category
    lines = food.read_text().split("\n")
    line = next(x for x in lines if tea in x)
    food.write_text("\n".join(x for x in lines if x != line))
    with (folder(md) / "work.md").open("a") as fh:
        fh.write(line + "\n")
    assert md.get(tea, user_id="alice").categories == ["work"]
    assert md.history(tea, user_id="alice")[-1].event is EventType.UPDATE
    assert md.doctor().ok


def test_a_mangled_id_comment_is_named_and_loses_nothing(md: Memory) -> None:
    tea = add(md, "Alice loves green tea")
    coffee = add(md, "Alice drinks coffee at work")
    food = folder(md) / "food.md"
    broken = food.read_text().replace("green tea", "matcha").replace(f"id={tea}", f"id={tea[:-3]}")
    food.write_text(broken)
    with pytest.raises(MarkdownFormatError) as err:
        sync(md, "alice", strict=True)
    assert f"{food}:3: damaged id comment: field 'id' must be a UUID" in str(err.value)
    # the record keeps its last good text, no history was written, and the file is left as the person wrote it
    assert md.get(tea, user_id="alice").text == "Alice loves green tea"
    assert next(h.record.text for h in md.search("tea", user_id="alice", limit=2)) == "Alice loves green tea"
    assert len(md.history(tea, user_id="alice")) == 1
    assert food.read_text() == broken
    # a write that would overwrite the file is refused, and changes nothing
    with pytest.raises(MarkdownConflictError, match="food.md:3"):
        md.update(coffee, "Alice drinks espresso at work", user_id="alice")
    assert food.read_text() == broken and md.get(coffee, user_id="alice").text == "Alice drinks coffee at work"
    # other files still work
    add(md, "Alice runs on Sundays", "sport")
    # fixed: the edit is applied
    food.write_text(broken.replace(f"id={tea[:-3]}", f"id={tea}"))
    [report] = sync(md, "alice", strict=True)
    assert [(e.event, e.memory_id) for e in report.events] == [(EventType.UPDATE, tea)] and report.problems == []
    assert md.get(tea, user_id="alice").text == "Alice loves matcha"
    assert md.doctor().ok


def test_a_duplicated_id_and_a_foreign_id_are_refused(md: Memory) -> None:
    tea = add(md, "Alice loves green tea")
    bobs = add(md, "Bob's secret", user="bob")
    food = folder(md) / "food.md"
    good = food.read_text()
    line = next(x for x in good.split("\n") if tea in x)
    (folder(md) / "drinks.md").write_text(f"# drinks\n\n{line.replace('green tea', 'oolong')}\n")
    [report] = sync(md, "alice")
    assert [(p.path.rsplit("/", 1)[1], p.line) for p in report.problems] == [("drinks.md", 3)]
    assert "appears more than once (also food.md)" in report.problems[0].message
    assert md.get(tea, user_id="alice").text == "Alice loves green tea"
    bob_line = next(x for x in (folder(md, "bob") / "food.md").read_text().split("\n") if bobs in x)
    (folder(md) / "drinks.md").write_text(f"# drinks\n\n{bob_line}\n")
    [report] = sync(md, "alice")
    assert "belongs to another user" in report.problems[0].message
    assert md.get(bobs, user_id="bob").text == "Bob's secret" and texts(md) == ["Alice loves green tea"]


def test_a_file_in_another_encoding_is_named_with_its_line(md: Memory) -> None:
    add(md, "Alice loves green tea")
    (folder(md) / "travel.md").write_bytes("# travel\n\n- Zürich in May\n".encode("latin-1"))
    (folder(md) / "music.md").write_text("# music\n\n- jazz\n", encoding="utf-16")
    [report] = sync(md, "alice")
    found = {p.path.rsplit("/", 1)[1]: (p.line, p.message) for p in report.problems}
    assert found["travel.md"][0] == 3 and "not valid UTF-8 (byte 0xfc at column 4)" in found["travel.md"][1]
    assert found["music.md"] == (1, "the file is UTF-16: save it as UTF-8")
    assert texts(md) == ["Alice loves green tea"]
    (folder(md) / "travel.md").write_text("# travel\n\n- Zürich in May\n", encoding="utf-8")
    assert texts(md) == ["Alice loves green tea", "Zürich in May"]


def test_a_file_name_remem_does_not_write_is_named(md: Memory) -> None:
    add(md, "Alice loves green tea")
    (folder(md) / "Hobbies.md").write_text("- chess\n")
    [report] = sync(md, "alice")
    [problem] = report.problems
    assert problem.line == 1 and "rename it; e.g. to hobbies.md" in problem.message.replace("e.g. hobbies", "e.g. to hobbies")


def test_two_threads_writing_one_users_file_never_lose_a_line(md: Memory) -> None:
    n = 25

    def writer(k: int) -> None:
        for i in range(n):
            md.add(f"thread {k} memory {i}", user_id="alice", categories=["food"])

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = [x for x in (folder(md) / "food.md").read_text().split("\n") if x.startswith("- ")]
    assert sorted(x.split(" <!--")[0][2:] for x in lines) == sorted(f"thread {k} memory {i}" for k in range(2)
                                                                    for i in range(n))
    assert md.list(user_id="alice").total == 2 * n and md.doctor().ok


def test_a_crash_between_the_cache_and_the_files_is_rolled_forward(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Memory(home, embedder="fake", store="markdown") as m:
        tea = add(m, "Alice loves green tea")
        food = folder(m) / "food.md"
        before = food.read_text()
        m.update(tea, "Alice loves matcha", user_id="alice")
        cache = home / "markdown" / ".remem" / "alice"
        generation = int((cache / COMMITTED).read_text())
    # the on-disk state of a process killed after it replaced the cache, before it wrote the files
    food.write_text(before)
    (cache / COMMITTED).write_text(str(generation - 1))
    with Memory(home, embedder="fake", store="markdown") as m:
        assert "Alice loves matcha" in food.read_text()
        assert m.get(tea, user_id="alice").text == "Alice loves matcha"
        assert [e.actor for e in m.history(tea, user_id="alice")] == ["api", "api"]  # not taken for a hand edit
        assert m.doctor().ok


def test_files_copied_into_a_new_home_are_adopted(tmp_path: Path) -> None:
    with Memory(tmp_path / "a", embedder="fake", store="markdown") as m:
        tea = add(m, "Alice loves green tea")
        add(m, "Alice lives in Lisbon", "personal_details")
        source = folder(m)
    shutil.copytree(source, tmp_path / "b" / "markdown" / "alice")
    with Memory(tmp_path / "b", embedder="fake", store="markdown") as m:
        [hit] = m.search("Alice loves green tea", user_id="alice", limit=1, mode="dense")
        assert hit.record.id == tea and hit.signals["dense"] > 0.999  # embedded on adoption
        assert [(e.event, e.actor) for e in m.history(tea, user_id="alice")] == [(EventType.ADD, "file")]
        assert m.doctor().ok
    # a lost cache: the files are taken as they are, and history (which knows them) gets no new events
    shutil.rmtree(tmp_path / "b" / "markdown" / ".remem")
    with Memory(tmp_path / "b", embedder="fake", store="markdown") as m:
        assert texts(m) == ["Alice lives in Lisbon", "Alice loves green tea"]
        assert len(m.history(tea, user_id="alice")) == 1 and m.doctor().ok


def test_forget_user_removes_the_users_directory(md: Memory) -> None:
    add(md, "Alice loves green tea")
    add(md, "Bob loves coffee", user="bob")
    root = md.home / "markdown"
    assert (root / "alice").is_dir() and (root / ".remem" / "alice").is_dir()
    result = md.forget_user("alice")
    assert result.memories == 1
    assert not (root / "alice").exists() and not (root / ".remem" / "alice").exists()
    assert texts(md, "bob") == ["Bob loves coffee"] and texts(md) == []


def test_hostile_user_ids_never_escape_the_directory(md: Memory, tmp_path: Path) -> None:
    from remem.errors import InvalidUserIdError

    for user in ["../evil", "/tmp/evil", "a/../../b", "..", "a\x00b", "alice\n"]:
        with pytest.raises(InvalidUserIdError):
            md.add("x", user_id=user)
    for user in ["CON", "nul", "com1.txt", "acme:alice", "x."]:
        md.add(f"memory of {user}", user_id=user)
        assert md.list(user_id=user).items[0].text == f"memory of {user}"
    root = (md.home / "markdown").resolve()
    for path in md.home.parent.rglob("*"):
        if path.name.endswith(".md"):
            assert path.resolve().parent.parent == root
    assert sorted(markdown_store(md).users()) == sorted(["CON", "nul", "com1.txt", "acme:alice", "x."])


def test_the_agent_reads_its_core_facts_from_profile_md(md: Memory) -> None:
    from remem.pipeline import Agent, ScriptedLM, react_script

    add(md, "Alice lives in Lisbon", "personal_details")
    md.add("Alice is vegetarian", user_id="alice", categories=["food", "preferences"])
    profile = folder(md) / "profile.md"
    assert "## preferences\n\n- Alice is vegetarian <!--" in profile.read_text()
    with profile.open("a") as fh:
        fh.write("- Alice is allergic to peanuts\n")  # a person adds a core fact by hand (preferences section)
    lm = ScriptedLM({"ResponseGenerator": react_script(outputs={"response": "Hi!", "save_memory": False})})
    agent = Agent(md, lm=lm)
    assert sorted(r.text for r in agent.core_facts("alice")) == [
        "Alice is allergic to peanuts", "Alice is vegetarian", "Alice lives in Lisbon"]
    agent.reply("alice", "hello")
    # The prompt carries Memory.context()'s Markdown: profile.md's facts (the hand-added one too) are the core facts.
    core = lm.requests[0]["user"].split("[[ ## core_memories ## ]]\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert core[0] == "## About the user"
    assert sorted(re.fullmatch(r"- \d{4}-\d{2}-\d{2} \(\w{3}\): (.+)", line)[1] for line in core[1:]) == [  # type: ignore[index]
        "Alice is allergic to peanuts", "Alice is vegetarian", "Alice lives in Lisbon"]


def test_threads_writing_the_store_directly_never_lose_a_line(tmp_path: Path) -> None:
    """The store's own per-user lock, without the writer above it (what the contract suite drives)."""
    from remem.embedders.fake import FakeEmbedder
    from remem.markdown.store import MarkdownStore
    from remem.models import MemoryRecord
    from remem.stores import MemoryFilter

    emb, store = FakeEmbedder(16), MarkdownStore(tmp_path / "md", 16)
    try:
        def writer(k: int) -> None:
            for i in range(30):
                r = MemoryRecord(user_id="alice", text=f"thread {k} line {i}", categories=["food"])
                store.upsert([r], emb.embed([r.text]))

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lines = [x for x in (tmp_path / "md" / "alice" / "food.md").read_text().split("\n") if x.startswith("- ")]
        assert len(lines) == 90 and store.count(MemoryFilter(user_id="alice")) == 90
    finally:
        store.close()
