"""The layers point one way (issue 11): the bridge never depends on a UI.

The import graph is read from the source with `ast`, so lazy imports inside
functions count as much as those at the top of a module. Allowed: `tui` uses
`bridge`; `bridge.cli`, the composition root, starts the TUI. Not allowed: any
other `bridge` module importing `tui`, and any circle of imports.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bridge", "tui")
COMPOSITION_ROOT = "bridge.cli"


def _modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that `import name` loads, if any (a name may be an attribute)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports, anywhere in its body."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    parts = package.split(".")
                    anchor = parts[: len(parts) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from bridge import live` imports the module bridge.live.
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports, as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_lazy_imports() -> None:
    # A check that cannot fail is no check: the composition root's lazy import of
    # the TUI (inside a function) must be in the graph.
    graph = import_graph()
    assert "tui.cli" in graph[COMPOSITION_ROOT]
    assert "bridge.state" in graph["tui.widgets"]


def test_bridge_imports_no_ui_but_from_the_composition_root() -> None:
    graph = import_graph()
    upward = sorted(
        (module, target)
        for module, targets in graph.items()
        for target in targets
        if module.startswith("bridge") and target.startswith("tui") and module != COMPOSITION_ROOT
    )
    assert upward == []


def test_no_circle_of_imports() -> None:
    assert _cycle(import_graph()) is None


def test_cycle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_help_loads_neither_jack_nor_the_ui_toolkit() -> None:
    """`daw-bridge --help` is answered without loading JACK-Client, Textual or the engine."""
    code = (
        "import sys\n"
        "from bridge.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jack', '_jack', 'textual', 'rust_engine')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT / "tests")
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
