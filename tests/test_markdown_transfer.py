"""Markdown between stores (export edge → Markdown → import edge is equal record for record), ``remem grep``,
and the command line of the Markdown store (export/import/grep/sync/demo)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from remem import Memory
from remem.cli import main
from remem.demo import run_demo
from remem.errors import ImportFormatError
from remem.markdown.grep import grep
from remem.markdown.transfer import export_markdown, import_markdown
from remem.models import MemoryRecord

T = datetime(2024, 5, 8, 13, 56, 7, 123456, tzinfo=UTC)


def varied(user: str) -> list[MemoryRecord]:
    """Records that use every field and the format's corner cases."""
    return [
        MemoryRecord(user_id=user, text="Alice loves green tea", categories=["food", "preferences"],
                     source_ids=["m1", "m 2, with comma"], metadata={"k": [1, 2], "s": "-->"}),
        MemoryRecord(user_id=user, text="Caroline: I went to a support group\n\nyesterday, it was great",
                     kind="episode", observed_at=T, role="user", speaker="Caroline", session_id="session_1", seq=4,
                     source_ids=["D1:3"]),
        MemoryRecord(user_id=user, text="Alice lives in Lisbon <!-- not a comment -->",
                     categories=["personal_details"], version=3, updated_at=T),
        MemoryRecord(user_id=user, text="no category, unicode 日本語 🍵"),
        MemoryRecord(user_id=user, text="a deleted memory", categories=["travel"], deleted_at=T),
        MemoryRecord(user_id=user, text="a deleted memory without category", deleted_at=T),
    ]


def all_records(m: Memory, user: str) -> list[MemoryRecord]:
    return sorted(m.list(user_id=user, deleted=None, limit=1000).items, key=lambda r: r.id)


@pytest.mark.parametrize("target", ["edge", "markdown"])
def test_export_edge_to_markdown_and_import_is_equal_record_for_record(tmp_path: Path, target: str) -> None:
    with Memory(tmp_path / "source", embedder="fake") as edge:
        for user in ("alice", "acme:bob"):
            edge.add_records(varied(user), actor="test")
        assert export_markdown(edge, tmp_path / "out") == 12
        originals = {u: all_records(edge, u) for u in ("alice", "acme:bob")}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["acme%3Abob", "alice"]
    assert sorted(p.name for p in (tmp_path / "out" / "alice").iterdir()) == [
        "profile.md", "trash.md", "uncategorized.md"]
    with Memory(tmp_path / target, embedder="fake", store=target) as other:
        counts = import_markdown(other, tmp_path / "out")
        assert counts == {"memories": 12, "events": 12, "skipped": 0}
        for user, records in originals.items():
            assert all_records(other, user) == records
        assert import_markdown(other, tmp_path / "out") == {"memories": 0, "events": 0, "skipped": 12}
        assert other.doctor().ok
        [event] = other.history(originals["alice"][0].id, user_id="alice")
        assert (event.event.value, event.actor) == ("ADD", "import")


def test_export_again_replaces_a_users_files(tmp_path: Path) -> None:
    with Memory(tmp_path / "m", embedder="fake") as m:
        tea = m.add("Alice loves green tea", user_id="alice", categories=["food"]).events[0].memory_id
        assert tea is not None
        export_markdown(m, tmp_path / "out")
        first = (tmp_path / "out" / "alice" / "food.md").read_text()
        m.update(tea, "Alice loves matcha", user_id="alice", categories=["drinks"])
        export_markdown(m, tmp_path / "out", user_id="alice")
    assert sorted(p.name for p in (tmp_path / "out" / "alice").iterdir()) == ["drinks.md"]
    assert first.replace("# food", "# drinks").count("\n") == (tmp_path / "out" / "alice" / "drinks.md").read_text(
    ).count("\n")


