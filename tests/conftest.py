"""Shared fixtures: real embedded parts, shipped fakes; no mocks of remem's internals."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from remem import Memory  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever touches ~/.remem or inherits REMEM_* settings from the developer's shell."""
    for var in list(os.environ):
        if var.startswith("REMEM_") and var != "REMEM_TEST_LM":
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REMEM_HOME", str(tmp_path / "home"))


@pytest.fixture
def fake_memory(tmp_path: Path) -> Iterator[Memory]:
    """Edge store + deterministic fake embedder: fast, real store."""
    with Memory(tmp_path / "fake", embedder="fake") as m:
        yield m


@pytest.fixture
def local_memory(tmp_path: Path) -> Iterator[Memory]:
    """Edge store + the real packaged ONNX embedder."""
    with Memory(tmp_path / "local") as m:
        yield m
