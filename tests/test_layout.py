"""The package's shape: folders import one way, data/ stands alone, every flag comes from cgan.core.options."""

import ast
import importlib
import os
import subprocess
import sys

import pytest

import cgan
from conftest import REPO

ENTRY_POINTS = ("trainer.py", "sample.py")


def _python_files(top):
    for folder, _, names in os.walk(os.path.join(REPO, top)):
        for name in sorted(names):
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(folder, name), REPO)


def _module_name(path):
    parts = path[:-len(".py")].split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """Every module named by an import statement of the file, at any depth (function-level imports too)."""
    tree = ast.parse(open(os.path.join(REPO, path)).read())
    package = _module_name(path) if path.endswith("__init__.py") else _module_name(path).rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def _layer(module):
    """The index in cgan.LAYERS of the folder a cgan module is in; len(LAYERS) for modules directly in cgan/."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in cgan.LAYERS):
        return cgan.LAYERS.index(parts[1])
    return len(cgan.LAYERS)


CGAN_MODULES = [path for path in _python_files("cgan")]


def test_every_folder_of_cgan_is_a_layer_and_holds_no_stray_module():
    folders = {path.split(os.sep)[1] for path in CGAN_MODULES if path.count(os.sep) >= 2}
    assert folders == set(cgan.LAYERS)
    top_level = sorted(os.path.basename(p) for p in CGAN_MODULES if p.count(os.sep) == 1)
    assert top_level == ["__init__.py", "benchmark.py", "downstream.py", "evaluate.py", "memorisation.py", "train.py"]


@pytest.mark.parametrize("path", CGAN_MODULES)
def test_imports_run_one_way(path):
    """A module imports from its own folder or the folders before it, never from one after it or above it."""
    own = _layer(_module_name(path))
    for name in _imports(path):
        if name == "cgan" or not name.startswith("cgan."):
            continue
        assert _layer(name) <= own, f"{path} imports {name}, from a folder after its own in cgan.LAYERS"
        if own < len(cgan.LAYERS):
            assert _layer(name) < len(cgan.LAYERS), f"{path} imports {name}, a module above its folder"


@pytest.mark.parametrize("path", CGAN_MODULES)
def test_cgan_needs_neither_benchmarks_nor_tools(path):
    for name in _imports(path):
        if path != os.path.join("cgan", "benchmark.py"):   # the `python -m cgan.benchmark` entry point
            assert not name.startswith(("benchmarks", "tools")), f"{path} imports {name}"


def test_the_layer_rule_is_not_vacuous():
    assert _layer("cgan.core.options") == 0 and _layer("cgan.evaluation.metrics.kid") == 6
    assert _layer("cgan.train") == len(cgan.LAYERS) and _layer("cgan.model") == 1
    assert "cgan.core.errors.UserError" in _imports(os.path.join("cgan", "inputs", "datasets.py"))


@pytest.mark.parametrize("path", list(_python_files("data")))
def test_the_dataset_package_imports_nothing_from_cgan(path):
    for name in _imports(path):
        assert not name.startswith("cgan"), f"{path} imports {name}: data/ must stand alone, as `tfds new` has it"


def test_every_module_imports():
    """Each module, in a fresh process, imports without error (so no import cycle is hidden by import order)."""
    modules = [_module_name(p) for p in CGAN_MODULES] + [_module_name(p) for p in _python_files("data")
                                                         if not p.endswith(("_test.py", "__main__.py"))]
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", script, *modules], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def _define_calls(path):
    tree = ast.parse(open(os.path.join(REPO, path)).read())
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr.startswith("DEFINE")]


def test_every_flag_comes_from_the_option_machinery():
    """No tool declares an absl flag by hand; data/ (which may not import cgan) is the one exception."""
    paths = [*CGAN_MODULES, *_python_files("benchmarks"), *_python_files("tools"), *ENTRY_POINTS]
    by_hand = {path: lines for path in paths if (lines := _define_calls(path))}
    assert set(by_hand) == {os.path.join("cgan", "core", "options.py")}, by_hand


@pytest.mark.parametrize("module,options_class", [
    ("cgan.core.config", "TrainConfig"), ("benchmarks.config", "BenchmarkConfig"),
    ("cgan.evaluation.evaluate", "Settings"), ("cgan.evaluation.downstream", "Settings"),
    ("cgan.evaluation.memorisation", "Settings"), ("cgan.evaluation.tool", "Target")])
def test_every_command_s_options_are_an_options_dataclass(module, options_class):
    from cgan.core import options
    assert issubclass(getattr(importlib.import_module(module), options_class), options.Options)


def test_shared_options_mean_one_thing():
    """The options several commands take have one help text and one default wherever they appear."""
    import dataclasses

    from benchmarks.config import BenchmarkConfig
    from cgan.core.config import TrainConfig
    from cgan.evaluation import downstream, evaluate, memorisation
    seen = {}
    classes = (TrainConfig, BenchmarkConfig, evaluate.Settings, downstream.Settings, memorisation.Settings)
    for options_class in classes:
        for field in dataclasses.fields(options_class):
            if field.name in ("truncation", "classifier_flips", "inception_weights", "data_dir", "manual_dir"):
                seen.setdefault(field.name, set()).add((field.default, field.metadata["help"]))
    assert set(seen) == {"truncation", "classifier_flips", "inception_weights", "data_dir", "manual_dir"}
    assert all(len(variants) == 1 for variants in seen.values()), seen
