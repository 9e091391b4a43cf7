"""Training input: a prepared TFDS split, shuffled each epoch, in global batches; in memory or streamed.

    builder = datasets.prepare("isic_skin_cancer/real_64", data_dir, manual_dir)   # cgan.inputs.datasets
    train = input_pipeline.open_split(builder, "train", mode="auto", memory_budget_mib=2048)
    train.mode, train.num_examples, train.resolution               # "memory" or "stream", N, R
    dataset = train.dataset(global_batch_size=16, seed=0, start_step=0, balanced=False,
                            mirror="none", pack=1)                  # classes equal; symmetries; class packs
    for images, labels in dataset: ...                               # [16, R, R, 3] float32 in [-1, 1], [16] int32
    images, labels = input_pipeline.load_split(builder, "train")    # in memory alone: [N, R, R, 3] uint8, [N] int32

Two sources, one stream: `memory` decodes the split once into a uint8 array; `stream` reads and decodes each
batch's examples by index from the ArrayRecord copy (cgan.inputs.input_stream); `auto` streams when the decoded
split (N · R · R · 3 bytes) exceeds `memory_budget_mib`. Both share everything below: the same batches, bitwise.

No shuffle buffer: the stream is a pure function of (seed, position). Example p of the infinite stream
is `permutation(seed, epoch = p // N)[p % N]` (`index_shuffle`), so a run resuming at step s starts at
position s · global_batch_size and sees the batches an uninterrupted run would, with no iterator state
in the checkpoint. `balanced=True`: round r = p // C (C = classes present) holds every class once in
an order shuffled per round; the r-th draw of class c is `permutation(seed, c, epoch = r // N_c)[r % N_c]`,
so a rare class repeats its examples more often, never some more than others (streaming reads every
label once at start for this). `mirror` shows each real image as one of the square's 4 ("flip") or 8
("flip_rot90") symmetries, a stateless draw of (seed, the batch's first position), so it resumes exactly.
`pack=k` (--pack) draws GB / k examples, each followed by k − 1 other examples of its class (`pack_partners`).
Multi-worker: every worker keeps its slice of the same global batches. `poisson_dataset` (--dp_epsilon)
puts each example in step s's batch independently with probability q, a stateless draw of (seed, s).
"""

import numpy as np
import tensorflow as tf
from absl import logging

from cgan.inputs import input_stream
from cgan.core.config import INPUT_MODES, MIRRORS
from cgan.core.errors import UserError

_INDEX_SHUFFLE_ROUNDS = 4
_MIRROR_SALT = 0x6d6972726f72  # the symmetry draws' stream, apart from the shuffles' (seed, epoch, ...) ones
_POISSON_SALT = 0x706f6973     # the Poisson sample's stream, apart from the others
_PACK_SALT = 0x70616972        # the partners of --pack's same-class packs
_SYMMETRIES = {"none": 1, "flip": 4, "flip_rot90": 8}  # symmetries of the square drawn from, per MIRRORS value
_MIB = 1 << 20
_FETCH_BLOCK = 1024   # examples per read when a streamed split is read whole


def load_split(builder, split):
    """Decodes a whole split of a prepared TFDS builder into memory.

    Args:
        builder: a prepared `tfds.core.DatasetBuilder` with features `image` and `label`.
        split: split name, e.g. "train".

    Returns:
        (images [N, R, R, 3] uint8, labels [N] int32) as numpy arrays, in the split's stored order.
    """
    _check_split(builder, split)
    dataset = builder.as_dataset(split=split, shuffle_files=False, read_config=input_stream.read_config())
    dataset = dataset.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    images, labels = [], []
    for image_batch, label_batch in dataset.batch(1024).as_numpy_iterator():
        images.append(image_batch)
        labels.append(label_batch)
    if not images:
        raise _empty_split(builder, split)
    return np.concatenate(images), np.concatenate(labels)


def _check_split(builder, split):
    if split not in builder.info.splits:
        raise UserError(f"dataset {builder.info.full_name} has no split '{split}'; it has "
                        f"{sorted(builder.info.splits.keys())}")


def _empty_split(builder, split):
    return UserError(f"split '{split}' of {builder.info.full_name} is empty: rebuild the dataset "
                     f"from a folder with images in every class")


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


