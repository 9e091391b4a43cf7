"""GAN losses on discriminator logits, reduced once for the whole global batch.

    per_replica_d_loss = losses.discriminator_loss(real_logits, fake_logits, global_batch_size)
    per_replica_g_loss = losses.generator_loss(fake_logits, global_batch_size)

Reduction rule (the only place it is stated): every loss is a sum over this replica's examples
divided by the GLOBAL batch size (`tf.nn.compute_average_loss`). Gradients of the replicas are then
summed by the optimizer's all-reduce, which gives the mean over the global batch whatever the number
of replicas. Summing the per-replica values (`strategy.reduce(SUM)`) gives the global mean loss.

The seed applied a sigmoid and binary cross-entropy; `sigmoid_cross_entropy_with_logits` is the same
function computed stably from logits. Logits are cast to float32 first, so mixed precision never
reaches a loss.
"""

import tensorflow as tf


def _bce(logits, target, global_batch_size):
    logits = tf.cast(tf.reshape(logits, [-1]), tf.float32)             # [B]
    per_example = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target),
                                                          logits=logits)
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def discriminator_loss(real_logits, fake_logits, global_batch_size):
    """BCE with real -> 1 and fake -> 0, summed over the two halves as the seed did.

    Args:
        real_logits: [B, 1] logits of D on real images of this replica.
        fake_logits: [B, 1] logits of D on generated images of this replica.
        global_batch_size: batch size summed over all replicas.

    Returns:
        scalar float32, this replica's share of the global mean loss.
    """
    return _bce(real_logits, 1.0, global_batch_size) + _bce(fake_logits, 0.0, global_batch_size)


def generator_loss(fake_logits, global_batch_size):
    """Non-saturating BCE: the generator wants D to call its images real (target 1).

    Args:
        fake_logits: [B, 1] logits of D on generated images of this replica.
        global_batch_size: batch size summed over all replicas.

    Returns:
        scalar float32, this replica's share of the global mean loss.
    """
    return _bce(fake_logits, 1.0, global_batch_size)


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
