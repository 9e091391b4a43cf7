"""Adaptive augmentation strength (StyleGAN2-ADA: Karras et al., 2020): p rises while D overfits.

    with strategy.scope():                                    # the scope the networks were built in
        controller = ada.AdaptiveAugment(target=0.6, interval=4, speed_images=20_000)
    checkpoint = tf.train.Checkpoint(ada=controller, ...)     # p and the accumulators resume exactly

    # in the replica step (inside strategy.run):
    seen = augment.diff_augment(images, params, policy, strength=controller.p)   # params: adaptive=True
    real_logits = discriminator([seen, labels], training=True)                    # [b, 1]
    controller.accumulate(real_logits)
    # in the multi-step loop after the step counter has moved (cross-replica context):
    controller.update(step)                                   # acts when step % interval == 0
    metrics.update(controller.metrics())                      # {"ada_p": p, "ada_rt": r_t}

The overfitting heuristic r_t = E[sign(D(x))] over the real images D saw since the last update is near
0 while D cannot tell its training images from others, near 1 once it has memorised them. Every
`interval` steps p ← clip(p + sign(r_t − target) · N / speed_images, 0, 1), N the real images of the
interval, so p travels from 0 to 1 in no fewer than `speed_images` images whatever the batch size and
interval (StyleGAN2-ADA: 500k images, target 0.6, interval 4; a short run needs fewer for p to move).
p starts at 0 and is each DiffAugment op's probability per image (cgan.training.augment), for real and
generated images in both updates. Distribution: the accumulators sum over the GLOBAL batch (an
all-reduce in `accumulate`), so every replica holds the same state; the variables are mirrored with
ONLY_FIRST_REPLICA aggregation, so `update` may run in cross-replica or replica context. Sums of signs
and counts are whole numbers, exact in float32 (up to 2^24 images per interval), so they do not depend
on the order of the reduction.
"""

import tensorflow as tf

_ONLY_FIRST = tf.VariableAggregation.ONLY_FIRST_REPLICA   # identical values on every replica


def _state(name, value=0.0):
    return tf.Variable(value, dtype=tf.float32, trainable=False, aggregation=_ONLY_FIRST, name=name)


class AdaptiveAugment(tf.Module):
    """The ADA controller's state: p, and sign(D(real)) accumulated since its last update."""

    def __init__(self, target=0.6, interval=4, speed_images=500_000, name="adaptive_augment"):
        """
        Args:
            target: the r_t that p is tuned to hold, in (0, 1).
            interval: steps between two updates of p, >= 1.
            speed_images: images over which p may travel from 0 to 1, > 0.
            name: the module's name.
        """
        super().__init__(name=name)
        if not 0.0 < target < 1.0:
            raise ValueError(f"ADA target must be in (0, 1), got {target}")
        if int(interval) != interval or interval < 1:
            raise ValueError(f"ADA interval must be a whole number of steps >= 1, got {interval}")
        if not speed_images > 0:
            raise ValueError(f"ADA speed must be a positive number of images, got {speed_images}")
        self.target = float(target)
        self.interval = int(interval)
        self.speed_images = float(speed_images)
        self.p = _state("p")                      # augmentation probability, in [0, 1]
        self.sign_sum = _state("sign_sum")        # Σ sign(D(real)) since the last update
        self.count = _state("count")              # real images since the last update
        self.rt = _state("rt")                    # r_t of the last update (0 before the first)

    def accumulate(self, real_logits):
        """Adds this step's sign(D(real)) over the global batch to the accumulators.

        Call it once per step in replica context (inside strategy.run) on every replica, or where
        there is no strategy.

        Args:
            real_logits: [b, 1] D's logits on this replica's (augmented) real images.
        """
        context = tf.distribute.get_replica_context()
        if context is None:
            raise ValueError("AdaptiveAugment.accumulate runs in replica context: call it inside strategy.run")
        logits = tf.stop_gradient(tf.cast(tf.reshape(real_logits, [-1]), tf.float32))      # [b]
        local = tf.stack([tf.reduce_sum(tf.sign(logits)), tf.cast(tf.size(logits), tf.float32)])   # [2]
        sign_sum, count = tf.unstack(context.all_reduce("SUM", local))
        self.sign_sum.assign_add(sign_sum)
        self.count.assign_add(count)

    def update(self, step):
        """Adjusts p and clears the accumulators when `step` ends an interval; otherwise changes nothing.

        Args:
            step: int scalar (Python or tensor), the number of steps done, counting the one just
                accumulated; p moves when step % interval == 0 and images were accumulated.

        Returns:
            bool scalar tensor, whether p was adjusted.
        """
        due = tf.logical_and(tf.equal(tf.cast(step, tf.int64) % self.interval, 0), self.count > 0)
        rt = self.sign_sum / tf.maximum(self.count, 1.0)
        moved = tf.clip_by_value(self.p + tf.sign(rt - self.target) * self.count / self.speed_images, 0.0, 1.0)
        # Branch-free: the same ops every step, selected by `due`, in either distribution context.
        self.p.assign(tf.where(due, moved, self.p))
        self.rt.assign(tf.where(due, rt, self.rt))
        self.sign_sum.assign(tf.where(due, 0.0, self.sign_sum))
        self.count.assign(tf.where(due, 0.0, self.count))
        return due

    def metrics(self):
        """{"ada_p": p, "ada_rt": r_t of the last update}: float32 scalars for TensorBoard."""
        return {"ada_p": tf.convert_to_tensor(self.p), "ada_rt": tf.convert_to_tensor(self.rt)}
