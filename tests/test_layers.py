"""The layers of the tree: a module imports its own layer and those below it, never above
(gateway/__init__.py draws them). Read from the source, so a lazy import inside a function
or one for type checking only counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Bottom first. A module belongs to the layer of the longest prefix naming it.
LAYERS: list[tuple[str, ...]] = [
    ("store",),
    # What every part is given; the IVR menu's settings are part of config.yaml's.
    ("gateway.contract", "ivr.menu"),
    ("gateway.core",),
    ("gateway.engine", "ivr"),
    ("channels",),
    ("gateway.frontends",),
    ("gateway", "simulators"),  # the assembly; the hardware stand-ins a demo starts
]
PACKAGES = ("store", "gateway", "ivr", "channels", "simulators")


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), index)
    return None if best is None else best[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST) -> set[str]:
    """Every module of the project a file imports; ``from a import b`` names a.b when b is a
    module, else a."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                is_module = (ROOT / full.replace(".", "/")).with_suffix(".py").exists() or (
                    ROOT / full.replace(".", "/")
                ).is_dir()
                names.add(full if is_module else node.module)
    return {name for name in names if name.split(".")[0] in PACKAGES}


def upward_imports(root: Path) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # Alembic's scripts stand apart, below nothing
            here = module_name(path)
            mine = layer_of(here)
            assert mine is not None, f"{here} is in no layer"
            for name in sorted(imported(ast.parse(path.read_text(encoding="utf-8")))):
                theirs = layer_of(name)
                if theirs is not None and theirs > mine:
                    found.append(f"{here} (layer {mine}) imports {name} (layer {theirs})")
    return found


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert upward_imports(ROOT) == []


def test_the_check_sees_an_import_that_runs_back_up(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "gateway" / "core").mkdir()
    (tmp_path / "gateway" / "server.py").write_text('"""The assembly."""\n')
    (tmp_path / "gateway" / "core" / "rules.py").write_text(
        "def f() -> None:\n    from gateway import server\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert upward_imports(tmp_path) == [
            "gateway.core.rules (layer 2) imports gateway.server (layer 6)"
        ]
    finally:
        ROOT = saved


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("store.jobs", 0),
        ("ivr.menu", 1),
        ("gateway.contract.config", 1),
        ("gateway.core.workflow", 2),
        ("ivr.flow", 3),
        ("channels.mail.smtp", 4),
        ("gateway.frontends.api.app", 5),
        ("gateway.server", 6),
    ],
)
def test_each_module_has_its_layer(module: str, layer: int) -> None:
    assert layer_of(module) == layer
