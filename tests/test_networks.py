import hashlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan.core import config as config_lib
from cgan.core.config import ARCHITECTURES, DISCRIMINATOR_CONDITIONINGS, DISCRIMINATOR_NORMS, GENERATOR_CONDITIONINGS
from cgan.model import conditioning as conditioning_lib
from cgan.model import layers, networks
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


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_an_unknown_resolution_is_a_key_error(architecture):
    # TrainConfig checks the dataset's resolution; the builders only look their widths up.
    with pytest.raises(KeyError):
        networks.build_generator(96, latent_dim=100, num_classes=9, architecture=architecture)


GENERATOR_OPTIONS = [dict(conditioning=c, spectral_norm=s, attention_resolution=a)
                     for c in GENERATOR_CONDITIONINGS for s in (False, True) for a in (0, 32)]
DISCRIMINATOR_OPTIONS = [dict(conditioning=c, norm=n, attention_resolution=a)
                         for c in DISCRIMINATOR_CONDITIONINGS for n in DISCRIMINATOR_NORMS
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


def test_attention_sides_follow_the_resolution():
    assert networks.feature_sides(64) == (8, 16, 32)
    assert networks.feature_sides(128) == (8, 16, 32, 64)
    assert networks.feature_sides is config_lib.feature_sides  # the sides TrainConfig checks
    discriminator = networks.build_discriminator(128, num_classes=9, attention_resolution=64)
    attention = [l for l in discriminator.layers if isinstance(l, layers.SelfAttention2D)]
    assert [l.output.shape[1] for l in attention] == [64]


LOAD_AND_COMPARE = """
import sys
import hashlib

import keras
import numpy as np
import cgan.model.networks  # registers the custom layers
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
import hashlib

import keras
import numpy as np
from cgan.model import layers, networks

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
    return [v for model in (generator, discriminator) for v in model.non_trainable_variables
            if v.path.endswith("/singular_vector")]


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


# ---------------------------------------------------------------------------------------------------
# Building without class_strength must give the models written before that option existed: the same
# layers, names, weights and checkpoint keys, so that older checkpoints resume and exports load.
# Recorded from the builders as they were, each after keras.backend.clear_session() (which restarts
# Keras' automatic layer names): layer count, weight count, and digests of the layer names, of the
# weight paths and shapes, and of the tf.train.Checkpoint keys and shapes.
BUILDER_FINGERPRINTS = {
    "g64": ("g", dict(resolution=64, latent_dim=100, num_classes=9),
            (16, 18, "392b224e586b687b", "5e7b064b7aa04dae", "3c1bbd6c5b77ee2a")),
    "d64": ("d", dict(resolution=64, num_classes=9),
            (16, 17, "e62498cc46f09b80", "ef17710626180b54", "133a4016b14db602")),
    "g64_cbn_sn_att": ("g", dict(resolution=64, latent_dim=100, num_classes=9, **ALL_G_OPTIONS),
                       (15, 30, "2ca8257da417a57d", "022c571fbedfa449", "6a062bb848c15284")),
    "d64_proj_sn_att": ("d", dict(resolution=64, num_classes=9, **ALL_D_OPTIONS),
                        (14, 23, "521d4674600d4a07", "cebffd469424f6ee", "5063fb630cbc0a93")),
    "d64_proj_batch": ("d", dict(resolution=64, num_classes=9, conditioning="projection"),
                       (15, 15, "f4626181b0ae00ea", "989c00ac181b0da7", "72e28c6f8607c10e")),
    "g128": ("g", dict(resolution=128, latent_dim=100, num_classes=9),
             (19, 23, "aa803cac52cf0724", "1144cad3b525802d", "e880ff12053c35d5")),
    "d128_none": ("d", dict(resolution=128, num_classes=9, norm="none"),
                  (16, 13, "070b5e2198bb5ba1", "46b79861a22d7e19", "af615acb8a89f2ef")),
}
G64_LAYER_NAMES = ["label", "z", "label_embedding", "concatenate", "dense", "batch_normalization", "leaky_re_lu",
                   "reshape", "conv2d_transpose", "batch_normalization_1", "leaky_re_lu_1", "conv2d_transpose_1",
                   "batch_normalization_2", "leaky_re_lu_2", "conv2d_transpose_2", "image"]
D64_LAYER_NAMES = ["label", "label_embedding", "dense", "image", "reshape", "concatenate", "conv2d", "leaky_re_lu",
                   "conv2d_1", "batch_normalization", "leaky_re_lu_1", "conv2d_2", "batch_normalization_1",
                   "leaky_re_lu_2", "flatten", "logit"]


def _digest(items):
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def _fingerprint(model, directory):
    """(layers, weights, digest of layer names, of weight paths, of checkpoint keys) and the names."""
    names = [layer.name for layer in model.layers]
    paths = [f"{w.path}:{tuple(w.shape)}" for w in model.weights]
    prefix = tf.train.Checkpoint(model=model).write(str(directory / model.name / "ckpt"))
    keys = sorted(f"{name}:{tuple(shape)}" for name, shape in tf.train.list_variables(prefix))
    return (len(names), len(model.weights), _digest(names), _digest(paths), _digest(keys)), names


@pytest.mark.parametrize("key", list(BUILDER_FINGERPRINTS))
def test_option_off_builds_the_same_models_as_before(key, tmp_path):
    kind, kwargs, expected = BUILDER_FINGERPRINTS[key]
    build = networks.build_generator if kind == "g" else networks.build_discriminator
    keras.backend.clear_session()
    fingerprint, names = _fingerprint(build(**kwargs, class_strength=False), tmp_path)
    if key in ("g64", "d64"):
        assert names == (G64_LAYER_NAMES if key == "g64" else D64_LAYER_NAMES)
    assert fingerprint == expected, names
    keras.backend.clear_session()
    assert _fingerprint(build(**kwargs), tmp_path / "default")[0] == expected  # off is the default


# ---------------------------------------------------------------------------------------------------
# Residual networks.

# (G, D) conditioning pairs that between them use every choice of each network.
RESNET_CONDITIONINGS = [("concat", "concat"), ("cbn", "projection")]


def _resnet(resolution, g_conditioning="cbn", d_conditioning="projection", channels=2, **options):
    """A small residual G and D (width `channels`) with the given options on both."""
    d_options = {k: v for k, v in options.items() if k != "spectral_norm"}
    generator = networks.build_generator(resolution, 16, 9, architecture="resnet", conditioning=g_conditioning,
                                         channels=channels, **options)
    discriminator = networks.build_discriminator(resolution, 9, architecture="resnet", conditioning=d_conditioning,
                                                 norm="spectral", channels=channels, **d_options)
    return generator, discriminator


def _residual_outputs(model):
    return [tuple(l.output.shape[1:]) for l in model.layers if type(l).__name__ == "Add" and l.name != "logit"]


@pytest.mark.parametrize("resolution", [64, 128, 256])
@pytest.mark.parametrize("conditioning", RESNET_CONDITIONINGS, ids="-".join)
@pytest.mark.parametrize("dtype, attention", [("float32", 0), ("mixed_bfloat16", 16)])
def test_resnet_shapes_and_dtypes(resolution, conditioning, dtype, attention):
    generator, discriminator = _resnet(resolution, *conditioning, dtype=dtype, attention_resolution=attention)
    c = 2
    g_blocks = {64: [16, 8, 4, 2], 128: [16, 8, 4, 2, 1], 256: [16, 8, 8, 4, 2, 1]}[resolution]
    assert _residual_outputs(generator) == [(4 << i, 4 << i, m * c) for i, m in enumerate(g_blocks, start=1)]
    d_blocks = {64: [1, 2, 4, 8, 16], 128: [1, 2, 4, 8, 16, 16], 256: [1, 2, 4, 8, 8, 16, 16]}[resolution]
    d_sides = [max(resolution >> i, 4) for i in range(1, len(d_blocks) + 1)]
    assert _residual_outputs(discriminator) == [(s, s, m * c) for s, m in zip(d_sides, d_blocks)]
    attention_layers = [l for m in (generator, discriminator) for l in m.layers
                        if isinstance(l, layers.SelfAttention2D)]
    assert [l.output.shape[1] for l in attention_layers] == [attention] * (2 if attention else 0)
    z, labels = tf.random.normal([2, 16]), tf.constant([0, 8])
    for training in (True, False):
        images = generator([z, labels], training=training)
        assert images.shape == (2, resolution, resolution, 3) and images.dtype == tf.float32
        assert np.all(np.abs(images.numpy()) <= 1.0)
        logits = discriminator([images, labels], training=training)
        assert logits.shape == (2, 1) and logits.dtype == tf.float32
        assert np.all(np.isfinite(logits.numpy()))
    assert all(v.dtype == "float32" for v in generator.weights + discriminator.weights)


def test_resnet_layers_at_64():
    generator = networks.build_generator(64, 100, 9, architecture="resnet", conditioning="cbn")
    discriminator = networks.build_discriminator(64, 9, architecture="resnet", conditioning="projection",
                                                 norm="spectral")
    c_g, c_d = networks.RESNET_G_CHANNELS, networks.RESNET_D_CHANNELS
    names = _type_names(generator)
    # Two conditional batch norms per up-block, then a plain one before the output convolution.
    assert names.count("ConditionalBatchNormalization") == 8 and names.count("BatchNormalization") == 1
    assert names.count("UpSampling2D") == 8 and "Embedding" not in names
    assert generator.get_layer("image").input.shape[1:] == (64, 64, 3)
    convs = [l for l in generator.layers if type(l).__name__ == "Conv2D"]
    assert [l.kernel_size for l in convs].count((1, 1)) == 4 and convs[-1].kernel_size == (3, 3)
    assert next(l for l in generator.layers if type(l).__name__ == "Dense").units == 4 * 4 * 16 * c_g
    names = _type_names(discriminator)
    assert names.count("AveragePooling2D") == 8 and names.count("SpectralConv2D") == 5 * 2 + 5
    assert discriminator.get_layer("features").output.shape[1:] == (16 * c_d,)
    assert discriminator.get_layer("projection_embedding").embeddings.shape == (9, 16 * c_d)
    first = next(l for l in discriminator.layers if isinstance(l, keras.layers.Conv2D))
    assert first.input.shape[1:] == (64, 64, 3)  # the optimised block: no ReLU on the image
    assert isinstance(first._inbound_nodes[0].input_tensors[0]._keras_history.operation, keras.layers.InputLayer)


@pytest.mark.parametrize("norm", ["spectral", "none"])
def test_resnet_discriminator_norm(norm):
    discriminator = networks.build_discriminator(64, 9, architecture="resnet", conditioning="projection",
                                                 norm=norm, channels=2, attention_resolution=16)
    names = set(_type_names(discriminator))
    assert "BatchNormalization" not in names
    spectral = {"SpectralConv2D", "SpectralDense", "SpectralEmbedding"}
    if norm == "spectral":
        assert spectral <= names and not {"Conv2D", "Dense", "Embedding"} & names
        attention = next(l for l in discriminator.layers if isinstance(l, layers.SelfAttention2D))
        assert attention.spectral_norm
    else:
        assert not spectral & names and {"Conv2D", "Dense", "Embedding"} <= names


def test_resnet_generator_spectral_norm():
    generator = networks.build_generator(64, 16, 9, architecture="resnet", spectral_norm=True, channels=2)
    names = _type_names(generator)
    assert names.count("SpectralConv2D") == 4 * 3 + 1 and names.count("SpectralDense") == 1
    assert "Conv2D" not in names and "Dense" not in names
    # Subclasses of the Keras layers: the benchmark's shape-based FLOP count sees them.
    assert all(isinstance(l, keras.layers.Conv2D) for l in generator.layers if "Conv" in type(l).__name__)


def _perturb(model, seed, stddev=0.3):
    """Moves every trainable weight off its initial value (cbn gains and biases then differ per class)."""
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        variable.assign(variable + rng.normal(0.0, stddev, variable.shape).astype(np.float32))


def _load_in_process(model, path):
    model.save(path)
    return keras.models.load_model(path, compile=False, safe_mode=True)


def test_resnet_save_and_load_with_all_options(tmp_path):
    generator, discriminator = _resnet(64, channels=2, attention_resolution=16, spectral_norm=True,
                                       class_strength=True)
    z, labels = tf.random.normal([2, 16]), tf.constant([2, 6])
    images = tf.random.uniform([2, 64, 64, 3], -1.0, 1.0)
    generator([z, labels], training=True)  # moves u and the batch-norm statistics off their initial values
    discriminator([images, labels], training=True)
    for seed, model in enumerate((generator, discriminator)):
        _perturb(model, seed, stddev=0.01)
        networks.set_class_strength(model, 0.25)
    generated = generator([z, labels], training=False).numpy()
    logits = discriminator([images, labels], training=False).numpy()
    for model, inputs, expected in ((generator, [z, labels], generated), (discriminator, [images, labels], logits)):
        loaded = _load_in_process(model, tmp_path / f"{model.name}.keras")
        np.testing.assert_array_equal(loaded(inputs, training=False).numpy(), expected)
        assert float(networks.class_strength(loaded)) == 0.25
        assert _type_names(loaded) == _type_names(model)
    clone = keras.models.clone_model(generator)  # the EMA generator is a clone
    clone.set_weights(generator.get_weights())
    np.testing.assert_array_equal(clone([z, labels], training=False).numpy(), generated)


LOAD_RESNET = """
import sys
import hashlib

import keras
import numpy as np
import cgan.model.layers  # registers the custom layers; nothing else is needed to load
saved = np.load(sys.argv[1])
generator = keras.models.load_model(sys.argv[2], compile=False, safe_mode=True)
discriminator = keras.models.load_model(sys.argv[3], compile=False, safe_mode=True)
np.testing.assert_array_equal(generator([saved["z"], saved["labels"]], training=False).numpy(), saved["generated"])
np.testing.assert_array_equal(discriminator([saved["images"], saved["labels"]], training=False).numpy(),
                              saved["logits"])
strengths = [v.numpy() for model in (generator, discriminator) for v in model.non_trainable_variables
             if v.path.endswith("/strength")]
assert len(strengths) == 8 + 1 and all(s == 0.5 for s in strengths), strengths
print("identical")
"""


@pytest.mark.slow
def test_resnet_loads_in_a_fresh_process(tmp_path):
    generator, discriminator = _resnet(64, channels=2, attention_resolution=32, class_strength=True)
    for seed, model in enumerate((generator, discriminator)):
        _perturb(model, seed, stddev=0.01)
        networks.set_class_strength(model, 0.5)
    z, labels = tf.random.normal([2, 16]), tf.constant([1, 4])
    images = tf.random.uniform([2, 64, 64, 3], -1.0, 1.0)
    np.savez(tmp_path / "expected.npz", z=z.numpy(), labels=labels.numpy(), images=images.numpy(),
             generated=generator([z, labels], training=False).numpy(),
             logits=discriminator([images, labels], training=False).numpy())
    generator.save(tmp_path / "generator.keras")
    discriminator.save(tmp_path / "discriminator.keras")
    assert "identical" in run_script(LOAD_RESNET, tmp_path / "expected.npz", tmp_path / "generator.keras",
                                     tmp_path / "discriminator.keras")


def _gan_step(generator, discriminator, g_optimizer, d_optimizer, images, labels, z):
    """One D update and one G update (non-saturating logistic loss); returns D's and G's gradients."""
    with tf.GradientTape() as tape:
        real = discriminator([images, labels], training=True)
        fake = discriminator([generator([z, labels], training=True), labels], training=True)
        d_loss = tf.reduce_mean(tf.nn.softplus(-real)) + tf.reduce_mean(tf.nn.softplus(fake))
    d_gradients = tape.gradient(d_loss, discriminator.trainable_variables)
    d_optimizer.apply_gradients(zip(d_gradients, discriminator.trainable_variables))
    with tf.GradientTape() as tape:
        g_loss = tf.reduce_mean(tf.nn.softplus(-discriminator([generator([z, labels], training=True), labels],
                                                               training=True)))
    g_gradients = tape.gradient(g_loss, generator.trainable_variables)
    g_optimizer.apply_gradients(zip(g_gradients, generator.trainable_variables))
    return d_gradients, g_gradients


@pytest.mark.parametrize("conditioning", RESNET_CONDITIONINGS, ids="-".join)
def test_resnet_gradient_step(conditioning):
    keras.utils.set_random_seed(0)
    generator, discriminator = _resnet(64, *conditioning, channels=2, attention_resolution=16,
                                       dtype="mixed_bfloat16")
    g_optimizer, d_optimizer = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    g_optimizer.build(generator.trainable_variables)
    d_optimizer.build(discriminator.trainable_variables)
    variables = generator.trainable_variables + discriminator.trainable_variables
    before = [v.numpy() for v in variables]
    # Eagerly: tracing this step costs far more than running it once.
    d_gradients, g_gradients = _gan_step(
        generator, discriminator, g_optimizer, d_optimizer, tf.random.uniform([4, 64, 64, 3], -1.0, 1.0),
        tf.constant([0, 1, 2, 3]), tf.random.normal([4, 16]))
    gradients = [tf.convert_to_tensor(g).numpy() for g in d_gradients + g_gradients]  # embeddings': IndexedSlices
    assert all(np.all(np.isfinite(g)) for g in gradients)
    assert all(np.all(np.isfinite(v.numpy())) for v in variables)
    # Every variable moves but the attention convolutions: their gradients carry a factor γ, which starts
    # at 0 (γ itself moves).
    unchanged = [v.path for v, b in zip(variables, before) if np.array_equal(v.numpy(), b)]
    assert all("self_attention2d" in path and not path.endswith("gamma") for path in unchanged), unchanged
    assert len(unchanged) <= 8


# ---------------------------------------------------------------------------------------------------
# Class strength.

CLASS_STRENGTH_CASES = [(architecture, kind, conditioning) for architecture in ARCHITECTURES
                        for kind, conditionings in (("g", GENERATOR_CONDITIONINGS),
                                                    ("d", DISCRIMINATOR_CONDITIONINGS))
                        for conditioning in conditionings]


def _class_strength_pair(architecture, kind, conditioning, dtype="float32"):
    """The same network with and without class_strength, equal weights, class-dependent parameters
    moved off their label-independent initial values; and inputs for it."""
    options = dict(architecture=architecture, conditioning=conditioning, dtype=dtype)
    if architecture == "resnet":
        options["channels"] = 2
    if kind == "g":
        build = lambda **extra: networks.build_generator(64, 16, 9, **options, **extra)
        inputs = tf.random.normal([1, 16])
    else:
        if architecture == "resnet":
            options["norm"] = "spectral"
        build = lambda **extra: networks.build_discriminator(64, 9, **options, **extra)
        inputs = tf.random.uniform([1, 64, 64, 3], -1.0, 1.0)
    with_strength, without = build(class_strength=True), build()
    _perturb(with_strength, seed=1)
    strengths = {id(l.strength) for l in conditioning_lib.strength_layers(with_strength)}
    values = [v.numpy() for v in with_strength.weights if id(v) not in strengths]
    assert len(values) == len(without.weights)
    without.set_weights(values)
    return with_strength, without, inputs


@pytest.mark.parametrize("architecture, kind, conditioning", CLASS_STRENGTH_CASES)
def test_class_strength_zero_removes_the_label_and_one_is_the_conditional_network(architecture, kind,
                                                                                  conditioning):
    model, conditional, inputs = _class_strength_pair(architecture, kind, conditioning)
    assert float(networks.class_strength(model)) == 1.0
    outputs = [model([inputs, tf.constant([label])], training=False).numpy() for label in (0, 4, 8)]
    for label, output in zip((0, 4, 8), outputs):  # λ = 1: the network without the option
        np.testing.assert_array_equal(output, conditional([inputs, tf.constant([label])], training=False).numpy())
    assert not np.allclose(outputs[0], outputs[1]) and not np.allclose(outputs[0], outputs[2])
    networks.set_class_strength(model, 0.0)
    outputs = [model([inputs, tf.constant([label])], training=False).numpy() for label in (0, 4, 8)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])
    assert not np.allclose(outputs[0], conditional([inputs, tf.constant([0])], training=False).numpy())


@pytest.mark.parametrize("architecture, kind, conditioning", CLASS_STRENGTH_CASES)
def test_class_strength_zero_stops_the_class_parameters_gradient(architecture, kind, conditioning):
    model, _, inputs = _class_strength_pair(architecture, kind, conditioning, dtype="mixed_bfloat16")
    networks.set_class_strength(model, 0.0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model([tf.concat([inputs, inputs], 0), tf.constant([0, 5])], training=True))
    gradients = dict(zip((v.path for v in model.trainable_variables),
                         tape.gradient(loss, model.trainable_variables)))
    class_tables = [p for p in gradients if p.endswith(("/gain", "/bias")) and "conditional_batch" in p
                    or "embedding" in p]
    assert class_tables
    for path in class_tables:
        assert gradients[path] is None or not np.any(tf.convert_to_tensor(gradients[path]).numpy()), path
    assert all(v.dtype == "float32" for v in model.weights)
    assert all("strength" not in v.path for v in model.trainable_variables)


def test_set_class_strength_eagerly_in_a_tf_function_and_under_a_strategy():
    generator = networks.build_generator(64, 16, 9, architecture="resnet", conditioning="cbn", channels=2,
                                         class_strength=True)
    strengths = [l.strength for l in conditioning_lib.strength_layers(generator)]
    assert len(strengths) == 8  # one in each conditional batch norm
    networks.set_class_strength(generator, 0.3)
    assert [s.numpy() for s in strengths] == [np.float32(0.3)] * 8
    assert networks.class_strength(generator).dtype == tf.float32
    assert float(networks.class_strength(generator)) == pytest.approx(0.3)

    @tf.function
    def set_and_get(model, value):
        networks.set_class_strength(model, value)
        return networks.class_strength(model)

    assert float(set_and_get(generator, tf.constant(0.7))) == pytest.approx(0.7)
    assert [s.numpy() for s in strengths] == [np.float32(0.7)] * 8

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        discriminator = networks.build_discriminator(64, 9, conditioning="projection", norm="spectral",
                                                     class_strength=True)
    strength = discriminator.get_layer("class_strength").strength
    assert isinstance(strength.value, tf.distribute.DistributedValues)
    networks.set_class_strength(discriminator, 0.0)
    assert float(networks.class_strength(discriminator)) == 0.0
    assert float(set_and_get(discriminator, tf.constant(0.5))) == 0.5

    @tf.function
    def set_in_replica_context(value):
        strategy.run(lambda: networks.set_class_strength(discriminator, value))

    set_in_replica_context(tf.constant(0.25))
    assert float(networks.class_strength(discriminator)) == 0.25


def test_class_strength_needs_the_option():
    generator = networks.build_generator(64, 16, 9)
    with pytest.raises(ValueError, match="class_strength=True"):
        networks.set_class_strength(generator, 0.0)
    with pytest.raises(ValueError, match="class_strength=True"):
        networks.class_strength(generator)


@pytest.mark.parametrize("architecture, kind, conditioning", [("dcgan", "g", "concat"), ("dcgan", "d", "concat"),
                                                             ("resnet", "g", "cbn")])
def test_class_strength_of_loaded_and_cloned_models(architecture, kind, conditioning, tmp_path):
    # The λ layers are found through the public model.layers (and each conditional batch norm's
    # strength_layer), so a model loaded from a .keras file or cloned (the EMA generator) works too.
    model, _, inputs = _class_strength_pair(architecture, kind, conditioning)
    networks.set_class_strength(model, 0.25)
    loaded = _load_in_process(model, tmp_path / f"{kind}.keras")
    clone = keras.models.clone_model(loaded)
    assert len(conditioning_lib.strength_layers(loaded)) == len(conditioning_lib.strength_layers(model))
    assert len(conditioning_lib.strength_layers(clone)) == len(conditioning_lib.strength_layers(model))
    assert float(networks.class_strength(loaded)) == 0.25
    networks.set_class_strength(loaded, 0.0)
    outputs = [loaded([inputs, tf.constant([label])], training=False).numpy() for label in (0, 4, 8)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])


# Logical devices must be configured before TensorFlow initialises, hence a fresh process.
MIRRORED_RESNET_STEP = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
from cgan.model import networks
from test_networks import _gan_step

keras.utils.set_random_seed(0)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    generator = networks.build_generator(64, 16, 9, dtype="mixed_bfloat16", synchronized_bn=True, conditioning="cbn",
                                         spectral_norm=True, attention_resolution=32, architecture="resnet",
                                         channels=2, class_strength=True)
    discriminator = networks.build_discriminator(64, 9, dtype="mixed_bfloat16", conditioning="projection",
                                                 norm="spectral", attention_resolution=16, architecture="resnet",
                                                 channels=2, class_strength=True)
    g_optimizer, d_optimizer = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    g_optimizer.build(generator.trainable_variables)
    d_optimizer.build(discriminator.trainable_variables)


@tf.function
def set_in_cross_replica_context(strength):  # as in the trainer's multi-step loop
    for model in (generator, discriminator):
        networks.set_class_strength(model, strength)


@tf.function
def set_in_replica_context(strength):
    strategy.run(lambda: networks.set_class_strength(generator, strength))


def step(images, labels, z):
    # Eagerly: tracing this step for two replicas costs far more than running it once.
    strategy.run(_gan_step, args=(generator, discriminator, g_optimizer, d_optimizer, images, labels, z))


def copies(variable):
    values = [c.numpy() for c in variable.value.values]
    assert len(values) == 2 and np.array_equal(values[0], values[1]), variable.path  # replicas agree
    return values[0]


variables = generator.variables + discriminator.variables
before = [copies(v) for v in variables]
images = tf.random.uniform([4, 64, 64, 3], -1.0, 1.0)
set_in_cross_replica_context(tf.constant(0.5))
step(images, tf.constant([0, 1, 2, 3]), tf.random.normal([4, 16]))
after = [copies(v) for v in variables]
assert all(np.all(np.isfinite(v)) for v in after)
assert sum(not np.array_equal(a, b) for a, b in zip(after, before)) > len(variables) // 2
assert float(networks.class_strength(generator)) == float(networks.class_strength(discriminator)) == 0.5
set_in_replica_context(tf.constant(0.75))
strengths = [copies(v) for v in generator.non_trainable_variables if v.path.endswith("strength")]
assert len(strengths) == 8 and all(s == 0.75 for s in strengths), strengths
print("stepped")
"""


@pytest.mark.slow
def test_resnet_mirrored_step_and_class_strength_on_two_replicas():
    assert "stepped" in run_script("import sys; sys.path.insert(0, 'tests')\n" + MIRRORED_RESNET_STEP)


@pytest.mark.parametrize("architecture,norm,conditioning", [("dcgan", "batch", "concat"),
                                                           ("dcgan", "spectral", "projection"),
                                                           ("resnet", "spectral", "projection")])
def test_minibatch_std_discriminator_reads_the_batch_and_round_trips(tmp_path, architecture, norm, conditioning):
    keras.utils.set_random_seed(0)
    discriminator = networks.build_discriminator(64, 3, conditioning=conditioning, norm=norm,
                                                 architecture=architecture, minibatch_std=True)
    assert any(isinstance(layer, layers.ClassMinibatchStdDev) for layer in discriminator.layers)
    rng = np.random.RandomState(0)
    images = rng.uniform(-1, 1, (8, 64, 64, 3)).astype("float32")
    labels = np.array([0, 0, 1, 1], "int32")
    alone = discriminator([images[:4], labels], training=False).numpy()
    # An image's logit depends on the other images of its class in the batch, not on other classes'.
    other_class = discriminator([np.concatenate([images[:2], images[4:6]]), labels], training=False).numpy()
    same_class = discriminator([np.concatenate([images[:1], images[6:7], images[2:4]]), labels],
                               training=False).numpy()
    # At initialisation the spread moves a logit only slightly: compare the two effects, not a tolerance.
    other_effect, same_effect = np.abs(alone[0] - other_class[0]).max(), np.abs(alone[0] - same_class[0]).max()
    assert alone.shape == (4, 1) and same_effect > 1e-7 and same_effect > 100 * other_effect
    path = str(tmp_path / "d.keras")
    discriminator.save(path)
    loaded = keras.models.load_model(path, compile=False, safe_mode=True)
    np.testing.assert_array_equal(loaded([images[:4], labels], training=False).numpy(), alone)


@pytest.mark.parametrize("architecture,conditioning,side", [
    ("dcgan", "concat", 8), ("dcgan", "cbn", 16), ("resnet", "concat", 8), ("resnet", "cbn", 16)])
def test_unconditional_below_the_label_has_no_effect_on_the_layout_features(architecture, conditioning, side):
    from cgan.model import layout
    width = {"channels": 8} if architecture == "resnet" else {}
    generator = networks.build_generator(64, 16, 3, conditioning=conditioning, architecture=architecture,
                                         unconditional_below=side, **width)
    both = layout.generator_with_features(generator)
    if conditioning == "cbn":   # conditional gains start at 1: give the classes different ones
        for layer in generator.layers:
            if isinstance(layer, layers.ConditionalBatchNormalization):
                for weight in layer.trainable_weights:
                    weight.assign(tf.random.stateless_normal(weight.shape, [1, 2]))
    z = tf.random.stateless_normal([4, 16], [3, 4])
    images_a, features_a = both([z, tf.constant([0, 0, 0, 0])], training=False)
    images_b, features_b = both([z, tf.constant([1, 2, 1, 2])], training=False)
    assert features_a.shape[1:3] == (side, side)
    np.testing.assert_array_equal(features_a, features_b)                       # the layout ignores the class
    assert float(tf.reduce_max(tf.abs(images_a - images_b))) > 1e-3             # the image does not
    assert layout.build_head(features_a.shape, "float32")(features_a).shape == (4, side, side, 3)
    assert layout.build_discriminator(side, "float32", spectral=True)(tf.zeros([2, side, side, 3])).shape == (2, 1)


def test_without_unconditional_below_the_generator_has_no_layout_layer():
    from cgan.model import layout
    generator = networks.build_generator(64, 16, 3)
    assert all(layer.name != layout.FEATURES for layer in generator.layers)
    with pytest.raises(ValueError, match="build it with unconditional_below"):
        layout.generator_with_features(generator)


@pytest.mark.parametrize("architecture,norm,conditioning,pack", [("dcgan", "batch", "concat", 2),
                                                                ("resnet", "spectral", "projection", 4)])
def test_packed_discriminator_judges_a_pack_and_every_image_counts(tmp_path, architecture, norm, conditioning, pack):
    keras.utils.set_random_seed(0)
    width = {"channels": 8} if architecture == "resnet" else {}
    discriminator = networks.build_discriminator(64, 3, conditioning=conditioning, norm=norm,
                                                 architecture=architecture, pack=pack, **width)
    rng = np.random.RandomState(0)
    members = [rng.uniform(-1, 1, (2, 64, 64, 3)).astype("float32") for _ in range(pack)]
    other = rng.uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    labels = np.array([0, 2], "int32")
    judged = discriminator([np.concatenate(members, -1), labels], training=False).numpy()
    assert judged.shape == (2, 1)
    for i in range(pack):
        changed = np.concatenate(members[:i] + [other] + members[i + 1:], -1)
        assert np.abs(discriminator([changed, labels], training=False).numpy() - judged).min() > 1e-6
    with pytest.raises(ValueError):
        discriminator([members[0], labels], training=False)              # one image alone is not an input
    path = str(tmp_path / "d.keras")
    discriminator.save(path)
    loaded = keras.models.load_model(path, compile=False, safe_mode=True)
    np.testing.assert_array_equal(loaded([np.concatenate(members, -1), labels], training=False).numpy(), judged)
