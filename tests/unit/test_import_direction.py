"""The import direction between the node's packages.

Each process type is a package of its own (router/, write_side/, read_side/, and monitor/ once
it exists): none imports another, so each can change, and run, on its own. What they share is
in common/, which imports none of them. run_node.py, the launcher, may import router (which
starts the others as processes) and common.

The source is parsed with ast, never run. Counted as imports: `import x`, `from x import y`,
relative imports that climb out of their package, and importlib.import_module(...) /
__import__(...) calls whose name, a string or the literal start of an f-string, names a
package. The second half of this file proves the checker sees each of those forms.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROCESS_PACKAGES = ("router", "write_side", "read_side", "monitor")  # monitor/: when it exists
SHARED = "common"
LAUNCHER = "run_node"  # run_node.py
ALLOWED = {  # module's top-level package -> the node's packages it may import besides itself
    **{package: {SHARED} for package in PROCESS_PACKAGES},
    SHARED: set(),
    LAUNCHER: {"router", SHARED},
}
WATCHED = set(PROCESS_PACKAGES) | {SHARED}  # the packages an import can break the rule with
DYNAMIC_IMPORTS = {"import_module", "__import__"}  # importlib.import_module, __import__


# -- the checker ---------------------------------------------------------------------------

def module_name(path: Path, root: Path) -> str:
    """router/loop.py -> "router.loop"; router/__init__.py -> "router"."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names of what the source of `module` imports, from every form listed above.
    is_package: the source is a package's __init__.py, so `.` is the package itself."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # relative: `.` is this module's package, each further dot one package up (past
            # the top, Python refuses it; counted here as naming top-level packages)
            up = node.level - 1
            base = package[:max(len(package) - up, 0)] if node.level else []
            prefix = base + (node.module.split(".") if node.module else [])
            if prefix:
                names.add(".".join(prefix))
            if not node.module:  # `from .. import x`: each x is a module of that package
                names.update(".".join(base + [alias.name]) for alias in node.names)
        elif isinstance(node, ast.Call) and _called_name(node.func) in DYNAMIC_IMPORTS:
            text = _leading_text(node.args[0]) if node.args else None
            if text:
                names.add(text)
    return names


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _leading_text(arg: ast.expr) -> str | None:
    """The text a string names for certain: all of a plain string, or an f-string's literal
    start up to its last dot (f"write_side.{name}" -> "write_side"), since what follows
    depends on the value put in."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr):
        literal = ""
        for part in arg.values:
            if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                break
            literal += part.value
        else:
            return literal  # no placeholder at all
        return literal.rpartition(".")[0] or None
    return None


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """The node's packages this module imports that it must not."""
    own = module.split(".")[0]
    allowed = ALLOWED.get(own, set()) | {own}
    found = {name.split(".")[0] for name in imported_names(source, module, is_package)}
    return sorted((found & WATCHED) - allowed)


def tree_violations(root: Path) -> tuple[list[str], dict[str, int]]:
    """Every broken rule under root, as "module imports package" lines, and how many files of
    each package were read (so that a wrong root cannot pass by reading nothing)."""
    broken: list[str] = []
    read: dict[str, int] = {}
    files = [root / f"{LAUNCHER}.py"] if (root / f"{LAUNCHER}.py").exists() else []
    for package in (*PROCESS_PACKAGES, SHARED):
        if (root / package).is_dir():
            files += sorted((root / package).rglob("*.py"))
    for path in files:
        module = module_name(path, root)
        read[module.split(".")[0]] = read.get(module.split(".")[0], 0) + 1
        source = path.read_text(encoding="utf-8")
        for package in violations(source, module, path.name == "__init__.py"):
            broken.append(f"{path.relative_to(root)} imports {package}")
    return broken, read


# -- the rule, on this repository ------------------------------------------------------------

def test_no_process_package_imports_another_and_common_imports_none() -> None:
    broken, read = tree_violations(ROOT)
    assert not broken, "imports against the direction:\n" + "\n".join(broken)
    for package in ("router", "write_side", "read_side", SHARED, LAUNCHER):
        assert read.get(package, 0) > 0, f"no module of {package} was read: {read}"


# -- the checker sees every form ---------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "import write_side",
    "import write_side.store",
    "import write_side.store as store",
    "import json, write_side",
    "from write_side import store",
    "from write_side.store import open_store",
    "from .. import write_side",  # climbs out of router/ to the top
    "from ..write_side import store",
    "from ..write_side.store import open_store",
    "from ... import write_side",  # climbs above the top: still the top-level package
    "import importlib\nimportlib.import_module('write_side')",
    "import importlib\nimportlib.import_module('write_side.store')",
    "import importlib\nimportlib.import_module(f'write_side.{name}')",
    "from importlib import import_module\nimport_module(f'write_side.store_{kind}')",
    "__import__('write_side')",
    "__import__(f'write_side.{name}', fromlist=['x'])",
    "def later():\n    import write_side",
    "try:\n    from write_side import store\nexcept ImportError:\n    store = None",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from write_side import store",
], ids=lambda source: source.splitlines()[-1].strip())
def test_each_form_of_import_is_caught(source: str) -> None:
    assert violations(source, "router.loop") == ["write_side"]


