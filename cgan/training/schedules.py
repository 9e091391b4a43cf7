"""Schedules over training steps.

    strength = schedules.class_strength(step, start=2000, end=4000)   # Python int -> float
    strength = schedules.class_strength(self.step, 2000, 4000)        # int64 tensor -> float32 tensor

`class_strength` is the transition of Shahbazi et al. (2022), "Collapse by conditioning": training
starts unconditional (the class input weighted by 0) and moves to conditional training by a linear
ramp of the weight λ from 0 at `start` to 1 at `end` (their `t_start_kimg` and `t_end_kimg`, here in
steps). With start == end the switch is a step: 0 before `start`, 1 from `start` on.
"""

import numbers

import tensorflow as tf


def class_strength(step, start, end):
    """The weight λ of the class condition at a step: 0 before start, linear to 1 at end, 1 after.

    Args:
        step: the step, a Python int or an integer tensor / tf.Variable (e.g. the trainer's int64 step,
            inside a tf.function).
        start: first step of the ramp (λ = 0 there), a Python int >= 0.
        end: step at which λ reaches 1, a Python int >= start.

    Returns:
        a Python float for a Python step, else a float32 scalar tensor; in [0, 1].
    """
    if int(start) != start or int(end) != end or not 0 <= start <= end:
        raise ValueError(f"the transition needs whole steps 0 <= start <= end, got start={start}, end={end}")
    if isinstance(step, numbers.Integral):
        if step >= end:          # with start == end, the step switch
            return 1.0
        return 0.0 if step <= start else (step - start) / (end - start)
    step = tf.cast(step, tf.int64)
    # The offset is exact in int64; float64 holds it exactly up to 2^53 steps before the float32 result.
    ramp = tf.cast(step - start, tf.float64) / max(end - start, 1)
    strength = tf.where(step >= end, tf.constant(1.0, tf.float64), tf.clip_by_value(ramp, 0.0, 1.0))
    return tf.cast(strength, tf.float32)
