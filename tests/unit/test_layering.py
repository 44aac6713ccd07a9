"""The import rules of docs/architecture.md, checked on the source so the
layering cannot quietly erode: cli -> ops -> zfs | targets | boot -> remote,
each layer importing only those below it (the three middle ones not each
other), and typer nowhere but cli."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "zboot"
SHARED = {"errors", "names", "config", "faults", "chap", "__init__"}
# what each layer may import from zboot, besides the shared modules
ALLOWED = {
    "entry": {"cli"},  # zboot/__main__.py
    "cli": {"cli", "serve", "ops", "zfs", "targets", "boot", "remote", "testing"},
    "serve": {"serve", "ops", "boot", "remote"},  # the boot service: an HTTP front on ops
    "testing": {"ops", "zfs", "targets", "boot", "remote"},  # only under tests
    "ops": {"ops", "zfs", "targets", "boot", "remote"},
    "zfs": {"zfs", "remote"},
    "targets": {"targets", "remote"},
    "boot": {"boot"},
    "remote": {"remote"},
    "shared": set(),
}


def layer_of(module: str) -> str:
    """zboot.ops.hosts -> ops; zboot.errors -> shared."""
    parts = module.split(".")
    if module == "zboot.__main__":
        return "entry"
    if len(parts) < 2 or parts[1] in SHARED or parts[1] not in ALLOWED:
        return "shared"
    return parts[1]


def imports_of(path: Path) -> list[str]:
    """Every module the file imports, relative imports resolved."""
    module = "zboot." + ".".join(path.relative_to(SOURCE).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found += [f"{base}.{alias.name}" if not node.module else base for alias in node.names]
    return found


def modules() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SOURCE)))
def test_each_module_imports_only_the_layers_below_it(path: Path) -> None:
    module = "zboot." + ".".join(path.relative_to(SOURCE).with_suffix("").parts)
    layer = layer_of(module)
    wrong = []
    for imported in imports_of(path):
        if imported == "typer" or imported.startswith("typer."):
            if layer != "cli":
                wrong.append(imported)
        elif imported.startswith("zboot."):
            target = layer_of(imported)
            if target != "shared" and target not in ALLOWED[layer]:
                wrong.append(imported)
    assert wrong == [], f"{module} ({layer}) must not import {wrong}"


def test_the_rules_see_a_violation() -> None:
    """The check itself: an ops module importing the CLI is caught."""
    assert layer_of("zboot.cli.session") == "cli"
    assert "cli" not in ALLOWED["ops"]
    assert layer_of("zboot.errors") == "shared"
    here = SOURCE / "ops" / "context.py"
    assert any(name.startswith("zboot.targets") for name in imports_of(here))


def test_typer_is_only_in_the_cli() -> None:
    users = {
        str(p.relative_to(SOURCE))
        for p in modules()
        if any(i.split(".")[0] == "typer" for i in imports_of(p))
    }
    assert users and all(u.startswith("cli/") for u in users)


def test_the_test_machinery_is_imported_by_nothing_but_the_entry_point() -> None:
    """zboot.testing (fault injection, the recording runner) is loaded in a
    normal run by nobody: only cli/app.py's main(), when a test sets the
    fault variables, imports it (inside the function)."""
    users = {
        str(p.relative_to(SOURCE))
        for p in modules()
        if not str(p.relative_to(SOURCE)).startswith("testing/")
        and any(i.startswith("zboot.testing") for i in imports_of(p))
    }
    assert users == {"cli/app.py"}
    top_level = ast.parse((SOURCE / "cli" / "app.py").read_text()).body
    assert not any(
        isinstance(node, ast.ImportFrom) and "testing" in (node.module or "") for node in top_level
    )
