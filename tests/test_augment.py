import numpy as np
import pytest
import tensorflow as tf

from cgan.training import augment

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


# Recorded from random_params and diff_augment before adaptive strength existed: a generator seeded 1234
# drew [3, NUM_PARAMS] then [2, NUM_PARAMS] (float32 bit patterns, row-major) and ended in this state.
_RECORDED_FIRST = [1052204828, 1038607328, 1058083800, 1059837486, 1051114412, 1043271352, 1062784460,
                   1059094812, 1038138704, 1049492772, 1040403320, 1023012608, 1062705614, 1058306734,
                   1059757884, 1060891196, 1060042632, 1059666256, 1056605460, 1030501216, 1045039896]
_RECORDED_SECOND = [1056817324, 1063265756, 1052220528, 1061624672, 1060707912, 1034919744, 1056834640,
                    1059086308, 1060874640, 1059541748, 1058318940, 1064208296, 1065056322, 1059123112]
_RECORDED_STATE = [10194, 0, 0]


def _bits(values):
    return values.numpy().view(np.uint32).ravel().tolist()


def test_draws_without_adaptive_strength_are_unchanged():
    generator = tf.random.Generator.from_seed(1234)
    first = augment.random_params(generator, 3)
    second = augment.random_params(generator, 2, adaptive=False)
    assert first.shape == (3, augment.NUM_PARAMS) and second.shape == (2, augment.NUM_PARAMS)
    assert _bits(first) == _RECORDED_FIRST and _bits(second) == _RECORDED_SECOND
    assert generator.state.numpy().tolist() == _RECORDED_STATE
    # The augmented images of those parameters, as recorded (sum, sum of |x|, two pixels, zeros from cutout).
    out = augment.diff_augment(_images(batch=3), first, POLICY).numpy()
    np.testing.assert_allclose([out.sum(), np.abs(out).sum()], [54.561646, 775.2374], rtol=1e-5)
    np.testing.assert_allclose(out[0, 3, 5], [-0.48327910900115967, -0.7186306118965149, -0.7530829906463623],
                               rtol=1e-6)
    np.testing.assert_allclose(out[2, 10, 2], [1.1952108144760132, -0.2227465659379959, 0.39392217993736267],
                               rtol=1e-6)
    assert (out == 0).sum() == 720


def test_adaptive_draws_add_one_gate_per_op():
    params = augment.random_params(tf.random.Generator.from_seed(5), 6, adaptive=True)
    assert augment.NUM_GATES == len(augment.POLICIES) == 3
    assert params.shape == (6, augment.NUM_PARAMS + augment.NUM_GATES) and params.dtype == tf.float32
    assert np.all((params.numpy() >= 0) & (params.numpy() < 1))
    again = augment.random_params(tf.random.Generator.from_seed(5), 6, adaptive=True)
    np.testing.assert_array_equal(params.numpy(), again.numpy())


def _adaptive_params(batch=4, seed=2):
    return tf.random.stateless_uniform([batch, augment.NUM_PARAMS + augment.NUM_GATES], seed=[seed, 0])


def test_strength_zero_is_the_identity_and_one_is_the_plain_augmentation():
    images, params = _images(), _adaptive_params()
    np.testing.assert_array_equal(augment.diff_augment(images, params, POLICY, strength=0.0).numpy(), images.numpy())
    plain = augment.diff_augment(images, params[:, :augment.NUM_PARAMS], POLICY).numpy()
    np.testing.assert_array_equal(augment.diff_augment(images, params, POLICY, strength=1.0).numpy(), plain)
    np.testing.assert_array_equal(augment.diff_augment(images, params, POLICY).numpy(), plain)   # no strength
    assert not np.array_equal(plain, images.numpy())


def test_gates_are_compared_in_float32_for_bfloat16_images():
    images = tf.cast(_images(), tf.bfloat16)
    params = tf.concat([_params(), tf.fill([4, augment.NUM_GATES], 0.9999)], axis=1)   # 1.0 in bfloat16
    full = augment.diff_augment(images, params, POLICY, strength=1.0)
    assert full.dtype == tf.bfloat16
    np.testing.assert_array_equal(full.numpy(), augment.diff_augment(images, _params(), POLICY).numpy())
    np.testing.assert_array_equal(augment.diff_augment(images, params, POLICY, strength=0.9999).numpy(),
                                  images.numpy())


def _changed(before, after):
    return np.any(before.numpy() != after.numpy(), axis=(1, 2, 3))                       # [B]


# Op parameters under which each op always changes an image of random pixels: brighter and more
# saturated, shifted by a whole pixel, a hole in the middle.
_ALWAYS_CHANGES = [0.9, 0.9, 0.9, 0.0, 0.0, 0.5, 0.5]


@pytest.mark.parametrize("index,name", list(enumerate(augment.POLICIES)))
def test_each_op_applies_to_about_p_of_the_images_by_its_own_gate(index, name):
    count, strength = 4000, 0.3
    images = tf.random.stateless_uniform([count, 8, 8, 3], seed=[3, 0], minval=-1.0, maxval=1.0)
    gates = tf.random.stateless_uniform([count, augment.NUM_GATES], seed=[4, 0])   # a fixed seed: no flake
    params = tf.concat([tf.constant([_ALWAYS_CHANGES] * count), gates], axis=1)
    changed = _changed(images, augment.diff_augment(images, params, name, strength=strength))
    np.testing.assert_array_equal(changed, gates.numpy()[:, index] < strength)   # this op's gate decides
    # Binomial(4000, 0.3) has a standard deviation of 0.0072 in the fraction: 0.03 is four of them.
    assert abs(changed.mean() - strength) < 0.03


def test_a_higher_strength_applies_to_a_superset_of_the_images():
    count = 256
    images = tf.random.stateless_uniform([count, 8, 8, 3], seed=[5, 0], minval=-1.0, maxval=1.0)
    params = tf.concat([tf.constant([_ALWAYS_CHANGES] * count),
                        tf.random.stateless_uniform([count, augment.NUM_GATES], seed=[6, 0])], axis=1)
    low = _changed(images, augment.diff_augment(images, params, "cutout", strength=0.2))
    high = _changed(images, augment.diff_augment(images, params, "cutout", strength=0.6))
    assert np.all(high[low]) and high.sum() > low.sum() > 0


def test_strength_as_a_variable_inside_a_tf_function_with_gradients():
    images, params = _images(), _adaptive_params()
    strength = tf.Variable(0.0)

    @tf.function
    def augmented_and_gradient():
        with tf.GradientTape() as tape:
            tape.watch(images)
            out = augment.diff_augment(images, params, POLICY, strength=strength)
            total = tf.reduce_sum(out ** 2)
        return out, tape.gradient(total, images)

    out, gradient = augmented_and_gradient()
    np.testing.assert_array_equal(out.numpy(), images.numpy())
    np.testing.assert_allclose(gradient.numpy(), 2 * images.numpy(), rtol=1e-6)
    strength.assign(1.0)
    out, gradient = augmented_and_gradient()
    np.testing.assert_array_equal(out.numpy(), augment.diff_augment(images, params, POLICY).numpy())
    assert np.all(np.isfinite(gradient.numpy())) and np.abs(gradient.numpy()).reshape(4, -1).sum(axis=1).min() > 0


def test_strength_without_gates_is_rejected():
    with pytest.raises(ValueError, match="adaptive=True"):
        augment.diff_augment(_images(), _params(), POLICY, strength=0.5)
