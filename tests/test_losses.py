import numpy as np
import tensorflow as tf

from cgan import losses


def _bce(logit, target):
    p = 1 / (1 + np.exp(-logit))
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def test_discriminator_loss_matches_sigmoid_bce():
    real = np.array([[2.0], [-1.0]], np.float32)
    fake = np.array([[0.5], [-3.0]], np.float32)
    expected = np.mean(_bce(real, 1.0)) + np.mean(_bce(fake, 0.0))
    got = losses.discriminator_loss(tf.constant(real), tf.constant(fake), global_batch_size=2)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_generator_loss_is_non_saturating():
    fake = np.array([[0.5], [-3.0], [1.0], [0.0]], np.float32)
    got = losses.generator_loss(tf.constant(fake), global_batch_size=4)
    np.testing.assert_allclose(got.numpy(), np.mean(_bce(fake, 1.0)), rtol=1e-6)


def test_divides_by_the_global_batch():
    fake = tf.zeros([2, 1])
    # Two replicas holding 2 of 4 examples each: each contributes half of the global mean.
    assert np.isclose(losses.generator_loss(fake, global_batch_size=4).numpy(), np.log(2) / 2)


def test_stable_for_extreme_logits():
    logits = tf.constant([[1e4], [-1e4]], tf.bfloat16)
    value = losses.discriminator_loss(logits, logits, global_batch_size=2)
    assert value.dtype == tf.float32 and np.isfinite(value.numpy())


def test_mode_seeking_is_inverse_distance_ratio():
    images = tf.concat([tf.zeros([2, 4, 4, 3]), tf.fill([2, 4, 4, 3], 0.5)], axis=0)   # |ΔG| = 0.5
    noise = tf.concat([tf.zeros([2, 8]), tf.fill([2, 8], 2.0)], axis=0)                # |Δz| = 2
    value = losses.mode_seeking_loss(images, noise, num_replicas=1).numpy()
    np.testing.assert_allclose(value, 1 / (0.25 + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(losses.mode_seeking_loss(images, noise, num_replicas=2).numpy(), value / 2,
                               rtol=1e-6)


def test_mode_seeking_punishes_ignored_noise():
    collapsed = tf.ones([4, 4, 4, 3])
    varied = tf.random.stateless_normal([4, 4, 4, 3], seed=[0, 0])
    noise = tf.random.stateless_normal([4, 8], seed=[1, 0])
    assert losses.mode_seeking_loss(collapsed, noise, 1) > 100 * losses.mode_seeking_loss(varied, noise, 1)
