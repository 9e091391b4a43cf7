"""isic_skin_cancer dataset (see isic_skin_cancer_dataset_builder.py and README.md).

Importing the package registers the builder with TFDS. Preparing a config for training is
`cgan.inputs.datasets.prepare("isic_skin_cancer/<config>", ...)`; from the command line,
`python -m data.isic_skin_cancer --config=<config>`.
"""

from .isic_skin_cancer_dataset_builder import (
    CLASS_NAMES,
    RESOLUTIONS,
    Builder,
    DatasetError,
    IsicConfig,
    discover_class_names,
    folders_config,
)
