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
