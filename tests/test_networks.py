import numpy as np
import pytest
import tensorflow as tf

from cgan import networks


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
