"""cgan.datasets: --dataset names, folder datasets' class names, and preparing a builder once."""

import numpy as np
import pytest

from cgan import datasets
from cgan.errors import UserError
from tests.test_dataset_builder import _examples, _noise_image, _prepare_error, _save


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


def test_folders_config_without_manual_dir_or_data(tmp_path):
    builder = datasets.get_builder("isic_skin_cancer/folders_64", data_dir=str(tmp_path / "tfds"))
    with pytest.raises(UserError, match="not known yet"):
        datasets.class_names(builder)
    assert "--manual_dir" in _prepare_error(tmp_path, None, config="folders_64")
