"""The Markdown store's names and file format: reversible, safe names; a deterministic format that reads back
exactly what it writes; every broken line named with its file and line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from remem.errors import InvalidUserIdError, ValidationError
from remem.markdown.fmt import (
    PROFILE_FILE,
    TRASH_FILE,
    item_categories,
    parse,
    placement,
    render,
)
from remem.markdown.names import (
    WINDOWS_RESERVED,
    category_file,
    category_of_file,
    decode,
    encode,
    user_dir,
    user_of_dir,
)
from remem.models import MemoryRecord

T = datetime(2024, 5, 8, 13, 56, tzinfo=UTC)


# -- names --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "name"), [
    ("alice", "alice"), ("Alice", "^alice"), ("acme:alice", "acme%3Aalice"), ("a.b@c+d_e-f", "a.b@c+d_e-f"),
    ("nul", "%6Eul"), ("con.txt", "%63on.txt"), ("COM1", "^c^o^m1"), ("a.", "a%2E"), ("x%y^z", "x%25y%5Ez"),
    ("a/../b", "a%2F..%2Fb"), ("café", "caf%C3%A9"),
])
def test_names_are_safe_and_reversible(value: str, name: str) -> None:
    assert encode(value) == name
    assert decode(name) == value
    assert "/" not in name and "\\" not in name and "\x00" not in name and name not in (".", "..")
    assert name.split(".", 1)[0].lower() not in WINDOWS_RESERVED


def test_names_differ_on_case_insensitive_file_systems() -> None:
    variants = ["alice", "Alice", "ALICE", "aLiCe"]
    assert len({encode(v).lower() for v in variants}) == len(variants)


@pytest.mark.parametrize("name", ["Alice", "a%2", "a%zz", "%61lice", "a b", "..", "nul", "a%2F"[:-1]])
def test_decode_refuses_names_remem_does_not_write(name: str) -> None:
    with pytest.raises(ValidationError):
        decode(name)


HOSTILE = ["../etc", "/etc/passwd", "a/b", "a\\b", "a\x00b", "..", ".", "", " alice", "alice\n", "-x", "~root",
           "a" * 129, "C:\\Windows", "$HOME"]


@pytest.mark.parametrize("user_id", HOSTILE)
def test_hostile_user_ids_are_refused(user_id: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidUserIdError):
        user_dir(tmp_path, user_id)


@pytest.mark.parametrize("user_id", ["CON", "nul", "com1.txt", "LPT9", "aux.md", "a:b:c", "x.", "A" * 120,
                                     "a" + ":" * 84])
def test_valid_but_tricky_user_ids_stay_inside_the_root(user_id: str, tmp_path: Path) -> None:
    path = user_dir(tmp_path, user_id)
    assert path.parent == tmp_path and path.resolve().parent == tmp_path.resolve()
    assert path.name.split(".", 1)[0].lower() not in WINDOWS_RESERVED
    assert user_of_dir(path.name) == user_id


def test_a_user_id_too_long_for_a_file_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="too long"):
        user_dir(tmp_path, "a" + ":" * 127)  # 1 + 127 * 3 bytes encoded
    with pytest.raises(ValidationError, match="too long"):
        user_dir(tmp_path, "A" * 128)  # 2 bytes each


def test_category_files_never_collide_with_remem_files() -> None:
    assert category_file("food") == "food.md" and category_of_file("food.md") == "food"
    for own in ("profile", "trash", "uncategorized", "nul"):
        name = category_file(own)
        assert name not in (PROFILE_FILE, TRASH_FILE, "uncategorized.md", "nul.md")
        assert category_of_file(name) == own
    assert category_file("food & drink") == "food%20%26%20drink.md"


# -- format -------------------------------------------------------------------------------------------------------
def full(text: str, **kw: object) -> MemoryRecord:
    values: dict[str, object] = {
        "user_id": "alice", "text": text, "kind": "episode", "categories": ["food", "health"], "created_at": T,
        "updated_at": T.replace(microsecond=123456), "observed_at": T.replace(year=2023), "source_ids": ["D1:3", "a, b"],
        "role": "user", "speaker": "Dr. Maria --> Smith", "session_id": "conv-26 session_1", "seq": 3,
        "metadata": {"k": [1, "<!-- x -->"], "n": None}, "version": 4}
    values.update(kw)
    return MemoryRecord(**values)  # type: ignore[arg-type]


TEXTS = [
    "Alice loves green tea",
    "Two lines:\nthe second one",
    "A blank line inside\n\n  an indented line after it",
    "- looks like an item\n## looks like a heading\n# and a title",
    "an <!-- html comment --> inside, and an arrow -->",
    "ends with a comment <!-- like this -->",
    "unicode: 日本語, emoji 🍵, tab\there",
]


@pytest.mark.parametrize("text", TEXTS)
def test_render_then_parse_gives_every_field_back(text: str) -> None:
    record = full(text)
    content = render(placement(record)[0], [record], title="food")
    parsed = parse(content, name="food.md", path="food.md", category="food")
    assert parsed.problems == []
    [item] = parsed.items
    f = item.fields
    assert item.text == record.text and item_categories(item) == record.categories
    assert (f["id"], f["kind"], f["at"], f["created"], f["updated"], f["v"]) == (
        record.id, "episode", record.observed_at, record.created_at, record.updated_at, 4)
    assert (f["src"], f["speaker"], f["role"], f["session"], f["seq"], f["meta"]) == (
        record.source_ids, record.speaker, "user", record.session_id, 3, record.metadata)


def test_rendering_is_deterministic_and_one_line_per_memory() -> None:
    records = [MemoryRecord(user_id="alice", text=f"memory {i}", created_at=T.replace(minute=i), updated_at=T.replace(
        minute=i), categories=["food"]) for i in (3, 1, 2)]
    first = render("food.md", records, title="food")
    assert first == render("food.md", records[::-1], title="food")
    lines = first.split("\n")
    assert lines[:2] == ["# food", ""] and [line[:10] for line in lines[2:5]] == ["- memory 1", "- memory 2",
                                                                                    "- memory 3"]
    changed = records[0].model_copy(update={"text": "memory 3 changed"})
    diff = [(a, b) for a, b in zip(first.split("\n"), render("food.md", [changed, *records[1:]], title="food")
                                   .split("\n"), strict=True) if a != b]
    assert len(diff) == 1  # a change to one memory is a one-line diff


def test_profile_and_trash_placement() -> None:
    core = MemoryRecord(user_id="a", text="x", categories=["food", "preferences"])
    assert placement(core) == (PROFILE_FILE, "preferences")
    assert placement(core.model_copy(update={"deleted_at": T})) == (TRASH_FILE, "food")
    assert placement(MemoryRecord(user_id="a", text="x")) == ("uncategorized.md", None)
    assert placement(MemoryRecord(user_id="a", text="x", categories=["travel", "food"])) == ("travel.md", "travel")
    text = render(PROFILE_FILE, [core])
    assert "## preferences" in text and "also=food,preferences" in text  # the order of categories is kept
    [item] = parse(text, name=PROFILE_FILE, path="p", category=None).items
    assert item_categories(item) == ["food", "preferences"]


def test_a_hand_written_line_is_a_new_fact_in_the_section() -> None:
    text = "# Profile\n\n- first, before any section\n\n## preferences\n\n* likes tea\n+ likes\n  long walks\n"
    items = parse(text, name=PROFILE_FILE, path="p", category=None).items
    assert [(i.text, i.category, i.fields) for i in items] == [
        ("first, before any section", "personal_details", {}), ("likes tea", "preferences", {}),
        ("likes\nlong walks", "preferences", {})]


def test_crlf_and_notes_are_read() -> None:
    text = "# food\r\n\r\n<!-- a note -->\r\n- tea\r\n"
    [item] = parse(text, name="food.md", path="f", category="food").items
    assert item.text == "tea"


UUID = "5b1c6f3e-8f0a-4b7e-9a36-2f0c9f4d7a11"


@pytest.mark.parametrize(("line", "message"), [
    (f"- tea <!-- id={UUID[:-2]} kind=fact -->", "must be a UUID"),
    ("- tea <!-- kind=fact created=2024-01-01T00:00:00Z -->", "has no id"),
    (f"- tea <!- id={UUID} kind=fact -->", "damaged id comment"),
    (f"- tea <!-- id={UUID} kind=fact --", "damaged id comment"),
    (f"- tea <!-- id={UUID} knd=fact -->", "unknown field 'knd'"),
    (f"- tea <!-- id={UUID} id={UUID} -->", "appears twice"),
    (f"- tea <!-- id={UUID} kind=note -->", "fact or episode"),
    (f"- tea <!-- id={UUID} at=yesterday -->", "must be a time"),
    (f"- tea <!-- id={UUID} meta=[1] -->", "a JSON object"),
    (f"- tea <!-- id={UUID} v=0 -->", "positive integer"),
    (f"<!-- id={UUID} kind=fact -->", "on its own line"),
    ("plain text, not an item", "outside a list item"),
    ("### deeper heading", "headings"),
    ("- ", "empty memory"),
])
def test_broken_lines_are_named_with_file_and_line(line: str, message: str) -> None:
    text = f"# food\n\n- fine <!-- id={UUID.replace('5b', '6b')} kind=fact -->\n{line}\n"
    parsed = parse(text, name="food.md", path="/x/food.md", category="food")
    [problem] = parsed.problems
    assert (problem.path, problem.line) == ("/x/food.md", 4) and message in problem.message
    assert str(problem).startswith("/x/food.md:4: ")


def test_a_comment_moved_off_the_last_line_of_its_memory_is_refused() -> None:
    text = f"- first line <!-- id={UUID} kind=fact -->\n  second line\n"
    [problem] = parse(text, name="food.md", path="f", category="food").problems
    assert problem.line == 1 and "must end" in problem.message
