import numpy as np
import pytest
import tensorflow as tf

from cgan.inputs import input_pipeline
from cgan.core.errors import UserError


def _data(n=10):
    images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    return images, np.arange(n, dtype=np.int32) % 3


def _take(dataset, steps):
    return [(im.numpy(), lb.numpy()) for im, lb in dataset.take(steps)]


def _example_ids(batch_images):
    return np.rint((batch_images[:, 0, 0, 0] + 1) * 127.5).astype(int)


def test_batches_are_normalised_and_fixed_size():
    images, labels = _data()
    (batch, batch_labels), = _take(input_pipeline.train_dataset(images, labels, 4, seed=0), 1)
    assert batch.shape == (4, 4, 4, 3) and batch.dtype == np.float32
    assert batch_labels.shape == (4,) and batch_labels.dtype == np.int32
    assert batch.min() >= -1.0 and batch.max() <= 1.0
    np.testing.assert_array_equal(batch_labels, _example_ids(batch) % 3)  # labels stay with images


def test_every_epoch_is_a_permutation_and_epochs_differ():
    images, labels = _data(10)
    batches = _take(input_pipeline.train_dataset(images, labels, 5, seed=3), 4)
    ids = np.concatenate([_example_ids(b) for b, _ in batches])
    epoch0, epoch1 = ids[:10], ids[10:]
    assert sorted(epoch0) == list(range(10)) and sorted(epoch1) == list(range(10))
    assert list(epoch0) != list(epoch1)


