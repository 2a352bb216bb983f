"""REMEM_STORE=markdown never follows a symbolic link (review finding 1): a user directory or a file in it that is a
link is refused with an error naming it, nothing outside ``<home>/markdown/`` is read or written, ``forget_user``
removes the link (never its target) and always finishes, and no byte of the user's text stays under the home."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from remem import Memory
from remem.cli import app
from remem.errors import MarkdownConflictError, MarkdownFormatError, StoreError
from remem.markdown.ops import markdown_store, sync
from remem.models import utcnow
from remem.parts import parts_of
from remem.storage.base import Intent

OUTSIDE_TEXT = "- carol's secret kept outside SECRETCAROL\n"
TARGET_TEXT = "# linked\n\n- a secret in a linked file SECRETLINK\n"


def tree(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (relative name -> sha256): proves nothing there was written or created."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def bytes_under(home: Path, *needles: str) -> list[str]:
    """Files under ``home`` holding any of ``needles`` (UTF-8 bytes), the SQLite files included."""
    found = []
    for p in sorted(home.rglob("*")):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            found += [f"{p.relative_to(home)}: {n}" for n in needles if n.encode() in data]
    return found


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Memory, Path, Path]]:
    """The tester's reproduction: ``ln -s /outside <home>/markdown/carol`` and ``alice/linked.md -> target.md``."""
    outside, outside2 = tmp_path / "outside", tmp_path / "outside2"
    outside.mkdir()
    outside2.mkdir()
    (outside / "notes.md").write_text(OUTSIDE_TEXT)
    (outside2 / "target.md").write_text(TARGET_TEXT)
    m = Memory(tmp_path / "home", embedder="fake", store="markdown")
    m.add("Alice loves green tea", user_id="alice", categories=["food"])
    root = m.home / "markdown"
    (root / "carol").symlink_to(outside, target_is_directory=True)
    (root / "alice" / "linked.md").symlink_to(outside2 / "target.md")
    try:
        yield m, outside, outside2
    finally:
        m.close()


def test_a_linked_user_directory_is_refused_and_never_followed(setup: tuple[Memory, Path, Path]) -> None:
    m, outside, outside2 = setup
    before = tree(outside), tree(outside2)
    link = m.home / "markdown" / "carol"
    for call in (lambda: m.list(user_id="carol"), lambda: m.search("secret", user_id="carol"),
                 lambda: m.add("Carol likes jazz", user_id="carol", categories=["notes"]),
                 lambda: sync(m, "carol")):
        with pytest.raises(MarkdownFormatError) as err:
            call()
        assert str(err.value).startswith(f"{link} is a symbolic link: remem does not follow links")
    # reads over all users leave carol out (the rest of the store stays usable); alice is untouched
    assert m.stats().memories == 1
    reports = {r.user_id: r for r in sync(m)}  # a sync of every user reports carol's link and syncs the others
    assert sorted(reports) == ["alice", "carol"] and reports["carol"].events == []
    assert [(p.path, p.message.split(":")[0]) for p in reports["carol"].problems] == [
        (str(link), "the directory is a symbolic link")]
    assert [p.message.split(":")[0] for p in reports["alice"].problems] == ["the file is a symbolic link"]
    assert [r.text for r in m.list(user_id="alice").items] == ["Alice loves green tea"]
    assert (tree(outside), tree(outside2)) == before
    assert bytes_under(m.home, "SECRETCAROL", "Carol likes jazz") == []


def test_a_linked_file_is_reported_and_never_read_nor_replaced(setup: tuple[Memory, Path, Path]) -> None:
    m, _, outside2 = setup
    linked = m.home / "markdown" / "alice" / "linked.md"
    [report] = sync(m, "alice")
    assert [(p.path, p.line) for p in report.problems] == [(str(linked), 1)]
    assert report.problems[0].message.startswith("the file is a symbolic link: remem does not follow links")
    assert [r.text for r in m.list(user_id="alice").items] == ["Alice loves green tea"]
    # a write into that category is refused (the link is neither followed nor replaced); other writes work
    with pytest.raises(MarkdownConflictError, match=f"{linked} is a symbolic link"):
        m.add("Alice reads sci-fi", user_id="alice", categories=["linked"])
    m.add("Alice runs on Sundays", user_id="alice", categories=["sport"])
    assert linked.is_symlink() and (outside2 / "target.md").read_text() == TARGET_TEXT
    assert sorted(r.text for r in m.list(user_id="alice").items) == ["Alice loves green tea", "Alice runs on Sundays"]
    assert bytes_under(m.home, "SECRETLINK") == []  # the target was never read
    assert m.doctor().ok


