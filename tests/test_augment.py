import numpy as np
import pytest
import tensorflow as tf

from cgan import augment

POLICY = "color,translation,cutout"


def _images(batch=4, size=16):
    return tf.random.stateless_uniform([batch, size, size, 3], seed=[0, 1], minval=-1.0, maxval=1.0)


def _params(batch=4, seed=2):
    return tf.random.stateless_uniform([batch, augment.NUM_PARAMS], seed=[seed, 0])


def test_shape_dtype_and_determinism():
    images, params = _images(), _params()
    a = augment.diff_augment(images, params, POLICY)
    b = augment.diff_augment(images, params, POLICY)
    assert a.shape == images.shape and a.dtype == images.dtype
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), augment.diff_augment(images, _params(seed=3), POLICY).numpy())


def test_empty_policy_is_identity():
    images = _images()
    np.testing.assert_array_equal(augment.diff_augment(images, _params(), "").numpy(), images.numpy())


def test_gradients_reach_every_image():
    images = _images()
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(augment.diff_augment(images, _params(), POLICY) ** 2)
    gradient = tape.gradient(total, images)
    assert gradient is not None and np.all(np.isfinite(gradient.numpy()))
    assert np.all(np.abs(gradient.numpy()).reshape(4, -1).sum(axis=1) > 0)


def test_translation_shifts_by_whole_pixels_with_zero_fill():
    image = tf.reshape(tf.range(64, dtype=tf.float32), [1, 8, 8, 1])
    params = tf.constant([[0, 0, 0, 0.0, 0.999, 0, 0]], tf.float32)  # shift down by +1, left by -1
    out = augment.diff_augment(image, params, "translation").numpy()[0, :, :, 0]
    assert out[0].tolist() == [0.0] * 8                      # row shifted in from the padding
    np.testing.assert_array_equal(out[1:, :-1], image.numpy()[0, :-1, 1:, 0])
    assert out[:, -1].tolist() == [0.0] * 8


def test_cutout_zeroes_a_square_of_half_the_side():
    images = tf.ones([2, 16, 16, 3])
    out = augment.diff_augment(images, _params(batch=2), "cutout").numpy()
    for image in out:
        holes = image[..., 0] == 0
        assert holes.sum() <= 8 * 8 and holes.sum() > 0
        rows, cols = np.nonzero(holes)
        assert rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8


def test_color_with_neutral_params_is_identity():
    images = _images()
    neutral = tf.constant([[0.5, 0.5, 0.5, 0, 0, 0, 0]] * 4, tf.float32)
    np.testing.assert_allclose(augment.diff_augment(images, neutral, "color").numpy(), images.numpy(), atol=1e-6)


def test_unknown_policy_names_the_part():
    with pytest.raises(ValueError, match="unknown augmentation flip"):
        augment.parse_policy("color,flip")
