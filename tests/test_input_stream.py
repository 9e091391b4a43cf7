"""The streaming input (cgan.inputs.input_stream): the in-memory stream's batches, read by index from disk.

    python -m pytest tests/test_input_stream.py -q

The fixture is a folders_64 dataset prepared as TFRecord in 3 shards of about 20 examples, so that
TFDS' stored order interleaves the shards in blocks of 16 and differs from the shards' file order.
"""

import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from cgan.inputs import datasets, input_pipeline, input_stream

CLASS_COUNTS = {"apple": 30, "mango": 20, "plum": 9}
NUM_SHARDS = 3


def prepare_sharded(root, counts=CLASS_COUNTS, num_shards=NUM_SHARDS, seed=0):
    """A folders_64 dataset of noise images (every one distinct) prepared as TFRecord in `num_shards` shards.

    Returns:
        the prepared builder.
    """
    rng = np.random.default_rng(seed)
    source = root / "source"
    for split, per_class in (("Train", counts), ("Test", {name: num_shards for name in counts})):
        for name, count in per_class.items():
            folder = source / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    builder = datasets.get_builder("isic_skin_cancer/folders_64", data_dir=str(root / "tfds"), manual_dir=str(source))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(source),
                                                                              num_shards=num_shards))
    return builder


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """The fixture's builder, its train split in memory (images, labels), and the split opened both ways."""
    builder = prepare_sharded(tmp_path_factory.mktemp("sharded"))
    assert len(builder.info.splits["train"].shard_lengths) == NUM_SHARDS
    images, labels = input_pipeline.load_split(builder, "train")
    return types.SimpleNamespace(builder=builder, images=images, labels=labels,
                                 memory=input_pipeline.open_split(builder, "train", "memory", 0),
                                 stream=input_pipeline.open_split(builder, "train", "stream", 1 << 20))


def _batches(split, steps, batch_size=8, **kwargs):
    return list(split.dataset(batch_size, **{"seed": 0, **kwargs}).take(steps).as_numpy_iterator())


def _ids(batches, memory_images):
    """The stored index of every image of a stream, found by its pixels in the in-memory array."""
    index = {image.tobytes(): i for i, image in enumerate(memory_images)}
    assert len(index) == len(memory_images)                               # every fixture image is distinct
    images = np.concatenate([b for b, _ in batches])
    pixels = np.rint((images + 1.0) * 127.5).astype(np.uint8)
    return np.array([index[image.tobytes()] for image in pixels])


def _assert_same(a, b):
    assert len(a) == len(b)
    for (images_a, labels_a), (images_b, labels_b) in zip(a, b):
        np.testing.assert_array_equal(images_a, images_b)
        np.testing.assert_array_equal(labels_a, labels_b)


@pytest.mark.parametrize("shard_lengths", [[5], [33, 34, 33], [16, 16], [40, 3, 17, 16, 1],
                                           [22, 21, 21, 22] * 5])        # the last: more shards than the cycle
def test_record_keys_are_the_interleave_tfds_reads_shards_in(shard_lengths):
    # TFDS' reader: the shard files interleaved in parallel, deterministically, with the pinned cycle and block.
    starts = np.cumsum(shard_lengths) - shard_lengths
    files = tf.data.Dataset.from_tensor_slices((starts, np.array(shard_lengths, np.int64)))
    read = files.interleave(lambda start, length: tf.data.Dataset.range(start, start + length),
                            cycle_length=16, block_length=16, num_parallel_calls=tf.data.AUTOTUNE,
                            deterministic=True)
    keys = input_stream.record_keys(shard_lengths)
    np.testing.assert_array_equal(keys, list(read.as_numpy_iterator()))
    assert sorted(keys) == list(range(sum(shard_lengths)))
    assert input_stream.read_config().interleave_cycle_length == input_stream.READ_CYCLE_LENGTH == 16
    assert input_stream.read_config().interleave_block_length == input_stream.READ_BLOCK_LENGTH == 16


