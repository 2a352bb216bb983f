"""`remem export` never replaces what is not a regular file, and `-` writes to standard output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from remem import Memory, ValidationError
from remem.cli import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REMEM_EMBEDDER", "fake")
    with Memory(tmp_path / "h", embedder="fake") as m:
        m.add(["one", "two"], user_id="u")
    return tmp_path / "h"


def test_export_refuses_a_pipe_a_link_and_a_directory(home: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    target = tmp_path / "target.jsonl"
    target.write_text("keep me")
    link = tmp_path / "link"
    link.symlink_to(target)
    with Memory(home, embedder="fake") as m:
        for path in (fifo, link, tmp_path):
            with pytest.raises(ValidationError):
                m.export(path)
    assert fifo.is_fifo() and link.is_symlink() and target.read_text() == "keep me"
    code, _, err = run(capsys, "export", str(fifo), "--home", str(home))
    assert code == 2 and "not a regular file" in err


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return (exc.value.code if isinstance(exc.value.code, int) else 1), out.out, out.err


def test_export_dash_writes_standard_output(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "export", "-", "--home", str(home))
    assert code == 0
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert lines[0]["type"] == "header" and sum(1 for x in lines if x["type"] == "memory") == 2
    assert not Path("-").exists()
