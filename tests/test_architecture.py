"""The layout's limits: layers as doc/architecture.rst declares them, no cycles,
small modules, and a model that knows nothing of MNE."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "mne_fusion"
MAX_LINES = 450


def _layers():
    """Component -> layer index, from the numbered list of doc/architecture.rst."""
    text = (ROOT / "doc" / "architecture.rst").read_text()
    layers = {}
    # an item runs from "N. " to the next line that is not indented
    for number, item in re.findall(r"^(\d+)\. (.*(?:\n   .*)*)", text, re.M):
        for name in re.findall(r"``mne_fusion\.(\w+)``", item):
            layers[name] = int(number)
    return layers


def _modules():
    """Dotted name -> path of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name, path, modules):
    """Modules of the package and top-level packages that ``name`` imports.

    Every import statement counts, at module level or inside a function.
    """
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            submodules = {f"{target}.{alias.name}" for alias in node.names}
            submodules &= set(modules)
            found.update(submodules)
            # ``from . import _io`` imports the submodule, not the package's names
            if len(submodules) < len(node.names):
                found.add(target)
    return found


MODULES = _modules()
GRAPH = {
    name: {m for m in _imports(name, path, MODULES) if m in MODULES}
    for name, path in MODULES.items()
}


def _component(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_component_has_a_declared_layer():
    layers = _layers()
    missing = {_component(m) for m in MODULES} - set(layers) - {"__init__"}
    assert not missing, f"doc/architecture.rst declares no layer for {missing}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    layers = _layers()
    if module == "mne_fusion":
        return  # the top-level namespace re-exports every layer
    own = layers[_component(module)]
    upward = [
        m for m in GRAPH[module] if m != "mne_fusion" and layers[_component(m)] > own
    ]
    assert not upward, f"{module} (layer {own}) imports a higher layer: {upward}"


def test_no_import_cycle():
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(GRAPH):
        if node not in state:
            visit(node, [node])
    assert not cycles, f"import cycles: {cycles}"


def test_model_knows_nothing_of_mne():
    for name, path in MODULES.items():
        if _component(name) != "model":
            continue
        imported = _imports(name, path, MODULES)
        outside = {
            m
            for m in imported
            if m.split(".")[0] in ("mne", "nilearn")
            or (m.startswith("mne_fusion") and _component(m) != "model")
        }
        assert not outside, f"{name} imports {outside}"


def test_modules_are_small():
    big = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_the_checks_catch_a_violation(tmp_path):
    """The import walker sees imports inside functions and resolves relative ones."""
    path = tmp_path / "fake.py"
    path.write_text(
        "def f():\n    from ..encoder import FusionEncoder\n    import mne\n"
    )
    found = _imports("mne_fusion.model.fake", path, MODULES)
    assert {"mne_fusion.encoder", "mne"} <= found
    assert _layers()["encoder"] > _layers()["model"]
