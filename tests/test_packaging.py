"""Packaging: environment.yml and pyproject.toml list the same runtime dependencies."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# conda-forge names of packages whose PyPI extras pull in separate conda packages
CONDA_FOR_EXTRAS = {"dask": {"dask", "distributed"}}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names: set[str] = set()
    for requirement in project["dependencies"]:
        name = _name(requirement)
        names |= CONDA_FOR_EXTRAS.get(name, {name})
    return names


def _conda_names() -> set[str]:
    names = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        match = re.match(r"^\s{2}- ([A-Za-z0-9_.\-]+)", line)
        if match and match.group(1) not in {"python", "pip"}:
            names.add(match.group(1).lower())
    return names


# the import name of each runtime dependency that is imported under another name
IMPORT_NAMES = {"pillow": "PIL"}
# declared without being imported: fsspec loads them by protocol or calls them itself
LOADED_BY_FSSPEC = {"s3fs": "s3:// through fsspec", "tqdm": "fsspec's TqdmCallback"}


def _imported_third_party(optional: bool = False) -> dict[str, set[str]]:
    """Top-level third-party modules the package imports, anywhere in a module.

    Imports inside a ``try`` that catches ``ImportError`` are optional (the package
    works without them); ``optional=True`` lists those, else the required ones.
    """
    import ast

    found: dict[str, set[str]] = {}
    for path in (ROOT / "creevey_dask").rglob("*.py"):
        tree = ast.parse(path.read_text())
        guarded = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.Try)
            and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers
            )
            for stmt in node.body
            for inner in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if (id(node) in guarded) != optional:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in {"creevey_dask", "_typeshed"}:
                    found.setdefault(top, set()).add(path.name)
    return found


def test_the_declared_dependencies_are_those_imported():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set()
    for requirement in project["dependencies"]:
        name = _name(requirement)
        declared.add(name)
        extras = re.search(r"\[(.*?)\]", requirement)
        if extras:  # dask[distributed,dataframe] declares distributed
            declared |= {e.strip() for e in extras.group(1).split(",")} & {"distributed"}
    imported = {name.lower() for name in _imported_third_party()}
    optional = {name.lower() for name in _imported_third_party(optional=True)}
    as_imported = {IMPORT_NAMES.get(name, name).lower() for name in declared}
    assert imported - as_imported == set(), "imported but not declared"
    unused = as_imported - imported - optional - set(LOADED_BY_FSSPEC)
    assert unused == set(), "declared but never imported"


def test_every_dependency_has_a_lower_bound_that_is_installed():
    """A fresh install takes the newest release; the bound says what the code needs."""
    from importlib.metadata import version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[.*?\])?>=([0-9][0-9.]*)", requirement)
        assert match, f"{requirement!r}: a dependency is 'name>=lower bound', without a cap"
        name, _, bound = match.groups()
        installed = tuple(int(p) for p in re.findall(r"\d+", version(name))[:3])
        wanted = tuple(int(p) for p in bound.split("."))
        assert installed >= wanted, (name, version(name), bound)


def test_environment_yml_matches_pyproject():
    assert _conda_names() == _pyproject_names()


def test_readme_opens_with_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block is not None
    assert text.index(block.group(0)) < text.index("##")  # before any section
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert "demo" in commands[0]
    assert "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
