"""Training input: a prepared TFDS split held in memory, shuffled each epoch, in global batches.

    builder = datasets.prepare_dataset(config)                      # cgan.datasets
    images, labels = input_pipeline.load_split(builder, "train")    # [N, R, R, 3] uint8, [N] int32
    dataset = input_pipeline.train_dataset(images, labels, global_batch_size=16, seed=0, start_step=0)
    for images, labels in dataset: ...                               # [16, R, R, 3] float32 in [-1, 1], [16] int32

Why in memory: the decoded uint8 split is small (ISIC at 64×64: 2,239 × 12 KiB = 27 MiB; at 256×256:
440 MiB), so decoding happens once and each step only gathers.

Why no shuffle buffer: the stream is a pure function of (seed, position). Example number p of the
infinite stream is `permutation(seed, epoch = p // N)[p % N]`, a full reshuffle every epoch computed
by `index_shuffle`. A run that resumes at step s starts the stream at position s · global_batch_size
and sees exactly the batches an uninterrupted run would have seen, without storing any iterator state
(a shuffle buffer in the checkpoint would cost up to the whole dataset per checkpoint).

Multi-worker: every worker builds the same global batches and keeps its own slice of each, so the
data a step sees does not depend on how many workers share it.
"""

import numpy as np
import tensorflow as tf

from cgan.errors import UserError

_INDEX_SHUFFLE_ROUNDS = 4


def load_split(builder, split):
    """Decodes a whole split of a prepared TFDS builder into memory.

    Args:
        builder: a prepared `tfds.core.DatasetBuilder` with features `image` and `label`.
        split: split name, e.g. "train".

    Returns:
        (images [N, R, R, 3] uint8, labels [N] int32) as numpy arrays, in the split's stored order.
    """
    if split not in builder.info.splits:
        raise UserError(f"dataset {builder.info.full_name} has no split '{split}'; it has "
                        f"{sorted(builder.info.splits.keys())}")
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    dataset = dataset.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    images, labels = [], []
    for image_batch, label_batch in dataset.batch(1024).as_numpy_iterator():
        images.append(image_batch)
        labels.append(label_batch)
    if not images:
        raise UserError(f"split '{split}' of {builder.info.full_name} is empty: rebuild the dataset "
                        f"from a folder with images in every class")
    return np.concatenate(images), np.concatenate(labels)


def normalise(images):
    """uint8 [0, 255] -> float32 [-1, 1], the generator's tanh range."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def shuffled_indices(positions, num_examples, seed):
    """Maps stream positions to example indices: a fresh permutation of the dataset per epoch.

    Args:
        positions: [B] int64 positions in the infinite stream.
        num_examples: N, the dataset size.
        seed: int, the run's seed.

    Returns:
        [B] int64 indices in [0, N).
    """
    epochs = positions // num_examples
    # RandomIndexShuffle takes one [3] seed per element, so a batch may straddle two epochs.
    seeds = tf.stack([tf.fill(tf.shape(positions), tf.constant(seed, tf.int64)), epochs,
                      tf.zeros_like(positions)], axis=1)                 # [B, 3]
    return tf.raw_ops.RandomIndexShuffle(index=positions % num_examples, seed=seeds,
                                         max_index=tf.constant(num_examples - 1, tf.int64),
                                         rounds=_INDEX_SHUFFLE_ROUNDS)


def train_dataset(images, labels, global_batch_size, seed, start_step=0, num_workers=1, worker_index=0):
    """The infinite, reshuffled, batched and normalised training stream.

    Args:
        images: [N, R, R, 3] uint8 array of the whole split.
        labels: [N] int32 array.
        global_batch_size: examples per step over all workers and replicas.
        seed: int; the same seed gives the same stream.
        start_step: first step this stream serves (resuming at step s skips s global batches).
        num_workers: workers sharing each global batch.
        worker_index: which slice of each global batch this worker keeps.

    Returns:
        tf.data.Dataset of (images [GB / num_workers, R, R, 3] float32 in [-1, 1],
        labels [GB / num_workers] int32), batches of a fixed size.
    """
    num_examples = len(images)
    if len(labels) != num_examples:
        raise ValueError(f"{num_examples} images but {len(labels)} labels")
    if global_batch_size % num_workers:
        raise UserError(f"--batch_size={global_batch_size} cannot be split over {num_workers} workers: "
                        f"use a multiple of {num_workers}")
    per_worker = global_batch_size // num_workers
    images = tf.constant(images)
    labels = tf.constant(labels, tf.int32)

    def gather(positions):                                               # [GB] int64
        positions = positions[worker_index * per_worker:(worker_index + 1) * per_worker]
        indices = shuffled_indices(positions, num_examples, seed)       # [GB / W]
        return normalise(tf.gather(images, indices)), tf.gather(labels, indices)

    start = int(start_step) * global_batch_size
    dataset = tf.data.Dataset.range(start, np.iinfo(np.int64).max)
    dataset = dataset.batch(global_batch_size, drop_remainder=True)
    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
