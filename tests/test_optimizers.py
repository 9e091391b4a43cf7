"""FusedAdam: Keras Adam's rule and state, with one fused kernel per variable."""

import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan.training import optimizers
from conftest import run_script


def _variables(seed):
    rng = np.random.default_rng(seed)
    return [tf.Variable(rng.normal(size=shape).astype(np.float32)) for shape in ((4, 3, 2), (5,), ())]


def _gradients(step, variables):
    rng = np.random.default_rng(100 + step)
    return [tf.constant(rng.normal(size=v.shape).astype(np.float32) * 10 ** rng.uniform(-3, 1)) for v in variables]


def _train(optimizer, variables, steps, compiled):
    def apply(gradients):
        optimizer.apply_gradients(zip(gradients, variables))
    apply = tf.function(apply) if compiled else apply
    for step in range(steps):
        apply(_gradients(step, variables))


@pytest.mark.parametrize("compiled", [False, True])
def test_fused_adam_follows_keras_adam(compiled):
    keras_vars, fused_vars = _variables(0), _variables(0)
    settings = dict(learning_rate=2e-3, beta_1=0.5, beta_2=0.99, epsilon=1e-7)
    reference, fused = keras.optimizers.Adam(**settings), optimizers.FusedAdam(**settings)
    _train(reference, keras_vars, 6, compiled)
    _train(fused, fused_vars, 6, compiled)
    start = _variables(0)
    for expected, actual, initial in zip(keras_vars, fused_vars, start):
        moved = np.abs(expected.numpy() - initial.numpy())
        assert moved.min() > 1e-4                     # every entry moved: the comparison means something
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)
    for expected, actual in zip(reference.variables, fused.variables):  # iterations, m and v
        assert expected.path.split("/", 1)[1] == actual.path.split("/", 1)[1]
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-9)
    assert int(fused.iterations.numpy()) == 6 and fused.name.startswith("adam")


def test_fused_adam_checkpoint_restores_into_keras_adam_and_back(tmp_path):
    variables = _variables(1)
    fused = optimizers.FusedAdam(1e-3)
    _train(fused, variables, 3, compiled=True)
    path = tf.train.Checkpoint(optimizer=fused, weights=variables).save(str(tmp_path / "ckpt"))

    restored_vars = _variables(2)
    plain = keras.optimizers.Adam(1e-3)
    plain.build(restored_vars)
    tf.train.Checkpoint(optimizer=plain, weights=restored_vars).restore(path).assert_existing_objects_matched()
    for expected, actual in zip(fused.variables, plain.variables):
        np.testing.assert_array_equal(actual.numpy(), expected.numpy())
    # Training on from the restored state matches training on without the round trip.
    _train(fused, variables, 2, compiled=True)
    _train(plain, restored_vars, 2, compiled=True)
    for expected, actual in zip(variables, restored_vars):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)


def test_amsgrad_falls_back_to_the_keras_update():
    keras_vars, fused_vars = _variables(3), _variables(3)
    _train(keras.optimizers.Adam(1e-2, amsgrad=True), keras_vars, 4, compiled=True)
    _train(optimizers.FusedAdam(1e-2, amsgrad=True), fused_vars, 4, compiled=True)
    for expected, actual in zip(keras_vars, fused_vars):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)


def test_fused_adam_under_a_loss_scale_optimizer_skips_non_finite_steps():
    variables = _variables(4)
    before = [v.numpy() for v in variables]
    optimizer = keras.mixed_precision.LossScaleOptimizer(optimizers.FusedAdam(1e-2))
    optimizer.apply_gradients(zip([tf.fill(v.shape, np.inf) for v in variables], variables))
    for expected, variable in zip(before, variables):
        np.testing.assert_array_equal(variable.numpy(), expected)
    optimizer.apply_gradients(zip(_gradients(0, variables), variables))
    assert all(np.abs(v.numpy() - b).min() > 0 for v, b in zip(variables, before))


_TWO_REPLICAS = textwrap.dedent("""
    import keras
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from cgan.training import optimizers

    results = []
    for cls in (keras.optimizers.Adam, optimizers.FusedAdam):
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            weights = tf.Variable(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
            optimizer = cls(1e-2, beta_1=0.5)
            optimizer.build([weights])

        @tf.function
        def step():
            def replica():
                replica_id = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(weights * weights * (1.0 + replica_id))
                optimizer.apply_gradients([(tape.gradient(loss, weights), weights)])
            strategy.run(replica)

        for _ in range(3):
            step()
        components = [c.numpy() for c in weights.values]
        assert len(components) == 2 and np.array_equal(components[0], components[1]), "replicas disagree"
        results.append(components[0])
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-7)
    assert np.abs(results[0] - np.linspace(-1, 1, 12).reshape(3, 4)).min() > 1e-3
    print("OK")
""")


@pytest.mark.slow
def test_fused_adam_with_two_replicas_matches_keras_adam():
    assert run_script(_TWO_REPLICAS).startswith("OK")
