"""The package's structure is its architecture: each layer imports only what it may.

- a source (``pipelines.sources.<name>``) imports the corpus layer and the engine's public
  names (``from pipelines.engine import ...``, names in ``pipelines.engine.__all__``), and
  its own package; so does a filter (``pipelines.filters``: decontamination, dedup);
- the engine never imports the runtime, fetch, the build, the sources or the commands;
- the corpus layer never imports them either, and of the engine only its file helpers;
- Beam's internals (``apache_beam.internal``, ``apache_beam.runners``) only in the runtime;
- no module is over 500 lines.
"""
import ast
from pathlib import Path

import pytest

import pipelines.engine

PACKAGE = Path(pipelines.__file__).parent
MAX_LINES = 500


def _modules(folder: str = ""):
    return sorted((PACKAGE / folder).rglob("*.py"))


def _imports(path: Path):
    """``(module, names)`` for every import in a module (relative ones resolved)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-node.level]
                module = ".".join(package + ((module,) if module else ()))
            yield module, tuple(alias.name for alias in node.names)


def _name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


@pytest.mark.parametrize("path", _modules("sources"), ids=_name)
def test_a_source_uses_the_corpus_layer_and_the_engines_public_names(path):
    own = ".".join(_name(path).split(".")[:3])
    for module, names in _imports(path):
        if not module.startswith("pipelines") or module.startswith(("pipelines.corpus", own)):
            continue
        assert module == "pipelines.engine", f"{_name(path)} imports {module}"
        assert set(names) <= set(pipelines.engine.__all__), \
            f"{_name(path)} imports {set(names) - set(pipelines.engine.__all__)} from the engine"


@pytest.mark.parametrize("path", _modules("filters"), ids=_name)
def test_a_filter_uses_the_corpus_layer_and_the_engines_public_names(path):
    for module, names in _imports(path):
        if not module.startswith("pipelines") or module.startswith(("pipelines.corpus", "pipelines.filters")):
            continue
        assert module == "pipelines.engine", f"{_name(path)} imports {module}"
        assert set(names) <= set(pipelines.engine.__all__), \
            f"{_name(path)} imports {set(names) - set(pipelines.engine.__all__)} from the engine"


FORBIDDEN = ("pipelines.runtime", "pipelines.fetch", "pipelines.build", "pipelines.sources",
             "pipelines.cli", "pipelines.report", "pipelines.training")


@pytest.mark.parametrize("path", _modules("engine") + _modules("corpus"), ids=_name)
def test_the_engine_and_the_corpus_layer_import_no_layer_below_them(path):
    for module, names in _imports(path):
        assert not module.startswith(FORBIDDEN), f"{_name(path)} imports {module}"
        if _name(path).startswith("pipelines.corpus") and module.startswith("pipelines.engine"):
            assert (module, names) == ("pipelines.engine", ("files",)), f"{_name(path)} imports {module} {names}"


@pytest.mark.parametrize("path", [p for p in _modules() if not _name(p).startswith("pipelines.runtime")], ids=_name)
def test_beam_internals_only_in_the_runtime(path):
    for module, _names in _imports(path):
        assert not module.startswith(("apache_beam.internal", "apache_beam.runners")), \
            f"{_name(path)} imports {module}"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_no_module_is_over_500_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES
