import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan.model import networks

from cgan.training import ema
from conftest import run_script


def _small_model():
    """Dense + BN: trainable weights and batch-norm moving statistics."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization()])


def _set_all(model, value):
    for variable in model.variables:
        variable.assign(tf.fill(variable.shape, value))


def _values(model):
    return [v.numpy() for v in model.variables]


def test_shadow_starts_as_a_copy_in_a_separate_model():
    live = _small_model()
    average = ema.GeneratorEMA(live)
    assert average.model is not live
    assert len(average.model.variables) == len(live.variables) == 6
    for shadow, weight in zip(_values(average.model), _values(live)):
        np.testing.assert_array_equal(shadow, weight)
    _set_all(live, 7.0)  # the shadow does not share variables with the live model
    assert not np.any(average.model.variables[0].numpy() == 7.0)


def test_update_rule_on_known_values_includes_batch_norm_statistics():
    live = _small_model()
    average = ema.GeneratorEMA(live, decay=0.9)
    _set_all(average.model, 1.0)
    _set_all(live, 3.0)
    average.update(0)
    for value in _values(average.model):
        np.testing.assert_allclose(value, 0.9 * 1.0 + 0.1 * 3.0, rtol=1e-6)
    average.update(1)
    for value in _values(average.model):
        np.testing.assert_allclose(value, 0.9 * 1.2 + 0.1 * 3.0, rtol=1e-6)


def test_warm_up_copies_then_averages():
    live = _small_model()
    average = ema.GeneratorEMA(live, decay=0.9, start_step=5)
    _set_all(live, 2.0)
    average.update(tf.constant(4, tf.int64))       # step 4 < 5: a copy
    for value in _values(average.model):
        np.testing.assert_array_equal(value, 2.0)
    _set_all(live, 4.0)
    average.update(tf.constant(5, tf.int64))       # from step 5 on: the average
    for value in _values(average.model):
        np.testing.assert_allclose(value, 0.9 * 2.0 + 0.1 * 4.0, rtol=1e-6)


def test_converges_to_constant_weights_inside_a_tf_function():
    live = _small_model()
    average = ema.GeneratorEMA(live, decay=0.5)
    _set_all(average.model, 0.0)
    _set_all(live, 1.0)

    @tf.function
    def updates(n):
        for step in tf.range(n, dtype=tf.int64):
            average.update(step)

    updates(tf.constant(30, tf.int64))
    for value in _values(average.model):
        np.testing.assert_allclose(value, 1.0 - 0.5 ** 30, rtol=1e-6)


def test_decay_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="decay"):
        ema.GeneratorEMA(_small_model(), decay=1.0)


def test_checkpoint_restores_the_shadow_exactly(tmp_path):
    live = _small_model()
    average = ema.GeneratorEMA(live, decay=0.7)
    for step in range(3):
        _set_all(live, float(step) + 0.123)
        average.update(step)
    saved = _values(average.model)
    path = tf.train.Checkpoint(generator=live, ema_generator=average.model).write(str(tmp_path / "ckpt"))

    fresh_live = _small_model()
    fresh = ema.GeneratorEMA(fresh_live, decay=0.7)
    assert not all(np.array_equal(a, b) for a, b in zip(_values(fresh.model), saved))
    tf.train.Checkpoint(generator=fresh_live, ema_generator=fresh.model).read(path).assert_consumed()
    for restored, value in zip(_values(fresh.model), saved):
        np.testing.assert_array_equal(restored, value)


def _mixed_generator():
    keras.utils.set_random_seed(1)
    return networks.build_generator(64, latent_dim=8, num_classes=3, dtype="mixed_bfloat16")


def test_mixed_bfloat16_generator_shadow_samples_and_lags_behind():
    generator = _mixed_generator()
    average = ema.GeneratorEMA(generator, decay=0.9)
    assert all(v.dtype == "float32" for v in average.model.variables)
    assert average.model.layers[-2].dtype_policy.name == "mixed_bfloat16"   # computes like the generator
    z = tf.random.stateless_normal([3, 8], seed=[0, 0])
    labels = tf.constant([0, 1, 2])
    sample = lambda model: model([z, labels], training=False).numpy()       # [3, 64, 64, 3]
    np.testing.assert_array_equal(sample(average.model), sample(generator))

    for variable in generator.trainable_variables:   # a generator update
        variable.assign_add(tf.random.stateless_normal(variable.shape, seed=[1, 0], stddev=0.05))
    tf.function(lambda: average.update(tf.constant(0, tf.int64)))()
    live_images, shadow_images = sample(generator), sample(average.model)
    assert shadow_images.shape == (3, 64, 64, 3) and shadow_images.dtype == np.float32
    assert np.abs(live_images - shadow_images).mean() > 1e-3
    for shadow, weight in zip(average.model.trainable_variables, generator.trainable_variables):
        assert not np.array_equal(shadow.numpy(), weight.numpy())


def test_update_inside_strategy_run_with_one_replica():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        live = _small_model()
        average = ema.GeneratorEMA(live, decay=0.75)
    _set_all(average.model, 0.0)
    _set_all(live, 1.0)

    @tf.function
    def step():
        strategy.run(lambda: average.update(tf.constant(3, tf.int64)))    # replica context
        average.update(tf.constant(4, tf.int64))                          # cross-replica context

    step()
    for value in _values(average.model):
        np.testing.assert_allclose(value, 1.0 - 0.75 ** 2, rtol=1e-6)


def test_distributed_generator_outside_its_scope_is_rejected():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        live = _small_model()
    with pytest.raises(ValueError, match="strategy.scope"):
        ema.GeneratorEMA(live)


_TWO_REPLICAS = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from cgan.model import networks
    from cgan.training import ema

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        generator = networks.build_generator(64, latent_dim=8, num_classes=3, synchronized_bn=True)
        average = ema.GeneratorEMA(generator, decay=0.5, start_step=1)
    expected = [v.numpy() for v in generator.variables]
    for variable in generator.variables:
        variable.assign(variable + 1.0)

    @tf.function
    def step(step):
        strategy.run(lambda: average.update(step))

    step(tf.constant(0, tf.int64))               # warm-up: copy, in replica context
    expected = [e + 1.0 for e in expected]
    for variable in generator.variables:
        variable.assign(variable + 2.0)
    step(tf.constant(1, tf.int64))               # average, in replica context
    expected = [0.5 * e + 0.5 * (e + 2.0) for e in expected]
    tf.function(lambda: average.update(tf.constant(2, tf.int64)))()   # cross-replica context
    expected = [0.5 * e + 0.5 * (e + 1.0) for e in expected]
    for shadow, value in zip(average.model.variables, expected):
        components = shadow.value.values
        assert len(components) == 2
        for component in components:
            np.testing.assert_allclose(component.numpy(), value, rtol=1e-6, atol=1e-6)
    print("OK", len(expected))
""")


@pytest.mark.slow
def test_update_with_two_replicas():
    assert run_script(_TWO_REPLICAS).startswith("OK")


def test_generator_with_custom_layers_is_cloned_and_copied_during_warm_up():
    keras.utils.set_random_seed(2)
    generator = networks.build_generator(64, latent_dim=8, num_classes=3, conditioning="cbn", spectral_norm=True,
                                         attention_resolution=16)
    average = ema.GeneratorEMA(generator, decay=0.9, start_step=10)
    z = tf.random.stateless_normal([2, 8], seed=[2, 0])
    labels = tf.constant([1, 2])
    generator([z, labels], training=True)                    # moves weights and singular vectors
    for variable in generator.trainable_variables:
        variable.assign(variable * 1.5)
    differs = np.abs(generator([z, labels]).numpy() - average.model([z, labels]).numpy()).max()
    average.update(3)                                        # warm-up: an exact copy
    np.testing.assert_array_equal(average.model([z, labels]).numpy(), generator([z, labels]).numpy())
    assert differs > 1e-3
