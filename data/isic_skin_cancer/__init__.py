"""The isic_skin_cancer dataset, and the helpers the trainer uses to get it ready.

    from data import isic_skin_cancer

    builder = isic_skin_cancer.prepare("synthetic_64", data_dir="/tmp/tfds")  # builds once, then reuses
    names = isic_skin_cancer.class_names(builder)  # ("actinic_keratosis", ..., "vascular_lesion")
    train = builder.as_dataset(split="train", as_supervised=True)  # ([64, 64, 3] uint8, int64)

    # The real images, or any Train/ + Test/ class-folder dataset (one data_dir per such dataset):
    isic_skin_cancer.prepare("real_128", data_dir="/data/tfds", manual_dir="~/Downloads/isic")
    isic_skin_cancer.prepare("folders_64", data_dir="/data/my_lesions", manual_dir="/data/my_lesions_raw")

`config_name` is what follows `isic_skin_cancer/` in the trainer's `--dataset` flag. Importing this
package registers the `isic_skin_cancer` builder with TFDS. Every problem the user can fix is a
`DatasetError` whose message says what is wrong and what to do.
"""

import os
import re

from etils import epath
import tensorflow_datasets as tfds

from .isic_skin_cancer_dataset_builder import (
    CLASS_NAMES,
    RESOLUTIONS,
    Builder,
    DatasetError,
    IsicConfig,
    discover_class_names,
    folders_config,
)

# The folders_* configs are made on demand (their class names come from the data), so they are
# valid names here without being in Builder.BUILDER_CONFIGS.
CONFIG_NAMES = tuple(c.name for c in Builder.BUILDER_CONFIGS) + tuple(f"folders_{r}" for r in RESOLUTIONS)

__all__ = [
    "CLASS_NAMES",
    "CONFIG_NAMES",
    "Builder",
    "DatasetError",
    "class_names",
    "get_builder",
    "prepare",
]


def _config(config_name: str) -> IsicConfig:
    """The config called `config_name`; DatasetError listing the valid names otherwise."""
    if config_name in Builder.builder_configs:
        return Builder.builder_configs[config_name]
    match = re.fullmatch(r"folders_(\d+)", config_name)
    if match and int(match.group(1)) in RESOLUTIONS:
        return folders_config(int(match.group(1)))
    raise DatasetError(
        f"Unknown isic_skin_cancer config '{config_name}'. Valid configs: {', '.join(CONFIG_NAMES)} "
        "(e.g. --dataset=isic_skin_cancer/synthetic_64)."
    )


def get_builder(
    config_name: str, data_dir: str | None = None, manual_dir: str | None = None
) -> tfds.core.DatasetBuilder:
    """Returns the builder for a config, prepared or not (see `prepare`).

    For a `folders_*` config the class names are read back from `data_dir` if the dataset is
    already prepared there, otherwise discovered from `manual_dir`.

    Args:
        config_name: e.g. "real_64", "synthetic_128", "folders_64".
        data_dir: where TFDS keeps prepared datasets; None for the TFDS default.
        manual_dir: folder with the source images (real_* and folders_* configs).

    Returns:
        A `tfds.core.DatasetBuilder`.

    Raises:
        DatasetError: unknown config name, or a folders_* dataset in `data_dir` whose classes differ
            from the class folders in `manual_dir`.
    """
    config = _config(config_name)
    if config.source != "folders":
        return Builder(data_dir=data_dir, config=config_name)
    builder = Builder(data_dir=data_dir, config=config)
    if builder.is_prepared():
        if manual_dir is not None:
            _check_same_classes(builder, manual_dir)
        return builder
    if manual_dir is None:
        return builder  # prepare() explains that manual_dir is needed
    discovered = folders_config(config.resolution, discover_class_names(manual_dir))
    return Builder(data_dir=data_dir, config=discovered)


def _check_same_classes(builder: tfds.core.DatasetBuilder, manual_dir: str) -> None:
    """Stops a prepared folders dataset from being silently used for a different manual_dir."""
    try:
        discovered = discover_class_names(manual_dir)
    except DatasetError:
        return  # the source may be gone once prepared; the prepared data is what is used
    prepared = class_names(builder)
    if discovered != prepared:
        raise DatasetError(
            f"{builder.data_dir} already holds a {builder.builder_config.name} dataset with classes "
            f"{', '.join(prepared)}, but {manual_dir} has classes {', '.join(discovered)}. "
            "Use a separate --data_dir for each folder dataset."
        )


def prepare(
    config_name: str, data_dir: str | None = None, manual_dir: str | None = None
) -> tfds.core.DatasetBuilder:
    """Returns a prepared builder, building the dataset first if `data_dir` does not hold it yet.

    Args:
        config_name: e.g. "real_64", "synthetic_128", "folders_64".
        data_dir: where TFDS keeps prepared datasets; None for the TFDS default.
        manual_dir: folder with the source images; needed to build real_* and folders_* configs.

    Returns:
        A prepared `tfds.core.DatasetBuilder`; read it with `builder.as_dataset(split=...)`.

    Raises:
        DatasetError: unknown config, missing or unusable source data (the message says what to fix).
    """
    builder = get_builder(config_name, data_dir=data_dir, manual_dir=manual_dir)
    if builder.is_prepared():
        return builder
    if manual_dir is not None:
        manual_dir = os.fspath(epath.Path(manual_dir).expanduser())
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    try:
        builder.download_and_prepare(download_config=download_config)
    except DatasetError:
        raise
    except AssertionError as error:
        # TFDS reports a missing manual directory with an AssertionError; say what to pass instead.
        if "anual dir" not in str(error):
            raise
        raise DatasetError(
            f"The {config_name} config needs the source images: "
            f"pass --manual_dir=<folder with Train/ and Test/> ({error})"
        ) from None
    return builder


def class_names(builder: tfds.core.DatasetBuilder) -> tuple[str, ...]:
    """The label names of a builder, in label order.

    Raises:
        DatasetError: a folders_* builder whose classes are not known yet (not prepared, no manual_dir).
    """
    label = builder.info.features["label"]
    if label.num_classes is None:
        raise DatasetError(
            f"The classes of {builder.builder_config.name} are not known yet: prepare it with "
            "--manual_dir=<folder with Train/ and Test/> first."
        )
    return tuple(label.names)
