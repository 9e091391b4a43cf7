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
