"""The layers of ARCHITECTURE.md, checked on the source: what each package may import.

Every ``import braintumor...`` counts, at the top of a module or inside a function,
so a function-local import cannot hide a dependency that goes the wrong way.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

import braintumor

SRC = Path(braintumor.__file__).parent
BASE = {"braintumor", "errors", "registry", "atomic"}  # the package root and the leaves

# What each top-level package (or module) of braintumor may import, besides BASE.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "registry": set(),
    "atomic": set(),
    "config": set(),
    "data": set(),
    "models": set(),
    "losses": set(),
    "metrics": set(),
    "figures": {"data"},  # pure drawing: arrays in, figures out
    "inference": {"config", "data", "models", "figures"},  # using a trained run
    "engine": {"config", "data", "models", "losses", "metrics", "figures", "inference"},
    "pipeline": {"data", "metrics", "figures", "inference"},
    "explain": {"data", "figures", "inference"},
    "reports": {"data", "metrics", "figures", "inference", "pipeline", "explain"},
    "serve": {"data", "figures", "inference"},  # serving never imports training code
    "demo": {"config", "data", "figures", "inference", "engine", "pipeline", "explain", "reports"},
    "cli": {
        "config",
        "data",
        "models",
        "figures",
        "inference",
        "engine",
        "pipeline",
        "explain",
        "reports",
        "serve",
        "demo",
    },
    "__main__": {"cli"},
}


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _target(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "braintumor"


@functools.cache
def import_edges() -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> where, for every cross-package import."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(SRC.rglob("*.py")):
        src = _package(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            for module in modules:
                if module == "braintumor" or module.startswith("braintumor."):
                    dst = _target(module)
                    if dst != src:
                        edges[(src, dst)].append(f"{path.relative_to(SRC)}:{node.lineno}")
    return edges


def test_every_package_imports_only_the_layers_below_it() -> None:
    edges = import_edges()
    assert edges, "no imports found: the source was not parsed"
    wrong = [
        f"{src} -> {dst} ({', '.join(where)})"
        for (src, dst), where in sorted(edges.items())
        if dst not in BASE and dst not in ALLOWED.get(src, set())
    ]
    assert not wrong, "imports against the layers of ARCHITECTURE.md:\n" + "\n".join(wrong)


def test_no_import_cycle_between_packages() -> None:
    edges = import_edges()
    cycles = sorted({tuple(sorted(e)) for e in edges if (e[1], e[0]) in edges})
    assert not cycles, f"package-level import cycles: {cycles}"


def test_every_package_is_placed_in_a_layer() -> None:
    packages = {_package(p) for p in SRC.rglob("*.py")} - {"__init__"}
    assert packages <= set(ALLOWED) | BASE, sorted(packages - set(ALLOWED) - BASE)