def test_forget_user_removes_links_never_their_targets(setup: tuple[Memory, Path, Path]) -> None:
    m, outside, outside2 = setup
    before = tree(outside), tree(outside2)
    root = m.home / "markdown"
    assert m.forget_user("carol").memories == 0
    assert not os.path.lexists(root / "carol")
    assert m.forget_user("alice").memories == 1
    assert not os.path.lexists(root / "alice") and not os.path.lexists(root / ".remem" / "alice")
    assert (tree(outside), tree(outside2)) == before
    m.add("Dave plays chess", user_id="dave")  # the data directory stays usable
    assert [r.text for r in m.list(user_id="dave").items] == ["Dave plays chess"]
    assert bytes_under(m.home, "SECRETCAROL", "SECRETLINK", "Alice loves green tea") == []


def test_forget_user_on_the_command_line(setup: tuple[Memory, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    m, outside, _ = setup
    home = m.home
    m.close()
    monkeypatch.setenv("REMEM_HOME", str(home))
    monkeypatch.setenv("REMEM_STORE", "markdown")
    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    result = CliRunner().invoke(app, ["sync"])  # every user: carol's link is a problem, not a crash
    assert result.exit_code == 1 and "the directory is a symbolic link" in result.output, result.output
    assert "2 users synced: 0 changes applied, 2 problems" in result.output
    result = CliRunner().invoke(app, ["forget-user", "carol", "--yes"])
    assert result.exit_code == 0, result.output
    assert "forgot user carol: 0 memories" in result.output
    assert not os.path.lexists(home / "markdown" / "carol") and (outside / "notes.md").read_text() == OUTSIDE_TEXT
    result = CliRunner().invoke(app, ["list", "-u", "alice"])
    assert result.exit_code == 0 and "Alice loves green tea" in result.output


def test_an_interrupted_erasure_of_a_linked_user_is_finished_on_open(setup: tuple[Memory, Path, Path]) -> None:
    m, outside, _ = setup
    home = m.home
    # the state a process leaves when it dies right after writing the erasure's intent
    parts_of(m).history.begin([Intent(id=str(uuid.uuid4()), user_id="carol", op="forget", created_at=utcnow())])
    m.close()
    with Memory(home, embedder="fake", store="markdown") as again:
        assert not os.path.lexists(home / "markdown" / "carol")
        assert (outside / "notes.md").read_text() == OUTSIDE_TEXT
        assert again.doctor().ok and [r.text for r in again.list(user_id="alice").items] == ["Alice loves green tea"]


def test_special_files_and_links_around_the_store(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with Memory(tmp_path / "home", embedder="fake", store="markdown") as m:
        m.add("Alice loves green tea", user_id="alice", categories=["food"])
        folder = markdown_store(m).user_path("alice")
        os.mkfifo(folder / "music.md")  # a FIFO is never opened for reading (it would block)
        (folder / "notes.md").symlink_to(outside / "dangling.md")
        [report] = sync(m, "alice")
        assert sorted((Path(p.path).name, p.message.split(":")[0]) for p in report.problems) == [
            ("music.md", "the file is a FIFO where a file belongs"), ("notes.md", "the file is a symbolic link")]
        with pytest.raises(MarkdownConflictError):
            m.add("Alice hums", user_id="alice", categories=["music"])
        home = m.home
    assert not (outside / "dangling.md").exists()
    # a cache directory that is a link: the store refuses to open, naming it
    cache = home / "markdown" / ".remem"
    cache.rename(tmp_path / "moved")
    cache.symlink_to(tmp_path / "moved", target_is_directory=True)
    with pytest.raises(MarkdownFormatError, match=f"{cache} is a symbolic link"):
        Memory(home, embedder="fake", store="markdown")
    cache.unlink()
    # the process lock and .gitignore are never written through a link
    (home / "markdown" / ".gitignore").unlink()
    (home / "markdown" / ".gitignore").symlink_to(outside / "ignored")
    with Memory(home, embedder="fake", store="markdown") as m:
        assert [r.text for r in m.list(user_id="alice").items] == ["Alice loves green tea"]  # adopted from files
    assert not (outside / "ignored").exists()
    (home / "markdown" / ".lock").unlink()
    (home / "markdown" / ".lock").symlink_to(outside / "lock")
    with pytest.raises(StoreError, match=r"\.lock is a symbolic link"):
        Memory(home, embedder="fake", store="markdown")
    assert not (outside / "lock").exists()
