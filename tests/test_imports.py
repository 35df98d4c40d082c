"""Imports flow one way (cli → engine → proposers / evaluation / scoring → structures → mlip) and
no matsearch module takes part in an import cycle; read from the source with `ast`, importing nothing.

What counts as an import of module A by module B:
- every `import A` / `from A import x` in B, at module level and inside functions: a function-local
  import is a real runtime dependency, only deferred, so it may not hide a cycle either;
- `from P import name` is an import of the module `P.name` when that module exists, else of `P`;
- imports under `if TYPE_CHECKING:` do not count: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "matsearch"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported(node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in MODULES}
    base = node.module or ""
    found = set()
    for alias in node.names:
        found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return found & MODULES.keys()


def imports_of(name: str) -> set[str]:
    """The matsearch modules that module `name` imports (rules in the module docstring)."""
    found: set[str] = set()
    stack: list[ast.AST] = [ast.parse(MODULES[name].read_text(encoding="utf-8"))]
    while stack:
        for child in ast.iter_child_nodes(stack.pop()):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found |= _imported(child)
            stack.append(child)
    return found - {name}


GRAPH = {name: imports_of(name) for name in MODULES}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# package → what it may never import
FORBIDDEN = {
    "matsearch.mlip": (
        "matsearch.engine",
        "matsearch.scoring",
        "matsearch.evaluation",
        "matsearch.proposers",
        "matsearch.structures",
        "matsearch.cli",
        "matsearch.spec",
    ),
    "matsearch.evaluation": ("matsearch.engine", "matsearch.scoring", "matsearch.proposers", "matsearch.cli"),
    "matsearch.structures": (
        "matsearch.engine",
        "matsearch.scoring",
        "matsearch.evaluation",
        "matsearch.proposers",
    ),
    "matsearch.results": ("matsearch",),
    "matsearch.relax_defaults": ("matsearch",),
    # a leaf that may import `errors` only
    "matsearch.finetune_settings": tuple(
        sorted({".".join(m.split(".")[:2]) for m in MODULES} - {"matsearch", "matsearch.errors"})
    ),
    "matsearch.model_names": ("matsearch",),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_flow_one_way(package: str) -> None:
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _within(name, package)
        for target in targets
        for banned in FORBIDDEN[package]
        if _within(target, banned) and not _within(target, package)
    )
    assert not wrong, "\n".join(wrong)


def test_mlip_imports_only_itself_and_leaf_modules() -> None:
    allowed = (
        "matsearch.mlip",
        "matsearch.errors",
        "matsearch.results",
        "matsearch.relax_defaults",
        "matsearch.finetune_settings",
        "matsearch.model_names",
    )
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _within(name, "matsearch.mlip")
        for target in targets
        if not any(_within(target, ok) for ok in allowed)
    )
    assert not wrong, "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _reachable(name: str) -> set[str]:
    seen, stack = set(), [name]
    while stack:
        for target in GRAPH[stack.pop()] - seen:
            seen.add(target)
            stack.append(target)
    return seen


def test_the_spec_checks_shapes_only_and_never_reaches_the_mlip() -> None:
    """`matsearch.spec` (and whatever it imports) never imports `mlip/` (torch), the structure
    checks or the proposers: checks that need files, models or chemistry live in preflight.py."""
    reached = _reachable("matsearch.spec")
    banned = ("matsearch.mlip", "matsearch.structures", "matsearch.proposers", "matsearch.evaluation")
    assert not [t for t in reached if any(_within(t, b) for b in banned)]


def test_loading_a_spec_does_not_import_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\nchemistry: {elements: [Na, Cl]}\nmlip: {model: sevennet-0}\n")
    code = (
        f"import sys; from matsearch.spec import load_spec; load_spec({str(spec)!r}); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
