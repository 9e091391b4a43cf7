"""Gets `--dataset` ready: the TFDS builder of data/isic_skin_cancer, prepared on first use.

    builder = datasets.prepare("isic_skin_cancer/synthetic_64")     # builds once, then reuses
    names = datasets.class_names(builder)     # ("actinic_keratosis", ..., "vascular_lesion")
    train = builder.as_dataset(split="train", as_supervised=True)   # ([64, 64, 3] uint8, int64)

    # The real images, or any Train/ + Test/ class-folder dataset (one data_dir per such dataset):
    datasets.prepare("isic_skin_cancer/real_128", data_dir="/data/tfds", manual_dir="~/Downloads/isic")
    datasets.prepare("isic_skin_cancer/folders_64", data_dir="/data/my_lesions", manual_dir="/data/raw")

`--dataset` is `isic_skin_cancer/<config>`: `real_64|128|256` (the ISIC folders in --manual_dir),
`synthetic_64|128|256` (the embedded procedural images, no download) or `folders_64|128|256`
(any class-folder dataset in --manual_dir; its classes are the sorted folder names, so its builder
config is made from the folders). This module is the one place that turns that name into a
prepared builder, for the trainer, the evaluation and `python -m data.isic_skin_cancer`. Every
problem the user can fix is a UserError whose message says what is wrong and what to do.
"""

import os
import re

from cgan.config import DATASET_BUILDER
from cgan.errors import UserError


def _builder_module():
    # Registers the builder with TFDS and imports tensorflow_datasets: heavy, so imported on use.
    from data import isic_skin_cancer
    return isic_skin_cancer


def _config_name(dataset):
    builder_name, _, config_name = dataset.partition("/")
    if builder_name != DATASET_BUILDER or not config_name:
        raise UserError(f"unknown --dataset={dataset}: use {DATASET_BUILDER}/<config>, e.g. "
                        f"{DATASET_BUILDER}/synthetic_64 or {DATASET_BUILDER}/real_64")
    return config_name


def _builder_config(config_name):
    """The builder config called `config_name` (folders_* configs are made without class names yet)."""
    data = _builder_module()
    if config_name in data.Builder.builder_configs:
        return data.Builder.builder_configs[config_name]
    match = re.fullmatch(r"folders_(\d+)", config_name)
    if match and int(match.group(1)) in data.RESOLUTIONS:
        return data.folders_config(int(match.group(1)))
    valid = tuple(data.Builder.builder_configs) + tuple(f"folders_{r}" for r in data.RESOLUTIONS)
    raise UserError(f"unknown --dataset={DATASET_BUILDER}/{config_name}: valid configs are {', '.join(valid)}")


def get_builder(dataset, data_dir="", manual_dir=""):
    """The builder of `dataset`, prepared or not (see `prepare`).

    For a `folders_*` config the class names are read back from `data_dir` if the dataset is already
    prepared there, otherwise discovered from `manual_dir`.

    Raises:
        UserError: unknown config, or a folders_* dataset in `data_dir` whose classes differ from the
            class folders in `manual_dir`.
    """
    data = _builder_module()
    config = _builder_config(_config_name(dataset))
    data_dir = data_dir or None
    if config.source != "folders":
        return data.Builder(data_dir=data_dir, config=config)
    builder = data.Builder(data_dir=data_dir, config=config)
    try:
        if builder.is_prepared():
            if manual_dir:
                _check_same_classes(builder, manual_dir)
            return builder
        if not manual_dir:
            return builder  # prepare() explains that manual_dir is needed
        discovered = data.folders_config(config.resolution, data.discover_class_names(manual_dir))
    except data.DatasetError as e:
        raise UserError(str(e)) from None
    return data.Builder(data_dir=data_dir, config=discovered)


def _check_same_classes(builder, manual_dir):
    """Stops a prepared folders dataset from being silently used for a different manual_dir."""
    data = _builder_module()
    try:
        discovered = data.discover_class_names(manual_dir)
    except data.DatasetError:
        return  # the source may be gone once prepared; the prepared data is what is used
    prepared = class_names(builder)
    if discovered != prepared:
        raise data.DatasetError(
            f"{builder.data_dir} already holds a {builder.builder_config.name} dataset with classes "
            f"{', '.join(prepared)}, but {manual_dir} has classes {', '.join(discovered)}: use a separate "
            "--data_dir for each folder dataset")


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
    builder = get_builder(dataset, data_dir, manual_dir)
    if builder.is_prepared():
        return builder
    import tensorflow_datasets as tfds
    manual_dir = os.path.expanduser(manual_dir) if manual_dir else None
    try:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except data.DatasetError as e:
        raise UserError(str(e)) from None
    except AssertionError as e:
        # TFDS reports a missing manual directory with an AssertionError; say what to pass instead.
        if "anual dir" not in str(e):
            raise
        raise UserError(f"the {builder.builder_config.name} config needs the source images: pass "
                        f"--manual_dir=<folder with Train/ and Test/> ({e})") from None
    return builder


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
