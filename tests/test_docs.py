"""The API reference (docs/api.md, rendered by mkdocstrings) covers the public names, all fully documented.

Every function and method rendered there documents each parameter (Args) and, when it returns
something, its result (Returns) — checked statically with griffe, mkdocstrings' own parser, so
nothing is imported. ``mkdocs build --strict`` (a step of scripts/test.sh) renders the pages.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.md"


def rendered() -> list[str]:
    """The dotted paths of the ``::: tf_lrp...`` directives of docs/api.md."""
    return re.findall(r"^::: (tf_lrp[\w.]*)", API.read_text(encoding="utf-8"), flags=re.M)


def test_every_public_name_is_in_the_api_reference():
    import tf_lrp

    paths = rendered()
    names = {path.rsplit(".", 1)[-1] for path in paths}
    modules = {path for path in paths if path.count(".") == 1}
    missing = [n for n in tf_lrp.__all__ if n not in names and n != "__version__" and "tf_lrp.errors" not in modules]
    assert not missing, f"public names missing from docs/api.md: {missing}"
    assert "tf_lrp.rules.map.RuleSet" in paths
    for module in ("tf_lrp.evaluate", "tf_lrp.viz", "tf_lrp.convert", "tf_lrp.beam", "tf_lrp.errors"):
        assert module in paths


def _gaps(function, where: str) -> list[str]:
    if function.docstring is None:
        return [f"{where}: no docstring"]
    sections = {section.kind.value: section for section in function.docstring.parsed}
    documented = {p.name.lstrip("*") for p in sections["parameters"].value} if "parameters" in sections else set()
    parameters = [p.name for p in function.parameters if p.name not in ("self", "cls")]
    gaps = [f"{where}: parameter {p!r} not in Args" for p in parameters if p not in documented]
    gaps += [f"{where}: Args names {p!r}, which is not a parameter" for p in documented - set(parameters)]
    returns = str(function.returns) if function.returns is not None else "None"
    if returns != "None" and "returns" not in sections and "property" not in function.labels:
        gaps.append(f"{where}: no Returns section")
    return gaps


def test_rendered_docstrings_are_complete():
    griffe = pytest.importorskip("griffe")
    package = griffe.load("tf_lrp", search_paths=[str(ROOT)], docstring_parser="google", resolve_aliases=False)
    gaps: list[str] = []

    def visit(obj, where: str, depth: int = 0) -> None:
        if obj.is_alias or obj.name.startswith("_"):
            return
        if obj.is_function:
            gaps.extend(_gaps(obj, where))
        elif obj.is_class or (obj.is_module and depth == 0):
            if obj.docstring is None:
                gaps.append(f"{where}: no docstring")
            for name, member in obj.members.items():
                if not member.is_alias and (member.is_function or (obj.is_module and member.is_class)):
                    visit(member, f"{where}.{name}", depth + 1)

    for path in rendered():
        obj = package
        for part in path.split(".")[1:]:
            obj = obj.members[part]
        visit(obj, path)
    assert not gaps, "\n".join(gaps)
