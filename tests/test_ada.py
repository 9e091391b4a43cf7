import textwrap

import numpy as np
import pytest
import tensorflow as tf

from cgan.training import ada, augment
from conftest import run_script


def _logits(signs):
    """[n, 1] logits with the given signs (and magnitudes that must not matter)."""
    return tf.constant([[s * (1.0 + 3.0 * i)] for i, s in enumerate(signs)], tf.float32)


def _state(controller):
    return [v.numpy() for v in (controller.p, controller.sign_sum, controller.count, controller.rt)]


def test_starts_at_zero_and_accumulates_signs_and_images():
    controller = ada.AdaptiveAugment(target=0.6, interval=4, speed_images=1000)
    assert _state(controller) == [0.0, 0.0, 0.0, 0.0]
    controller.accumulate(_logits([1, 1, -1, 1]))
    controller.accumulate(tf.constant([[0.0], [2.5]]))                   # sign(0) = 0
    assert _state(controller) == [0.0, 3.0, 6.0, 0.0]


def test_p_rises_when_rt_is_above_the_target_by_images_over_speed():
    controller = ada.AdaptiveAugment(target=0.6, interval=2, speed_images=1000)
    for step in (1, 2):
        controller.accumulate(_logits([1] * 8))                          # r_t = 1 > 0.6
        assert bool(controller.update(step)) == (step == 2)
    assert controller.p.numpy() == np.float32(16 / 1000)                 # 16 images in the interval
    assert controller.rt.numpy() == 1.0
    assert controller.sign_sum.numpy() == 0.0 and controller.count.numpy() == 0.0
    for step in (3, 4):
        controller.accumulate(_logits([1, 1, 1, -1, 1, 1, 1, 1]))        # r_t = 0.75 > 0.6
        controller.update(step)
    assert controller.p.numpy() == np.float32(np.float32(16 / 1000) + np.float32(16 / 1000))
    assert controller.rt.numpy() == 0.75


def test_p_falls_when_rt_is_below_the_target_and_stays_in_0_1():
    controller = ada.AdaptiveAugment(target=0.6, interval=1, speed_images=10)
    controller.p.assign(0.5)
    controller.accumulate(_logits([1, -1, 1, -1]))                       # r_t = 0 < 0.6
    controller.update(7)
    assert controller.p.numpy() == np.float32(0.5) - np.float32(0.4)
    controller.accumulate(_logits([1, -1, 1, -1]))
    controller.update(8)
    assert controller.p.numpy() == 0.0                                   # 0.1 - 0.4, clipped
    for step in range(9, 13):
        controller.accumulate(_logits([1, 1, 1, 1]))
        controller.update(step)
    assert controller.p.numpy() == 1.0                                   # 0 + 4 · 0.4, clipped


def test_p_holds_when_rt_equals_the_target():
    controller = ada.AdaptiveAugment(target=0.5, interval=1, speed_images=10)
    controller.p.assign(0.25)
    controller.accumulate(_logits([1, 1, 1, -1]))                        # r_t = 0.5 exactly
    assert bool(controller.update(1))
    assert controller.p.numpy() == 0.25 and controller.rt.numpy() == 0.5


def test_only_every_interval_steps():
    controller = ada.AdaptiveAugment(target=0.6, interval=3, speed_images=100)
    adjusted = []
    for step in range(1, 10):
        controller.accumulate(_logits([1, 1]))
        adjusted.append(bool(controller.update(step)))
        if step % 3:                                                     # between updates: accumulate only
            assert controller.count.numpy() == 2 * (step % 3)
    assert adjusted == [False, False, True] * 3
    three_moves = np.float32(0.06) + np.float32(0.06) + np.float32(0.06)   # 6 images / 100 each, float32
    assert controller.p.numpy() == three_moves
    assert not controller.update(12)                                     # nothing accumulated: nothing moves
    assert controller.p.numpy() == three_moves and controller.rt.numpy() == 1.0


def _run(controller, logits, steps):
    """The trainer's order, eagerly: accumulate during a step, then update with the new step count."""
    for step in steps:
        controller.accumulate(tf.constant(logits[step - 1]))
        controller.update(tf.constant(step, tf.int64))


