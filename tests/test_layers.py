"""The layering: lower layers never import the ``Memory`` facade, and there is no import cycle through it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import remem

SRC = Path(remem.__file__).parent
#: Packages and modules the facade (remem.memory) calls; none of them may import it.
LOWER = ["pipeline", "retrieval", "storage", "stores", "writer", "embedders", "graph", "transfer.py", "parts.py",
         "reads.py", "chunking.py", "models.py", "errors.py", "bounds.py", "tokens.py", "timeexpr.py",
         "validation.py", "registry.py", "config.py"]


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the remem modules ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return names


def test_no_lower_layer_imports_the_memory_facade() -> None:
    offenders = []
    for entry in LOWER:
        target = SRC / entry
        files = [target] if target.is_file() else sorted(target.rglob("*.py")) if target.exists() else []
        for path in files:
            bad = {m for m in imported_modules(path) if m == "remem.memory" or m.startswith("remem.memory.")}
            if bad:
                offenders.append((str(path.relative_to(SRC)), sorted(bad)))
    assert offenders == []


def test_pipeline_and_retrieval_import_first_in_a_fresh_interpreter() -> None:
    """Importing the lower layers before anything else works (no cycle through the facade)."""
    code = ("import remem.retrieval.search, remem.retrieval.context, remem.pipeline, remem.writer, remem.transfer; "
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
