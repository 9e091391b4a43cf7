"""isic_skin_cancer dataset (see isic_skin_cancer_dataset_builder.py and README.md).

Importing the package registers the builder with TFDS. It depends on nothing outside this folder:
the trainer (cgan/) imports it, never the other way round. Preparing a config is
`prepare("<config>", data_dir, manual_dir)`; from the command line,
`python -m data.isic_skin_cancer --config=<config>`.
"""

from .isic_skin_cancer_dataset_builder import (
    CLASS_NAMES,
    CONFIG_NAMES,
    RESOLUTIONS,
    Builder,
    DatasetError,
    IsicConfig,
    builder_config,
    discover_class_names,
    folders_config,
    make_builder,
    prepare,
)