def test_exact_resume_through_a_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(0.6, 1.0, size=(40, 6, 1)).astype(np.float32)   # r_t mostly above the target
    straight = ada.AdaptiveAugment(target=0.3, interval=4, speed_images=200)
    step_fn = tf.function(lambda step, batch: (straight.accumulate(batch), straight.update(step)))
    for step in range(1, 41):
        step_fn(tf.constant(step, tf.int64), tf.constant(logits[step - 1]))
    expected = _state(straight)

    first = ada.AdaptiveAugment(target=0.3, interval=4, speed_images=200)
    _run(first, logits, range(1, 19))                                     # stop mid-interval (18 % 4 = 2)
    path = tf.train.Checkpoint(ada=first).write(str(tmp_path / "ckpt"))
    _run(first, logits, range(19, 25))                                    # keep going, then abandon
    resumed = ada.AdaptiveAugment(target=0.3, interval=4, speed_images=200)
    tf.train.Checkpoint(ada=resumed).read(path).assert_consumed()
    assert resumed.count.numpy() == 12                                  # two steps into an interval
    _run(resumed, logits, range(19, 41))
    assert _state(resumed) == expected                                   # bitwise
    assert expected[0] == np.float32(1) - np.float32(24 / 200)           # p rose to 1 and came back


def test_inside_strategy_run_with_one_replica_and_the_metrics():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        controller = ada.AdaptiveAugment(target=0.6, interval=2, speed_images=40)

    @tf.function
    def steps(logits):
        for step in range(1, 3):
            strategy.run(controller.accumulate, args=(logits,))          # replica context
            controller.update(step)                                      # cross-replica context
        strategy.run(controller.accumulate, args=(logits,))
        strategy.run(controller.update, args=(4,))                       # replica context works too
        return controller.metrics()

    metrics = steps(_logits([1, 1, 1, 1]))
    assert metrics["ada_p"].numpy() == np.float32(8 / 40) + np.float32(4 / 40)   # two intervals: 8, 4 images
    assert metrics["ada_rt"].numpy() == 1.0
    with strategy.scope():
        with pytest.raises(ValueError, match="strategy.run"):
            controller.accumulate(_logits([1]))


def test_p_drives_the_augmentation():
    controller = ada.AdaptiveAugment()
    images = tf.random.stateless_uniform([8, 8, 8, 3], seed=[0, 0], minval=-1.0, maxval=1.0)
    params = augment.random_params(tf.random.Generator.from_seed(0), 8, adaptive=True)
    policy = "color,translation,cutout"
    out = augment.diff_augment(images, params, policy, strength=controller.p)
    np.testing.assert_array_equal(out.numpy(), images.numpy())            # p starts at 0
    controller.p.assign(1.0)
    out = augment.diff_augment(images, params, policy, strength=controller.p)
    np.testing.assert_array_equal(out.numpy(), augment.diff_augment(images, params, policy).numpy())


@pytest.mark.parametrize("kwargs,match", [({"target": 1.0}, "target"), ({"interval": 0}, "interval"),
                                          ({"interval": 2.5}, "interval"), ({"speed_images": 0}, "speed")])
def test_bad_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ada.AdaptiveAugment(**kwargs)


_TWO_REPLICAS = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from cgan.training import ada

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        controller = ada.AdaptiveAugment(target=0.6, interval=2, speed_images=64)

    def replica_accumulate(logits):               # each replica sees its own half of the global batch
        rows = tf.distribute.get_replica_context().replica_id_in_sync_group * 4
        controller.accumulate(logits[rows:rows + 4])

    @tf.function
    def steps(logits, in_replica):                # logits [3, 8, 1]: three steps of a global batch of 8
        for i in range(3):
            strategy.run(replica_accumulate, args=(logits[i],))
            if in_replica:
                strategy.run(controller.update, args=(i + 1,))
            else:
                controller.update(i + 1)

    # Replica 0 sees only positive logits, replica 1 mostly negative: the global r_t is what counts.
    logits = np.array([[1, 2, 3, 4, -1, -2, -3, 5]] * 3, np.float32)[..., None]   # global r_t = 2/8
    for in_replica in (False, True):
        steps(tf.constant(logits), in_replica)
        copies = [[c.numpy() for c in v.values] for v in (controller.p, controller.sign_sum, controller.count,
                                                          controller.rt)]
        assert all(len(c) == 2 and c[0] == c[1] for c in copies), copies
        assert copies[3][0] == 0.25, copies          # a local r_t would be 1 on replica 0
        assert copies[1][0] == 2.0 and copies[2][0] == 8.0, copies   # step 3 accumulated, not yet used
    assert copies[0][0] == 0.0, copies               # r_t below the target: p stays at 0
    controller.p.assign(0.5)
    steps(tf.constant(np.abs(logits)), False)        # step 2 ends an interval of 24 images, r_t = 18/24
    assert [c.numpy() for c in controller.p.values] == [0.5 + 24 / 64] * 2
    assert [c.numpy() for c in controller.rt.values] == [0.75] * 2
    print("OK")
""")


@pytest.mark.slow
def test_state_is_global_and_identical_on_two_replicas():
    assert run_script(_TWO_REPLICAS).startswith("OK")
