import dataclasses

import pytest
from absl import flags

from benchmarks import config as benchmark_config
from benchmarks.config import BenchmarkConfig
from cgan.core.errors import UserError


def _flags(*args):
    flag_values = flags.FlagValues()
    benchmark_config.define_flags(flag_values)
    flag_values(["benchmarks", *args])
    return flag_values


def test_every_field_has_a_flag_and_every_flag_a_field():
    flag_values = flags.FlagValues()
    benchmark_config.define_flags(flag_values)
    fields = dataclasses.fields(BenchmarkConfig)
    assert set(flag_values) == {field.name for field in fields}
    for field in fields:
        assert flag_values[field.name].help == field.metadata["help"] != ""


def test_help_lists_the_flags_under_the_entry_point():
    flag_values = flags.FlagValues()
    benchmark_config.define_flags(flag_values, module_name="entry.py")
    assert "--batch_sizes" in flag_values.module_help("entry.py")


def test_flags_give_the_defaults_and_parse_every_type():
    assert benchmark_config.config_from_flags(_flags()) == BenchmarkConfig()
    parsed = benchmark_config.config_from_flags(_flags(
        "--batch_sizes=8,32", "--precisions=float32", "--steps=7", "--dataset=isic_skin_cancer/real_64",
        "--json=out/b.json"))
    assert parsed == BenchmarkConfig(batch_sizes=(8, 32), precisions=("float32",), steps=7,
                                     dataset="isic_skin_cancer/real_64", json="out/b.json")


def test_the_quick_comparison_flags_parse():
    parsed = benchmark_config.config_from_flags(_flags("--quick_gpu", "--presets=p100.flags,/tmp/mine.flags"))
    assert parsed == BenchmarkConfig(quick_gpu=True, presets=("p100.flags", "/tmp/mine.flags"))
    assert benchmark_config.config_from_flags(_flags("--noquick_gpu")).quick_gpu is False
    with pytest.raises(UserError, match="--quick_gpu takes bool values"):
        BenchmarkConfig(quick_gpu=1)


@pytest.mark.parametrize("arg", ["--batch_sizes=0", "--batch_sizes=16,x", "--batch_sizes=",
                                 "--precisions=half", "--precisions=auto", "--repeats=0", "--intra_op_threads=-1",
                                 "--presets="])
def test_flags_reject_bad_values(arg):
    with pytest.raises(flags.IllegalFlagValueError):
        _flags(arg)


def test_the_config_checks_its_values_with_one_line():
    with pytest.raises(UserError, match=r"^--batch_sizes must be at least 1, got 0$"):
        BenchmarkConfig(batch_sizes=(16, 0))
    with pytest.raises(UserError, match="--precisions takes values from float32, mixed_float16, mixed_bfloat16"):
        BenchmarkConfig(precisions=("half",))
    with pytest.raises(UserError, match="--steps takes int values"):
        BenchmarkConfig(steps=2.5)
    with pytest.raises(UserError, match="--batch_sizes needs at least one value"):
        BenchmarkConfig(batch_sizes=())
