import keras
import pytest

from cgan.training import precision


def test_explicit_values_pass_through():
    for value in ("float32", "mixed_float16", "mixed_bfloat16"):
        assert precision.resolve(value, gpus=[]) == value


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        precision.resolve("half", gpus=[])


def test_auto_on_cpu_follows_bfloat16_support(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags : fpu avx512f avx512_bf16\n")
    assert precision.cpu_supports_bfloat16(str(cpuinfo))
    cpuinfo.write_text("flags : fpu avx2\n")
    assert not precision.cpu_supports_bfloat16(str(cpuinfo))
    assert not precision.cpu_supports_bfloat16(str(tmp_path / "missing"))


def test_float16_gets_loss_scaling_only():
    wrapped = precision.wrap_optimizer(keras.optimizers.Adam(), "mixed_float16")
    assert isinstance(wrapped, keras.mixed_precision.LossScaleOptimizer)
    plain = keras.optimizers.Adam()
    assert precision.wrap_optimizer(plain, "mixed_bfloat16") is plain
