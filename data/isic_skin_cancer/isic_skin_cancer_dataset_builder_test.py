"""TFDS's standard checks of the isic_skin_cancer builder on dummy_data/.

    python -m pytest data/isic_skin_cancer -q

dummy_data/ holds the Kaggle layout with 2 train and 1 test JPEG per class (64×56 synthetic
paintings, not medical images). The real and folders configs read it as manual_dir; the synthetic
configs need no files and are covered by tests/test_synthetic.py.
"""

import pytest
import tensorflow_datasets as tfds

from . import isic_skin_cancer_dataset_builder

# tfds.testing imports dill (a tensorflow-datasets test extra); say so rather than fail to collect.
pytest.importorskip("dill", reason="tfds.testing needs dill: pip install -r requirements-dev.txt")


class IsicSkinCancerTest(tfds.testing.DatasetBuilderTestCase):
    """Builds, reads back and reloads the real_64 and folders_64 configs."""

    DATASET_CLASS = isic_skin_cancer_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["real_64", isic_skin_cancer_dataset_builder.folders_config(64)]
    SPLITS = {"train": 18, "test": 9}
    SKIP_CHECKSUMS = True  # nothing is downloaded


if __name__ == "__main__":
    tfds.testing.test_main()