def balanced_indices(positions, labels, seed):
    """Maps stream positions to example indices so that every class is drawn equally often.

    See the module docstring: rounds of one draw per class in a shuffled order, and within each class
    a fresh permutation of its examples per pass over them.

    Args:
        positions: [B] int64 positions in the infinite stream.
        labels: [N] int numpy array, the class of each example.
        seed: int, the run's seed.

    Returns:
        [B] int64 indices in [0, N).
    """
    classes, sizes = np.unique(labels, return_counts=True)             # [C], [C]
    num_classes = len(classes)
    members = tf.constant(np.argsort(labels, kind="stable"), tf.int64)  # [N] example indices by class
    offsets = tf.constant(np.cumsum(sizes) - sizes, tf.int64)           # [C] first member of each class
    sizes = tf.constant(sizes, tf.int64)
    seed = tf.fill(tf.shape(positions), tf.constant(seed, tf.int64))    # [B]
    rounds = positions // num_classes                                   # the r-th draw of its class
    # Third seed component: 0 is the unbalanced stream's, 1 the class order, 2 + c class c's passes.
    classes_drawn = tf.raw_ops.RandomIndexShuffle(
        index=positions % num_classes, seed=tf.stack([seed, rounds, tf.ones_like(rounds)], axis=1),
        max_index=tf.constant(num_classes - 1, tf.int64), rounds=_INDEX_SHUFFLE_ROUNDS)   # [B] in [0, C)
    class_sizes = tf.gather(sizes, classes_drawn)                       # [B]
    within = tf.raw_ops.RandomIndexShuffle(
        index=rounds % class_sizes, seed=tf.stack([seed, rounds // class_sizes, 2 + classes_drawn], axis=1),
        max_index=class_sizes - 1, rounds=_INDEX_SHUFFLE_ROUNDS)       # [B], position in its class
    return tf.gather(members, tf.gather(offsets, classes_drawn) + within)


def pack_partners(first, first_position, labels, seed, pack=2):
    """Each drawn example followed by pack − 1 partners of its class: [P] indices -> [pack · P]
    (first_0, partners of first_0, first_1, ...).

    The partners are other examples of the same class, distinct from it and from each other while the
    class has enough (the example itself when its class has one): the first at a rank within the class
    drawn uniformly among the others, from (seed, the batch's first stream position), the rest spread
    evenly over the class's other ranks from there. Still a pure function of (seed, position). Adjacent
    rows, so that any slice of the batch in whole packs (a worker's, a replica's) keeps its packs whole.

    Args:
        first: [P] int64 indices, the stream's draws.
        first_position: int64 scalar, the stream position of first[0].
        labels: [N] int numpy array, the class of each example.
        seed: int, the run's seed.
        pack: examples per pack, at least 2.
    """
    labels = np.asarray(labels)
    classes, class_of, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    members = np.argsort(labels, kind="stable")                                        # [N] indices by class
    offsets = np.cumsum(sizes) - sizes                                                 # [C]
    rank = np.empty(len(labels), np.int64)
    rank[members] = np.arange(len(labels)) - offsets[class_of[members]]               # [N] rank within class
    klass = tf.gather(tf.constant(class_of, tf.int64), first)                          # [P]
    size = tf.gather(tf.constant(sizes, tf.int64), klass)
    uniform = tf.random.stateless_uniform(tf.shape(first), tf.stack([tf.constant(seed + _PACK_SALT, tf.int64),
                                                                     tf.cast(first_position, tf.int64)]),
                                          dtype=tf.float64)
    others = tf.maximum(size - 1, 1)                                                   # [P]
    start = tf.minimum(tf.cast(uniform * tf.cast(others, tf.float64), tf.int64), others - 1)
    spacing = tf.maximum(others // (pack - 1), 1)              # distinct shifts while others ≥ pack − 1
    first_rank = tf.gather(tf.constant(rank), first)
    offset = tf.gather(tf.constant(offsets, tf.int64), klass)
    members, alone = tf.constant(members, tf.int64), size == 1
    columns = [first]
    for j in range(pack - 1):
        shift = 1 + (start + j * spacing) % others                                     # [P] in 1 .. others
        partner_rank = (first_rank + tf.where(alone, tf.zeros_like(shift), shift)) % size
        columns.append(tf.gather(members, offset + partner_rank))
    return tf.reshape(tf.stack(columns, axis=1), [-1])                                 # [pack · P]


def apply_symmetries(images, choices):
    """Symmetry `choices[i]` of the square applied to image i.

    Args:
        images: [B, R, R, C] square images.
        choices: [B] int32 in [0, 8): bit 0 flips left-right, bit 1 up-down, bit 2 transposes (after the
            flips), so 0 … 3 are the flips and 4 … 7 the rotations by 90° and 270° and the two diagonal
            reflections.

    Returns:
        [B, R, R, C], the same dtype.
    """
    def where(bit, transformed, original):
        chosen = tf.bitwise.bitwise_and(tf.bitwise.right_shift(choices, bit), 1) > 0    # [B]
        return tf.where(chosen[:, None, None, None], transformed, original)
    images = where(0, tf.reverse(images, [2]), images)
    images = where(1, tf.reverse(images, [1]), images)
    return where(2, tf.transpose(images, [0, 2, 1, 3]), images)


def poisson_indices(step, num_examples, rate, seed):
    """The examples of step `step`'s Poisson sample: each of the N in it independently with probability `rate`.

    One stateless uniform draw per example, of (seed, step), compared with the rate: a Bernoulli mask,
    exactly what the privacy accountant assumes (a shuffle's first k would favour some examples).

    Args:
        step: int64 scalar, the training step.
        num_examples: N.
        rate: q in (0, 1].
        seed: int, the run's seed.

    Returns:
        [k] int64 distinct indices in [0, N), ascending, k varying from step to step.
    """
    stream = tf.stack([tf.constant(seed + _POISSON_SALT, tf.int64), tf.cast(step, tf.int64)])
    draws = tf.random.stateless_uniform([num_examples], stream, dtype=tf.float64)     # [N]
    return tf.where(draws < rate)[:, 0]


def poisson_dataset(fetch, num_examples, rate, seed, start_step=0, mirror="none"):
    """The training stream of a differentially private run: step s's batch is `poisson_indices(s)`.

    Args:
        fetch, num_examples, seed, mirror: as `indexed_dataset`.
        rate: each example's probability to be in a step's batch (batch size / N).
        start_step: first step this stream serves.

    Returns:
        tf.data.Dataset of (images [k, R, R, 3] float32 in [-1, 1], labels [k] int32), k varying.
    """
    def batch(step):
        images, labels = fetch(poisson_indices(step, num_examples, rate, seed))
        if mirror != "none":
            images = apply_symmetries(images, symmetry_choices(step, tf.shape(labels)[0], seed, mirror))
        return normalise(images), labels

    dataset = tf.data.Dataset.range(int(start_step), np.iinfo(np.int64).max)
    dataset = dataset.map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def symmetry_choices(first_position, global_batch_size, seed, mirror):
    """[GB] int32: the symmetry of each image of the global batch starting at `first_position` (see the
    module docstring); all 0 for mirror="none"."""
    if mirror not in MIRRORS:
        raise ValueError(f"mirror {mirror!r} is not one of {MIRRORS}")
    stream_seed = tf.stack([tf.constant(seed + _MIRROR_SALT, tf.int64), tf.cast(first_position, tf.int64)])
    return tf.random.stateless_uniform([global_batch_size], stream_seed, maxval=_SYMMETRIES[mirror], dtype=tf.int32)


def train_dataset(images, labels, global_batch_size, seed, start_step=0, num_workers=1, worker_index=0,
                  balanced=False, mirror="none", pack=1):
    """The infinite, reshuffled, batched and normalised training stream of a split held in memory.

    Args:
        images: [N, R, R, 3] uint8 array of the whole split.
        labels: [N] int32 array.
        global_batch_size: examples per step over all workers and replicas.
        seed: int; the same seed gives the same stream.
        start_step: first step this stream serves (resuming at step s skips s global batches).
        num_workers: workers sharing each global batch.
        worker_index: which slice of each global batch this worker keeps.
        balanced: draw every class equally often (see the module docstring) instead of every example
            once per epoch.
        mirror: one of MIRRORS, the symmetries each image may be shown in (see the module docstring).
        pack: same-class packs (--pack): with k > 1 each batch draws GB / k examples from the stream,
            each followed by k − 1 partners of its class (`pack_partners`).

    Returns:
        tf.data.Dataset of (images [GB / num_workers, R, R, 3] float32 in [-1, 1],
        labels [GB / num_workers] int32), batches of a fixed size.
    """
    num_examples = len(images)
    if len(labels) != num_examples:
        raise ValueError(f"{num_examples} images but {len(labels)} labels")
    label_values = np.asarray(labels)
    return indexed_dataset(memory_fetch(images, labels), num_examples, global_batch_size, seed, start_step,
                           num_workers, worker_index, labels=label_values, balanced=balanced, mirror=mirror,
                           pack=pack)


def memory_fetch(images, labels):
    """The `fetch` of arrays held in memory: [B] int64 indices -> (images [B, R, R, 3] uint8, labels [B] int32)."""
    images = tf.constant(images)
    labels = tf.constant(labels, tf.int32)
    return lambda indices: (tf.gather(images, indices), tf.gather(labels, indices))


def stream_dataset(reader, global_batch_size, seed, start_step=0, num_workers=1, worker_index=0, balanced=False,
                   mirror="none", pack=1):
    """The training stream of `train_dataset`, read batch by batch from disk instead of from memory.

    Args:
        reader: an `input_stream.SplitReader` of the split.
        Others: as `train_dataset`.

    Returns:
        the `train_dataset` of the same split, bitwise.
    """
    labels = reader.labels() if balanced or pack > 1 else None
    return indexed_dataset(reader.fetch, reader.num_examples, global_batch_size, seed, start_step, num_workers,
                           worker_index, labels=labels, balanced=balanced, mirror=mirror, pack=pack)


def indexed_dataset(fetch, num_examples, global_batch_size, seed, start_step=0, num_workers=1, worker_index=0,
                    labels=None, balanced=False, mirror="none", pack=1):
    """The stream over examples 0 .. N - 1 of a split, whatever holds them.

    Args:
        fetch: TensorFlow function of [B] int64 example indices -> (images [B, R, R, 3] uint8, labels [B] int32).
        num_examples: N.
        global_batch_size, seed, start_step, num_workers, worker_index, mirror: as `train_dataset`.
        labels: the [N] labels; needed with balanced or pack > 1.
        balanced, pack: as `train_dataset`.

    Returns:
        as `train_dataset`.
    """
    if global_batch_size % num_workers:
        raise UserError(f"--batch_size={global_batch_size} cannot be split over {num_workers} workers: "
                        f"use a multiple of {num_workers}")
    per_worker = global_batch_size // num_workers
    if (balanced or pack > 1) and labels is None:
        raise ValueError("a balanced or packed stream needs the labels")
    if balanced:
        to_indices = lambda positions: balanced_indices(positions, labels, seed)
    else:
        to_indices = lambda positions: shuffled_indices(positions, num_examples, seed)
    drawn = global_batch_size                   # stream positions per batch
    if pack > 1:
        if per_worker % pack:
            raise UserError(f"--pack={pack} needs whole packs on every worker, not a batch of {per_worker}: use "
                            f"--batch_size a multiple of {pack * num_workers}")
        drawn = global_batch_size // pack
        first_of_packs = to_indices
        to_indices = lambda positions: pack_partners(first_of_packs(positions), positions[0], labels, seed, pack)

    rows = slice(worker_index * per_worker, (worker_index + 1) * per_worker)

    def batch(positions):                                                # [drawn] int64
        images, batch_labels = fetch(to_indices(positions)[rows])        # [GB / W, R, R, 3], [GB / W]
        if mirror != "none":
            images = apply_symmetries(images, symmetry_choices(positions[0], global_batch_size, seed, mirror)[rows])
        return normalise(images), batch_labels

    start = int(start_step) * drawn
    dataset = tf.data.Dataset.range(start, np.iinfo(np.int64).max)
    dataset = dataset.batch(drawn, drop_remainder=True)
    dataset = dataset.map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def choose_input(mode, num_examples, image_shape, memory_budget_mib):
    """Which source serves the stream: `mode` itself, or for "auto" memory up to the budget.

    Args:
        mode: one of INPUT_MODES ("auto", "memory", "stream").
        num_examples: N, the split's size.
        image_shape: (R, R, 3), one decoded image.
        memory_budget_mib: MiB of decoded uint8 images above which "auto" streams.

    Returns:
        "memory" or "stream".
    """
    if mode not in INPUT_MODES:
        raise ValueError(f"input mode {mode!r} is not one of {INPUT_MODES}")
    if mode != "auto":
        return mode
    decoded_bytes = int(num_examples) * int(np.prod(image_shape))
    return "stream" if decoded_bytes > int(memory_budget_mib) * _MIB else "memory"


class TrainingSplit:
    """A split opened for training: its size, resolution and source, and the stream over it.

    Made by `open_split`; `mode` is "memory" (images decoded and held) or "stream" (read per batch).
    """

    def __init__(self, mode, num_examples, resolution, arrays=None, reader=None):
        self.mode, self.num_examples, self.resolution = mode, num_examples, resolution
        self._arrays, self._reader = arrays, reader

    def class_counts(self, num_classes):
        """[num_classes] int64: training images per class."""
        labels = self._reader.labels() if self._reader is not None else self._arrays[1]
        return np.bincount(labels, minlength=num_classes)

    def examples(self):
        """(images [N, R, R, 3] uint8, labels [N] int32): the whole split in its stored order, read once from
        disk when streamed."""
        if self._reader is None:
            return self._arrays
        parts = [self._reader.fetch(tf.range(start, min(start + _FETCH_BLOCK, self.num_examples), dtype=tf.int64))
                 for start in range(0, self.num_examples, _FETCH_BLOCK)]
        return (np.concatenate([images.numpy() for images, _ in parts]),
                np.concatenate([labels.numpy() for _, labels in parts]))

    def poisson_dataset(self, rate, seed, start_step=0, mirror="none"):
        """The differentially private run's stream (see `poisson_dataset`)."""
        fetch = self._reader.fetch if self._reader is not None else memory_fetch(*self._arrays)
        return poisson_dataset(fetch, self.num_examples, rate, seed, start_step, mirror)

    def dataset(self, global_batch_size, seed, start_step=0, num_workers=1, worker_index=0, balanced=False,
                mirror="none", pack=1):
        """The training stream (see `train_dataset` for the arguments and what it yields)."""
        if self._reader is not None:
            return stream_dataset(self._reader, global_batch_size, seed, start_step, num_workers, worker_index,
                                  balanced, mirror, pack)
        images, labels = self._arrays
        return train_dataset(images, labels, global_batch_size, seed, start_step, num_workers, worker_index, balanced,
                             mirror, pack)


def open_split(builder, split, mode, memory_budget_mib):
    """Opens a prepared split for training, in memory or streamed (see the module docstring).

    Args:
        builder: a prepared `tfds.core.DatasetBuilder` with features `image` and `label`.
        split: split name, e.g. "train".
        mode: "auto", "memory" or "stream" (--input).
        memory_budget_mib: MiB of decoded images above which "auto" streams (--input_memory_budget).

    Returns:
        a TrainingSplit.

    Raises:
        UserError: no such split, an empty split, or an ArrayRecord copy that cannot be written.
    """
    _check_split(builder, split)
    num_examples = builder.info.splits[split].num_examples
    image_shape = tuple(builder.info.features["image"].shape)            # (R, R, 3)
    chosen = choose_input(mode, num_examples, image_shape, memory_budget_mib)
    decoded_mib = num_examples * int(np.prod(image_shape)) / _MIB
    reason = (f"--input={mode}" if mode != "auto" else
              f"{decoded_mib:.0f} MiB decoded {'>' if chosen == 'stream' else '≤'} --input_memory_budget="
              f"{memory_budget_mib} MiB")
    logging.info("Input: the %s split of %s %s (%s)", split, builder.info.full_name,
                 "streamed from disk" if chosen == "stream" else "decoded into memory", reason)
    if chosen == "memory":
        images, labels = load_split(builder, split)
        return TrainingSplit("memory", len(images), int(images.shape[1]), arrays=(images, labels))
    if not num_examples:
        raise _empty_split(builder, split)
    reader = input_stream.SplitReader(builder, split)
    return TrainingSplit("stream", reader.num_examples, int(reader.image_shape[0]), reader=reader)
