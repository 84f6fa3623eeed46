"""The map in DEVELOPERS.md matches the imports. Its `layers` block names packages (`pipeline`)
and modules (`api`, `dockerhub.describe`); a module's place is its own entry, else its
package's. A module imports only modules of its own line or below (imports under
`if TYPE_CHECKING:` are for types only and exempt), and no import, not even one inside a
function, closes a circle. Reads the files; imports nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "hubtasks"


def layers() -> dict[str, int]:
    """Entry (package or module, dotted below hubtasks) → layer number, from the ```layers
    block of DEVELOPERS.md."""
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


def modules() -> dict[str, Path]:
    """Every module of the package, dotted below hubtasks (a package's `__init__` is its own
    name: `pipeline`)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = path
    return found


def _target(module: str, base: str, names: list[str], known: dict[str, Path]) -> list[str]:
    """The package's modules an import names: `from hubtasks.pipeline import plan` is
    `pipeline.plan`; `from hubtasks.errors import HubError` is `errors`."""
    found = []
    for name in names:
        dotted = f"{base}.{name}" if base else name
        if dotted in known:
            found.append(dotted)
        elif base in known:
            found.append(base)
    return found or ([module] if module in known else [])


def runtime_imports(
    path: Path, known: dict[str, Path] | None = None, here: tuple[str, ...] | None = None
) -> set[str]:
    """The package's modules `path` imports when it runs: at the top or inside functions,
    not under `if TYPE_CHECKING:`. Relative imports are read from `here`, the file's own
    package (dotted parts below hubtasks)."""
    known = modules() if known is None else known
    if here is None:
        here = path.relative_to(PACKAGE).parts[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            found.update(_imported(child, here, known))
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def _imported(node: ast.AST, here: tuple[str, ...], known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        base = _base(node, here)
        if base is not None:
            return _target(base, base, [alias.name for alias in node.names], known)
    elif isinstance(node, ast.Import):
        dotted = [a.name[len("hubtasks.") :] for a in node.names if a.name.startswith("hubtasks.")]
        return [name for name in dotted if name in known]
    return []


def _base(node: ast.ImportFrom, here: tuple[str, ...]) -> str | None:
    """The dotted module below hubtasks that a `from … import` reads, or None (outside)."""
    if node.level:
        parts = list(here[: len(here) - node.level + 1])
        if node.module:
            parts.append(node.module)
        return ".".join(parts)
    if node.module == "hubtasks":
        return ""
    if node.module and node.module.startswith("hubtasks."):
        return node.module[len("hubtasks.") :]
    return None


def place(name: str, layer: dict[str, int]) -> int | None:
    """A module's layer: its own entry, else the nearest package's."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in layer:
            return layer[".".join(parts)]
        parts.pop()
    return None


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: runtime_imports(path, known) - {name} for name, path in known.items()}


def test_every_module_is_on_the_map_and_every_entry_exists():
    layer = layers()
    known = modules()
    packages = {name for name, path in known.items() if path.name == "__init__.py"}
    unplaced = [name for name in known if name not in packages and place(name, layer) is None]
    assert unplaced == []
    assert [entry for entry in layer if entry not in known] == []


def test_imports_go_down_the_map():
    layer = layers()
    upward = [
        f"{name} (layer {place(name, layer)}) imports {target} (layer {place(target, layer)})"
        for name, targets in graph().items()
        for target in sorted(targets)
        if "." in target or target in layer  # a package's __init__ imports nothing
        if (place(target, layer) or 99) < (place(name, layer) or 0)
    ]
    assert upward == []


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return seen


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each circle of imports once: the modules that reach each other, two or more."""
    reach = {node: reachable(edges, node) for node in edges}
    found = {
        tuple(sorted({node} | {other for other in reach[node] if node in reach.get(other, ())}))
        for node in edges
        if node in reach[node]
    }
    return sorted(list(circle) for circle in found if len(circle) > 1)


def test_no_import_circles_not_even_inside_functions():
    assert cycles(graph()) == []


def test_the_check_sees_lazy_and_relative_imports_and_skips_type_only_ones(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from hubtasks.errors import HubError\n"
        "from .plan import Plan\n"
        "if TYPE_CHECKING:\n"
        "    from hubtasks.api import Release\n"
        "def f():\n"
        "    from hubtasks.daemon import engine\n"
    )
    found = runtime_imports(source, here=("pipeline",))
    assert found == {"errors", "pipeline.plan", "daemon.engine"}


def test_the_circle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# --- the tests themselves -------------------------------------------------------------------

TESTS = ROOT / "tests"


def imports_under_tests(source: str, here: tuple[str, ...]) -> set[str]:
    """The modules under tests/ that `source` imports, dotted from the repository root
    (`tests.unit.test_tasks`); `here` is the file's package (`("tests", "unit")`) for its
    relative imports. Imports inside functions count too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else ()
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("tests.")}


def imported_test_modules(path: Path) -> list[str]:
    here = path.relative_to(ROOT).parts[:-1]
    names = imports_under_tests(path.read_text(), here)
    return sorted(name for name in names if name.rsplit(".", 1)[-1].startswith("test_"))


def test_no_test_module_imports_another_test_module():
    """Shared helpers live in tests/helpers/ (or a conftest.py fixture): a test module that
    imports another one runs that module's imports and couples to its private names."""
    offenders = {
        str(path.relative_to(ROOT)): imported_test_modules(path)
        for path in sorted(TESTS.rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_check_sees_relative_absolute_and_nested_imports():
    source = (
        "from .test_tasks import invoke\n"
        "from . import test_plan\n"
        "import tests.integration.test_cache\n"
        "def f():\n    from tests.devtools.test_faultproxy import _Server\n"
        "from tests.helpers.cli import invoke\nfrom .fakes import Store\n"
    )
    names = imports_under_tests(source, ("tests", "unit"))
    tests = sorted(name for name in names if name.rsplit(".", 1)[-1].startswith("test_"))
    assert tests == [
        "tests.devtools.test_faultproxy",
        "tests.integration.test_cache",
        "tests.unit.test_plan",
        "tests.unit.test_tasks",
    ]
