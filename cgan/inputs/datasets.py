"""Gets `--dataset` ready: the TFDS builder of data/isic_skin_cancer, prepared on first use.

    builder = datasets.prepare("isic_skin_cancer/synthetic_64")     # builds once, then reuses
    names = datasets.class_names(builder)     # ("actinic_keratosis", ..., "vascular_lesion")
    train = builder.as_dataset(split="train", as_supervised=True)   # ([64, 64, 3] uint8, int64)
    datasets.prepare("isic_skin_cancer/folders_64", data_dir="/data/my_lesions", manual_dir="/data/raw")

`--dataset` is `isic_skin_cancer/<config>`. What a config is, how a folders_* config gets its class
names and every check of the source data belong to the builder (`data.isic_skin_cancer.make_builder`
and `prepare`), which knows nothing of cgan/; this module maps the flag to a config name and turns
the builder's `DatasetError` into a `UserError` with the same message, for the trainer, the
evaluation and the tools.

Datasets are prepared as TFRecord files, read from the start by `as_dataset`. The streaming input
(cgan.inputs.input_stream) reads examples by index, which needs ArrayRecord files: `add_array_record(builder)`
writes an ArrayRecord copy of every shard beside its TFRecord file, once per data_dir, and lists
`array_record` in dataset_info.json as an alternative format. The TFRecord files stay the default
format, so `as_dataset` reads what it read before:

    datasets.add_array_record(builder)                   # no-op once written
    source = tfds.builder_from_directory(builder.data_dir, file_format="array_record").as_data_source("train")
"""

import contextlib
import os

from absl import logging

from cgan.core import files
from cgan.core.config import DATASET_BUILDER
from cgan.core.errors import UserError

ARRAY_RECORD = "array_record"


def _builder_module():
    # Registers the builder with TFDS and imports tensorflow_datasets: heavy, so imported on use.
    from data import isic_skin_cancer
    return isic_skin_cancer


@contextlib.contextmanager
def _user_errors(data):
    """The data package's DatasetError (what to fix in the source folders) as our one-line UserError."""
    try:
        yield
    except data.DatasetError as e:
        raise UserError(str(e)) from None


def _config_name(dataset):
    """The builder's config name in `--dataset=isic_skin_cancer/<config>`."""
    builder_name, _, config_name = dataset.partition("/")
    if builder_name != DATASET_BUILDER or not config_name:
        raise UserError(f"unknown --dataset={dataset}: use {DATASET_BUILDER}/<config>, e.g. "
                        f"{DATASET_BUILDER}/synthetic_64 or {DATASET_BUILDER}/real_64")
    data = _builder_module()
    if config_name not in data.CONFIG_NAMES:
        raise UserError(f"unknown --dataset={DATASET_BUILDER}/{config_name}: valid configs are "
                        f"{', '.join(data.CONFIG_NAMES)}")
    return config_name


def get_builder(dataset, data_dir="", manual_dir=""):
    """The builder of `dataset`, prepared or not (see `prepare` and `data.isic_skin_cancer.make_builder`).

    Raises:
        UserError: unknown dataset, or a folders_* dataset in `data_dir` whose classes differ from the
            class folders in `manual_dir`.
    """
    data = _builder_module()
    with _user_errors(data):
        return data.make_builder(_config_name(dataset), data_dir, manual_dir)


def prepare(dataset, data_dir="", manual_dir=""):
    """Returns the prepared builder of `dataset`, building its records first if `data_dir` lacks them.

    Args:
        dataset: "isic_skin_cancer/<config>", e.g. "isic_skin_cancer/real_64".
        data_dir: TFDS data directory; "" means TFDS' default (~/tensorflow_datasets).
        manual_dir: folder with the source images; needed to build real_* and folders_* configs.

    Returns:
        a prepared tfds.core.DatasetBuilder; read it with `builder.as_dataset(split=...)`.

    Raises:
        UserError: unknown dataset, missing or unusable source data (the message says what to fix).
    """
    data = _builder_module()
    with _user_errors(data):
        return data.prepare(_config_name(dataset), data_dir, manual_dir)


def class_names(builder):
    """The label names of a builder, index i naming label i.

    Raises:
        UserError: a folders_* builder whose classes are not known yet (not prepared, no manual_dir).
    """
    label = builder.info.features["label"]
    if label.num_classes is None:
        raise UserError(f"the classes of {builder.builder_config.name} are not known yet: prepare it with "
                        "--manual_dir=<folder with Train/ and Test/> first")
    return tuple(label.names)


