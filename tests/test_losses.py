import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan.model import networks

from cgan.training import losses
from conftest import run_script


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


def test_hinge_values_on_known_logits():
    real = tf.constant([[2.0], [0.5], [-1.0]])
    fake = tf.constant([[-2.0], [0.5], [3.0]])
    # D: relu(1 - r) = [0, 0.5, 2], relu(1 + f) = [0, 1.5, 4]; G: -f.
    d_loss = losses.discriminator_loss(real, fake, global_batch_size=3, kind="hinge")
    np.testing.assert_allclose(d_loss.numpy(), (2.5 + 5.5) / 3, rtol=1e-6)
    g_loss = losses.generator_loss(fake, global_batch_size=3, kind="hinge")
    np.testing.assert_allclose(g_loss.numpy(), -1.5 / 3, rtol=1e-6)


def test_hinge_is_float32_and_divides_by_the_global_batch():
    logits = tf.constant([[0.25], [-0.75]], tf.bfloat16)
    local = losses.discriminator_loss(logits, logits, global_batch_size=2, kind="hinge")
    shared = losses.discriminator_loss(logits, logits, global_batch_size=4, kind="hinge")
    assert local.dtype == tf.float32
    np.testing.assert_allclose(shared.numpy(), local.numpy() / 2, rtol=1e-6)
    g = losses.generator_loss(logits, global_batch_size=4, kind="hinge")
    np.testing.assert_allclose(g.numpy(), 0.5 / 4, rtol=1e-6)


def test_default_kind_is_the_baseline_bce():
    real, fake = tf.constant([[1.5], [-0.5]]), tf.constant([[0.3], [-2.0]])
    assert losses.LOSSES[0] == "bce"
    assert losses.discriminator_loss(real, fake, 2).numpy() == losses.discriminator_loss(real, fake, 2, "bce").numpy()
    assert losses.generator_loss(fake, 2).numpy() == losses.generator_loss(fake, 2, kind="bce").numpy()
    assert losses.generator_loss(fake, 2).numpy() != losses.generator_loss(fake, 2, kind="hinge").numpy()


def test_unknown_kind_lists_the_choices():
    with pytest.raises(ValueError, match="bce, hinge"):
        losses.discriminator_loss(tf.zeros([2, 1]), tf.zeros([2, 1]), 2, kind="wasserstein")
    with pytest.raises(ValueError, match="bce, hinge"):
        losses.generator_loss(tf.zeros([2, 1]), 2, kind="saturating")


class _LinearDiscriminator(keras.Model):
    """logit = Σ w[label] · x: its gradient with respect to x is w[label], whatever x."""

    def __init__(self, weights, bias_only=False):
        super().__init__()
        self.w = self.add_weight(shape=weights.shape, initializer=keras.initializers.Constant(weights))
        self.bias_only = bias_only

    def call(self, inputs, training=False):
        images, labels = inputs                                            # [b, 2, 2, 3], [b]
        w = tf.gather(self.w, labels)                                      # [b, 2, 2, 3]
        if self.bias_only:  # a constant D: depends on its weights, not on the image
            return tf.reduce_sum(w, axis=[1, 2, 3])[:, None]
        return tf.reduce_sum(w * images, axis=[1, 2, 3])[:, None]          # [b, 1]


def _linear_case():
    weights = np.stack([np.full((2, 2, 3), 0.5), np.arange(12).reshape(2, 2, 3) / 10]).astype(np.float32)
    images = tf.random.stateless_uniform([3, 2, 2, 3], seed=[0, 0], minval=-1, maxval=1)
    labels = tf.constant([0, 1, 1])
    norms = (weights ** 2).sum(axis=(1, 2, 3))                             # ||w[c]||² per class
    return weights, images, labels, norms[[0, 1, 1]].mean()


def test_r1_of_a_linear_discriminator_is_its_weight_norm():
    weights, images, labels, expected = _linear_case()
    discriminator = _LinearDiscriminator(weights)
    penalty = losses.r1_penalty(discriminator, images, labels, global_batch_size=3)
    assert penalty.dtype == tf.float32
    np.testing.assert_allclose(penalty.numpy(), expected, rtol=1e-6)
    # Reduction rule: this replica holds 3 of 6 examples -> half of the global mean.
    half = losses.r1_penalty(discriminator, images, labels, global_batch_size=6)
    np.testing.assert_allclose(half.numpy(), expected / 2, rtol=1e-6)
    # The gradient is with respect to the un-augmented images: D(2x) has gradient 2w.
    doubled = losses.r1_penalty(discriminator, images, labels, 3, augment=lambda x: 2.0 * x)
    np.testing.assert_allclose(doubled.numpy(), 4 * expected, rtol=1e-6)


