"""cgan.inputs.datasets: --dataset names, folder datasets' class names, preparing a builder once, its ArrayRecord copy."""

import json
import os

import numpy as np
import pytest

from cgan.inputs import datasets
from cgan.core.errors import UserError
import data.isic_skin_cancer as isic
from tests.test_dataset_builder import _examples, _noise_image, _prepare_error, _save
from tests.test_input_stream import prepare_sharded


def test_unknown_dataset_names_list_the_valid_ones():
    with pytest.raises(UserError, match="real_64, real_128, real_256, synthetic_64.*folders_256"):
        datasets.get_builder("isic_skin_cancer/real_32")
    with pytest.raises(UserError, match="use isic_skin_cancer/<config>"):
        datasets.get_builder("cifar10")


def test_folders_config_discovers_and_restores_class_names(tmp_path):
    rng = np.random.default_rng(0)
    source = tmp_path / "fruit"
    for split, count in (("Train", 2), ("Test", 1)):
        for folder in ("Zebra Stripes", "apple", "Mango_Leaf"):
            for i in range(count):
                _save(source / split / folder / f"{i}.jpg", _noise_image(rng, 20, 30))
    data_dir = str(tmp_path / "tfds")
    builder = datasets.prepare("isic_skin_cancer/folders_64", data_dir=data_dir, manual_dir=str(source))
    names = ("apple", "mango_leaf", "zebra_stripes")
    assert datasets.class_names(builder) == names
    train = _examples(builder, "train")
    assert sorted((names[e["label"]], e["file_name"].decode()) for e in train) == sorted(
        (normalised, f"Train/{folder}/{i}.jpg")
        for normalised, folder in zip(names, ("apple", "Mango_Leaf", "Zebra Stripes")) for i in range(2)
    )
    assert builder.info.splits["test"].num_examples == 3

    # A fresh process needs only data_dir: the names come back from label.labels.txt.
    reloaded = datasets.prepare("isic_skin_cancer/folders_64", data_dir=data_dir)
    assert datasets.class_names(reloaded) == names
    assert len(_examples(reloaded, "test")) == 3

    # The same data_dir with a different folder dataset is refused, not silently reused.
    other = tmp_path / "other"
    for split in ("Train", "Test"):
        _save(other / split / "cats" / "0.jpg", _noise_image(rng, 20, 30))
    with pytest.raises(UserError, match="separate --data_dir"):
        datasets.get_builder("isic_skin_cancer/folders_64", data_dir=data_dir, manual_dir=str(other))
    with pytest.raises(isic.DatasetError, match="separate --data_dir"):  # the builder's own check
        isic.make_builder("folders_64", data_dir=data_dir, manual_dir=str(other))
    assert isic.make_builder("folders_64", data_dir=data_dir, manual_dir=str(source)).is_prepared()


def test_folders_config_without_manual_dir_or_data(tmp_path):
    builder = datasets.get_builder("isic_skin_cancer/folders_64", data_dir=str(tmp_path / "tfds"))
    with pytest.raises(UserError, match="not known yet"):
        datasets.class_names(builder)
    assert "--manual_dir" in _prepare_error(tmp_path, None, config="folders_64")


def _records(path):
    """The records of a TFRecord or ArrayRecord shard, in file order."""
    from array_record.python import array_record_data_source
    if ".array_record-" in path.name:
        return list(array_record_data_source.ArrayRecordDataSource([str(path)]))
    import tensorflow as tf
    return [record.numpy() for record in tf.data.TFRecordDataset(str(path))]


def _shards(builder, suffix):
    return sorted(p for p in builder.data_path.iterdir() if f".{suffix}-" in p.name)


def _alternative_formats(builder):
    return json.load(open(builder.data_path / "dataset_info.json")).get("alternativeFileFormats", [])


def test_add_array_record_copies_every_shard_beside_it_once(tmp_path):
    builder = prepare_sharded(tmp_path, counts={"a": 20, "b": 19}, num_shards=2)
    tfrecords = _shards(builder, "tfrecord")
    assert len(tfrecords) == 4 and not _shards(builder, "array_record")       # train and test, 2 shards each
    before = {p.name: p.read_bytes() for p in tfrecords}
    assert datasets.add_array_record(builder) is True
    copies = _shards(builder, "array_record")
    assert [p.name.replace("array_record", "tfrecord") for p in copies] == [p.name for p in tfrecords]
    for tfrecord, copy in zip(tfrecords, copies):
        assert _records(copy) == _records(tfrecord)                           # same records, same order
    assert {p.name: p.read_bytes() for p in tfrecords} == before
    assert _alternative_formats(builder) == ["array_record"]
    stamps = [os.stat(p).st_mtime_ns for p in copies]
    assert datasets.add_array_record(builder) is False
    assert [os.stat(p).st_mtime_ns for p in copies] == stamps

    # Killed part way: one shard copied, dataset_info.json not yet updated. The rerun adds the rest only.
    copies[0].unlink()
    info = json.load(open(builder.data_path / "dataset_info.json"))
    del info["alternativeFileFormats"]
    (builder.data_path / "dataset_info.json").write_text(json.dumps(info))
    assert datasets.add_array_record(builder) is True
    assert [os.stat(p).st_mtime_ns for p in copies[1:]] == stamps[1:]
    assert _records(copies[0]) == _records(tfrecords[0])
    assert _alternative_formats(builder) == ["array_record"]


def test_add_array_record_without_space_or_with_a_failing_write_is_a_user_error(tmp_path, monkeypatch):
    from tensorflow_datasets.core import file_adapters
    from cgan.core import files
    builder = prepare_sharded(tmp_path, counts={"a": 4, "b": 4}, num_shards=1)
    info_text = (builder.data_path / "dataset_info.json").read_text()
    monkeypatch.setattr(files, "filesystem", lambda path: ("/data", 1000))
    with pytest.raises(UserError, match=r"needs an ArrayRecord copy .* /data has 0.0 MiB free.*--input=memory"):
        datasets.add_array_record(builder)
    monkeypatch.undo()

    def full_disk(cls, path, iterator):
        open(path, "wb").write(b"part of a shard")
        raise RuntimeError(f"write() failed: No space left on device; writing {path}; at byte 15")
    monkeypatch.setattr(file_adapters.ArrayRecordFileAdapter, "write_examples", classmethod(full_disk))
    with pytest.raises(UserError, match=r"cannot write .*array_record.*No space left on device.*--input=memory"):
        datasets.add_array_record(builder)
    assert [p.name for p in builder.data_path.iterdir() if "array_record" in p.name or p.name.startswith(".")] == []
    assert (builder.data_path / "dataset_info.json").read_text() == info_text
