"""The layout keeps its promises: dependencies point down, no cycles, no module reaches for
another's private names, no module grows past 600 lines. Read from the source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "clipclap_integrations"
NAME = PACKAGE.name
MAX_LINES = 600
# layer of each top-level part; a module may import only from its own layer or lower ones
LAYERS = {
    "types": 0,
    "errors": 0,
    "runtime": 1,
    "inputs": 1,
    "media": 2,
    "options": 3,
    "modalities": 4,
    "embedder": 5,
    "chroma": 6,
    "llama_index": 6,
    "ray": 6,
    "cli": 7,
    "cli_index": 7,
    "__main__": 8,
    "__init__": 8,
    "testing": 8,
}
# within a layer, these parts may use those (and never the reverse)
SIBLINGS = {("media", "inputs"), ("media", "runtime"), ("cli", "cli_index"), ("ray", "chroma")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join([NAME, *parts])] = path
    return out


MODULES = _modules()


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) of every import of the package, at any
    depth of the file (function-local imports count)."""
    tree = ast.parse(path.read_text("utf-8"))
    is_package = path.name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith(NAME):
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            for sub in submodules:
                found.append((sub, [], node.lineno))
            others = [n for n in names if f"{target}.{n}" not in MODULES]
            if others or not submodules:
                found.append((target, others, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(NAME):
                    found.append((alias.name, [], node.lineno))
    return found


def _submodule_names() -> set[str]:
    return {m.rsplit(".", 1)[-1] for m in MODULES}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_module_is_longer_than_600_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in MODULES.values()
        if (n := len(p.read_text("utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_private_name_is_used_outside_its_module() -> None:
    bad = []
    for module, path in MODULES.items():
        for target, names, line in _imports(module, path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            leaf = target.rsplit(".", 1)[-1]
            if leaf.startswith("_") and not leaf.startswith("__"):
                private.append(leaf)
            if private and target != module:
                bad.append(f"{path.relative_to(PACKAGE)}:{line} takes {private} from {target}")
        tree = ast.parse(path.read_text("utf-8"))
        aliases = {  # names bound to modules of the package: `from . import x`, `import a.b as c`
            a.asname or a.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom | ast.Import)
            for a in node.names
            if (isinstance(node, ast.Import) and a.name.startswith(NAME))
            or (isinstance(node, ast.ImportFrom) and node.level and a.name in _submodule_names())
        }
        for node in ast.walk(tree):  # module._private where module is an imported module
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                where = f"{path.relative_to(PACKAGE)}:{node.lineno}"
                bad.append(f"{where} uses {node.value.id}.{node.attr}")
    assert bad == []


def test_imports_point_down_and_never_cycle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    upward = []
    for module, path in MODULES.items():
        mine = _part(module)
        for target, _, line in _imports(module, path):
            if target not in MODULES or target == module:
                continue
            graph[module].add(target)
            theirs = _part(target)
            if mine == theirs or (theirs in ("__init__",) and module.endswith("__main__")):
                continue
            if theirs == "__init__":
                upward.append(f"{module}:{line} imports the top-level package")
                continue
            below = LAYERS[theirs] < LAYERS[mine]
            same = LAYERS[theirs] == LAYERS[mine] and (mine, theirs) in SIBLINGS
            if not (below or same):
                upward.append(f"{module}:{line} ({mine}) imports {target} ({theirs})")
    assert upward == []
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append([*stack[stack.index(n) :], n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == []


@pytest.mark.parametrize("adapter", ["chromadb", "llama_index", "ray", "pyarrow"])
def test_the_core_never_imports_an_adapter_library(adapter: str) -> None:
    core = ("types", "errors", "runtime", "inputs", "media", "options", "modalities", "embedder")
    bad = []
    for module, path in MODULES.items():
        if _part(module) not in core:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            bad += [f"{module}: {n}" for n in names if n.split(".")[0] == adapter]
    assert bad == []
