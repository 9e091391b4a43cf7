import numpy as np
import pytest
import tensorflow as tf

from cgan import input_pipeline
from cgan.errors import UserError


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