def test_import_validates_every_file_first(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "alice").mkdir(parents=True)
    (out / "alice" / "food.md").write_text("# food\n\n- fine\n- broken <!-- id=123 -->\n")
    (out / "bob").mkdir()
    (out / "bob" / "food.md").write_text("# food\n\n- bob's fine memory\n")
    with Memory(tmp_path / "m", embedder="fake") as m:
        with pytest.raises(ImportFormatError, match=r"alice/food.md:4: damaged id comment: field 'id'"):
            import_markdown(m, out)
        assert m.stats().memories == 0
        (out / "alice" / "food.md").write_text("# food\n\n- fine\n- also fine\n")
        assert import_markdown(m, out)["memories"] == 3  # lines without an id are new memories
        with pytest.raises(ImportFormatError, match="no user folders"):
            import_markdown(m, out / "alice")


def test_grep_names_file_and_line(tmp_path: Path) -> None:
    with Memory(tmp_path / "m", embedder="fake", store="markdown") as m:
        m.add("Alice loves green tea", user_id="alice", categories=["food"])
        m.add("Alice drinks coffee", user_id="alice", categories=["food"])
        m.add("Green is her colour", user_id="alice")
        hits = grep(m, "alice", "green", ignore_case=True)
        assert [(h.file, h.line, h.record.text, h.spans) for h in hits] == [
            ("food.md", 3, "Alice loves green tea", [(12, 17)]), ("uncategorized.md", 3, "Green is her colour",
                                                                   [(0, 5)])]
        assert grep(m, "alice", "green") == hits[:1]
        assert [h.record.text for h in grep(m, "alice", "c.f", fixed=True)] == []
    with Memory(tmp_path / "edge", embedder="fake") as edge:  # any store: no location
        edge.add("Alice loves green tea", user_id="alice")
        [hit] = grep(edge, "alice", r"gr[e]+n")
        assert (hit.file, hit.line, hit.spans) == (None, None, [(12, 17)])


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``remem ARGS`` through the real entry point (errors become exit codes there)."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return (exc.value.code if isinstance(exc.value.code, int) else 1), captured.out, captured.err


def test_cli_export_import_grep_sync(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    monkeypatch.setenv("COLUMNS", "200")
    md, edge = ("--home", str(tmp_path / "md")), ("--home", str(tmp_path / "edge"))
    monkeypatch.setenv("REMEM_STORE", "markdown")
    assert run(capsys, "add", "-u", "alice", "Alice loves green tea", "-c", "food", *md)[0] == 0
    code, out, _ = run(capsys, "grep", "-u", "alice", "GREEN", "-i", *md)
    assert code == 0 and "food.md:3: Alice loves green tea" in out
    assert run(capsys, "grep", "-u", "alice", "cocoa", *md)[0] == 1  # like grep: nothing matched
    code, _, err = run(capsys, "grep", "-u", "alice", "(", *md)
    assert code == 2 and "invalid pattern" in err
    code, out, _ = run(capsys, "export", str(tmp_path / "out"), "--format", "markdown", *md)
    assert code == 0 and "exported 1 memories" in out
    food = tmp_path / "md" / "markdown" / "alice" / "food.md"
    food.write_text(food.read_text().replace("id=", "i d="))
    code, out, _ = run(capsys, "sync", *md, "--json")
    [report] = json.loads(out)
    assert code == 1 and report["problems"][0]["line"] == 3 and report["problems"][0]["path"] == str(food)
    monkeypatch.setenv("REMEM_STORE", "edge")
    code, out, err = run(capsys, "import", str(tmp_path / "out"), *edge)
    assert code == 0 and "imported 1 memories" in out, err
    assert run(capsys, "export", str(tmp_path / "x"), "--format", "yaml", *edge)[0] == 2
    code, _, err = run(capsys, "sync", *edge)
    assert code == 1 and "REMEM_STORE=markdown" in err


def test_demo_on_the_markdown_store_shows_a_hand_edit(tmp_path: Path) -> None:
    sink = io.StringIO()
    report = run_demo(home=tmp_path / "demo", console=Console(file=sink, width=160), embedder="fake",
                      store="markdown")
    assert report.ok, [c for c in report.checks if not c.ok]
    assert "hand edit" in {c.name for c in report.checks}
    out = sink.getvalue()
    assert "profile.md" in out and "UPDATE" in out and "file" in out
