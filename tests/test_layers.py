import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan.model import layers


def _spectral_layer(kind, dtype="float32"):
    """A built spectral layer and an input for it."""
    if kind == "dense":
        layer, x = layers.SpectralDense(24, dtype=dtype), tf.random.normal([4, 40])
    elif kind == "conv":
        layer = layers.SpectralConv2D(16, 4, strides=2, padding="same", dtype=dtype)
        x = tf.random.normal([4, 8, 8, 12])
    elif kind == "conv_transpose":
        layer = layers.SpectralConv2DTranspose(12, 4, strides=2, padding="same", dtype=dtype)
        x = tf.random.normal([4, 8, 8, 16])
    else:
        layer, x = layers.SpectralEmbedding(9, 32, dtype=dtype), tf.constant([0, 3, 8, 3])
    layer(x)
    return layer, x


def _largest_singular_value(kernel):
    kernel = np.asarray(kernel, np.float64)
    return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


@pytest.mark.parametrize("kind", ["dense", "conv", "conv_transpose", "embedding"])
def test_spectral_norm_bounds_the_largest_singular_value(kind):
    layer, x = _spectral_layer(kind)
    raw = layer.trainable_variables[0]
    raw.assign(raw * 10.0)
    before = raw.numpy()
    for _ in range(40):  # one power iteration per training call
        layer(x, training=True)
    assert _largest_singular_value(before) > 2.0
    assert _largest_singular_value(layer.normalized_kernel()) == pytest.approx(1.0, rel=0.05)
    np.testing.assert_array_equal(raw.numpy(), before)  # the trainable kernel itself is never overwritten


def test_spectral_dense_applies_the_normalised_kernel():
    layer, x = _spectral_layer("dense")
    for _ in range(5):
        layer(x, training=True)
    expected = x.numpy() @ layer.normalized_kernel().numpy() + layer.bias.numpy()
    np.testing.assert_allclose(layer(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_power_iteration_advances_only_in_training():
    layer, x = _spectral_layer("conv")
    u = layer.singular_vector.numpy()
    layer(x, training=False)
    np.testing.assert_array_equal(layer.singular_vector.numpy(), u)
    layer(x, training=True)
    assert not np.allclose(layer.singular_vector.numpy(), u)


def test_spectral_norm_gradient_flows_through_sigma():
    layer, x = _spectral_layer("dense")
    for _ in range(20):
        layer(x, training=True)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x, training=False))
    grad = tape.gradient(y, layer.kernel)
    # The output is invariant to the kernel's scale, so the gradient has no component along W.
    assert abs(np.sum(grad.numpy() * layer.kernel.numpy())) < 1e-3 * np.linalg.norm(grad.numpy()) * \
        np.linalg.norm(layer.kernel.numpy())


@pytest.mark.parametrize("kind", ["dense", "conv", "conv_transpose", "embedding"])
def test_spectral_layers_in_mixed_bfloat16(kind):
    layer, x = _spectral_layer(kind, "mixed_bfloat16")
    y = layer(x, training=True)
    assert y.dtype == tf.bfloat16
    assert all(v.dtype == "float32" for v in layer.weights)
    assert np.all(np.isfinite(tf.cast(y, tf.float32).numpy()))


def test_conditional_batch_norm_starts_as_plain_batch_norm():
    x = tf.random.normal([6, 5, 5, 7]) * 3.0 + 1.0
    labels = tf.constant([0, 1, 2, 0, 1, 2])
    conditional = layers.ConditionalBatchNormalization(3, momentum=0.9)
    plain = keras.layers.BatchNormalization(momentum=0.9)
    for training in (True, False):
        np.testing.assert_allclose(conditional([x, labels], training=training).numpy(),
                                   plain(x, training=training).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conditional.normalization.moving_mean.numpy(), plain.moving_mean.numpy(),
                               rtol=1e-6)


def test_class_strength_scales_by_a_non_trainable_float32_scalar():
    layer = layers.ClassStrength()
    x = tf.random.normal([3, 5])
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())  # λ starts at 1
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 1
    assert layer.strength.shape == () and layer.strength.dtype == "float32"
    layer.strength.assign(0.25)
    np.testing.assert_allclose(layer(x).numpy(), 0.25 * x.numpy(), rtol=1e-6)
    layer.strength.assign(0.0)
    np.testing.assert_array_equal(layer(x).numpy(), np.zeros_like(x.numpy()))


def test_class_strength_in_mixed_bfloat16():
    layer = layers.ClassStrength(dtype="mixed_bfloat16")
    y = layer(tf.random.normal([2, 4]))
    assert y.dtype == tf.bfloat16 and layer.strength.dtype == "float32"


def _class_dependent_tables(layer, seed=0):
    """Gains and biases that differ per class (the initial ones do not depend on the class at all)."""
    rng = np.random.default_rng(seed)
    layer.gain.assign(rng.normal(1.0, 0.5, layer.gain.shape).astype(np.float32))
    layer.bias.assign(rng.normal(0.0, 0.5, layer.bias.shape).astype(np.float32))


