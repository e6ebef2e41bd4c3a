"""The layout holds: read every module's imports (ast, nothing is imported) and fail on an
import cycle or on an import from a lower layer to a higher one.

Layers, lowest first (DESIGN's table): the foundation (`promptartisan/`), the `engine` (which
knows no other package), `tools` (the mask reader takes the engine's aspect tolerance), then
the agent's rooms (`agent.planning` < `agent.sessions` < the
agent's own modules, the Editor's turn < `agent.batch`), then `ui`. Only `ui` may import
Chainlit. Every import counts, in a function too; imports under `if TYPE_CHECKING:` name types
only and load nothing, so they don't. Cycles are looked for among the imports that run when a
module loads (module level), the ones that can fail an import."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LAYERS = [
    ("promptartisan", 0),
    ("promptartisan.engine", 1),
    ("promptartisan.tools", 2),
    ("promptartisan.agent.planning", 3),
    ("promptartisan.agent.sessions", 4),
    ("promptartisan.agent", 5),
    ("promptartisan.agent.batch", 6),
    ("promptartisan.ui", 7),
]
"""Package → rank; a module's rank is its longest matching package's."""

DISPATCH = {
    ("promptartisan.models", "promptartisan.engine.families"),
    ("promptartisan.models", "promptartisan.engine.memory"),
    ("promptartisan.models", "promptartisan.engine.adapters"),
    ("promptartisan.tiny", "promptartisan.tools"),
    ("promptartisan.tiny", "promptartisan.tools.tiny_grounding"),
    ("promptartisan.tiny", "promptartisan.engine.tiny_kontext"),
    ("promptartisan.tiny", "promptartisan.agent.planning.llm_planner"),
    ("promptartisan.tiny", "promptartisan.agent.planning.plan"),
}
"""The foundation's two registries of every layer's models reach up, inside the function that
needs them: `models.load_engine` picks the engine family a config names (and
`load_engine_on_device` applies the engine's memory and adapter settings), `tiny` writes each
named tiny model with its layer's writer (the tiny planner is trained on the planner's prompt)."""


def _modules() -> dict[str, Path]:
    """Every module of the package, by dotted name, from pyproject's package-dir map."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    modules = {}
    for package, folder in config["package-dir"].items():
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str) -> Iterator[tuple[str, bool]]:
    """(imported module, at module level) for each import `name` runs."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST, top: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from (item for branch in child.orelse for item in visit(branch, top))
                continue
            if isinstance(child, ast.Import):
                yield from ((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.rsplit(".", child.level - 1)[0] if child.level > 1 \
                        else package
                    base = f"{anchor}.{base}" if base else anchor
                yield base, top
                for alias in child.names:  # `from pkg import module`
                    if f"{base}.{alias.name}" in MODULES:
                        yield f"{base}.{alias.name}", top
            inner = top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from visit(child, inner)

    yield from visit(ast.parse(path.read_text(), str(path)), True)


def _rank(name: str) -> int:
    return max((len(package), rank) for package, rank in LAYERS
               if name == package or name.startswith(f"{package}."))[1]


def test_every_package_is_read() -> None:
    assert {"promptartisan.settings", "promptartisan.engine.pipeline", "promptartisan.tools.sam",
            "promptartisan.agent.editor", "promptartisan.agent.planning.plan",
            "promptartisan.agent.sessions.store", "promptartisan.agent.batch.run",
            "promptartisan.ui.handlers"} <= set(MODULES)


def test_no_module_imports_a_higher_layer() -> None:
    wrong = []
    for name in MODULES:
        for target, _ in _imports(name):
            if target.split(".")[0] == "chainlit" and _rank(name) < _rank("promptartisan.ui"):
                wrong.append(f"{name} imports {target}")
            if target.startswith("promptartisan.") and target in MODULES \
                    and _rank(target) > _rank(name) and (name, target) not in DISPATCH:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "imports from a lower layer to a higher one:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle() -> None:
    graph = {name: sorted({target for target, top in _imports(name)
                           if top and target in MODULES and target != name})
             for name in MODULES}
    # A package's __init__ is imported on the way to each of its modules.
    for name in list(graph):
        parent = name.rpartition(".")[0]
        if parent in graph and parent != "promptartisan":
            graph[name] = sorted({*graph[name], parent})
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        if name in path:
            return [*path[path.index(name):], name]
        if name in done:
            return None
        path.append(name)
        for target in graph[name]:
            if target.startswith(f"{name}."):  # a package's __init__ importing its own module
                continue
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(name)
        return None

    for name in sorted(graph):
        cycle = visit(name)
        assert cycle is None, "an import cycle: " + " → ".join(cycle)