def test_reader_fetches_the_stored_order_of_the_in_memory_split(sharded):
    images, labels = sharded.images, sharded.labels
    assert (sharded.stream.mode, sharded.memory.mode) == ("stream", "memory")
    assert sharded.stream.num_examples == sharded.memory.num_examples == len(images) == sum(CLASS_COUNTS.values())
    assert sharded.stream.resolution == sharded.memory.resolution == 64
    reader = input_stream.SplitReader(sharded.builder, "train")
    assert (reader.num_examples, reader.image_shape) == (len(images), (64, 64, 3))
    indices = tf.range(reader.num_examples, dtype=tf.int64)
    fetched_images, fetched_labels = reader.fetch(indices)
    np.testing.assert_array_equal(fetched_images.numpy(), images)
    np.testing.assert_array_equal(fetched_labels.numpy(), labels)
    np.testing.assert_array_equal(reader.labels(), labels)
    shuffled = tf.constant([58, 0, 17, 16, 40, 17], tf.int64)           # any order, repeats allowed
    np.testing.assert_array_equal(reader.fetch(shuffled)[0].numpy(), images[shuffled.numpy()])
    # The shards are interleaved: stored order is not file order.
    assert not np.array_equal(input_stream.record_keys(sharded.builder.info.splits["train"].shard_lengths),
                              np.arange(len(images)))


def test_the_pinned_read_config_is_the_order_tfds_reads_by_default(sharded):
    default = sharded.builder.as_dataset("train", shuffle_files=False)
    np.testing.assert_array_equal(np.stack([e["image"] for e in default.as_numpy_iterator()]), sharded.images)


@pytest.mark.parametrize("balanced", [False, True])
def test_streamed_batches_are_the_in_memory_batches(sharded, balanced):
    memory, stream = sharded.memory, sharded.stream
    for seed, start_step in ((0, 0), (7, 3)):                           # 20 batches of 8: epochs straddled
        _assert_same(_batches(stream, 20, seed=seed, start_step=start_step, balanced=balanced),
                     _batches(memory, 20, seed=seed, start_step=start_step, balanced=balanced))


def test_streamed_poisson_batches_are_the_in_memory_ones(sharded):
    """The private run's stream (--dp_epsilon): the same varying-size samples from disk as from memory."""
    take = lambda split: list(split.poisson_dataset(0.2, seed=3, start_step=2, mirror="flip").take(6)
                              .as_numpy_iterator())
    streamed, held = take(sharded.stream), take(sharded.memory)
    assert len({len(labels) for _, labels in held}) > 1
    _assert_same(streamed, held)


