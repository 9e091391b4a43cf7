"""GAN losses on discriminator logits, reduced once for the whole global batch.

    per_replica_d_loss = losses.discriminator_loss(real_logits, fake_logits, global_batch_size, kind="bce")
    per_replica_g_loss = losses.generator_loss(fake_logits, global_batch_size, kind="bce")
    per_replica_d_loss += gamma / 2 * losses.r1_penalty(discriminator, images, labels, global_batch_size)
    anchors = losses.LeCamAnchors(decay=0.99)   # in strategy.scope(); checkpoint it: tf.train.Checkpoint(lecam=anchors)
    anchor_real, anchor_fake = anchors.update(real_logits, fake_logits)   # in the replica step
    per_replica_d_loss += weight * losses.lecam_penalty(real_logits, fake_logits, anchor_real, anchor_fake,
                                                        global_batch_size)

Kinds (`LOSSES`), per example, r = D(real) and f = D(fake) logits. "bce", the baseline's: D
softplus(-r) + softplus(f); G softplus(-f), the non-saturating loss (BCE with target 1), computed
stably from logits where the baseline applied a sigmoid; the saturating -softplus(f) is not offered:
its gradient vanishes exactly when D wins. "hinge" (SNGAN / SAGAN / BigGAN): D relu(1 - r) + relu(1 + f);
G -f. R1 (Mescheder et al., 2018): E ||∇_x D(x, y)||² on real images, with either kind.

LeCam (Tseng et al., 2021): per example relu(r - α_F)² + relu(α_R - f)², α_R and α_F moving averages
of the mean logit on real and on generated images (`LeCamAnchors`). Hinged, as in the authors' code
(the paper writes plain squares): it only pulls a real logit down towards α_F and a generated one up
towards α_R, never adding to D's drive to separate them; where D separates them both forms agree.

Reduction (stated only here): every loss is a sum over this replica's examples ÷ the GLOBAL batch size
(`tf.nn.compute_average_loss`); the optimizer's all-reduce sums the replicas' gradients, giving the
mean over the global batch for any replica count, and `strategy.reduce(SUM)` of the per-replica values
the global mean loss. Logits are cast to float32 first, so mixed precision never reaches a loss.
"""

import tensorflow as tf

from cgan.core.config import LOSSES
from cgan.training import feature_spaces


def _mean(per_example, global_batch_size):
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def _flat_float32(logits):
    return tf.cast(tf.reshape(logits, [-1]), tf.float32)                 # [B]


def _bce_terms(logits, target):
    logits = _flat_float32(logits)                                       # [B]
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target), logits=logits)


def _bce(logits, target, global_batch_size):
    return _mean(_bce_terms(logits, target), global_batch_size)


def _check_kind(kind):
    if kind not in LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}: choose one of {', '.join(LOSSES)}")


def discriminator_loss(real_logits, fake_logits, global_batch_size, kind="bce"):
    """D's loss on a real and a generated batch, summed over the two halves as the baseline did.

    Args:
        real_logits: [B, 1] logits of D on real images of this replica.
        fake_logits: [B, 1] logits of D on generated images of this replica.
        global_batch_size: batch size summed over all replicas.
        kind: one of LOSSES (see the module docstring); "bce" is BCE with real -> 1 and fake -> 0.

    Returns:
        scalar float32, this replica's share of the global mean loss.
    """
    return _mean(real_terms(real_logits, kind), global_batch_size) + fake_loss(fake_logits, global_batch_size, kind)


def real_terms(real_logits, kind="bce"):
    """[B] float32: each real image's term of D's loss (bce: -log σ(r); hinge: relu(1 - r)).

    The private D update (cgan.training.privacy) clips each image's gradient of its term."""
    _check_kind(kind)
    if kind == "hinge":
        return tf.nn.relu(1.0 - _flat_float32(real_logits))
    return _bce_terms(real_logits, 1.0)


def fake_loss(fake_logits, global_batch_size, kind="bce"):
    """D's loss on a generated batch alone: the second half of `discriminator_loss`."""
    _check_kind(kind)
    if kind == "hinge":
        return _mean(tf.nn.relu(1.0 + _flat_float32(fake_logits)), global_batch_size)
    return _bce(fake_logits, 0.0, global_batch_size)


def generator_loss(fake_logits, global_batch_size, kind="bce"):
    """G's loss: the generator wants D to call its images real.

    Args:
        fake_logits: [B, 1] logits of D on generated images of this replica.
        global_batch_size: batch size summed over all replicas.
        kind: one of LOSSES; "bce" is the non-saturating BCE with target 1, "hinge" is -D(fake).

    Returns:
        scalar float32, this replica's share of the global mean loss.
    """
    _check_kind(kind)
    if kind == "hinge":
        return _mean(-_flat_float32(fake_logits), global_batch_size)
    return _bce(fake_logits, 1.0, global_batch_size)


