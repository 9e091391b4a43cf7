"""Resolves `--dataset` to a prepared TFDS builder, preparing it on first use.

    builder = datasets.prepare("isic_skin_cancer/synthetic_64", data_dir="", manual_dir="")
    names = datasets.class_names(builder)     # ("actinic_keratosis", ..., "vascular_lesion")

`--dataset` is `isic_skin_cancer/<config>`: `real_64|128|256` (the ISIC folders in --manual_dir),
`synthetic_64|128|256` (the embedded procedural images, no download) or `folders_64|128|256`
(any class-folder dataset in --manual_dir). See data/isic_skin_cancer/README.md.
"""

from cgan.errors import UserError

BUILDER_NAME = "isic_skin_cancer"


def _split_name(dataset):
    builder_name, _, config_name = dataset.partition("/")
    if builder_name != BUILDER_NAME or not config_name:
        raise UserError(f"unknown --dataset={dataset}: use {BUILDER_NAME}/<config>, e.g. "
                        f"{BUILDER_NAME}/synthetic_64 or {BUILDER_NAME}/real_64")
    return config_name


def prepare(dataset, data_dir="", manual_dir=""):
    """Returns the prepared builder for `dataset`, building its TFRecords first if needed.

    Args:
        dataset: "isic_skin_cancer/<config>".
        data_dir: TFDS data directory; "" means TFDS' default (~/tensorflow_datasets).
        manual_dir: folder with the class folders, for configs that read the user's images.

    Returns:
        a prepared tfds.core.DatasetBuilder.

    Raises:
        UserError: unknown dataset, missing or unusable manual data.
    """
    config_name = _split_name(dataset)
    from data import isic_skin_cancer  # registers the builder with TFDS; heavy, so imported late
    try:
        return isic_skin_cancer.prepare(config_name, data_dir=data_dir or None, manual_dir=manual_dir or None)
    except isic_skin_cancer.DatasetError as e:
        raise UserError(str(e)) from e


def class_names(builder):
    """The label names of a prepared builder, index i naming label i."""
    from data import isic_skin_cancer
    return tuple(isic_skin_cancer.class_names(builder))