def test_streamed_epochs_visit_every_example_once_in_a_fresh_order(sharded):
    n = sharded.stream.num_examples
    ids = _ids(_batches(sharded.stream, -(-3 * n // 8), seed=4), sharded.images)
    epochs = [ids[e * n:(e + 1) * n] for e in range(3)]
    assert all(sorted(epoch) == list(range(n)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) == 3


def test_streamed_balanced_draws_every_class_equally_often(sharded):
    batches = _batches(sharded.stream, 30, batch_size=6, seed=2, balanced=True)  # 180 draws: 60 rounds of 3
    ids = _ids(batches, sharded.images)
    drawn = np.concatenate([labels for _, labels in batches])
    np.testing.assert_array_equal(drawn, sharded.labels[ids])             # labels stay with their images
    np.testing.assert_array_equal(np.bincount(drawn), [60, 60, 60])
    smallest = np.flatnonzero(sharded.labels == 2)                        # the 9 plums: a pass every 9 draws
    plums = ids[drawn == 2]
    assert all(sorted(plums[p * 9:(p + 1) * 9]) == sorted(smallest) for p in range(6))


@pytest.mark.parametrize("balanced", [False, True])
def test_streamed_resume_continues_the_uninterrupted_stream(sharded, balanced):
    stream = sharded.stream
    straight = _batches(stream, 12, seed=5, balanced=balanced)
    _assert_same(_batches(stream, 4, seed=5, start_step=8, balanced=balanced), straight[8:])


@pytest.mark.parametrize("balanced", [False, True])
def test_streamed_workers_keep_their_slice_of_the_same_global_batches(sharded, balanced):
    whole = _batches(sharded.memory, 5, seed=1, balanced=balanced)
    parts = [_batches(sharded.stream, 5, seed=1, balanced=balanced, num_workers=2, worker_index=w) for w in range(2)]
    assert parts[0][0][0].shape == (4, 64, 64, 3)
    joined = [(np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])) for a, b in zip(*parts)]
    _assert_same(joined, whole)


def test_auto_holds_up_to_the_budget_and_streams_above_it(sharded):
    builder = sharded.builder
    decoded = sum(CLASS_COUNTS.values()) * 64 * 64 * 3                    # 0.69 MiB
    assert decoded < 1 << 20
    assert input_pipeline.open_split(builder, "train", "auto", 1).mode == "memory"
    assert input_pipeline.open_split(builder, "train", "auto", 0).mode == "stream"


def test_a_streamed_split_read_whole_is_the_in_memory_split(sharded, monkeypatch):
    builder = sharded.builder
    monkeypatch.setattr(input_pipeline, "_FETCH_BLOCK", 16)   # several reads, the last one short
    streamed = input_pipeline.open_split(builder, "train", "stream", 0).examples()
    whole = input_pipeline.open_split(builder, "train", "memory", 1024).examples()
    np.testing.assert_array_equal(streamed[0], whole[0])
    np.testing.assert_array_equal(streamed[1], whole[1])


def test_a_tfrecord_dataset_gets_an_array_record_copy_beside_it(sharded):
    builder = sharded.builder
    folder = builder.data_dir
    names = sorted(os.listdir(folder))
    for split in ("train", "test"):
        for shard in range(NUM_SHARDS):
            for suffix in ("tfrecord", "array_record"):
                assert f"isic_skin_cancer-{split}.{suffix}-{shard:05d}-of-{NUM_SHARDS:05d}" in names
    info = json.load(open(os.path.join(folder, "dataset_info.json")))
    assert info["fileFormat"] == "tfrecord" and info["alternativeFileFormats"] == ["array_record"]
    assert not [name for name in names if name.startswith(".tmp")]
    # Whatever reads the TFRecord files reads them as before, in a fresh process's builder too.
    reopened = datasets.prepare("isic_skin_cancer/folders_64", data_dir=str(builder.data_dir_root))
    images, labels = input_pipeline.load_split(reopened, "train")
    np.testing.assert_array_equal(images, sharded.images)
    np.testing.assert_array_equal(labels, sharded.labels)
    assert len(input_pipeline.load_split(reopened, "test")[1]) == 3 * NUM_SHARDS


@pytest.mark.slow
def test_the_trainer_streams_logs_the_choice_and_resumes_in_memory(sharded, tmp_path):
    import keras
    from cgan import train
    from cgan.core.config import TrainConfig
    config = TrainConfig(workdir=str(tmp_path / "run"), dataset="isic_skin_cancer/folders_64",
                         data_dir=str(sharded.builder.data_dir_root), batch_size=4, precision="float32",
                         train_steps=4, checkpoint_every=2, summary_every=2, image_every=4, steps_per_call=2,
                         input="stream", balanced=True)
    assert train.train_and_evaluate(config).step == 4
    stored = json.load(open(tmp_path / "run" / "config.json"))
    assert (stored["resolved_input"], stored["input"], stored["num_train_images"]) == ("stream", "stream", 59)
    keras.backend.clear_session()
    resumed = train.train_and_evaluate(TrainConfig(**{**config.to_dict(), "train_steps": 6, "input": "auto"}))
    assert (resumed.step, resumed.restored_step) == (6, 4)
    assert json.load(open(tmp_path / "run" / "config.json"))["resolved_input"] == "memory"
