"""DESIGN.md's import rules, checked by parsing every module under ``smisk/`` with ``ast``.

- ``smisk/protocol`` imports only the standard library, ``smisk.codec`` and ``smisk.protocol``;
  never asyncio or sockets, not even for type hints.
- ``smisk/_codec_py.py`` imports only the standard library.
- Only ``smisk/server``, the serve layer (``smisk/cli.py``, ``smisk/application.py``,
  ``smisk/serve*.py``/``smisk/serving*.py``, ``smisk/workers.py``, ``smisk/embed.py``,
  ``smisk/devhttp.py``) and the interface adapters (``smisk/wsgi.py``, ``smisk/asgi.py``,
  ``smisk/interfaces.py``) import ``smisk.server`` when running. Imports under
  ``if TYPE_CHECKING:`` are exempt from this rule only: they never load the server.

Relative imports, ``from smisk import server`` and ``importlib.import_module("...")`` with a
literal name all count.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "smisk"
STDLIB = frozenset(sys.stdlib_module_names)
NO_IO_IN_PROTOCOL = frozenset({"asyncio", "socket", "selectors", "ssl"})
SERVER_IMPORTERS = re.compile(
    r"(server/.*|cli\.py|application\.py|serv(e|ing)\w*\.py|workers\.py|embed\.py|devhttp\.py"
    r"|wsgi\.py|asgi\.py|interfaces\.py)"
)


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


def server_violations(relative_path: str, imports: list[Import]) -> list[Import]:
    if SERVER_IMPORTERS.fullmatch(relative_path):
        return []
    return [i for i in imports if is_under(i.target, "smisk.server") and not i.type_checking]


# -- the package --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    path: str  # relative to smisk/, with forward slashes
    name: str
    imports: list[Import]


def _load_modules() -> list[Module]:
    paths = sorted(PACKAGE_ROOT.rglob("*.py"))
    known = {module_name(p, PACKAGE_ROOT) for p in paths}
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
def test_only_the_top_layers_import_the_server(module: Module) -> None:
    bad = server_violations(module.path, module.imports)
    assert not bad, _report(module, bad)


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


def test_checker_server_rule() -> None:
    runtime = imports_of("from smisk.server import Server", "smisk.request")
    guarded = imports_of(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from smisk.server import S\n",
        "smisk.request",
    )
    assert server_violations("request.py", runtime)
    assert not server_violations("request.py", guarded)
    for allowed in ("cli.py", "application.py", "serve.py", "serving.py", "server/cycle.py"):
        assert not server_violations(allowed, runtime)
    assert server_violations("sessions/server_store.py", runtime)