def test_same_seed_same_stream_other_seed_differs():
    images, labels = _data(10)
    a = _take(input_pipeline.train_dataset(images, labels, 5, seed=1), 3)
    b = _take(input_pipeline.train_dataset(images, labels, 5, seed=1), 3)
    c = _take(input_pipeline.train_dataset(images, labels, 5, seed=2), 3)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_resuming_at_a_step_continues_the_same_stream():
    images, labels = _data(7)  # batches straddle epochs
    straight = _take(input_pipeline.train_dataset(images, labels, 3, seed=0), 6)
    resumed = _take(input_pipeline.train_dataset(images, labels, 3, seed=0, start_step=4), 2)
    for (a, la), (b, lb) in zip(straight[4:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)


def test_workers_split_the_same_global_batches():
    images, labels = _data(10)
    whole = _take(input_pipeline.train_dataset(images, labels, 4, seed=0), 2)
    parts = [_take(input_pipeline.train_dataset(images, labels, 4, seed=0, num_workers=2, worker_index=w), 2)
             for w in range(2)]
    for step in range(2):
        joined = np.concatenate([parts[0][step][0], parts[1][step][0]])
        np.testing.assert_array_equal(joined, whole[step][0])


def test_batch_not_divisible_by_workers_is_a_user_error():
    images, labels = _data()
    with pytest.raises(UserError, match="multiple of 2"):
        input_pipeline.train_dataset(images, labels, 5, seed=0, num_workers=2)


def test_normalise_range():
    values = input_pipeline.normalise(tf.constant([0, 255], tf.uint8)).numpy()
    np.testing.assert_allclose(values, [-1.0, 1.0])


def _imbalanced(counts=(80, 15, 5)):
    """Classes 0, 1, 2 with 80, 15 and 5 examples, interleaved; image i carries its id i."""
    labels = np.concatenate([np.full(n, c, np.int32) for c, n in enumerate(counts)])
    labels = labels[np.random.default_rng(0).permutation(len(labels))]
    images = np.arange(len(labels), dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    return images, labels


def _balanced_stream(images, labels, batch, steps, seed=0, **kwargs):
    batches = _take(input_pipeline.train_dataset(images, labels, batch, seed=seed, balanced=True, **kwargs), steps)
    ids = np.concatenate([_example_ids(b) for b, _ in batches])
    drawn_labels = np.concatenate([lb for _, lb in batches])
    return ids, drawn_labels


def test_balanced_draws_every_class_equally_often():
    images, labels = _imbalanced()
    ids, drawn = _balanced_stream(images, labels, batch=8, steps=75)    # 600 draws, 200 rounds
    np.testing.assert_array_equal(drawn, labels[ids])                     # labels stay with images
    frequencies = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(frequencies, [1 / 3] * 3, atol=0.02)
    unbalanced = np.concatenate([lb for _, lb in _take(input_pipeline.train_dataset(images, labels, 8, seed=0), 75)])
    assert np.bincount(unbalanced, minlength=3)[2] / len(unbalanced) < 0.1  # the default keeps the split's mix


def test_balanced_walks_each_class_in_passes_over_all_its_examples():
    images, labels = _imbalanced()
    ids, drawn = _balanced_stream(images, labels, batch=6, steps=50)    # 100 draws of each class
    for c, size in ((1, 15), (2, 5)):
        sequence = ids[drawn == c]
        passes = sequence[:len(sequence) // size * size].reshape(-1, size)
        for one_pass in passes:  # every example once per pass
            assert sorted(one_pass) == sorted(np.flatnonzero(labels == c))
        assert len({tuple(p) for p in passes}) > 1                        # passes are reshuffled


def test_balanced_each_round_holds_every_class_in_a_shuffled_order():
    images, labels = _imbalanced()
    _, drawn = _balanced_stream(images, labels, batch=3, steps=20)
    rounds = drawn.reshape(-1, 3)
    assert all(sorted(r) == [0, 1, 2] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1


def test_balanced_resume_seed_and_workers():
    images, labels = _imbalanced()
    straight = _take(input_pipeline.train_dataset(images, labels, 4, seed=5, balanced=True), 6)
    resumed = _take(input_pipeline.train_dataset(images, labels, 4, seed=5, start_step=4, balanced=True), 2)
    for (a, la), (b, lb) in zip(straight[4:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    other = _take(input_pipeline.train_dataset(images, labels, 4, seed=6, balanced=True), 6)
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(straight, other))
    parts = [_take(input_pipeline.train_dataset(images, labels, 4, seed=5, num_workers=2, worker_index=w,
                                                balanced=True), 2) for w in range(2)]
    for step in range(2):
        np.testing.assert_array_equal(np.concatenate([parts[0][step][0], parts[1][step][0]]), straight[step][0])
        np.testing.assert_array_equal(np.concatenate([parts[0][step][1], parts[1][step][1]]), straight[step][1])


def test_balanced_with_missing_label_values_and_a_single_example_class():
    labels = np.array([0, 0, 0, 4, 4, 7], np.int32)                      # classes 0, 4, 7 present
    images = np.arange(6, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    ids, drawn = _balanced_stream(images, labels, batch=3, steps=10)
    np.testing.assert_array_equal(drawn, labels[ids])
    assert sorted(set(drawn)) == [0, 4, 7] and np.all(np.bincount(drawn)[[0, 4, 7]] == 10)
    assert np.all(ids[drawn == 7] == 5)


def test_balanced_with_one_class_is_the_class_walked_in_passes():
    images, _ = _data(6)
    labels = np.zeros(6, np.int32)
    ids, _ = _balanced_stream(images, labels, batch=3, steps=4)
    assert sorted(ids[:6]) == list(range(6)) and sorted(ids[6:]) == list(range(6))


def test_choose_input_at_the_memory_budget():
    three_mib = (256, (64, 64, 3))                                        # 256 × 12,288 bytes = 3 MiB exactly
    assert input_pipeline.choose_input("auto", *three_mib, memory_budget_mib=3) == "memory"
    assert input_pipeline.choose_input("auto", *three_mib, memory_budget_mib=2) == "stream"
    assert input_pipeline.choose_input("auto", 257, (64, 64, 3), memory_budget_mib=3) == "stream"
    assert input_pipeline.choose_input("memory", *three_mib, memory_budget_mib=0) == "memory"
    assert input_pipeline.choose_input("stream", *three_mib, memory_budget_mib=1 << 30) == "stream"
    with pytest.raises(ValueError, match="'disk'"):
        input_pipeline.choose_input("disk", *three_mib, memory_budget_mib=3)


def _square_symmetries(image):
    """The 8 symmetries of a square image [R, R, C], as numpy computes them."""
    rotations = [np.rot90(image, k) for k in range(4)]
    return rotations + [np.fliplr(r) for r in rotations]


def test_the_eight_choices_are_the_eight_symmetries_of_the_square():
    image = np.arange(5 * 5 * 2, dtype=np.int32).reshape(5, 5, 2)         # no symmetry of its own
    shown = input_pipeline.apply_symmetries(tf.constant(np.repeat(image[None], 8, axis=0)),
                                            tf.range(8, dtype=tf.int32)).numpy()
    expected = _square_symmetries(image)
    assert len({s.tobytes() for s in shown}) == 8
    assert {s.tobytes() for s in shown} == {e.tobytes() for e in expected}
    np.testing.assert_array_equal(shown[0], image)
    np.testing.assert_array_equal(shown[1], image[:, ::-1])                # bit 0: left-right
    np.testing.assert_array_equal(shown[2], image[::-1])                   # bit 1: up-down


def test_flip_draws_only_flips_and_flip_rot90_draws_all_eight_uniformly():
    flips = input_pipeline.symmetry_choices(0, 4000, 0, "flip").numpy()
    everything = input_pipeline.symmetry_choices(0, 4000, 0, "flip_rot90").numpy()
    assert set(flips) == {0, 1, 2, 3} and set(everything) == set(range(8))
    assert np.bincount(everything, minlength=8).min() > 400                # about 500 each
    assert not input_pipeline.symmetry_choices(0, 50, 0, "none").numpy().any()
    assert not np.array_equal(everything[:50], input_pipeline.symmetry_choices(50, 50, 0, "flip_rot90").numpy())
    with pytest.raises(ValueError, match="mirror"):
        input_pipeline.symmetry_choices(0, 4, 0, "rotate")


def _asymmetric_data(n=6):
    """n 4×4 images whose pixel values say which image and which pixel they are: no two views alike."""
    images = (np.arange(n)[:, None, None, None] * 16 + np.arange(16).reshape(1, 4, 4, 1)) * np.ones((1, 1, 1, 3))
    return images.astype(np.uint8), np.arange(n, dtype=np.int32) % 3


@pytest.mark.parametrize("mirror", ["flip", "flip_rot90"])
def test_mirrored_batches_show_the_same_images_in_symmetries_and_resume_and_split_exactly(mirror):
    images, labels = _asymmetric_data()
    plain = _take(input_pipeline.train_dataset(images, labels, 4, seed=0), 6)
    mirrored = _take(input_pipeline.train_dataset(images, labels, 4, seed=0, mirror=mirror), 6)
    allowed = 4 if mirror == "flip" else 8
    moved = 0
    for (a, la), (b, lb) in zip(plain, mirrored):
        np.testing.assert_array_equal(la, lb)                              # same order, same labels
        for x, y in zip(a, b):
            views = [v.tobytes() for v in _square_symmetries(x)]
            assert y.tobytes() in views
            assert views.index(y.tobytes()) in ((0, 2, 4, 6) if allowed == 4 else range(8))  # flips: rot 0/180 ± lr
            moved += y.tobytes() != x.tobytes()
    assert moved > 12                                                      # most of the 24 images are moved
    resumed = _take(input_pipeline.train_dataset(images, labels, 4, seed=0, start_step=3, mirror=mirror), 3)
    for (a, _), (b, _) in zip(mirrored[3:], resumed):
        np.testing.assert_array_equal(a, b)
    parts = [_take(input_pipeline.train_dataset(images, labels, 4, seed=0, num_workers=2, worker_index=w,
                                                mirror=mirror), 6) for w in range(2)]
    for step in range(6):
        np.testing.assert_array_equal(np.concatenate([parts[0][step][0], parts[1][step][0]]), mirrored[step][0])


def _pack_stream(images, labels, batch, steps, pack=2, **kwargs):
    return _take(input_pipeline.train_dataset(images, labels, batch, seed=0, pack=pack, **kwargs), steps)


@pytest.mark.parametrize("pack", [2, 4])
def test_pack_partners_are_other_examples_of_the_drawn_class_and_a_lone_example_packs_with_itself(pack):
    labels = np.array([0, 0, 0, 4, 4, 7, 0, 4, 0, 0, 4], np.int32)      # class 7 has one example, class 4 four
    first = tf.constant(np.repeat(np.arange(len(labels)), 50), tf.int64)
    drawn = []
    for position in range(0, len(labels) * 50, 50):                      # several draws of the same indices
        drawn.append(input_pipeline.pack_partners(first[position:position + 50], tf.constant(position, tf.int64),
                                                  labels, seed=3, pack=pack).numpy().reshape(-1, pack))
    packs = np.concatenate(drawn)
    np.testing.assert_array_equal(packs[:, 0], first.numpy())
    assert np.all(labels[packs] == labels[packs[:, :1]])                # one class per pack
    lone = packs[:, 0] == 5
    assert np.all(packs[lone] == 5)
    assert all(len(set(row)) == pack for row in packs[~lone])           # classes of ≥ pack examples: all distinct
    for index in (0, 3):                                                   # every other member of the class drawn
        others = set(np.flatnonzero(labels == labels[index])) - {index}
        assert set(packs[packs[:, 0] == index, 1:].ravel()) == others
    again = input_pipeline.pack_partners(first[:50], tf.constant(0, tf.int64), labels, seed=3, pack=pack).numpy()
    np.testing.assert_array_equal(again.reshape(-1, pack), drawn[0])
    other_seed = input_pipeline.pack_partners(first[:50], tf.constant(0, tf.int64), labels, seed=4, pack=pack)
    assert not np.array_equal(other_seed.numpy().reshape(-1, pack), drawn[0])


def test_a_pack_of_two_s_partner_is_the_first_partner_of_a_pack_of_four():
    """Packs of 4 extend packs of 2: the same first partner, so a pack of 2 is drawn as before."""
    labels = np.array([0, 0, 0, 4, 4, 0, 4, 0, 0, 4], np.int32)
    first = tf.constant(np.arange(10).repeat(5), tf.int64)
    two = input_pipeline.pack_partners(first, tf.constant(7, tf.int64), labels, seed=1, pack=2).numpy()
    four = input_pipeline.pack_partners(first, tf.constant(7, tf.int64), labels, seed=1, pack=4).numpy()
    np.testing.assert_array_equal(two.reshape(-1, 2), four.reshape(-1, 4)[:, :2])


@pytest.mark.parametrize("balanced,pack", [(False, 2), (True, 2), (True, 4)])
def test_packed_batches_hold_adjacent_same_class_packs_and_resume_and_split_exactly(balanced, pack):
    images, labels = _data(12)
    batch_size = 2 * pack
    straight = _pack_stream(images, labels, batch_size, 8, pack, balanced=balanced, mirror="flip")
    firsts = []
    for batch, batch_labels in straight:
        assert batch.shape == (batch_size, 4, 4, 3)
        ids = _example_ids(batch)           # (constant images: a symmetry leaves them)
        np.testing.assert_array_equal(batch_labels, ids % 3)
        for j in range(1, pack):
            np.testing.assert_array_equal(batch_labels[0::pack], batch_labels[j::pack])
        assert all(len(set(ids[i:i + pack])) == pack for i in range(0, batch_size, pack))
        firsts.extend(ids[0::pack])
    if not balanced:                                                       # two draws per step: an epoch
        assert sorted(firsts[:12]) == list(range(12))                      # of first members in 6 steps
    resumed = _pack_stream(images, labels, batch_size, 3, pack, balanced=balanced, mirror="flip", start_step=5)
    for (a, la), (b, lb) in zip(straight[5:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    parts = [_pack_stream(images, labels, batch_size, 8, pack, balanced=balanced, mirror="flip", num_workers=2,
                          worker_index=w) for w in range(2)]
    for step in range(8):
        np.testing.assert_array_equal(np.concatenate([parts[0][step][0], parts[1][step][0]]), straight[step][0])


@pytest.mark.parametrize("pack,batch,message", [(2, 6, "--pack=2 needs whole packs on every worker, not a batch of 3"),
                                                (4, 12, "--pack=4 needs whole packs .* use --batch_size a multiple of 8")])
def test_packs_must_fit_whole_in_every_worker_s_batch(pack, batch, message):
    images, labels = _data()
    with pytest.raises(UserError, match=message):
        input_pipeline.train_dataset(images, labels, batch, seed=0, num_workers=2, pack=pack)
