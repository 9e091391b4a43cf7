import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan import layers, networks
from conftest import run_script


@pytest.mark.parametrize("resolution", [64, 128])
@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_shapes_and_output_dtypes(resolution, dtype):
    generator = networks.build_generator(resolution, latent_dim=100, num_classes=9, dtype=dtype)
    discriminator = networks.build_discriminator(resolution, num_classes=9, dtype=dtype)
    z = tf.random.normal([3, 100])
    labels = tf.constant([0, 4, 8])
    images = generator([z, labels], training=False)
    assert images.shape == (3, resolution, resolution, 3)
    assert images.dtype == tf.float32
    assert np.all(np.abs(images.numpy()) <= 1.0)
    logits = discriminator([images, labels], training=False)
    assert logits.shape == (3, 1)
    assert logits.dtype == tf.float32


def test_seed_architecture_at_64():
    generator = networks.build_generator(64, latent_dim=100, num_classes=9)
    discriminator = networks.build_discriminator(64, num_classes=9)
    g_layers = [(type(l).__name__, l.output.shape[1:]) for l in generator.layers
                if type(l).__name__ in ("Dense", "Conv2DTranspose")]
    assert g_layers == [("Dense", (8 * 8 * 256,)), ("Conv2DTranspose", (16, 16, 128)),
                        ("Conv2DTranspose", (32, 32, 64)), ("Conv2DTranspose", (64, 64, 3))]
    d_convs = [l.output.shape[1:] for l in discriminator.layers if type(l).__name__ == "Conv2D"]
    assert d_convs == [(32, 32, 64), (16, 16, 128), (8, 8, 256)]
    d_norms = [l for l in discriminator.layers if type(l).__name__ == "BatchNormalization"]
    assert len(d_norms) == 2  # none after the first conv
    for layer in generator.layers + discriminator.layers:
        if type(layer).__name__ in ("Conv2D", "Conv2DTranspose"):
            assert layer.kernel_size == (4, 4) and layer.strides == (2, 2) and layer.padding == "same"


def test_128_adds_one_block_each():
    generator = networks.build_generator(128, latent_dim=100, num_classes=9)
    discriminator = networks.build_discriminator(128, num_classes=9)
    assert sum(type(l).__name__ == "Conv2DTranspose" for l in generator.layers) == 4
    assert sum(type(l).__name__ == "Conv2D" for l in discriminator.layers) == 4


def test_label_changes_output():
    generator = networks.build_generator(64, latent_dim=100, num_classes=9)
    z = tf.random.normal([1, 100])
    a = generator([z, tf.constant([0])], training=False)
    b = generator([z, tf.constant([5])], training=False)
    assert not np.allclose(a.numpy(), b.numpy())


def test_rejects_unknown_resolution():
    with pytest.raises(ValueError, match="resolution"):
        networks.build_generator(96, latent_dim=100, num_classes=9)


GENERATOR_OPTIONS = [dict(conditioning=c, spectral_norm=s, attention_resolution=a)
                     for c in networks.GENERATOR_CONDITIONINGS for s in (False, True) for a in (0, 32)]
DISCRIMINATOR_OPTIONS = [dict(conditioning=c, norm=n, attention_resolution=a)
                         for c in networks.DISCRIMINATOR_CONDITIONINGS for n in networks.DISCRIMINATOR_NORMS
                         for a in (0, 16)]
ALL_G_OPTIONS = dict(conditioning="cbn", spectral_norm=True, attention_resolution=32)
ALL_D_OPTIONS = dict(conditioning="projection", norm="spectral", attention_resolution=16)


def _option_id(options):
    return "-".join(str(v) for v in options.values())


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("options", GENERATOR_OPTIONS, ids=_option_id)
def test_generator_options_shapes_and_dtypes(options, dtype):
    generator = networks.build_generator(64, latent_dim=100, num_classes=9, dtype=dtype, **options)
    for training in (True, False):
        images = generator([tf.random.normal([3, 100]), tf.constant([0, 4, 8])], training=training)
        assert images.shape == (3, 64, 64, 3) and images.dtype == tf.float32
        assert np.all(np.abs(images.numpy()) <= 1.0)
    assert all(v.dtype == "float32" for v in generator.weights)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("options", DISCRIMINATOR_OPTIONS, ids=_option_id)
def test_discriminator_options_shapes_and_dtypes(options, dtype):
    discriminator = networks.build_discriminator(64, num_classes=9, dtype=dtype, **options)
    images = tf.random.uniform([3, 64, 64, 3], -1.0, 1.0)
    for training in (True, False):
        logits = discriminator([images, tf.constant([0, 4, 8])], training=training)
        assert logits.shape == (3, 1) and logits.dtype == tf.float32
        assert np.all(np.isfinite(logits.numpy()))
    assert all(v.dtype == "float32" for v in discriminator.weights)