@pytest.mark.parametrize("module, source", [
    ("router.loop", "from common import wire"),
    ("router.loop", "import json, zmq"),
    ("router.loop", "from . import parse"),  # router.parse: its own package
    ("router.loop", "from .parse import parse_line"),
    ("router", "from .loop import main"),  # __init__.py: `.` is router itself
    ("write_side.contexts", "import importlib\nimportlib.import_module(f'write_side.{name}')"),
    ("write_side.store.sqlite", "from .. import contexts"),  # write_side.contexts
    ("write_side.store.sqlite", "from ..store import shared"),
    ("read_side.loop", "importlib.import_module(f'{package}.{name}')"),  # unknown: not counted
    ("read_side.loop", "importlib.import_module(name)"),
    ("read_side.loop", "print('write_side.store')"),  # a string, not an import
    ("run_node", "import router.launcher\nfrom common import config"),
], ids=lambda value: value if "\n" not in value else value.splitlines()[-1])
def test_allowed_imports_are_not_reported(module: str, source: str) -> None:
    assert violations(source, module, is_package=module == "router") == []


@pytest.mark.parametrize("module, source, expected", [
    ("common.wire", "from router import parse", ["router"]),
    ("common.wire", "import read_side.views, write_side", ["read_side", "write_side"]),
    ("common.tap", "from ..monitor import view", ["monitor"]),
    ("read_side.loop", "from router.render import line", ["router"]),
    ("write_side.loop", "importlib.import_module('read_side.contexts')", ["read_side"]),
    ("monitor.app", "from write_side.store import open_store", ["write_side"]),
    ("run_node", "import write_side.loop", ["write_side"]),
    ("run_node", "from read_side import loop", ["read_side"]),
])
def test_each_package_has_its_own_rule(module: str, source: str, expected: list[str]) -> None:
    assert violations(source, module) == expected


def test_relative_imports_are_resolved_from_the_right_package() -> None:
    """In a package's __init__.py `.` is the package itself; in a module, its parent."""
    assert imported_names("from .loop import main", "router", is_package=True) == {"router.loop"}
    assert imported_names("from .loop import main", "router.launcher") == {"router.loop"}
    assert imported_names("from .. import wire", "common.sub.mod") == {"common", "common.wire"}
    assert imported_names("from ..write_side import x", "router.loop") == {"write_side"}


def test_a_tree_with_a_wrong_import_fails(tmp_path: Path) -> None:
    """The whole walk, on a small tree of files: the broken rule is reported with its file."""
    for package, source in [("router", "from common import wire\n"),
                            ("write_side", "from ..read_side import views\n"),
                            ("read_side", ""), ("common", "")]:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "loop.py").write_text(source)
    (tmp_path / "run_node.py").write_text("import router\n")
    broken, read = tree_violations(tmp_path)
    assert broken == [f"{Path('write_side/loop.py')} imports read_side"]
    assert read == {"run_node": 1, "router": 2, "write_side": 2, "read_side": 2, "common": 2}
