import numpy as np
import pytest
import tensorflow as tf

from cgan.training import schedules


def test_ramp_ends_and_middle_on_python_ints():
    values = [schedules.class_strength(step, 1000, 3000) for step in (0, 999, 1000, 1500, 2000, 2999, 3000, 10**6)]
    assert values == [0.0, 0.0, 0.0, 0.25, 0.5, 0.9995, 1.0, 1.0]
    assert all(isinstance(v, float) for v in values)


def test_equal_start_and_end_is_a_step_switch():
    assert [schedules.class_strength(step, 500, 500) for step in (0, 499, 500, 501)] == [0.0, 0.0, 1.0, 1.0]
    assert [schedules.class_strength(step, 0, 0) for step in (0, 7)] == [1.0, 1.0]   # conditional from the start


def test_int64_tensor_inside_a_tf_function_matches_python():
    step = tf.Variable(0, dtype=tf.int64)
    traced = []

    @tf.function
    def strength():
        traced.append(1)
        return schedules.class_strength(step, 1000, 3000), schedules.class_strength(step, 500, 500)

    for value in (0, 999, 1000, 1500, 2000, 2999, 3000, 2**40):
        step.assign(value)
        ramp, switch = strength()
        assert ramp.dtype == tf.float32 and ramp.shape == ()
        assert ramp.numpy() == np.float32(schedules.class_strength(value, 1000, 3000))
        assert switch.numpy() == schedules.class_strength(value, 500, 500)
    assert len(traced) == 1                                              # one graph for every step


def test_eager_tensor_step():
    assert schedules.class_strength(tf.constant(2000, tf.int64), 1000, 3000).numpy() == 0.5
    assert schedules.class_strength(tf.constant(5, tf.int32), 0, 10).numpy() == 0.5


@pytest.mark.parametrize("start,end", [(10, 5), (-1, 5), (1.5, 3)])
def test_bad_ranges_are_rejected(start, end):
    with pytest.raises(ValueError, match="start <= end"):
        schedules.class_strength(0, start, end)