def r1_penalty(discriminator, real_images, labels, global_batch_size, training=True, augment=None):
    """R1 (Mescheder et al., 2018): the squared norm of D's gradient with respect to real images.

    Unscaled: the caller adds `gamma / 2 * r1_penalty(...)` to D's loss (and, when it regularises
    lazily every k steps, multiplies by k as StyleGAN2 does). The inner gradient is taken with its own
    tape, so inside the caller's tape the penalty is differentiable with respect to D's weights
    (a second-order gradient).

    D sees the batch in one call, so with batch normalisation in training mode (training=True) the
    gradient for example i also carries its effect on the batch statistics: it is ∇_{x_i} Σ_j D(x_j).

    Args:
        discriminator: keras.Model mapping [images [b, R, R, 3] float32, labels [b] int32] to
            logits [b, 1]; it may compute in float16 or bfloat16 inside.
        real_images: [b, R, R, 3] real images of this replica, in [-1, 1].
        labels: [b] int32 their classes.
        global_batch_size: batch size summed over all replicas.
        training: passed to the discriminator (batch-norm mode).
        augment: None, or a function images -> images (e.g. DiffAugment with fixed parameters)
            applied inside the tape, so the gradient is with respect to the un-augmented images as in
            StyleGAN2-ADA.

    Returns:
        scalar float32, this replica's share of mean over the global batch of ||∇_x D(x, y)||².
    """
    images = tf.cast(real_images, tf.float32)                          # [b, R, R, 3]
    with tf.GradientTape() as tape:
        tape.watch(images)
        seen = augment(images) if augment is not None else images
        logits = discriminator([seen, labels], training=training)      # [b, 1]
        total = tf.reduce_sum(tf.cast(logits, tf.float32))
    gradients = tape.gradient(total, images, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    gradients = tf.cast(gradients, tf.float32)                          # [b, R, R, 3]
    per_example = tf.reduce_sum(tf.square(gradients), axis=tf.range(1, tf.rank(gradients)))   # [b]
    return _mean(per_example, global_batch_size)


def mode_seeking_loss(images, noise, num_replicas, epsilon=1e-5):
    """Mode-seeking regulariser (Mao et al., 2019): penalises a generator that ignores its noise.

    The first and second halves of the batch share labels and differ only in z; the loss is the
    inverse of mean |G(z1) - G(z2)| / mean |z1 - z2|, large when different noise gives the same
    image (conditional mode collapse).

    Args:
        images: [b, R, R, 3] generated images of this replica; rows i and i + b/2 share a label.
        noise: [b, latent] the z they came from.
        num_replicas: replicas in sync; the per-replica value is divided by it so that the summed
            gradients (see the reduction rule above) average the replicas' regularisers.

    Returns:
        scalar float32, this replica's share.
    """
    half = tf.shape(images)[0] // 2
    image_distance = tf.reduce_mean(tf.abs(tf.cast(images[:half] - images[half:2 * half], tf.float32)))
    noise_distance = tf.reduce_mean(tf.abs(noise[:half] - noise[half:2 * half]))
    return 1.0 / (image_distance / noise_distance + epsilon) / num_replicas


def diversity_loss(generated_features, real_features, real_labels, num_replicas):
    """The per-pair diversity term (--diversity): pairs of generated images of one class pushed apart until
    they differ as much as real images of one class do, and no further.

    Rows i and i + b/2 of the generated batch share a label and differ in z. Per pair, relu(1 − d / τ),
    d the pair's RMS distance in the feature space and τ the mean distance between two real images of the
    same class in this replica's real batch (every real pair when no class occurs twice): the term is
    scale-free, since τ moves with the space, and saturates per pair, so a pair already as different as
    real images gets no push and a few far-apart pairs cannot pay for the rest.

    Args:
        generated_features: [b, F] features of this replica's generated batch (with gradient to G).
        real_features: [b', F] features of this replica's real batch (treated as constants).
        real_labels: [b'] their classes.
        num_replicas: replicas in sync; the mean over pairs is divided by it, as mode_seeking_loss does.

    Returns:
        (loss, τ): float32 scalars, this replica's share of the term and the real scale it used.
    """
    half = tf.shape(generated_features)[0] // 2
    pair_distances = feature_spaces.distances(generated_features[:half], generated_features[half:2 * half])  # [h]
    real = tf.stop_gradient(real_features)
    real_distances = tf.sqrt(feature_spaces.squared_distances(real, real) + 1e-12)                 # [b', b']
    different = tf.logical_not(tf.eye(tf.shape(real)[0], dtype=tf.bool))
    same_class = tf.logical_and(tf.equal(real_labels[:, None], real_labels[None, :]), different)
    pairs = tf.cast(tf.where(tf.reduce_any(same_class), same_class, different), tf.float32)
    scale = tf.reduce_sum(real_distances * pairs) / tf.maximum(tf.reduce_sum(pairs), 1.0)
    per_pair = tf.nn.relu(1.0 - pair_distances / tf.maximum(scale, 1e-6))                         # [h]
    return tf.reduce_mean(per_pair) / num_replicas, scale


def lecam_penalty(real_logits, fake_logits, anchor_real, anchor_fake, global_batch_size):
    """LeCam regulariser (Tseng et al., 2021), hinged (see the module docstring): unweighted.

    Per example relu(r - α_F)² + relu(α_R - f)²: real logits are held near the generated anchor and
    generated logits near the real anchor. The anchors are constants here (no gradient flows to them).

    Args:
        real_logits: [b, 1] logits of D on real images of this replica (the ones D's loss uses).
        fake_logits: [b, 1] logits of D on generated images of this replica.
        anchor_real: float scalar α_R, moving average of D's mean logit on real images.
        anchor_fake: float scalar α_F, moving average of D's mean logit on generated images.
        global_batch_size: batch size summed over all replicas.

    Returns:
        scalar float32, this replica's share of the global mean; the caller adds `weight * penalty` to
        D's loss.
    """
    anchor_real = tf.stop_gradient(tf.cast(anchor_real, tf.float32))
    anchor_fake = tf.stop_gradient(tf.cast(anchor_fake, tf.float32))
    real_term = tf.square(tf.nn.relu(_flat_float32(real_logits) - anchor_fake))        # [b]
    fake_term = tf.square(tf.nn.relu(anchor_real - _flat_float32(fake_logits)))        # [b]
    return _mean(real_term, global_batch_size) + _mean(fake_term, global_batch_size)


class LeCamAnchors(tf.Module):
    """The LeCam anchors α_R and α_F: moving averages of D's mean logit on real and generated images.

    Checkpointable (put it in the tf.train.Checkpoint) so a resumed run continues bitwise. The means
    are taken over the GLOBAL batch (an all-reduce across replicas), so every replica holds the same
    anchors and computes the same penalty rule. The first update sets the anchors to the first batch's
    means (no pull towards an arbitrary starting value); each later one moves them by (1 - decay).

    Distribution: build it inside `strategy.scope()`; the variables are then mirrored, and an update in
    replica context writes the first replica's value to every copy (all replicas compute the same
    value). Call `update` in replica context (inside `strategy.run`), or where there is no strategy.
    """

    def __init__(self, decay=0.99, name="lecam_anchors"):
        """
        Args:
            decay: weight of the old anchor per update, in [0, 1).
            name: the module's name.
        """
        super().__init__(name=name)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"LeCam anchor decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        first = tf.VariableAggregation.ONLY_FIRST_REPLICA    # identical values on every replica
        self.real = tf.Variable(0.0, dtype=tf.float32, trainable=False, aggregation=first, name="real")
        self.fake = tf.Variable(0.0, dtype=tf.float32, trainable=False, aggregation=first, name="fake")
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=first, name="updates")

    def update(self, real_logits, fake_logits):
        """Moves both anchors towards this step's global mean logits.

        Args:
            real_logits: [b, 1] this replica's logits on real images.
            fake_logits: [b, 1] this replica's logits on generated images.

        Returns:
            (anchor_real, anchor_fake): float32 scalars, the updated anchors, identical on every
            replica; pass them to `lecam_penalty` (rather than reading the variables back).
        """
        context = tf.distribute.get_replica_context()
        if context is None:
            raise ValueError("LeCamAnchors.update runs in replica context: call it inside strategy.run")
        real = tf.stop_gradient(_flat_float32(real_logits))                               # [b]
        fake = tf.stop_gradient(_flat_float32(fake_logits))                               # [b]
        count = tf.cast(tf.size(real), tf.float32)
        # One all-reduce: sums and counts of both halves over the global batch.
        totals = context.all_reduce("SUM", tf.stack([tf.reduce_sum(real), count,
                                                     tf.reduce_sum(fake), tf.cast(tf.size(fake), tf.float32)]))
        mean_real, mean_fake = totals[0] / totals[1], totals[2] / totals[3]
        decay = tf.where(self.updates > 0, self.decay, 0.0)
        anchor_real = decay * self.real + (1.0 - decay) * mean_real
        anchor_fake = decay * self.fake + (1.0 - decay) * mean_fake
        self.real.assign(anchor_real)
        self.fake.assign(anchor_fake)
        self.updates.assign_add(1)
        return anchor_real, anchor_fake
