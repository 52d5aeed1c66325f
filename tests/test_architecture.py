"""The shape of the code: one-way package arrows, no cycles, modules and functions of readable size."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rag", "ingest", "ui", "bench")
# What each package may import (besides itself): rag at the bottom, the product's commands (ui)
# above ingestion, and the experiments (bench) on top: the product never imports them.
ALLOWED = {
    "rag": set(),
    "ingest": {"rag"},
    "ui": {"rag", "ingest"},
    "bench": {"rag", "ingest", "ui"},
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            # ``python -m rag`` is a script on top of everything (it runs the CLI); nothing imports it.
            if path.relative_to(ROOT).as_posix() != "rag/__main__.py":
                yield package, path


def _imported_packages(tree: ast.AST) -> set[str]:
    """Top-level project packages imported anywhere in the module, lazily inside functions included."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


def test_package_arrows_point_one_way():
    wrong = []
    for package, path in _modules():
        for target in _imported_packages(ast.parse(path.read_text(encoding="utf-8"))) - {package}:
            if target not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not wrong, wrong


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for package, path in _modules():
        graph[package] |= _imported_packages(ast.parse(path.read_text(encoding="utf-8"))) - {package}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start])

    assert not [p for p in PACKAGES if reaches(p, p, {p})]
    assert "ui" not in graph["rag"]


def test_modules_and_functions_stay_readable():
    too_long = []
    for _, path in _modules():
        source = path.read_text(encoding="utf-8")
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, too_long


def test_no_private_langchain_or_chroma_attributes():
    private = ("._collection", "._client")
    found = [
        f"{path.relative_to(ROOT)}: {attr}"
        for _, path in _modules()
        for attr in private
        if f"store{attr}" in path.read_text(encoding="utf-8")
    ]
    assert not found, found


def test_the_product_imports_where_fcntl_and_resource_are_missing():
    """Windows has neither: no module of the product may need them at import time."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['fcntl'] = None; sys.modules['resource'] = None\n"
        "import rag, rag.assistant, rag.store, ingest.pipeline, ingest.budget, ingest.collection\n"
        "import ui.cli, ui.launch, ui.api, ui.app\n"
        "ui.cli.build_parser().parse_args(['ask', 'q'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycle_between_modules():
    """Two modules never import each other, lazily or not (``ui.cli`` and ``ui.launch`` once did)."""
    modules = {_module_name(path): path for _, path in _modules()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            else:
                continue
            targets |= {t for t in found if t in modules and t != name}
        graph[name] = targets
    # a package's __init__ re-exporting what its modules define is not a cycle of two modules
    circles = sorted(
        f"{a} <-> {b}"
        for a, targets in graph.items()
        for b in targets
        if a < b and a in graph.get(b, set()) and not ("." not in a or "." not in b)
    )
    assert not circles, circles
