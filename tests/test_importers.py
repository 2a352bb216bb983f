"""Importers: ChatGPT and Claude data exports and Mem0 dumps, from small files written in each public format
(``tests/data/imports/``), on the real embedded store; malformed files; re-runs; the import -> export round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remem import ImportFormatError, Memory, ValidationError
from remem.importers import import_export

DATA = Path(__file__).parent / "data" / "imports"
CHATGPT = DATA / "chatgpt_conversations.json"
CLAUDE = DATA / "claude_conversations.json"
MEM0 = DATA / "mem0_get_all.json"
CONV1 = "c0ffee00-0000-4000-8000-000000000001"
CONV2 = "c0ffee00-0000-4000-8000-000000000002"


def ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def episodes(memory: Memory, user: str, session: str) -> list[tuple[int | None, str | None, str, list[str]]]:
    records = memory.list(user_id=user, session_id=session, limit=100).items
    return sorted((r.seq, r.role, r.text, r.source_ids) for r in records)  # type: ignore[type-var]


# -- ChatGPT -----------------------------------------------------------------------------------------------------
def test_chatgpt_export_becomes_episodes(fake_memory: Memory) -> None:
    progress: list[tuple[int, int]] = []
    summary = import_export(fake_memory, CHATGPT, "chatgpt", user_id="alice",
                            progress=lambda done, total: progress.append((done, total)))
    assert (summary.imported, summary.conversations, summary.users) == (7, 2, ["alice"])
    assert summary.skipped_by_reason == {"hidden from the conversation": 1, "tool message": 1, "tool call": 1}
    assert {s.where for s in summary.skipped} == {"$[0].mapping.sys.message", "$[0].mapping.t1.message",
                                                  "$[1].mapping.c.message"}  # c: code sent to python
    assert progress[-1] == (7, 7)
    assert episodes(fake_memory, "alice", CONV1) == [
        (0, "user", "I'm flying to Lisbon on May 20th, any tips?", ["u1"]),
        (1, "assistant", "Try the pastel de nata in Belem.", ["a1"]),  # the regenerated-away answer is kept
        (2, "assistant", "Take tram 28 early in the morning.", ["a1b"]),
        (3, "user", "Here is my boarding pass, I'm in seat 14C.", ["u2"]),  # the image part has no text
        (4, "assistant", "Seat 14C is an aisle seat.", ["a2"]),
    ]
    assert episodes(fake_memory, "alice", CONV2) == [(0, "user", "thanks", ["q"]), (1, "user", "thanks", ["q2"])]
    by_source = {r.source_ids[0]: r for r in fake_memory.list(user_id="alice", limit=100).items}
    assert by_source["u1"].observed_at == ts(1714557600.25)
    assert by_source["q2"].observed_at == ts(1717236000.0)  # no create_time: the conversation's
    assert by_source["a1"].metadata["import"] == {"source": "chatgpt", "conversation_title": "Trip to Lisbon",
                                                  "branch": "other", "model": "gpt-4o"}
    assert by_source["a1b"].metadata["import"]["branch"] == "current"
    assert by_source["u1"].kind == "episode"


def test_rerun_writes_nothing_and_users_are_separate(fake_memory: Memory) -> None:
    import_export(fake_memory, CHATGPT, "chatgpt", user_id="alice")
    again = import_export(fake_memory, CHATGPT, "chatgpt", user_id="alice")
    assert again.imported == 0
    assert again.skipped_by_reason == {"already imported": 7, "hidden from the conversation": 1, "tool message": 1,
                                       "tool call": 1}
    assert fake_memory.list(user_id="alice").total == 7
    record = fake_memory.list(user_id="alice").items[0]
    fake_memory.delete(record.id, user_id="alice")  # a deleted import stays deleted on a re-run
    assert import_export(fake_memory, CHATGPT, "chatgpt", user_id="alice").imported == 0
    bob = import_export(fake_memory, CHATGPT, "chatgpt", user_id="bob")  # the same file for another user
    assert bob.imported == 7
    assert fake_memory.list(user_id="alice").total == 6 and fake_memory.list(user_id="bob").total == 7
    hits = fake_memory.search("tram 28", user_id="bob")
    assert hits and all(h.record.user_id == "bob" for h in hits)


def test_round_trip_import_export_keeps_every_message(fake_memory: Memory, tmp_path: Path) -> None:
    import_export(fake_memory, CHATGPT, "chatgpt", user_id="alice")
    import_export(fake_memory, CLAUDE, "claude", user_id="alice")
    out = tmp_path / "alice.jsonl"
    fake_memory.export(out, user_id="alice")
    exported = {}
    for line in out.read_text().splitlines():
        row = json.loads(line)
        if row["type"] == "memory":
            exported[(row["record"]["session_id"], row["record"]["source_ids"][0])] = row["record"]
    expected = {}
    for conv in json.loads(CHATGPT.read_text()):
        for node in conv["mapping"].values():
            msg = node["message"]
            if msg and msg["author"]["role"] != "tool" and msg["recipient"] == "all" and not msg["metadata"].get(
                    "is_visually_hidden_from_conversation"):
                parts = msg["content"].get("parts") or [msg["content"].get("text")]
                expected[(conv["id"], msg["id"])] = "\n".join(p for p in parts if isinstance(p, str))
    for conv in json.loads(CLAUDE.read_text()):
        for msg in conv["chat_messages"]:
            texts = [b["text"] for b in msg.get("content", []) if b["type"] == "text"] or [msg["text"]]
            if "".join(texts).strip():
                expected[(conv["uuid"], msg["uuid"])] = "\n".join(texts)
    assert {k: v["text"] for k, v in exported.items()} == expected
    with Memory(tmp_path / "other", embedder="fake") as other:  # and the export loads back whole
        other.import_(out)
        assert other.list(user_id="alice").total == len(expected)


# -- Claude ------------------------------------------------------------------------------------------------------
def test_claude_export_becomes_episodes(fake_memory: Memory) -> None:
    summary = import_export(fake_memory, CLAUDE, "claude", user_id="alice")
    assert (summary.imported, summary.conversations) == (4, 2)
    assert [(s.where, s.reason) for s in summary.skipped] == [("$[0].chat_messages[3]", "no text")]
    assert episodes(fake_memory, "alice", "5e1f0c2a-0000-4000-8000-00000000000a") == [
        (0, "user", "I'm vegan and allergic to peanuts. Dinner ideas?", ["m-1"]),
        (1, "assistant", "How about a chickpea curry with coconut milk?", ["m-2"]),
        (2, "user", "Here is my shopping list", ["m-3"]),
    ]
    by_source = {r.source_ids[0]: r for r in fake_memory.list(user_id="alice", limit=100).items}
    assert by_source["m-2"].observed_at == datetime(2024, 6, 1, 12, 0, 5, 250000, tzinfo=UTC)
    assert by_source["m-3"].metadata["import"] == {"source": "claude", "conversation_title": "Vegan recipes",
                                                   "files": ["list.txt"]}
    assert by_source["n-1"].text == "Old export without content blocks: I moved to Porto."
    assert import_export(fake_memory, CLAUDE, "claude", user_id="alice").imported == 0


# -- Mem0 --------------------------------------------------------------------------------------------------------
def test_mem0_dump_becomes_facts_per_user(fake_memory: Memory) -> None:
    fake_memory.add("loves SCI-FI movies", user_id="alice")  # alice already knows this one
    summary = import_export(fake_memory, MEM0, "mem0")
    assert (summary.imported, summary.users) == (2, ["alice", "bob"])
    assert sorted((s.where, s.reason) for s in summary.skipped) == [
        ("$.results[1]", "same text as an existing memory"), ("$.results[3]", "no text")]
    veg = next(r for r in fake_memory.list(user_id="alice").items if r.text.startswith("Is a vegetarian"))
    assert veg.kind == "fact" and veg.categories == ["food", "health"]
    assert veg.created_at == datetime(2024, 7, 20, 8, 30, 52, 167985, tzinfo=UTC)
    assert veg.updated_at == datetime(2024, 7, 21, 16, 0, tzinfo=UTC)
    assert veg.source_ids == ["892db2ae-06d9-49e5-8b3e-585ef9b85b8e"]
    assert veg.metadata == {"source": "onboarding", "import": {
        "source": "mem0", "id": "892db2ae-06d9-49e5-8b3e-585ef9b85b8e", "hash": "c24d2a4b0d9d9e1b7e5e2d6f8a0b1c3d"}}
    assert [r.text for r in fake_memory.list(user_id="bob").items] == ["Plays the cello"]
    assert fake_memory.search("cello", user_id="alice", kinds=["fact"])[0].record.user_id == "alice"
    assert all(h.record.text != "Plays the cello" for h in fake_memory.search("cello", user_id="alice"))
    again = import_export(fake_memory, MEM0, "mem0")
    assert again.imported == 0 and again.skipped_by_reason["already imported"] == 2


def test_mem0_plain_list_and_default_user(fake_memory: Memory, tmp_path: Path) -> None:
    dump = tmp_path / "plain.json"
    dump.write_text(json.dumps([{"id": "x1", "memory": "Likes jazz", "run_id": "r1", "extra_field": 3},
                                {"id": "x2", "memory": "Has a cat", "user_id": "dora"}]))
    summary = import_export(fake_memory, dump, "mem0", user_id="carol")
    assert (summary.imported, summary.users) == (2, ["carol", "dora"])
    (jazz,) = fake_memory.list(user_id="carol").items
    assert (jazz.session_id, jazz.metadata["import"]) == ("r1", {"source": "mem0", "id": "x1", "run_id": "r1",
                                                                 "extra_field": 3})


# -- malformed files ---------------------------------------------------------------------------------------------
BAD = [
    ("chatgpt", '[{"id": "c", "mapping": {}}\n, ]', r":2:3: not valid JSON"),
    ("chatgpt", '{"conversations": []}', r"\$: expected a list, got dict"),
    ("chatgpt", json.dumps([{"id": "c", "mapping": {"node-1": {"message": {"id": "m", "author": {},
                                                                        "content": {"content_type": "text"}}}}}]),
     r'\$\[0\]\.mapping\["node-1"\]\.message\.author\.role: Field required'),
    ("chatgpt", json.dumps([{"id": "c", "mapping": {"n": {"message": None}}}, {"title": "no id", "mapping": {}}]),
     r"\$\[1\]: Value error, a conversation needs an 'id'"),
    ("chatgpt", json.dumps([{"id": "c", "mapping": {"n": {"message": {"id": "m", "author": {"role": "user"},
                                                                       "create_time": "yesterday",
                                                                       "content": {"content_type": "text"}}}}}]),
     r"\$\[0\]\.mapping\.n\.message\.create_time: Input should be a valid number"),
    ("claude", json.dumps([{"uuid": "c", "chat_messages": {"uuid": "m"}}]),
     r"\$\[0\]\.chat_messages: Input should be a valid list"),
    ("claude", json.dumps([{"uuid": "c", "chat_messages": [{"uuid": "m", "sender": "human",
                                                             "created_at": "not a date"}]}]),
     r"\$\[0\]\.chat_messages\[0\]\.created_at: Input should be a valid datetime"),
    ("mem0", json.dumps({"results": [{"id": "a", "memory": "ok", "user_id": "u"}, {"id": "b", "user_id": "u"}]}),
     r"\$\.results\[1\]\.memory: Field required"),
    ("mem0", json.dumps({"memories": []}), r"an object with 'results'"),
    ("mem0", json.dumps([{"id": "a", "memory": "ok", "user_id": "u"}, {"id": "b", "memory": "no user"}]),
     r"\$\[1\]\.user_id: no user_id"),
    ("mem0", json.dumps([{"id": "a", "memory": "ok", "user_id": "not valid!"}]), r"\$\[0\]: invalid user id"),
    ("mem0", json.dumps([{"id": "a", "memory": "ok", "user_id": "u", "categories": [""]}]),
     r"\$\[0\]: categories\[0\] is empty"),
]


@pytest.mark.parametrize(("source", "content", "message"), BAD)
def test_malformed_files_name_the_position_and_write_nothing(fake_memory: Memory, tmp_path: Path, source: str,
                                                             content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    # a valid first item proves validation covers the whole file before anything is written
    bad.write_text(content)
    with pytest.raises(ImportFormatError, match=message):
        import_export(fake_memory, bad, source, user_id=None if source == "mem0" else "alice")  # type: ignore[arg-type]
    assert fake_memory.stats().memories == 0 and fake_memory.users() == []


def test_unreadable_and_misused(fake_memory: Memory, tmp_path: Path) -> None:
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'[\n{"name": "caf\xe9"}]')
    with pytest.raises(ImportFormatError, match=r"latin.json:2: not valid UTF-8"):
        import_export(fake_memory, latin, "claude", user_id="alice")
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    with pytest.raises(ImportFormatError, match="is empty"):
        import_export(fake_memory, empty, "claude", user_id="alice")
    with pytest.raises(ImportFormatError, match="cannot read"):
        import_export(fake_memory, tmp_path / "missing.json", "claude", user_id="alice")
    with pytest.raises(ValidationError, match="say whose"):
        import_export(fake_memory, CHATGPT, "chatgpt")
    with pytest.raises(ValidationError, match="unknown import format"):
        import_export(fake_memory, CHATGPT, "gemini", user_id="alice")  # type: ignore[arg-type]


def test_long_messages_are_skipped_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEM_MAX_TEXT_CHARS", "20")
    with Memory(tmp_path / "small", embedder="fake") as memory:
        summary = import_export(memory, CLAUDE, "claude", user_id="alice")
    assert summary.imported == 0
    assert summary.skipped_by_reason == {"longer than 20 characters (REMEM_MAX_TEXT_CHARS)": 4, "no text": 1}


def test_the_export_zip_is_read_directly(fake_memory: Memory, tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("user.json", "{}")
        z.writestr("conversations.json", CLAUDE.read_text())
    assert import_export(fake_memory, archive, "claude", user_id="alice").imported == 4
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("user.json", "{}")
    with pytest.raises(ImportFormatError, match="the archive has no conversations.json"):
        import_export(fake_memory, empty, "chatgpt", user_id="alice")