def add_array_record(builder):
    """Writes an ArrayRecord copy of each TFRecord shard of a prepared dataset beside it, once.

    Record order is kept shard by shard, so record i of an ArrayRecord shard is record i of its
    TFRecord shard. Every shard is written to a temporary and renamed, dataset_info.json (which then
    lists `array_record` as an alternative format) last: several workers may call this at once on a
    shared data_dir, and a run killed part way converts only the missing shards next time.

    Args:
        builder: a prepared `tfds.core.DatasetBuilder` stored as TFRecord.

    Returns:
        True if files were written, False if the copy was already there.

    Raises:
        UserError: the data_dir lacks the space for the copy or cannot be written.
    """
    from tensorflow_datasets.core import dataset_info as dataset_info_lib
    from tensorflow_datasets.core import file_adapters

    info_proto = dataset_info_lib.read_proto_from_builder_dir(builder.data_dir)
    if ARRAY_RECORD == info_proto.file_format or ARRAY_RECORD in info_proto.alternative_file_formats:
        return False
    adapters = file_adapters.ADAPTER_FOR_FORMAT
    reader = adapters[file_adapters.FileFormat.from_value(info_proto.file_format or "tfrecord")]
    writer = adapters[file_adapters.FileFormat.ARRAY_RECORD]
    shards = []                                   # (TFRecord path, ArrayRecord path, records, bytes)
    for split_info in builder.info.splits.values():
        template = split_info.filename_template
        copy_template = template.replace(filetype_suffix=ARRAY_RECORD)
        num_shards = len(split_info.shard_lengths)
        shard_bytes = split_info.num_bytes // max(num_shards, 1)
        for index, length in enumerate(split_info.shard_lengths):
            shards.append((template.sharded_filepath(shard_index=index, num_shards=num_shards),
                           copy_template.sharded_filepath(shard_index=index, num_shards=num_shards),
                           length, shard_bytes))
    missing = [shard for shard in shards if not shard[1].exists()]
    if missing:
        needed = sum(shard[3] for shard in missing)
        _check_free_space(builder.data_dir, needed)
        logging.info("Writing an ArrayRecord copy of %s beside its TFRecord files in %s (once; about %d MiB)",
                     builder.info.full_name, builder.data_dir, needed >> 20)
    for source, target, length, _ in missing:
        def save(tmp, source=source, length=length):
            records = enumerate(reader.make_tf_data(source).as_numpy_iterator())
            writer.write_examples(tmp, records)
            written = writer.num_examples(tmp)
            if written != length:
                raise ValueError(f"{source}: {written} records copied, dataset_info.json says {length}")
        _write_shard(save, os.fspath(target))
    if ARRAY_RECORD not in info_proto.alternative_file_formats:
        info_proto.alternative_file_formats.append(ARRAY_RECORD)
    info_path = os.path.join(os.fspath(builder.data_dir), "dataset_info.json")
    files.atomic_write_bytes(info_path, dataset_info_lib.get_dataset_info_json(info_proto).encode())
    return True


def _check_free_space(data_dir, needed_bytes):
    mount, free = files.filesystem(os.fspath(data_dir))
    if needed_bytes > free:
        raise UserError(f"the streaming input needs an ArrayRecord copy of the dataset in {data_dir} (about "
                        f"{needed_bytes / (1 << 20):.1f} MiB) but {mount} has {free / (1 << 20):.1f} MiB free: free "
                        "space there, or pass --input=memory to read the TFRecord files into memory instead")


def _write_shard(save, path):
    """save(temporary), then the rename; a fault of the storage becomes a one-line UserError about `path`."""
    tmp = files.temporary_path(path)
    try:
        save(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:
        # The ArrayRecord writer reports a failed write as a RuntimeError carrying the system's text.
        number = files.storage_errno(error) if isinstance(error, OSError) else next(
            (n for n in files.STORAGE_ERRNOS if os.strerror(n) in str(error)), None)
        if number is None:
            raise
        if os.path.exists(tmp):
            os.remove(tmp)
        mount, free = files.filesystem(path)
        raise UserError(f"cannot write {path}, part of the ArrayRecord copy the streaming input reads "
                        f"({os.strerror(number)}; {free >> 20} MiB free on {mount}): make {os.path.dirname(path)} "
                        "writable with enough space and rerun, or pass --input=memory to read the TFRecord files "
                        "into memory instead") from error
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
