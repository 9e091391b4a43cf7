"""Short module docstrings, and preset flag files that set only what differs from what they build on."""

import ast
import dataclasses
import glob
import os
import re

import pytest
from absl import flags

from cgan.core import config as config_lib
from conftest import REPO

MAX_DOCSTRING_LINES = 25
PRESETS = ("p100.flags", "quality.flags", "quality_gpu.flags", "demo.flags")
MODULE_PATTERNS = ("cgan/**/*.py", "benchmarks/*.py", "data/**/*.py", "trainer.py", "sample.py", "tools/*.py")


def _modules():
    found = {os.path.relpath(path, REPO) for pattern in MODULE_PATTERNS
             for path in glob.glob(os.path.join(REPO, pattern), recursive=True)}
    return sorted(found)


def _docstring(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return ast.get_docstring(ast.parse(f.read(), filename=path))


@pytest.mark.parametrize("path", _modules())
def test_a_module_docstring_is_at_most_25_lines(path):
    docstring = _docstring(path)
    if path.startswith("cgan" + os.sep):
        assert docstring, f"{path} has no module docstring: say how the module is used"
    lines = len(docstring.splitlines()) if docstring else 0
    assert lines <= MAX_DOCSTRING_LINES, (f"{path}: module docstring of {lines} lines; keep it to "
                                          f"{MAX_DOCSTRING_LINES} (usage and decisions; essays go)")


def _lines(preset):
    """The flag lines of a preset, as absl reads them (comments and blank lines dropped)."""
    with open(os.path.join(REPO, preset)) as f:
        return [line.strip() for line in f if line.strip() and not line.strip().startswith(("#", "//"))]


def _flag_values(argv):
    flag_values = flags.FlagValues()
    config_lib.TrainConfig.define_flags(flag_values)
    flag_values(["presets", *argv])
    return flag_values


def _option(line):
    """The TrainConfig field a flag line sets: --name=value, --name or --noname (booleans)."""
    names = {field.name for field in dataclasses.fields(config_lib.TrainConfig)}
    name = re.match(r"--?([^=]+)", line)[1]
    if name not in names and name.startswith("no") and name[2:] in names:
        name = name[2:]
    assert name in names, f"{line!r} sets no trainer option"
    return name


def test_quality_gpu_flags_builds_on_quality_flags():
    assert "--flagfile=quality.flags" in _lines("quality_gpu.flags")


@pytest.mark.parametrize("preset", PRESETS)
def test_a_preset_sets_only_what_differs(preset, monkeypatch):
    """No line restates the value the option would have without it: the TrainConfig default, or what an
    included flag file (a `--flagfile=` line above it) already set. --workdir names the preset's own run."""
    monkeypatch.chdir(REPO)   # absl reads a nested --flagfile relative to the current directory
    defaults = {field.name: field.default for field in dataclasses.fields(config_lib.TrainConfig)}
    lines = _lines(preset)
    assert config_lib.TrainConfig.from_flags(_flag_values([f"--flagfile={preset}"])).workdir
    for i, line in enumerate(lines):
        if line.startswith(("--flagfile=", "-flagfile=")):
            continue
        name = _option(line)
        if name == "workdir":
            continue
        before = _flag_values(lines[:i])[name].value
        if not any(earlier.startswith(("--flagfile=", "-flagfile=")) for earlier in lines[:i]):
            default = defaults[name]
            assert before == (list(map(str, default)) if isinstance(default, tuple) else default)
        after = _flag_values(lines[:i + 1])[name].value
        assert after != before, (f"{preset}: {line!r} restates {name}={before!r}, its value without the "
                                 "line (the default or an included preset's); drop it")