def _type_names(model):
    return [type(layer).__name__ for layer in model.layers]


def test_spectral_norm_replaces_every_kernel_layer():
    generator = networks.build_generator(64, latent_dim=100, num_classes=9, spectral_norm=True)
    names = _type_names(generator)
    assert names.count("SpectralDense") == 1 and names.count("SpectralConv2DTranspose") == 3
    assert "Dense" not in names and "Conv2DTranspose" not in names
    assert names.count("BatchNormalization") == 3  # G keeps its batch norms
    discriminator = networks.build_discriminator(64, num_classes=9, conditioning="projection", norm="spectral")
    names = _type_names(discriminator)
    assert names.count("SpectralConv2D") == 3 and names.count("SpectralDense") == 1
    assert "SpectralEmbedding" in names
    assert not {"Conv2D", "Dense", "Embedding", "BatchNormalization"} & set(names)
    # Subclasses of the Keras layers: shape-based FLOP counts still see them.
    assert all(isinstance(l, keras.layers.Conv2D) for l in discriminator.layers if "Conv" in type(l).__name__)


def test_discriminator_norm_none_has_no_normalisation():
    discriminator = networks.build_discriminator(64, num_classes=9, norm="none")
    names = _type_names(discriminator)
    assert names.count("Conv2D") == 3 and "BatchNormalization" not in names
    assert all(l.use_bias for l in discriminator.layers if type(l).__name__ == "Conv2D")


def test_attention_goes_after_the_block_of_its_side():
    for side, channels in ((8, 256), (16, 128), (32, 64)):
        generator = networks.build_generator(64, latent_dim=100, num_classes=9, attention_resolution=side)
        attention = [l for l in generator.layers if isinstance(l, layers.SelfAttention2D)]
        assert len(attention) == 1 and attention[0].output.shape[1:] == (side, side, channels)
        discriminator = networks.build_discriminator(64, num_classes=9, attention_resolution=side)
        attention = [l for l in discriminator.layers if isinstance(l, layers.SelfAttention2D)]
        assert len(attention) == 1 and attention[0].output.shape[1:] == (side, side, 256 * 8 // side)


def _copy_weights_except_attention(source, target):
    """Copies source's weights into target layer by layer, skipping source's attention block."""
    source_layers = [l for l in source.layers if l.weights and not isinstance(l, layers.SelfAttention2D)]
    target_layers = [l for l in target.layers if l.weights]
    assert len(source_layers) == len(target_layers)
    for s, t in zip(source_layers, target_layers):
        t.set_weights(s.get_weights())


def test_attention_starts_as_the_identity():
    z, labels = tf.random.normal([2, 100]), tf.constant([1, 7])
    with_attention = networks.build_generator(64, latent_dim=100, num_classes=9, attention_resolution=32)
    without = networks.build_generator(64, latent_dim=100, num_classes=9)
    _copy_weights_except_attention(with_attention, without)
    np.testing.assert_allclose(with_attention([z, labels], training=False).numpy(),
                               without([z, labels], training=False).numpy(), atol=1e-6)
    attention = next(l for l in with_attention.layers if isinstance(l, layers.SelfAttention2D))
    attention.gamma.assign(1.0)
    assert not np.allclose(with_attention([z, labels], training=False).numpy(),
                           without([z, labels], training=False).numpy(), atol=1e-3)

    images = tf.random.uniform([2, 64, 64, 3], -1.0, 1.0)
    with_attention = networks.build_discriminator(64, num_classes=9, attention_resolution=16)
    without = networks.build_discriminator(64, num_classes=9)
    _copy_weights_except_attention(with_attention, without)
    np.testing.assert_allclose(with_attention([images, labels], training=False).numpy(),
                               without([images, labels], training=False).numpy(), rtol=1e-5, atol=1e-5)
    attention = next(l for l in with_attention.layers if isinstance(l, layers.SelfAttention2D))
    attention.gamma.assign(1.0)
    assert not np.allclose(with_attention([images, labels], training=False).numpy(),
                           without([images, labels], training=False).numpy(), rtol=1e-3)


def test_cbn_generator_conditions_only_through_its_batch_norms():
    generator = networks.build_generator(64, latent_dim=100, num_classes=9, conditioning="cbn")
    names = _type_names(generator)
    assert names.count("ConditionalBatchNormalization") == 3
    assert not {"Embedding", "Concatenate", "BatchNormalization"} & set(names)
    dense = next(l for l in generator.layers if type(l).__name__ == "Dense")
    assert dense.kernel.shape == (100, 8 * 8 * 256)  # z alone
    z = tf.random.normal([1, 100])
    # Gain 1 and bias 0 for every class at initialisation: the label has no effect yet.
    a = generator([z, tf.constant([0])], training=False).numpy()
    np.testing.assert_allclose(generator([z, tf.constant([5])], training=False).numpy(), a, atol=1e-6)
    for layer in generator.layers:
        if isinstance(layer, layers.ConditionalBatchNormalization):
            layer.gain.assign(tf.random.normal(layer.gain.shape, 1.0, 0.2))
            layer.bias.assign(tf.random.normal(layer.bias.shape, 0.0, 0.2))
    a = generator([z, tf.constant([0])], training=False).numpy()
    assert not np.allclose(generator([z, tf.constant([5])], training=False).numpy(), a, atol=1e-3)


@pytest.mark.parametrize("norm", ["none", "spectral"])
def test_projection_logit_is_unconditional_part_plus_inner_product(norm):
    discriminator = networks.build_discriminator(64, num_classes=9, conditioning="projection", norm=norm)
    images = tf.random.uniform([4, 64, 64, 3], -1.0, 1.0)
    labels = tf.constant([0, 3, 3, 8])
    discriminator([images, labels], training=True)  # advances the power iterations once
    logits = discriminator([images, labels], training=False).numpy()
    features_model = keras.Model(discriminator.inputs, discriminator.get_layer("features").output)
    features = features_model([images, labels], training=False).numpy()          # [4, 256]
    psi = discriminator.get_layer("unconditional_logit")
    embedding = discriminator.get_layer("projection_embedding")
    if norm == "spectral":
        kernel, table = psi.normalized_kernel().numpy(), embedding.normalized_kernel().numpy()
    else:
        kernel, table = psi.kernel.numpy(), embedding.embeddings.numpy()
    expected = features @ kernel + psi.bias.numpy() + np.sum(table[labels.numpy()] * features, axis=1,
                                                             keepdims=True)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-3)
    assert "Concatenate" not in _type_names(discriminator)  # no label plane


