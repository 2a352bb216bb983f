"""kill -9 at the write path's steps: store and history agree after the next open, nothing acknowledged is lost,
an import is all or nothing, and an erasure that started is finished down to the bytes (remem.testing.crash;
``benchmarks/crash.py`` runs hundreds of trials, also at random moments)."""

from __future__ import annotations

from pathlib import Path

import pytest

from remem import EventType, Memory
from remem.testing.crash import BULK, OPS, Trial, count_hooks, hooked_trials, prepare, run_trial

TRIALS = 40


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    base = tmp_path_factory.mktemp("crash")
    prepare(base / "template")
    return base / "template", count_hooks(base / "template", base / "count")


def test_killed_right_after_the_store_write_of_an_add(template: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    """The handed reproduction: SIGKILL right after ``store.upsert`` returns, before history records the ADD."""
    result = run_trial(template[0], tmp_path, Trial(op="add", kill_at=1, when="after", hook="store.upsert"))
    assert result.killed and result.problems == []
    with Memory(tmp_path / "home", embedder="fake") as m:
        texts = [f"alice new fact 0.{i}" for i in range(3)]
        found = {r.text: r for r in m.list(user_id="alice", limit=100).items if r.text in texts}
        assert sorted(found) == texts  # rolled forward: the interrupted add is complete …
        for record in found.values():  # … and history records it
            assert [e.event for e in m.history(record.id, user_id="alice")] == [EventType.ADD]
        assert m.log.intents() == []


def test_an_add_of_many_texts_killed_after_its_first_store_write_is_all_or_nothing(
        template: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    """One add of 600 texts (more than the writer's batch of 256) killed right after the first store write:
    the next open completes all 600, none missing, each with its ADD event (it used to leave the first 256)."""
    result = run_trial(template[0], tmp_path, Trial(op="bulk", kill_at=1, when="after", hook="store.upsert"))
    assert result.killed and result.problems == []
    with Memory(tmp_path / "home", embedder="fake") as m:
        assert m.list(user_id="bella").total == BULK
        assert m.log.count("bella") == BULK


def test_an_erasure_killed_between_delete_and_rewrite_is_finished(template: tuple[Path, dict[str, int]],
                                                                  tmp_path: Path) -> None:
    """forget_user killed after the user's points were deleted, before the shard rewrite: the next open
    finishes it, and erin's text is in no file (the second forget_user used to count 0 and skip the rewrite)."""
    result = run_trial(template[0], tmp_path, Trial(op="forget", kill_at=1, when="after", hook="store.delete_user"))
    assert result.killed
    assert result.problems == []
    home = tmp_path / "home"
    with Memory(home, embedder="fake") as m:
        assert m.list(user_id="erin", deleted=None).total == 0 and m.log.count("erin") == 0
        assert m.list(user_id="bob").total == 20
    leaked = [p for p in home.rglob("*") if p.is_file() and b"zebrafish" in p.read_bytes()
              and p.name != "journal.jsonl"]
    assert leaked == []


def test_forty_kills_over_every_operation(template: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    path, counts = template
    assert set(counts) == set(OPS) and all(n >= 2 for n in counts.values())
    results = [run_trial(path, tmp_path, t) for t in hooked_trials(TRIALS, counts, seed=7)]
    killed = sum(r.killed for r in results)
    failures = [(r.trial.model_dump(exclude_defaults=True), r.problems) for r in results if r.problems]
    assert failures == []
    assert killed >= TRIALS * 3 // 4  # the kill points fall inside the operations
    assert {r.trial.op for r in results if r.killed} == set(OPS)


def test_kills_at_random_moments_of_a_busy_writer(template: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    failures = []
    for seed in range(4):
        result = run_trial(template[0], tmp_path, Trial(op="loop", delay=1.0 + 0.5 * seed, seed=seed))
        assert result.killed and result.acked > 0
        if result.problems:
            failures.append((seed, result.problems))
    assert failures == []
