"""Shared test setup: quiet TensorFlow logs, and helpers that write image fixtures."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests are CPU tests unless marked gpu

import numpy as np
import pytest

ISIC_FOLDERS = ("actinic keratosis", "basal cell carcinoma", "dermatofibroma", "melanoma", "nevus",
                "pigmented benign keratosis", "seborrheic keratosis", "squamous cell carcinoma",
                "vascular lesion")


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(source, *args, timeout=300):
    """Runs `python -c source args` from the repository root in a fresh process (for device setups, such
    as two logical CPUs, that must precede TensorFlow's start); fails the test on a non-zero exit.

    Returns:
        The script's stdout.
    """
    result = subprocess.run([sys.executable, "-c", source, *map(str, args)], capture_output=True, text=True,
                            cwd=REPO, timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def write_jpeg(path, image):
    import tensorflow as tf
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_jpeg(image, quality=95).numpy())


@pytest.fixture(scope="session")
def isic_folders(tmp_path_factory):
    """A tiny Kaggle-layout ISIC download: 2 train and 1 test JPEG per class, class-coloured."""
    root = tmp_path_factory.mktemp("kaggle") / "Skin cancer ISIC The International Skin Imaging Collaboration"
    rng = np.random.default_rng(0)
    for label, name in enumerate(ISIC_FOLDERS):
        colour = np.array([30 * label, 255 - 25 * label, 128], np.uint8)
        for split, count in (("Train", 2), ("Test", 1)):
            for i in range(count):
                image = np.clip(colour + rng.integers(-20, 20, (90, 120, 3)), 0, 255).astype(np.uint8)
                write_jpeg(root / split / name / f"ISIC_{label}{i}.jpg", image)
    return root.parent


@pytest.fixture(scope="session")
def isic_data_dir(tmp_path_factory, isic_folders):
    """The fixture prepared once as isic_skin_cancer/real_64 TFRecords; returns the TFDS data_dir."""
    from cgan import datasets
    data_dir = tmp_path_factory.mktemp("tfds")
    datasets.prepare("isic_skin_cancer/real_64", data_dir=str(data_dir), manual_dir=str(isic_folders))
    return data_dir