def test_conditional_batch_norm_class_strength():
    x = tf.random.normal([4, 3, 3, 6]) * 2.0 + 1.0
    labels, other = tf.constant([0, 1, 2, 1]), tf.constant([2, 2, 0, 0])
    plain = layers.ConditionalBatchNormalization(3)
    scaled = layers.ConditionalBatchNormalization(3, class_strength=True)
    plain([x, labels]), scaled([x, labels])
    _class_dependent_tables(plain)
    scaled.set_weights(plain.get_weights() + [np.float32(1.0)])
    assert [w.path.split("/")[-1] for w in scaled.non_trainable_weights] == ["moving_mean", "moving_variance",
                                                                             "strength"]
    assert len(plain.weights) == 4  # gain, bias, moving mean and variance: no λ without the option
    for training in (True, False):
        # λ = 1: the conditional layer, bit for bit.
        np.testing.assert_array_equal(scaled([x, labels], training=training).numpy(),
                                      plain([x, labels], training=training).numpy())
    scaled.strength_layer.strength.assign(0.0)
    normalized = scaled.normalization(x, training=False).numpy()
    for y in (labels, other):  # λ = 0: plain batch norm (gain 1, bias 0) whatever the label
        np.testing.assert_array_equal(scaled([x, y], training=False).numpy(), normalized)
    scaled.strength_layer.strength.assign(0.5)
    gain, bias = plain.gain.numpy()[labels.numpy()], plain.bias.numpy()[labels.numpy()]  # [4, 6]
    expected = normalized * (0.5 * gain + 0.5)[:, None, None] + (0.5 * bias)[:, None, None]
    np.testing.assert_allclose(scaled([x, labels], training=False).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_conditional_batch_norm_applies_the_label_gain_and_bias():
    x = tf.random.normal([4, 10])
    layer = layers.ConditionalBatchNormalization(3)
    base = layer([x, tf.constant([0, 0, 0, 0])], training=True).numpy()
    gain = np.ones((3, 10), np.float32)
    gain[1] = 2.0
    bias = np.zeros((3, 10), np.float32)
    bias[1] = 0.5
    layer.gain.assign(gain)
    layer.bias.assign(bias)
    out = layer([x, tf.constant([0, 1, 0, 1])], training=True).numpy()
    np.testing.assert_allclose(out[[0, 2]], base[[0, 2]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[[1, 3]], 2.0 * base[[1, 3]] + 0.5, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_self_attention_is_the_identity_until_gamma_moves(spectral_norm):
    x = tf.random.normal([2, 8, 8, 32])
    layer = layers.SelfAttention2D(spectral_norm=spectral_norm)
    np.testing.assert_array_equal(layer(x, training=True).numpy(), x.numpy())
    assert layer.query.filters == layer.key.filters == layer.value.filters == 4  # C/8
    layer.gamma.assign(0.5)
    assert not np.allclose(layer(x, training=False).numpy(), x.numpy())


def test_self_attention_in_mixed_bfloat16():
    layer = layers.SelfAttention2D(dtype="mixed_bfloat16")
    layer(tf.zeros([1, 4, 4, 16]))
    layer.gamma.assign(1.0)
    y = layer(tf.random.normal([2, 4, 4, 16]) * 50.0, training=True)  # large logits: softmax in float32
    assert y.dtype == tf.bfloat16
    assert layer.gamma.dtype == "float32"
    assert np.all(np.isfinite(tf.cast(y, tf.float32).numpy()))


def test_global_sum_pooling():
    x = tf.random.normal([2, 3, 4, 5])
    np.testing.assert_allclose(layers.GlobalSumPooling2D()(x).numpy(), x.numpy().sum(axis=(1, 2)), rtol=1e-5)


def test_configs_round_trip():
    for layer in (layers.SpectralConv2D(8, 3, power_iterations=2), layers.SpectralEmbedding(9, 4),
                  layers.ConditionalBatchNormalization(5, momentum=0.8, synchronized=True),
                  layers.ConditionalBatchNormalization(5, class_strength=True),
                  layers.SelfAttention2D(spectral_norm=True), layers.GlobalSumPooling2D(),
                  layers.ClassStrength(dtype="mixed_bfloat16")):
        config = keras.saving.serialize_keras_object(layer)
        assert config["registered_name"] == f"cgan>{type(layer).__name__}"
        clone = keras.saving.deserialize_keras_object(config)
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()


def test_class_minibatch_std_appends_the_spread_of_each_images_class():
    x = np.random.RandomState(0).randn(6, 4, 4, 3).astype("float32")
    labels = np.array([0, 1, 0, 2, 1, 0], "int32")
    y = layers.ClassMinibatchStdDev()([x, labels]).numpy()                 # [6, 4, 4, 4]
    np.testing.assert_allclose(y[..., :3], x)
    for i, label in enumerate(labels):
        members = x[labels == label].reshape(int(np.sum(labels == label)), -1)
        expected = np.sqrt(members.var(axis=0) + 1e-8).mean()
        np.testing.assert_allclose(y[i, :, :, 3], expected, rtol=1e-4, atol=1e-6)
    assert y[3, 0, 0, 3] < 1e-3                                             # alone in its class: no spread
    collapsed = np.where((labels == 0)[:, None, None, None], x[:1], x)    # class 0: one picture
    z = layers.ClassMinibatchStdDev()([collapsed, labels]).numpy()
    assert np.all(z[labels == 0, :, :, 3] < 1e-3) and np.all(z[labels == 1, 0, 0, 3] > 0.1)
