"""kill -9 at the write path's steps with REMEM_STORE=markdown (remem.testing.crash): after the next open, store
(the files) and history agree, nothing acknowledged is lost, an import is all or nothing, and an erasure that
started is finished down to the bytes — as on the embedded Qdrant store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from remem import Memory
from remem.testing.crash import OPS, Trial, count_hooks, hooked_trials, prepare, run_trial

TRIALS = 12


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    base = tmp_path_factory.mktemp("crash-md")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REMEM_STORE", "markdown")
        prepare(base / "template")
        yield base / "template", count_hooks(base / "template", base / "count")


@pytest.fixture(autouse=True)
def _markdown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEM_STORE", "markdown")


def test_kills_over_every_operation(template: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    path, counts = template
    assert set(counts) == set(OPS) and all(n >= 1 for n in counts.values())
    results = [run_trial(path, tmp_path, t) for t in hooked_trials(TRIALS, counts, seed=11)]
    failures = [(r.trial.model_dump(exclude_defaults=True), r.problems) for r in results if r.problems]
    assert failures == []
    assert sum(r.killed for r in results) >= TRIALS // 2
    with Memory(tmp_path / "home", embedder="fake") as m:
        assert m.store.name == "markdown"


def test_a_kill_at_a_random_moment_of_a_busy_writer(template: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    result = run_trial(template[0], tmp_path, Trial(op="loop", delay=1.5, seed=3))
    assert result.killed and result.acked > 0
    assert result.problems == []