def test_projection_label_changes_logit():
    discriminator = networks.build_discriminator(64, num_classes=9, conditioning="projection", norm="spectral")
    images = tf.random.uniform([1, 64, 64, 3], -1.0, 1.0)
    a = discriminator([images, tf.constant([0])], training=False).numpy()
    b = discriminator([images, tf.constant([5])], training=False).numpy()
    assert not np.allclose(a, b)


@pytest.mark.parametrize("option, value, choices", [
    ("conditioning", "projection", "concat"), ("spectral_norm", "yes", "False"),
    ("attention_resolution", 64, "8, 16, 32"), ("attention_resolution", 12, "8, 16, 32")])
def test_generator_rejects_invalid_options(option, value, choices):
    with pytest.raises(ValueError, match=f"{option}.*{choices}"):
        networks.build_generator(64, latent_dim=100, num_classes=9, **{option: value})


@pytest.mark.parametrize("option, value, choices", [
    ("conditioning", "cbn", "projection"), ("norm", "layer", "spectral"),
    ("attention_resolution", 64, "8, 16, 32"), ("attention_resolution", 4, "8, 16, 32")])
def test_discriminator_rejects_invalid_options(option, value, choices):
    with pytest.raises(ValueError, match=f"{option}.*{choices}"):
        networks.build_discriminator(64, num_classes=9, **{option: value})


def test_attention_sides_follow_the_resolution():
    assert networks.feature_sides(64) == (8, 16, 32)
    assert networks.feature_sides(128) == (8, 16, 32, 64)
    networks.build_discriminator(128, num_classes=9, attention_resolution=64)
    with pytest.raises(ValueError, match="attention_resolution"):
        networks.build_discriminator(64, num_classes=9, attention_resolution=64)


LOAD_AND_COMPARE = """
import sys
import keras
import numpy as np
import cgan.networks  # registers the custom layers
saved = np.load(sys.argv[1])
generator = keras.models.load_model(sys.argv[2], compile=False, safe_mode=True)
discriminator = keras.models.load_model(sys.argv[3], compile=False, safe_mode=True)
images = generator([saved["z"], saved["labels"]], training=False).numpy()
logits = discriminator([saved["images"], saved["labels"]], training=False).numpy()
np.testing.assert_array_equal(images, saved["generated"])
np.testing.assert_array_equal(logits, saved["logits"])
print("identical")
"""