def test_r1_of_a_constant_discriminator_is_zero():
    weights, images, labels, _ = _linear_case()
    penalty = losses.r1_penalty(_LinearDiscriminator(weights, bias_only=True), images, labels, 3)
    assert penalty.numpy() == 0.0


def test_r1_second_order_gradient_of_the_linear_discriminator():
    weights, images, labels, _ = _linear_case()
    discriminator = _LinearDiscriminator(weights)
    with tf.GradientTape() as tape:
        penalty = losses.r1_penalty(discriminator, images, labels, global_batch_size=3)
    gradient, = tape.gradient(penalty, [discriminator.w])
    # d/dw of mean_i ||w[y_i]||² = 2 w[c] · (examples of class c) / 3.
    expected = 2 * weights * np.array([1, 2])[:, None, None, None] / 3
    np.testing.assert_allclose(tf.convert_to_tensor(gradient).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_r1_flows_to_the_weights_of_the_conv_discriminator(policy):
    keras.utils.set_random_seed(0)
    discriminator = networks.build_discriminator(64, num_classes=3, dtype=policy)
    images = tf.random.stateless_uniform([2, 64, 64, 3], seed=[1, 0], minval=-1, maxval=1)
    labels = tf.constant([0, 2])

    @tf.function
    def penalty_and_gradients():
        with tf.GradientTape() as tape:
            penalty = losses.r1_penalty(discriminator, images, labels, global_batch_size=2)
        return penalty, tape.gradient(penalty, discriminator.trainable_variables)

    penalty, gradients = penalty_and_gradients()
    assert penalty.dtype == tf.float32 and np.isfinite(penalty.numpy()) and penalty.numpy() > 0
    kernels = [g for g, v in zip(gradients, discriminator.trainable_variables) if "kernel" in v.path]
    assert len(kernels) == 5                          # label plane, three convolutions, logit
    for gradient in kernels:
        gradient = tf.convert_to_tensor(gradient).numpy()
        assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0


def test_lecam_penalty_on_known_logits_where_the_hinge_does_not_bite():
    # α_R = 1, α_F = -1; every real logit is above α_F and every generated one below α_R, so the hinged
    # penalty is the paper's unhinged one: mean (r + 1)² + mean (1 - f)².
    real = tf.constant([[2.0], [0.0], [-0.5]])
    fake = tf.constant([[-2.0], [0.5], [0.0]])
    value = losses.lecam_penalty(real, fake, anchor_real=1.0, anchor_fake=-1.0, global_batch_size=3)
    unhinged = np.mean((np.array([2.0, 0.0, -0.5]) + 1) ** 2) + np.mean((1 - np.array([-2.0, 0.5, 0.0])) ** 2)
    assert value.dtype == tf.float32
    np.testing.assert_allclose(value.numpy(), (9 + 1 + 0.25) / 3 + (9 + 0.25 + 1) / 3, rtol=1e-6)
    np.testing.assert_allclose(value.numpy(), unhinged, rtol=1e-6)


def test_lecam_penalty_hinge_drops_the_terms_beyond_the_anchors():
    # α_R = 0.5, α_F = 0: real logits -1 and -3 are below α_F, generated 2 and 0.5 are not below α_R.
    real = tf.constant([[-1.0], [1.0], [-3.0], [3.0]])
    fake = tf.constant([[2.0], [-1.5], [0.5], [0.0]])
    value = losses.lecam_penalty(real, fake, anchor_real=0.5, anchor_fake=0.0, global_batch_size=4)
    # relu(r - 0)² = [0, 1, 0, 9]; relu(0.5 - f)² = [0, 4, 0, 0.25]. Unhinged it would be 20/4 + 10.5/4.
    np.testing.assert_allclose(value.numpy(), 10 / 4 + 4.25 / 4, rtol=1e-6)


def test_lecam_penalty_divides_by_the_global_batch_and_leaves_the_anchors_constant():
    real = tf.constant([[2.0], [1.0]], tf.bfloat16)
    fake = tf.constant([[-1.0], [0.0]], tf.bfloat16)
    anchor_real, anchor_fake = tf.constant(0.5), tf.constant(-0.5)
    local = losses.lecam_penalty(real, fake, anchor_real, anchor_fake, global_batch_size=2)
    shared = losses.lecam_penalty(real, fake, anchor_real, anchor_fake, global_batch_size=4)
    assert local.dtype == tf.float32
    np.testing.assert_allclose(shared.numpy(), local.numpy() / 2, rtol=1e-6)
    real32 = tf.cast(real, tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([real32, anchor_real, anchor_fake])
        value = losses.lecam_penalty(real32, fake, anchor_real, anchor_fake, global_batch_size=2)
    # d/dr of mean (r + 0.5)² over 2 examples = (r + 0.5); no gradient reaches the anchors.
    np.testing.assert_allclose(tape.gradient(value, real32).numpy(), [[2.5], [1.5]], rtol=1e-6)
    assert tape.gradient(value, anchor_real) is None and tape.gradient(value, anchor_fake) is None


def test_lecam_anchors_first_update_copies_then_averages():
    anchors = losses.LeCamAnchors(decay=0.9)
    assert anchors.real.numpy() == 0.0 and anchors.fake.numpy() == 0.0
    real, fake = anchors.update(tf.constant([[1.0], [3.0]]), tf.constant([[-2.0], [0.0]]))
    assert (real.numpy(), fake.numpy()) == (2.0, -1.0)                      # the first batch's means
    assert (anchors.real.numpy(), anchors.fake.numpy(), anchors.updates.numpy()) == (2.0, -1.0, 1)
    real, fake = anchors.update(tf.constant([[4.0], [6.0]]), tf.constant([[1.0], [1.0]]))
    np.testing.assert_allclose([real.numpy(), fake.numpy()], [0.9 * 2 + 0.1 * 5, 0.9 * -1 + 0.1 * 1], rtol=1e-6)
    np.testing.assert_array_equal([anchors.real.numpy(), anchors.fake.numpy()], [real.numpy(), fake.numpy()])


def test_lecam_anchors_inside_a_tf_function_and_through_a_checkpoint(tmp_path):
    anchors = losses.LeCamAnchors(decay=0.5)
    step = tf.function(lambda r, f: anchors.update(r, f))
    for value in (1.0, 3.0, 7.0):
        step(tf.fill([4, 1], value), tf.fill([4, 1], -value))
    # 1, then 0.5·1 + 0.5·3 = 2, then 0.5·2 + 0.5·7 = 4.5.
    assert (anchors.real.numpy(), anchors.fake.numpy(), anchors.updates.numpy()) == (4.5, -4.5, 3)
    path = tf.train.Checkpoint(lecam=anchors).write(str(tmp_path / "ckpt"))
    restored = losses.LeCamAnchors(decay=0.5)
    tf.train.Checkpoint(lecam=restored).read(path).assert_consumed()
    assert (restored.real.numpy(), restored.fake.numpy(), restored.updates.numpy()) == (4.5, -4.5, 3)
    a = step(tf.fill([4, 1], 2.0), tf.fill([4, 1], 0.0))
    b = restored.update(tf.fill([4, 1], 2.0), tf.fill([4, 1], 0.0))
    assert [x.numpy() for x in a] == [x.numpy() for x in b]


def test_lecam_anchors_reject_a_bad_decay_and_cross_replica_updates():
    with pytest.raises(ValueError, match="decay"):
        losses.LeCamAnchors(decay=1.0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        anchors = losses.LeCamAnchors()
        with pytest.raises(ValueError, match="strategy.run"):
            anchors.update(tf.zeros([2, 1]), tf.zeros([2, 1]))


_TWO_REPLICA_ANCHORS = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from cgan.training import losses

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        anchors = losses.LeCamAnchors(decay=0.75)

    @tf.function
    def steps(real, fake):                        # [3, 4, 1] each: three steps of a global batch of 4
        for i in range(3):                        # unrolled: AutoGraph cannot read a `python -c` source
            def replica_step(real, fake):
                rows = tf.distribute.get_replica_context().replica_id_in_sync_group * 2
                return anchors.update(real[rows:rows + 2], fake[rows:rows + 2])
            returned = strategy.run(replica_step, args=(real[i], fake[i]))
        return returned

    real = np.arange(12, dtype=np.float32).reshape(3, 4, 1) ** 1.5    # the replicas see different halves
    fake = -np.cos(np.arange(12, dtype=np.float32)).reshape(3, 4, 1)
    returned = steps(tf.constant(real), tf.constant(fake))
    expected_real, expected_fake = real[0].mean(), fake[0].mean()
    for i in (1, 2):
        expected_real = 0.75 * expected_real + 0.25 * real[i].mean()
        expected_fake = 0.75 * expected_fake + 0.25 * fake[i].mean()
    for variable, expected, values in ((anchors.real, expected_real, returned[0]),
                                       (anchors.fake, expected_fake, returned[1])):
        copies = [c.numpy() for c in variable.values] + [v.numpy() for v in values.values]
        assert len(copies) == 4 and len(set(copies)) == 1, copies        # bitwise the same everywhere
        np.testing.assert_allclose(copies[0], expected, rtol=1e-5)
    assert [c.numpy() for c in anchors.updates.values] == [3, 3]
    print("OK")
""")


@pytest.mark.slow
def test_lecam_anchors_are_global_and_identical_on_two_replicas():
    assert run_script(_TWO_REPLICA_ANCHORS).startswith("OK")
