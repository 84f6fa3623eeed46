"""The module map in DEVELOPERS.md matches the imports: every module of src/hubtasks is on one
line of its `layers` block, and imports only modules of its own line or below (imports under
`if TYPE_CHECKING:` are for types only and exempt). Reads the files; imports nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "hubtasks"


def layers() -> dict[str, int]:
    """Module → layer number, from the ```layers block of DEVELOPERS.md."""
    text = (ROOT / "DEVELOPERS.md").read_text()
    block = re.search(r"^```layers\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert block, "DEVELOPERS.md has no ```layers block"
    found: dict[str, int] = {}
    for line in block.group(1).splitlines():
        number, rest = line.split(maxsplit=1)
        names = re.split(r"\s{2,}", rest.strip())[0].split()  # two spaces, then the comment
        for name in names:
            assert name not in found, f"{name} is on two lines of the map"
            found[name] = int(number)
    return found


def runtime_imports(path: Path) -> set[str]:
    """The package's modules `path` imports when it runs: at the top or inside functions,
    not under `if TYPE_CHECKING:`."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, ast.ImportFrom) and child.level == 1:
                modules = [child.module] if child.module else [a.name for a in child.names]
                found.update(module.split(".")[0] for module in modules)
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def test_every_module_is_on_the_map_once():
    assert sorted(layers()) == modules()


def test_imports_go_down_the_map():
    layer = layers()  # a module missing from it fails the test above
    upward = [
        f"{name} (layer {layer[name]}) imports {target} (layer {layer[target]})"
        for name in modules()
        if name in layer
        for target in sorted(runtime_imports(PACKAGE / f"{name}.py"))
        if target in layer and layer[target] < layer[name]
    ]
    assert upward == []


def test_the_check_sees_lazy_imports_and_skips_type_only_ones(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .errors import HubError\n"
        "if TYPE_CHECKING:\n"
        "    from .api import Release\n"
        "def f():\n"
        "    from . import engine\n"
    )
    assert runtime_imports(source) == {"errors", "engine"}
