import dataclasses

import pytest
from absl import flags

from benchmarks.config import BenchmarkConfig
from cgan.core.errors import UserError


def _flags(*args):
    flag_values = flags.FlagValues()
    BenchmarkConfig.define_flags(flag_values)
    flag_values(["benchmarks", *args])
    return flag_values


def _parse(*args):
    return BenchmarkConfig.from_flags(_flags(*args))


def test_every_field_has_a_flag_and_every_flag_a_field():
    flag_values = flags.FlagValues()
    BenchmarkConfig.define_flags(flag_values)
    fields = dataclasses.fields(BenchmarkConfig)
    assert set(flag_values) == {field.name for field in fields}
    for field in fields:
        assert flag_values[field.name].help.startswith(field.metadata["help"]) and field.metadata["help"]


def test_help_lists_the_flags_under_the_entry_point():
    flag_values = flags.FlagValues()
    BenchmarkConfig.define_flags(flag_values, module_name="entry.py")
    assert "--batch_sizes" in flag_values.module_help("entry.py")


def test_flags_give_the_defaults_and_parse_every_type():
    assert _parse() == BenchmarkConfig()
    parsed = _parse(
        "--batch_sizes=8,32", "--precisions=float32", "--steps=7", "--dataset=isic_skin_cancer/real_64",
        "--json=out/b.json")
    assert parsed == BenchmarkConfig(batch_sizes=(8, 32), precisions=("float32",), steps=7,
                                     dataset="isic_skin_cancer/real_64", json="out/b.json")


def test_the_quick_comparison_flags_parse():
    parsed = _parse("--quick_gpu", "--presets=p100.flags,/tmp/mine.flags")
    assert parsed == BenchmarkConfig(quick_gpu=True, presets=("p100.flags", "/tmp/mine.flags"))
    assert _parse("--noquick_gpu").quick_gpu is False
    with pytest.raises(UserError, match="--quick_gpu=1 is not true or false"):
        BenchmarkConfig(quick_gpu=1)


@pytest.mark.parametrize("arg", ["--batch_sizes=0", "--batch_sizes=16,x", "--batch_sizes=",
                                 "--precisions=half", "--precisions=auto", "--repeats=0", "--intra_op_threads=-1",
                                 "--presets="])
def test_flags_reject_bad_values(arg):
    with pytest.raises(UserError, match=f"^--{arg[2:].split('=')[0]}"):
        _parse(arg)


def test_the_config_checks_its_values_with_one_line():
    with pytest.raises(UserError, match=r"^--batch_sizes=0 is out of range: use a value ≥ 1$"):
        BenchmarkConfig(batch_sizes=(16, 0))
    with pytest.raises(UserError, match="--precisions=half is not a choice: use one of float32, mixed_float16, mixed_bfloat16"):
        BenchmarkConfig(precisions=("half",))
    with pytest.raises(UserError, match="--steps=2.5 is not an integer"):
        BenchmarkConfig(steps=2.5)
    with pytest.raises(UserError, match="--batch_sizes needs at least one value"):
        BenchmarkConfig(batch_sizes=())