def test_save_and_load_with_all_options(tmp_path):
    generator = networks.build_generator(64, latent_dim=100, num_classes=9, **ALL_G_OPTIONS)
    discriminator = networks.build_discriminator(64, num_classes=9, **ALL_D_OPTIONS)
    z, labels = tf.random.normal([2, 100]), tf.constant([2, 6])
    images = tf.random.uniform([2, 64, 64, 3], -1.0, 1.0)
    generator([z, labels], training=True)  # moves u and the batch-norm statistics off their initial values
    discriminator([images, labels], training=True)
    for model in (generator, discriminator):  # non-initial gains, biases and γ
        for variable in model.trainable_variables:
            variable.assign(variable + tf.random.normal(variable.shape, stddev=0.01))
    generated = generator([z, labels], training=False).numpy()
    logits = discriminator([images, labels], training=False).numpy()
    generator.save(tmp_path / "generator.keras")
    discriminator.save(tmp_path / "discriminator.keras")
    np.savez(tmp_path / "expected.npz", z=z.numpy(), labels=labels.numpy(), images=images.numpy(),
             generated=generated, logits=logits)
    output = run_script(LOAD_AND_COMPARE, tmp_path / "expected.npz", tmp_path / "generator.keras",
                        tmp_path / "discriminator.keras")
    assert "identical" in output
    # The EMA generator is a clone; cloning must work with the custom layers too.
    clone = keras.models.clone_model(generator)
    clone.set_weights(generator.get_weights())
    np.testing.assert_array_equal(clone([z, labels], training=False).numpy(), generated)


# Logical devices must be configured before TensorFlow initialises, hence a fresh process.
MIRRORED_STEP = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
from cgan import layers, networks

keras.utils.set_random_seed(0)  # weights and inputs: an unseeded draw could saturate D and zero some gradients
policy = sys.argv[1]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    generator = networks.build_generator(64, 16, 9, dtype=policy, synchronized_bn=True,
                                         conditioning="cbn", spectral_norm=True, attention_resolution=32)
    discriminator = networks.build_discriminator(64, 9, dtype=policy, synchronized_bn=True,
                                                 conditioning="projection", norm="spectral",
                                                 attention_resolution=16)
    g_optimizer, d_optimizer = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    g_optimizer.build(generator.trainable_variables)
    d_optimizer.build(discriminator.trainable_variables)
loss = keras.losses.BinaryCrossentropy(from_logits=True)


def replica_step(images, labels, z):
    with tf.GradientTape() as tape:
        fake = generator([z, labels], training=True)
        real_logits = discriminator([images, labels], training=True)
        fake_logits = discriminator([fake, labels], training=True)
        d_loss = loss(tf.ones_like(real_logits), real_logits) + loss(tf.zeros_like(fake_logits), fake_logits)
    variables = discriminator.trainable_variables
    d_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables))
    with tf.GradientTape() as tape:
        fake_logits = discriminator([generator([z, labels], training=True), labels], training=True)
        g_loss = loss(tf.ones_like(fake_logits), fake_logits)
    variables = generator.trainable_variables
    g_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables))
    return d_loss


@tf.function
def step(images, labels, z):
    return strategy.run(replica_step, args=(images, labels, z))


def singular_vectors():
    return [l.singular_vector for model in (generator, discriminator) for l in model._flatten_layers()
            if isinstance(l, layers.SpectralDense | layers.SpectralConv2D | layers.SpectralConv2DTranspose
                          | layers.SpectralEmbedding)]


before = [v.numpy() for v in singular_vectors()]
weights_before = [v.numpy() for v in generator.trainable_variables + discriminator.trainable_variables]
step(tf.random.uniform([4, 64, 64, 3], -1.0, 1.0), tf.constant([0, 1, 2, 3]), tf.random.normal([4, 16]))
after = singular_vectors()
assert len(after) == 4 + 4 + 5 + 4, len(after)  # G: Dense, 3 ConvT, attention 4; D: 3 convs, ψ, E; attention 4
for old, new in zip(before, after):
    copies = [c.numpy() for c in new.value.values]
    assert len(copies) == 2 and np.array_equal(copies[0], copies[1])  # replicas agree
    assert not np.allclose(copies[0], old)
weights = generator.trainable_variables + discriminator.trainable_variables
assert all(np.all(np.isfinite(v.numpy())) for v in weights)
assert sum(not np.array_equal(v.numpy(), w) for v, w in zip(weights, weights_before)) > len(weights) // 2
print("stepped")
"""


def test_mirrored_training_step_with_all_options():
    # mixed_bfloat16 covers the casts as well; float32 runs the same code without them.
    assert "stepped" in run_script(MIRRORED_STEP, "mixed_bfloat16")
