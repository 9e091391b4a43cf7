"""Reading a prepared split by example index, in the order the in-memory input stores it.

    reader = input_stream.SplitReader(builder, "train")   # writes ArrayRecord copies beside the TFRecords once
    reader.num_examples, reader.image_shape                # N, (R, R, 3)
    images, labels = reader.fetch(indices)                 # in tf.data: [B] int64 -> [B, R, R, 3] uint8, [B] int32
    labels = reader.labels()                               # [N] int32 numpy: one pass over the split

The streaming input (cgan.inputs.input_pipeline, `--input=stream`) maps stream positions to example indices
exactly as the in-memory input does, then reads and decodes just those examples. For its batches to
be the in-memory ones, example index i must name the same example in both:

* The in-memory input holds a split in its *stored order*: the order `builder.as_dataset(split,
  shuffle_files=False)` yields, which is TFDS' interleave of the split's shard files (blocks of
  `READ_BLOCK_LENGTH` examples from up to `READ_CYCLE_LENGTH` shards in turn). `read_config()` pins
  that interleave for `load_split`, so a later TFDS default cannot move it.
* An ArrayRecord data source (`builder.as_data_source`) numbers the same examples by *record key*:
  shard after shard, in file order. `record_keys` runs the same interleave over the record keys of
  each shard, so `record_keys(...)[i]` is the record key of stored example i.

Why ArrayRecord: TFRecord files can only be read from the start, ArrayRecord files (written with
`group_size:1`, as TFDS does) by record. Datasets are prepared as TFRecord, as always; the first
streaming use writes an ArrayRecord copy of every shard beside its TFRecord file
(`cgan.inputs.datasets.add_array_record`), which doubles the dataset's disk use and leaves everything that
reads the TFRecords as it was.
"""

import numpy as np
import tensorflow as tf

from cgan.inputs import datasets

# TFDS' interleave of a split's shards when files are not shuffled (its defaults in 4.9.10), pinned.
READ_CYCLE_LENGTH = 16
READ_BLOCK_LENGTH = 16


def read_config():
    """The `tfds.ReadConfig` that reads a split in its stored order (see the module docstring)."""
    import tensorflow_datasets as tfds
    return tfds.ReadConfig(interleave_cycle_length=READ_CYCLE_LENGTH, interleave_block_length=READ_BLOCK_LENGTH)


def record_keys(shard_lengths):
    """The record key (position in the shards read one after another) of each example in stored order.

    Args:
        shard_lengths: examples in each shard file of the split, in file order.

    Returns:
        [N] int64 numpy array, a permutation of 0 .. N - 1.
    """
    lengths = np.asarray(shard_lengths, np.int64)                        # [S]
    starts = np.cumsum(lengths) - lengths                                  # [S] first record key of each shard
    shards = tf.data.Dataset.from_tensor_slices((starts, lengths))
    # The interleave TFDS' reader applies to the shard files, applied to the shards' record keys.
    keys = shards.interleave(lambda start, length: tf.data.Dataset.range(start, start + length),
                             cycle_length=READ_CYCLE_LENGTH, block_length=READ_BLOCK_LENGTH)
    batches = list(keys.batch(1 << 16).as_numpy_iterator())
    return np.concatenate(batches) if batches else np.zeros([0], np.int64)


class SplitReader:
    """One split of a prepared dataset, read by stored example index from its ArrayRecord copy.

    Args:
        builder: a prepared `tfds.core.DatasetBuilder` with features `image` and `label`.
        split: split name, e.g. "train".

    Raises:
        UserError: the ArrayRecord copy cannot be written (storage full, read-only, no permission).
    """

    def __init__(self, builder, split):
        import tensorflow_datasets as tfds
        datasets.add_array_record(builder)
        split_info = builder.info.splits[split]
        self.num_examples = int(split_info.num_examples)
        self.image_shape = tuple(builder.info.features["image"].shape)   # (R, R, 3)
        self._features = builder.info.features
        # A builder of its own: as_data_source switches its builder's default format to ArrayRecord,
        # which the caller's builder must keep as TFRecord for as_dataset (evaluation, the test split).
        readable = tfds.builder_from_directory(builder.data_dir)
        self._source = readable.as_data_source(split, file_format=datasets.ARRAY_RECORD,
                                               deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
        if len(self._source) != self.num_examples:
            raise ValueError(f"{builder.data_dir}: {len(self._source)} ArrayRecord records in split {split}, "
                             f"{self.num_examples} in its dataset_info.json")
        self._keys = tf.constant(record_keys(split_info.shard_lengths))   # [N] int64

    def _read(self, keys):
        """[B] record keys -> [B] serialized tf.train.Examples (numpy, called from tf.data)."""
        return np.array(self._source.__getitems__(keys.tolist()), dtype=object)

    def _serialized(self, indices):
        keys = tf.gather(self._keys, indices)                              # [B] int64
        # stateful=False: a read of files that do not change is a pure function of the keys, so tf.data
        # may run it in parallel, also under op determinism.
        serialized = tf.numpy_function(self._read, [keys], tf.string, stateful=False)
        return tf.ensure_shape(serialized, indices.shape)                  # [B] string

    def fetch(self, indices):
        """Reads and decodes the examples at stored indices (TensorFlow ops, for a tf.data map).

        Args:
            indices: [B] int64 stored example indices in [0, N).

        Returns:
            (images [B, R, R, 3] uint8, labels [B] int32), decoded as `as_dataset` decodes them.
        """
        def decode(serialized):
            example = self._features.deserialize_example(serialized)
            return example["image"], tf.cast(example["label"], tf.int32)

        return tf.map_fn(decode, self._serialized(indices),
                         fn_output_signature=(tf.TensorSpec(self.image_shape, tf.uint8),
                                              tf.TensorSpec([], tf.int32)))

    def labels(self):
        """The label of every example in stored order: one pass over the split, images left encoded.

        Returns:
            [N] int32 numpy array.
        """
        import tensorflow_datasets as tfds
        skip_image = {"image": tfds.decode.SkipDecoding()}

        def labels_of(indices):                                            # [B] int64
            return tf.map_fn(lambda s: tf.cast(self._features.deserialize_example(s, decoders=skip_image)["label"],
                                               tf.int32),
                             self._serialized(indices), fn_output_signature=tf.int32)

        indices = tf.data.Dataset.range(self.num_examples).batch(256)
        batches = indices.map(labels_of, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return np.concatenate(list(batches.as_numpy_iterator()) or [np.zeros([0], np.int32)])
