"""The data path reads in one direction: a module imports only from modules of a lower rank.

The rank table is the one in docs/ARCHITECTURE.md. A new module must be added here (the test
fails for an unknown module), which keeps the documented architecture true.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tf_lrp"

#: module (dotted, below tf_lrp) -> rank; a module may import only strictly lower ranks.
RANKS = {
    "errors": 0,
    "_version": 0,
    "_typing": 0,
    "_fusion": 0,
    "text": 0.5,
    "_io": 1,
    "_progress": 1,
    "_html": 2,
    "layout": 1,
    "rules": 2,
    "nodes": 4,
    "convert": 2,
    "resumable": 2,
    "conservation": 2,
    "cells": 3,
    "network": 5,
    "methods": 6,
    "seq2seq": 6,
    "backend": 7,
    "dataset": 8,
    "explainer": 9,
    "forecast": 10,
    "cli": 11,
    "beam": 11,
    "__init__": 12,
    "_demo": 12,
}
#: consumers of arrays: they may import only these (not the numeric core).
SIDE_MODULES = {
    "evaluate": {"errors", "_io", "_version"},
    "viz": {"errors", "_io", "_html", "_version", "evaluate"},
}
#: modules of the numeric core: written in keras.ops, never in a framework.
FRAMEWORKS = {"tensorflow", "jax", "torch", "matplotlib", "apache_beam"}
FRAMEWORK_OWNERS = {
    "tensorflow": {"backend"},
    "jax": {"backend"},
    # backend: the float32 matmul switch on the PyTorch backend
    "torch": {"convert.torch", "convert.torch_fx", "backend"},
    "matplotlib": {"viz"},
    "apache_beam": {"beam"},
}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def dotted(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def top(name: str) -> str:
    return name.split(".")[0]


def imported_tf_lrp_modules(path: Path) -> set[str]:
    """The tf_lrp modules ``path`` imports (absolute or relative), dotted below tf_lrp."""
    tree = ast.parse(path.read_text("utf-8"))
    here = dotted(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = [*base, *(node.module.split(".") if node.module else [])]
                if node.module is None:
                    found.update(".".join([*target, alias.name]) for alias in node.names)
                else:
                    found.add(".".join(target))
            elif node.module and node.module.startswith("tf_lrp"):
                found.add(node.module.removeprefix("tf_lrp").lstrip("."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tf_lrp."):
                    found.add(alias.name.removeprefix("tf_lrp."))
    return {f for f in found if f}


def imported_frameworks(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(top(a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(top(node.module))
    return names & FRAMEWORKS


@pytest.mark.parametrize("path", modules(), ids=dotted)
def test_module_imports_only_lower_ranks(path: Path) -> None:
    name = dotted(path)
    group = top(name) if top(name) != "__init__" else "__init__"
    if path == PACKAGE / "__init__.py":
        group = "__init__"
    if group in SIDE_MODULES:
        allowed = SIDE_MODULES[group]
        bad = {m for m in imported_tf_lrp_modules(path) if top(m) not in allowed}
        assert not bad, f"{name} consumes arrays and may import only {sorted(allowed)}; it imports {sorted(bad)}"
        return
    assert group in RANKS, f"tf_lrp/{path.relative_to(PACKAGE)}: add module {group!r} to the rank table"
    for imported in imported_tf_lrp_modules(path):
        other = top(imported)
        if other == group:
            continue  # inside one package (cells, convert)
        rank = RANKS.get(other, SIDE_MODULES.get(other) and 0)
        assert other in RANKS or other in SIDE_MODULES, f"{name} imports unknown module {imported!r}"
        if other in SIDE_MODULES:
            assert RANKS[group] >= RANKS["cli"], f"{name} (core) must not import the consumer module {other}"
            continue
        assert rank < RANKS[group], (
            f"{name} (rank {RANKS[group]}) imports {imported} (rank {rank}): the data path reads in one direction"
        )


@pytest.mark.parametrize("path", modules(), ids=dotted)
def test_frameworks_are_imported_only_by_their_owner(path: Path) -> None:
    name = dotted(path)
    for framework in imported_frameworks(path):
        owners = FRAMEWORK_OWNERS[framework]
        assert name in owners, f"{name} imports {framework}; only {sorted(owners)} may"


def test_import_without_optional_frameworks() -> None:
    """``import tf_lrp`` works when torch and matplotlib are absent (they are optional extras)."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['matplotlib'] = None\n"
        "import tf_lrp, tf_lrp.convert\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
