"""``remem doctor``: store vs history (the system of record), report and repair; recovery on open."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from remem import EventType, Memory
from remem.cli import app
from remem.models import MemoryRecord
from remem.stores import MemoryFilter


def test_doctor_reports_and_repairs_each_kind_of_disagreement(tmp_path: Path) -> None:
    with Memory(tmp_path / "m", embedder="fake") as m:
        a, b, c = (e.memory_id or "" for e in m.add(["kept", "lost from the store", "changed behind history"],
                                                    user_id="u").events)
        assert m.doctor().ok
        m.store.delete([b], MemoryFilter(user_id="u"))  # a lost store write
        changed = m.get(c, user_id="u").model_copy(update={"text": "rewritten without history"})
        m.store.upsert([changed], m.embedder.embed([changed.text]))
        orphan = MemoryRecord(user_id="u", text="in the store only")
        m.store.upsert([orphan], m.embedder.embed([orphan.text]))
        report = m.doctor()
        assert not report.ok
        [problem] = report.problems
        assert (problem.missing, problem.differs, problem.orphans) == ([b], [c], [orphan.id])
        assert m.doctor(repair=True).problems != []  # reports what it repaired
        assert m.doctor().ok
        assert m.get(b, user_id="u").text == "lost from the store"
        assert m.get(c, user_id="u").text == "changed behind history"
        assert m.get(orphan.id, user_id="u").text == "in the store only"  # adopted, never deleted
        [adopted] = m.history(orphan.id, user_id="u")
        assert (adopted.event, adopted.actor) == (EventType.ADD, "doctor")
        assert m.get(a, user_id="u").text == "kept"


def test_doctor_cli_exit_codes(tmp_path: Path) -> None:
    home = tmp_path / "m"
    with Memory(home, embedder="fake") as m:
        (mid,) = (e.memory_id or "" for e in m.add("lost", user_id="u").events)
        m.store.delete([mid], MemoryFilter(user_id="u"))
    runner = CliRunner()
    env = {"REMEM_EMBEDDER": "fake"}
    bad = runner.invoke(app, ["doctor", "--home", str(home)], env=env)
    assert bad.exit_code == 1 and "DISAGREE" in bad.output
    fixed = runner.invoke(app, ["doctor", "--home", str(home), "--repair"], env=env)
    assert fixed.exit_code == 0, fixed.output
    assert runner.invoke(app, ["doctor", "--home", str(home)], env=env).exit_code == 0
