"""The coverage pool (cgan.training.coverage), the feature spaces it measures in, and the diversity term."""

import numpy as np
import pytest
import tensorflow as tf

from cgan.model import networks
from cgan.training import coverage, feature_spaces, losses


def _lesion(shift=0, size=64):
    """A dark disc on skin-coloured noise, its centre moved right by `shift` pixels: [R, R, 3] float in [0, 255]."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size]
    disc = ((y - size / 2) ** 2 + (x - size / 2 - shift) ** 2 < (size / 5) ** 2)[..., None]
    skin = np.array([200.0, 150.0, 130.0]) + rng.normal(0, 6, (size, size, 3))
    return np.where(disc, skin * 0.4, skin)


def _recoloured(picture):
    """An affine recolouring: channels mixed, contrast lowered, tint added."""
    mix = np.array([[0.6, 0.2, 0.1], [0.1, 0.7, 0.1], [0.2, 0.1, 0.5]])
    return picture @ mix.T * 0.8 + np.array([30.0, 10.0, 40.0])


def _scaled(pictures):
    """[0, 255] pictures -> [-1, 1] float32 tensor, as the generator draws them."""
    return tf.constant(np.stack(pictures) / 127.5 - 1.0, tf.float32)


def test_structure_space_calls_a_recoloured_copy_near_and_a_moved_lesion_far():
    space = feature_spaces.FeatureSpace("structure")
    picture = _lesion()
    features = space(_scaled([picture, picture, _recoloured(picture), _lesion(shift=12)]), tf.zeros([4], tf.int32))
    assert features.shape == (4, 256)
    same, recoloured, moved = (feature_spaces.distances(features[:1], features[i:i + 1])[0] for i in (1, 2, 3))
    assert float(same) < 1e-5 and float(recoloured) < 0.06 * float(moved)


def test_discriminator_space_is_scale_free_and_recolouring_moves_it_less_than_moving_the_lesion():
    discriminator = networks.build_discriminator(64, 2, conditioning="projection", norm="spectral")
    space = feature_spaces.FeatureSpace("discriminator", discriminator)
    picture = _lesion()
    images = _scaled([picture, _recoloured(picture), _lesion(shift=12)])
    features = space(images, tf.zeros([3], tf.int32))
    assert features.shape == (3, 8 * 8 * 128)
    recoloured, moved = (feature_spaces.distances(features[:1], features[i:i + 1])[0] for i in (1, 2))
    assert float(recoloured) < 0.5 * float(moved)
    # Each channel is normalised per image: scaling D's features changes nothing.
    raw = networks.discriminator_features(discriminator)([images, tf.zeros([3], tf.int32)])
    np.testing.assert_allclose(feature_spaces.normalised_features(raw * 7.0), feature_spaces.normalised_features(raw),
                               atol=1e-4)
    with pytest.raises(ValueError, match="needs the discriminator"):
        feature_spaces.FeatureSpace("discriminator")


def _pool_with_known_features(real_values, labels, factor=3):
    """A pool whose candidate j has feature z_j[0] (its latent's first component), real image i the value
    real_values[i] (its first pixel's red channel); the generator draws z[0] into that pixel."""
    images = np.zeros((len(real_values), 16, 16, 3), np.uint8)
    images[:, 0, 0, 0] = np.round((np.asarray(real_values) + 1.0) * 127.5).astype(np.uint8)
    pool = coverage.CoveragePool(images, labels, latent_dim=2, pool_factor=factor, seed=7)

    def generator(inputs, training=False):
        z, _ = inputs
        return tf.tile(tf.reshape(z[:, 0], [-1, 1, 1, 1]), [1, 16, 16, 3])

    def space(pictures, _):
        return pictures[:, 0, 0, :1]                                                # [b, 1]

    return pool, generator, space, images


def test_refresh_matches_each_real_image_to_its_nearest_candidate_of_its_own_class():
    labels = np.array([0, 1, 0, 1, 1])
    real_values = np.array([-0.5, 0.0, 0.3, 0.9, -0.9])
    pool, generator, space, images = _pool_with_known_features(real_values, labels)
    nearest = pool.refresh(generator, space, refresh_index=4)
    # The pool of refresh 4, redrawn: class 0's candidates are the first 3 · 2 rows, class 1's the next 3 · 3.
    candidates = tf.random.stateless_normal([15, 2], [7 ^ coverage._POOL_SALT, 4]).numpy()
    blocks = {0: range(0, 6), 1: range(6, 15)}
    real_features = images[:, 0, 0, 0] / 127.5 - 1.0
    for i, label in enumerate(labels):
        rows = list(blocks[label])
        expected = rows[int(np.argmin(np.abs(candidates[rows, 0] - real_features[i])))]
        np.testing.assert_array_equal(pool.latents[i].numpy(), candidates[expected])
    # A candidate of another class nearer than every one of the class's own is never chosen.
    distances = [min(abs(candidates[list(blocks[label]), 0] - real_features[i])) for i, label in enumerate(labels)]
    assert nearest == pytest.approx(np.mean(distances), rel=1e-4)
    assert pool.pool_size == 15


def test_draws_follow_the_step_alone_and_balanced_draws_cover_every_class():
    labels = np.array([0] * 12 + [1] * 2 + [2] * 2)
    pool, *_ = _pool_with_known_features(np.linspace(-0.9, 0.9, 16), labels)
    pool.latents.assign(tf.reshape(tf.range(32, dtype=tf.float32), [16, 2]))   # latent i = (2i, 2i + 1)
    z, drawn, images = pool.draw(tf.constant(5, tf.int64), 8, balanced=False)
    again = pool.draw(tf.constant(5, tf.int64), 8, balanced=False)
    np.testing.assert_array_equal(z, again[0])
    indices = (z[:, 0].numpy() / 2).astype(int)
    np.testing.assert_array_equal(drawn, labels[indices])                      # each latent with its image's label
    assert images.shape == (8, 16, 16, 3) and float(tf.reduce_max(tf.abs(images))) <= 1.0
    assert not np.array_equal(z, pool.draw(tf.constant(6, tf.int64), 8, balanced=False)[0])
    counts = np.bincount(np.concatenate([pool.draw(tf.constant(s, tf.int64), 30, balanced=True)[1].numpy()
                                         for s in range(20)]), minlength=3)
    assert counts.min() > 0.25 * counts.sum()                                  # ~1/3 each, though class 0 is 3/4


def test_pull_gradient_reaches_only_each_generated_image_towards_its_own_real_image():
    generated = tf.Variable([[1.0, 0.0], [0.0, 3.0]])
    real = tf.Variable([[0.0, 0.0], [0.0, 1.0]])
    with tf.GradientTape() as tape:
        loss = coverage.pull(generated, real, global_count=4)
    gradient_generated, gradient_real = tape.gradient(loss, [generated, real])
    assert gradient_real is None                                               # the real images are targets
    # d/dg of RMS(g - r) / 4 = (g - r) / (F · RMS · 4): each row moves towards its own real image only.
    np.testing.assert_allclose(gradient_generated, [[1.0 / (2 * np.sqrt(0.5) * 4), 0.0],
                                                    [0.0, 2.0 / (2 * np.sqrt(2.0) * 4)]], rtol=1e-5)
    assert float(loss) == pytest.approx((np.sqrt(0.5) + np.sqrt(2.0)) / 4)


def test_diversity_term_gives_one_picture_in_many_colours_no_credit_and_real_variety_full_credit():
    space = feature_spaces.FeatureSpace("structure")
    picture = _lesion()
    recolourings = [picture * (0.5 + 0.1 * i) + 10 * i for i in range(4)]
    real = [_lesion(shift) for shift in (-12, -4, 4, 12)]
    real_labels = tf.constant([0, 0, 0, 0])
    real_features = space(_scaled(real), real_labels)
    # Pairs (i, i + 4) of one picture in 8 colours: next to no distance, next to the full term.
    one_picture = space(_scaled(recolourings + [_recoloured(p) for p in recolourings]), tf.zeros([8], tf.int32))
    loss, scale = losses.diversity_loss(one_picture, real_features, real_labels, num_replicas=1)
    assert float(loss) > 0.85 and float(scale) > 0
    # Pairs as far apart as the real images: nothing left to push.
    varied = space(_scaled(real[:2] + real[2:]), real_labels)
    loss, _ = losses.diversity_loss(tf.concat([varied[:2], varied[3:1:-1]], 0), real_features, real_labels, 1)
    assert float(loss) < 0.3
    far = losses.diversity_loss(tf.concat([varied[:1], varied[3:]], 0), real_features, real_labels, 2)[0]
    assert float(far) == 0.0                                                   # saturated: the farthest pair
