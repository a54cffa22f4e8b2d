"""DESIGN.md's import rules, checked by parsing every module under ``smisk/`` with ``ast``.

Imports point down only, through these layers (lowest first): the codec, ``protocol``,
``server``, ``core`` with ``sessions``, ``adapters``, ``runtime``, and the entry points (``cli``,
``probe``, the root package and its public aliases). A module may import its own layer and any
layer below; imports under ``if TYPE_CHECKING:`` and inside functions count the same. The one
exception is ``Application.run()``, which reaches ``smisk.runtime.handler`` at call time.

- ``smisk/protocol`` imports only the standard library, ``smisk.codec`` and ``smisk.protocol``;
  never asyncio or sockets, not even for type hints.
- ``smisk/_codec_py.py`` imports only the standard library.

Relative imports, ``from smisk import server`` and ``importlib.import_module("...")`` with a
literal name all count.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "smisk"
STDLIB = frozenset(sys.stdlib_module_names)
NO_IO_IN_PROTOCOL = frozenset({"asyncio", "socket", "selectors", "ssl"})
# Lowest first; a module belongs to the layer of its longest matching prefix.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("smisk._version", "smisk._build", "smisk.codec", "smisk._codec", "smisk._codec_py"),
    ("smisk.protocol",),
    ("smisk.server",),
    ("smisk.core", "smisk.sessions"),
    ("smisk.adapters",),
    ("smisk.runtime",),
    (
        "smisk",
        "smisk.cli",
        "smisk.probe",
        "smisk.wsgi",
        "smisk.asgi",
        "smisk.util",
        "smisk.serialization",
    ),
)
# (importer, imported): upward imports the design allows, each made inside a function.
ALLOWED_UPWARD = frozenset({("smisk.core.application", "smisk.runtime.handler")})


@dataclass(frozen=True)
class Import:
    target: str  # absolute dotted name of the module imported
    line: int
    type_checking: bool  # inside ``if TYPE_CHECKING:``


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str | None, level: int, current: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _targets(node: ast.AST, current: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = _resolve(node.module, node.level, current, is_package)
        # ``from pkg import name`` imports the module ``pkg.name`` when there is one.
        subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
        return subs or [base]
    if (
        isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            or (isinstance(node.func, ast.Name) and node.func.id in {"import_module", "__import__"})
        )
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def imports_of(
    source: str, current: str, is_package: bool = False, known: set[str] | None = None
) -> list[Import]:
    """Every import in ``source`` (a module named ``current``), anywhere in the file."""
    found: list[Import] = []

    def visit(node: ast.AST, type_checking: bool) -> None:
        for target in _targets(node, current, is_package, known or set()):
            found.append(Import(target, getattr(node, "lineno", 0), type_checking))
        for child in ast.iter_child_nodes(node):
            guarded = type_checking or (
                isinstance(node, ast.If) and child in node.body and _is_type_checking(node.test)
            )
            visit(child, guarded)

    visit(ast.parse(source), False)
    return found


def is_stdlib(target: str) -> bool:
    return target.split(".")[0] in STDLIB


def is_under(target: str, package: str) -> bool:
    return target == package or target.startswith(package + ".")


# -- the rules ----------------------------------------------------------------------------------


def protocol_violations(imports: list[Import]) -> list[Import]:
    return [
        i
        for i in imports
        if i.target.split(".")[0] in NO_IO_IN_PROTOCOL
        or not (
            is_stdlib(i.target) or i.target == "smisk.codec" or is_under(i.target, "smisk.protocol")
        )
    ]


def stdlib_only_violations(imports: list[Import]) -> list[Import]:
    return [i for i in imports if not is_stdlib(i.target)]


def layer_of(name: str) -> int:
    """The index in ``LAYERS`` of the module ``name`` (a smisk module)."""
    best, rank = "", -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if is_under(name, prefix) and len(prefix) > len(best):
                best, rank = prefix, index
    if rank < 0:
        raise ValueError(f"{name} is in no layer: add it to LAYERS")
    return rank


def upward_violations(current: str, imports: list[Import]) -> list[Import]:
    """Imports of ``current`` that reach a higher layer than its own."""
    own = layer_of(current)
    return [
        i
        for i in imports
        if is_under(i.target, "smisk")
        and layer_of(i.target) > own
        and (current, i.target) not in ALLOWED_UPWARD
    ]


# -- the package --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    path: str  # relative to smisk/, with forward slashes
    name: str
    imports: list[Import]


def _load_modules() -> list[Module]:
    paths = sorted(PACKAGE_ROOT.rglob("*.py"))
    known = {module_name(p, PACKAGE_ROOT) for p in paths} | {"smisk._codec"}  # the C extension
    modules = []
    for path in paths:
        name = module_name(path, PACKAGE_ROOT)
        source = path.read_text(encoding="utf-8")
        imports = imports_of(source, name, path.name == "__init__.py", known)
        modules.append(Module(path.relative_to(PACKAGE_ROOT).as_posix(), name, imports))
    return modules


MODULES = _load_modules()


def _report(module: Module, bad: list[Import]) -> str:
    return "; ".join(f"smisk/{module.path}:{i.line} imports {i.target}" for i in bad)


def test_the_package_was_found() -> None:
    names = {m.name for m in MODULES}
    assert {"smisk.protocol.connection", "smisk.protocol.records", "smisk.codec"} <= names


@pytest.mark.parametrize(
    "module", [m for m in MODULES if m.path.startswith("protocol/")], ids=lambda m: m.path
)
def test_protocol_imports_only_stdlib_codec_and_itself(module: Module) -> None:
    bad = protocol_violations(module.imports)
    assert not bad, _report(module, bad)


@pytest.mark.parametrize(
    "module", [m for m in MODULES if m.path == "_codec_py.py"], ids=lambda m: m.path
)
def test_python_codec_imports_only_stdlib(module: Module) -> None:
    bad = stdlib_only_violations(module.imports)
    assert not bad, _report(module, bad)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.path)
def test_imports_point_down_only(module: Module) -> None:
    bad = upward_violations(module.name, module.imports)
    assert not bad, _report(module, bad)


def test_the_allowed_upward_imports_are_made_at_call_time() -> None:
    by_name = {m.name: m for m in MODULES}
    for importer, imported in ALLOWED_UPWARD:
        source = (PACKAGE_ROOT.parent / (importer.replace(".", "/") + ".py")).read_text()
        top_level = imports_of_module_level(source, importer)
        assert imported not in top_level, f"{importer} imports {imported} at module level"
        assert imported in [i.target for i in by_name[importer].imports], "stale exception"


def imports_of_module_level(source: str, current: str) -> list[str]:
    """The modules ``source`` imports outside any function or class body."""
    tree = ast.parse(source)
    nodes = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom | ast.If)]
    found: list[str] = []
    for node in nodes:
        for inner in ast.walk(node):
            found += _targets(inner, current, False, set())
    return found


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module.name)  # raises for a module outside every layer


@pytest.mark.parametrize(
    "package", ["protocol", "server", "core", "sessions", "adapters", "runtime"]
)
def test_each_layer_says_what_it_may_import(package: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE_ROOT / package / "__init__.py").read_text()))
    assert doc and "import" in doc.lower(), (
        f"smisk/{package}/__init__.py must state its import rule"
    )


# -- the checker itself -------------------------------------------------------------------------

KNOWN = {"smisk", "smisk.codec", "smisk.server", "smisk.server.cycle", "smisk.protocol"}


@pytest.mark.parametrize(
    ("source", "current", "targets"),
    [
        ("import asyncio.events", "smisk.protocol.x", ["asyncio.events"]),
        ("from smisk import codec, _version", "smisk.protocol.x", ["smisk.codec"]),
        ("from . import errors", "smisk.protocol.x", ["smisk.protocol"]),
        ("from .errors import E", "smisk.protocol.x", ["smisk.protocol.errors"]),
        ("from ..server import cycle", "smisk.protocol.x", ["smisk.server.cycle"]),
        ("from ..server.cycle import C", "smisk.protocol.x", ["smisk.server.cycle"]),
        (
            "import importlib\nimportlib.import_module('smisk.server')",
            "smisk.x",
            ["importlib", "smisk.server"],
        ),
        ("def f():\n    from smisk.server import S", "smisk.x", ["smisk.server"]),
    ],
)
def test_checker_resolves_imports(source: str, current: str, targets: list[str]) -> None:
    assert [i.target for i in imports_of(source, current, known=KNOWN)] == targets


def test_checker_resolves_relative_imports_in_a_package_init() -> None:
    found = imports_of("from .records import R", "smisk.protocol", is_package=True)
    assert [i.target for i in found] == ["smisk.protocol.records"]


def test_checker_flags_what_it_should() -> None:
    def check(source: str, current: str = "smisk.protocol.x") -> list[Import]:
        return protocol_violations(imports_of(source, current, known=KNOWN))

    assert check("import asyncio")
    assert check("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import asyncio")
    assert check("import socket")
    assert check("from smisk import request")
    assert check("from ..server import cycle")
    assert check("import h11")
    assert not check("import struct\nfrom smisk.codec import decode_params\nfrom . import errors")
    assert stdlib_only_violations(imports_of("import smisk", "smisk._codec_py"))
    assert not stdlib_only_violations(imports_of("from __future__ import annotations", "m"))


def test_checker_layer_rule() -> None:
    def upward(source: str, current: str) -> list[Import]:
        return upward_violations(current, imports_of(source, current, known=KNOWN))

    guarded = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from smisk.runtime import x\n"
    )
    assert upward("from smisk.server import Server", "smisk.core.http_request") == []
    assert upward("from smisk.runtime.handler import A", "smisk.core.http_request")
    assert upward(guarded, "smisk.core.http_request")
    assert upward("def f():\n    import smisk.runtime.embed", "smisk.adapters.wsgi")
    assert upward("from smisk.core import Request", "smisk.server.cycle")
    assert upward("import smisk.sessions", "smisk.protocol.records")
    assert upward("import smisk.sessions", "smisk.core.http_request") == []  # same layer
    assert upward("from smisk.core.frontend import split_path", "smisk.adapters.asgi") == []
    assert upward("import smisk.runtime.handler", "smisk.core.application") == []  # allowed
    assert upward("import smisk.runtime.embed", "smisk.core.application")
    assert upward("from smisk.runtime import embed", "smisk.cli") == []
    assert layer_of("smisk.sessions.file") == layer_of("smisk.core.url")
    with pytest.raises(ValueError):
        layer_of("elsewhere.module")
