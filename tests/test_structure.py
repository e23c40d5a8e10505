"""The package's shape: one installed namespace, one-way imports between rooms, no import cycles, small modules, and
`import tunelab` cheap (no torch, no Ray)."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

ROOMS = ("cluster", "dashboards", "jobs", "models", "results", "search_spaces")
# room -> the rooms it may import (DESIGN.md, "Rooms"); every room may import the leaf tunelab.errors
ALLOWED = {
    "search_spaces": {"jobs"},  # jobs.config only: checked below
    "jobs": {"models", "results"},
    "models": set(),
    "results": set(),
    "dashboards": {"results"},
    "cluster": set(),
}
SOURCE_DIRS = ("tunelab", *ROOMS)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts if parts[0] == "tunelab" else ["tunelab", *parts])


def _imports(path: Path) -> set[str]:
    """Every tunelab module `path` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "tunelab"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "tunelab":
                if node.module != "tunelab":  # `from tunelab import jobs` imports the room, counted below
                    found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}  # `from tunelab import jobs`
    return found


def _graph() -> dict[str, set[str]]:
    files = [p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else "tunelab"


def test_rooms_import_only_what_the_design_allows():
    bad = []
    for mod, deps in _graph().items():
        room = _room(mod)
        for dep in deps:
            other = _room(dep)
            if room == "tunelab" or other == room or dep == "tunelab.errors":
                continue
            if other == "tunelab" or other not in ALLOWED[room]:
                bad.append(f"{mod} -> {dep}")
            elif room == "search_spaces" and not dep.startswith("tunelab.jobs.config"):
                bad.append(f"{mod} -> {dep} (search_spaces may import jobs.config only)")
    assert not bad, "imports against the design:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = _graph()
    # a package's __init__ re-exporting its own modules is not a cycle of logic: leave those edges out
    edges = {m: {d for d in deps if not (d.startswith(m + ".") and (ROOT / "tunelab").exists())} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_over_400_lines_outside_tests_and_benchmarks():
    long = {str(p.relative_to(ROOT)): n for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_no_bare_room_imports_anywhere():
    bare = []
    for p in [*ROOT.glob("*/**/*.py")]:
        if {".venv", ".cache", "build", "dist", "test-artifacts"} & set(p.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            bare += [f"{p.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ROOMS]
    assert not bare, bare


def test_import_tunelab_loads_neither_torch_nor_ray_and_help_stays_light():
    code = ("import sys, tunelab, tunelab.cli; "
            "print(__import__('json').dumps(sorted(m for m in ('torch', 'ray', 'timm', 'redis') if m in sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []


def test_errors_of_every_room_are_one_family():
    import tunelab
    from tunelab.cluster import ClusterError
    from tunelab.dashboards.views import ViewError
    from tunelab.jobs import JobError, TrainingDiverged
    from tunelab.models import ModelError
    from tunelab.results import StoreError
    from tunelab.search_spaces import SpecError

    for cls in (ClusterError, ViewError, JobError, TrainingDiverged, ModelError, StoreError, SpecError,
                tunelab.InputError):
        assert issubclass(cls, tunelab.TunelabError), cls


@pytest.mark.slow
def test_pip_install_puts_one_top_level_package(tmp_path):
    """`pip install .` (not editable) gives site-packages exactly one package, `tunelab`, holding every room."""
    src, target = tmp_path / "src", tmp_path / "site"  # a copy: setuptools builds inside the tree it installs
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", ".cache", "build", "dist", "*.egg-info",
                                                             "__pycache__", "test-artifacts", ".pytest_cache"))
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(target), str(src)], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    tops = sorted(p.name for p in target.iterdir() if p.name not in ("bin", "__pycache__"))
    assert len(tops) == 2 and tops[0] == "tunelab" and tops[1].startswith("tunelab-") and \
        tops[1].endswith(".dist-info"), tops
    pkg = target / "tunelab"
    assert all((pkg / room / "__init__.py").is_file() for room in ROOMS)
    assert (pkg / "dashboards" / "templates").is_dir() and any((pkg / "dashboards" / "static").iterdir())
    # the installed copy imports on its own, from anywhere, and its rooms are inside it
    code = ("import tunelab.models, tunelab.dashboards.web, tunelab.cli; import tunelab.jobs.data as d; "
            "print(tunelab.models.__file__); print(d.__file__)")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert all(line.startswith(str(pkg)) for line in run.stdout.split()), run.stdout


REGISTRY = ROOT / "jobs" / "datasets.py"  # the one place a dataset is defined


def _names_a_dataset(text: str, names: set[str]) -> bool:
    return text.strip().lower() in names


def test_no_product_module_outside_the_registry_names_a_dataset():
    """A dataset's name or title as a string value (a default, a comparison, a choice, a dict key) or as an identifier
    (an enum member, a variable) anywhere in the product but the registry, or quoted in a template, means a room that must change
    when a dataset is added. Docstrings and comments may mention datasets; code may not name them."""
    from tunelab.jobs.datasets import BUILTINS

    names = {n.lower() for s in BUILTINS.values() for n in (s.name, s.title)}
    found = []
    for d in SOURCE_DIRS:
        for p in (ROOT / d).rglob("*.py"):
            if p == REGISTRY:
                continue
            tree = ast.parse(p.read_text())
            docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                          if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                          and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                    if _names_a_dataset(node.value, names):
                        found.append(f"{p.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
                elif isinstance(node, (ast.Name, ast.arg)):  # (a library's attribute, torchvision's CIFAR10 policy, is
                    ident = node.id if isinstance(node, ast.Name) else node.arg  # its name, not ours)
                    if ident.lower() in names:
                        found.append(f"{p.relative_to(ROOT)}:{node.lineno}: identifier {ident}")
        for p in (ROOT / d).rglob("*.html"):
            for name in names:
                if f'"{name}"' in p.read_text().lower() or f"'{name}'" in p.read_text().lower():
                    found.append(f"{p.relative_to(ROOT)}: {name!r} quoted")
    assert not found, "datasets named outside the registry (ask jobs.datasets instead):\n" + "\n".join(found)


def test_the_dataset_check_catches_what_it_should():
    """The check above would see a dataset named the ways the old code did."""
    from tunelab.jobs.datasets import BUILTINS

    names = {n.lower() for s in BUILTINS.values() for n in (s.name, s.title)}
    for text in ("mnist", "cifar100", "CIFAR-10", " MNIST "):
        assert _names_a_dataset(text, names)
    for text in ("search_spaces/mnist_smoke.yaml", "CIFAR ResNet-20", "dataset"):
        assert not _names_a_dataset(text, names)
