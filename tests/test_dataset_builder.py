"""Tests for the isic_skin_cancer builder on class-folder fixtures written into tmp_path.

    python -m pytest tests/test_dataset_builder.py -q

The fixtures mimic the Kaggle download (`Skin cancer ISIC .../Train/<class>/*.jpg`) with every
image format the real data has, plus the kinds of broken files a download or an unzip leaves.
"""

import io
import json
import logging
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from cgan.inputs import datasets
from cgan.core.errors import UserError
from conftest import run_script
import data.isic_skin_cancer as isic
from data.isic_skin_cancer import CLASS_NAMES

KAGGLE_FOLDER = "Skin cancer ISIC The International Skin Imaging Collaboration"
# Folder names as users have them: any case, spaces or underscores.
FOLDER_NAMES = {
    "actinic_keratosis": "Actinic Keratosis",
    "basal_cell_carcinoma": "basal_cell_carcinoma",
    "dermatofibroma": "DERMATOFIBROMA",
    "melanoma": "melanoma",
    "nevus": "Nevus",
    "pigmented_benign_keratosis": "pigmented benign keratosis",
    "seborrheic_keratosis": "Seborrheic_Keratosis",
    "squamous_cell_carcinoma": "squamous cell carcinoma",
    "vascular_lesion": "Vascular Lesion",
}
CENTRE_COLOUR = (200, 30, 40)
MARGIN_COLOUR = (20, 60, 220)


def _save(path: pathlib.Path, array: np.ndarray, format: str = "JPEG", mode: str | None = None) -> None:
    """Writes an image with Pillow, converting to `mode` (L, RGBA, CMYK) first if given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(path, format=format)


def _noise_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _pattern(height: int, width: int) -> np.ndarray:
    """Centre square in CENTRE_COLOUR, the margins cut off by a centre crop in MARGIN_COLOUR."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = MARGIN_COLOUR
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image[top : top + side, left : left + side] = CENTRE_COLOUR
    return image


def write_kaggle_tree(root: pathlib.Path, seed: int = 0) -> dict[str, dict[str, list[str]]]:
    """Writes Train/ and Test/ class folders under `root` with every format the real data has.

    Returns:
        {split folder: {class name: [file names relative to root]}} of the valid images.
    """
    rng = np.random.default_rng(seed)
    expected = {"Train": {}, "Test": {}}
    for split in ("Train", "Test"):
        for class_name in CLASS_NAMES:
            folder = root / split / FOLDER_NAMES[class_name]
            count = 2 if split == "Train" else 1
            names = []
            for i in range(count):
                name = f"ISIC_{i:07d}.jpg"
                _save(folder / name, _noise_image(rng, 45, 60))
                names.append(f"{split}/{folder.name}/{name}")
            expected[split][class_name] = names
    train = root / "Train"
    special = {
        # class: (file name, writer)
        "melanoma": ("large.jpg", lambda p: _save(p, _noise_image(rng, 900, 1200))),
        "nevus": ("odd.png", lambda p: _save(p, _noise_image(rng, 53, 37), "PNG")),
        "dermatofibroma": ("gray.jpg", lambda p: _save(p, _noise_image(rng, 50, 70), mode="L")),
        "vascular_lesion": ("rgba.png", lambda p: _save(p, _noise_image(rng, 40, 40), "PNG", mode="RGBA")),
        "squamous_cell_carcinoma": ("cmyk.jpg", lambda p: _save(p, _noise_image(rng, 60, 80), mode="CMYK")),
        "actinic_keratosis": ("tiny.png", lambda p: _save(p, _noise_image(rng, 8, 8), "PNG")),
    }
    for class_name, (name, write) in special.items():
        write(train / FOLDER_NAMES[class_name] / name)
        expected["Train"][class_name].append(f"Train/{FOLDER_NAMES[class_name]}/{name}")
    bcc = train / FOLDER_NAMES["basal_cell_carcinoma"]
    _save(bcc / "pattern_wide.png", _pattern(60, 150), "PNG")
    _save(bcc / "pattern_tall.png", _pattern(140, 70), "PNG")
    expected["Train"]["basal_cell_carcinoma"] += [f"Train/{bcc.name}/pattern_{s}.png" for s in ("wide", "tall")]
    return expected


def add_bad_files(root: pathlib.Path) -> dict[str, str]:
    """Adds files the builder must skip; returns {relative path: word expected in the reason}."""
    melanoma = root / "Train" / FOLDER_NAMES["melanoma"]
    nevus = root / "Train" / FOLDER_NAMES["nevus"]
    buffer = io.BytesIO()
    Image.fromarray(_noise_image(np.random.default_rng(1), 300, 400)).save(buffer, format="JPEG")
    (melanoma / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (nevus / "empty.jpg").write_bytes(b"")
    (nevus / "notes.jpg").write_text("not an image, just text with a .jpg name\n")
    (root / "Train" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (melanoma / "._ISIC_0000000.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (root / "Test" / FOLDER_NAMES["vascular_lesion"] / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "Train" / ".ipynb_checkpoints").mkdir()
    return {
        f"Train/{melanoma.name}/truncated.jpg": "truncated",
        f"Train/{nevus.name}/empty.jpg": "0 bytes",
        f"Train/{nevus.name}/notes.jpg": "not an image",
        "Train/.DS_Store": "hidden",
        f"Train/{melanoma.name}/._ISIC_0000000.jpg": "hidden",
        f"Test/{FOLDER_NAMES['vascular_lesion']}/Thumbs.db": "hidden",
        "Train/.ipynb_checkpoints": "hidden",
    }


def _examples(builder, split: str) -> list[dict]:
    return list(tfds.as_numpy(builder.as_dataset(split=split)))


def _check_matches_fixture(builder, expected) -> None:
    for split, folder in (("train", "Train"), ("test", "Test")):
        examples = _examples(builder, split)
        got = sorted((CLASS_NAMES[e["label"]], e["file_name"].decode()) for e in examples)
        want = sorted((c, name) for c, names in expected[folder].items() for name in names)
        assert got == want
        assert builder.info.splits[split].num_examples == len(want)
        for example in examples:
            assert example["image"].shape == (64, 64, 3)
            assert example["image"].dtype == np.uint8


@pytest.fixture(scope="module")
def kaggle_download(tmp_path_factory) -> tuple[pathlib.Path, dict]:
    """A manual_dir in the Kaggle layout, with a __MACOSX copy beside it as macOS zips have."""
    manual_dir = tmp_path_factory.mktemp("download")
    expected = write_kaggle_tree(manual_dir / KAGGLE_FOLDER)
    junk = manual_dir / "__MACOSX" / KAGGLE_FOLDER / "Train" / "melanoma"
    junk.mkdir(parents=True)
    (junk / "._ISIC_0000000.jpg").write_bytes(b"\x00\x05\x16\x07")
    return manual_dir, expected


@pytest.fixture(scope="module")
def built_real_64(kaggle_download, tmp_path_factory):
    manual_dir, expected = kaggle_download
    data_dir = tmp_path_factory.mktemp("tfds")
    builder = datasets.prepare("isic_skin_cancer/real_64", data_dir=str(data_dir), manual_dir=str(manual_dir))
    return builder, expected


def test_real_64_counts_labels_and_file_names(built_real_64):
    builder, expected = built_real_64
    assert datasets.class_names(builder) == CLASS_NAMES
    _check_matches_fixture(builder, expected)
    assert builder.info.metadata["skipped_files"] == []


def test_centre_crop_keeps_centre_colour(built_real_64):
    builder, _ = built_real_64
    by_name = {e["file_name"].decode(): e["image"] for e in _examples(builder, "train")}
    for name in ("pattern_wide.png", "pattern_tall.png"):
        image = by_name[f"Train/basal_cell_carcinoma/{name}"]
        np.testing.assert_array_equal(image, np.broadcast_to(CENTRE_COLOUR, (64, 64, 3)))


@pytest.mark.parametrize("layout", ["kaggle_folder_itself", "plain_train_test"])
def test_other_manual_dir_layouts(tmp_path, layout):
    if layout == "kaggle_folder_itself":
        manual_dir = tmp_path / KAGGLE_FOLDER
        expected = write_kaggle_tree(manual_dir)
    else:
        manual_dir = tmp_path / "plain"
        expected = write_kaggle_tree(manual_dir)
        # Lower-case split folders must be found too; file names keep the case on disk.
        for split in ("Train", "Test"):
            (manual_dir / split).rename(manual_dir / split.lower())
            for names in expected[split].values():
                names[:] = [split.lower() + name[len(split):] for name in names]
    builder = datasets.prepare("isic_skin_cancer/real_64", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual_dir))
    _check_matches_fixture(builder, expected)


def test_bad_files_are_skipped_logged_and_listed_in_metadata(tmp_path, caplog):
    manual_dir = tmp_path / "download"
    expected = write_kaggle_tree(manual_dir / KAGGLE_FOLDER)
    bad = add_bad_files(manual_dir / KAGGLE_FOLDER)
    data_dir = tmp_path / "tfds"
    with caplog.at_level(logging.WARNING):
        builder = datasets.prepare("isic_skin_cancer/real_64", data_dir=str(data_dir), manual_dir=str(manual_dir))
    _check_matches_fixture(builder, expected)

    skipped = builder.info.metadata["skipped_files"]
    assert sorted(entry["path"] for entry in skipped) == sorted(bad)
    for entry in skipped:
        assert bad[entry["path"]] in entry["reason"]
        assert f"skipping {entry['path']}: {entry['reason']}" in caplog.text
    assert "skipped 6 files" in caplog.text  # train summary: all but Thumbs.db in Test/

    # What was saved: metadata.json beside dataset_info.json, and a fresh builder reading it back.
    saved = json.loads((pathlib.Path(builder.data_dir) / "metadata.json").read_text())
    assert saved["skipped_files"] == skipped
    reloaded = datasets.get_builder("isic_skin_cancer/real_64", data_dir=str(data_dir))
    assert reloaded.is_prepared()
    assert reloaded.info.metadata["skipped_files"] == skipped


def _prepare_error(tmp_path, manual_dir, config="real_64") -> str:
    with pytest.raises(UserError) as error:
        datasets.prepare(f"isic_skin_cancer/{config}", data_dir=str(tmp_path / "tfds"),
                         manual_dir="" if manual_dir is None else str(manual_dir))
    assert not (tmp_path / "tfds" / "isic_skin_cancer" / config / "1.0.0").exists()  # nothing half-built
    return str(error.value)


def test_unknown_class_folder(tmp_path):
    write_kaggle_tree(tmp_path / "data")
    _save(tmp_path / "data" / "Train" / "Psoriasis" / "a.jpg", _noise_image(np.random.default_rng(0), 30, 30))
    message = _prepare_error(tmp_path, tmp_path / "data")
    assert "Unknown class folder" in message and "'Psoriasis'" in message and "actinic_keratosis" in message


def test_no_train_folder(tmp_path):
    _save(tmp_path / "data" / "Pictures" / "a.jpg", _noise_image(np.random.default_rng(0), 30, 30))
    message = _prepare_error(tmp_path, tmp_path / "data")
    assert "No Train/ folder" in message and str(tmp_path / "data") in message and KAGGLE_FOLDER in message


def test_missing_test_folder(tmp_path):
    write_kaggle_tree(tmp_path / "data")
    (tmp_path / "data" / "Test").rename(tmp_path / "data" / "Validation")
    assert "no Test/ folder" in _prepare_error(tmp_path, tmp_path / "data")


def test_empty_class(tmp_path):
    write_kaggle_tree(tmp_path / "data")
    nevus = tmp_path / "data" / "Test" / "Nevus"
    for path in nevus.iterdir():
        path.unlink()
    (nevus / ".DS_Store").write_bytes(b"x")
    message = _prepare_error(tmp_path, tmp_path / "data")
    assert "Empty class folder" in message and "Nevus" in message


def test_class_with_only_broken_files(tmp_path):
    write_kaggle_tree(tmp_path / "data")
    nevus = tmp_path / "data" / "Test" / "Nevus"
    for path in nevus.iterdir():
        path.write_bytes(b"not a jpeg")
    message = _prepare_error(tmp_path, tmp_path / "data")
    assert "No readable image" in message and "nevus" in message


def test_empty_split(tmp_path):
    write_kaggle_tree(tmp_path / "data")
    for folder in (tmp_path / "data" / "Test").iterdir():
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    message = _prepare_error(tmp_path, tmp_path / "data")
    assert "empty split" in message and "Test" in message


def test_class_missing_from_a_split(tmp_path):
    write_kaggle_tree(tmp_path / "data")
    vascular = tmp_path / "data" / "Test" / "Vascular Lesion"
    for path in vascular.iterdir():
        path.unlink()
    vascular.rmdir()
    message = _prepare_error(tmp_path, tmp_path / "data")
    assert "no folder for class(es): vascular_lesion" in message


def test_missing_or_empty_manual_dir(tmp_path):
    assert "does not exist" in _prepare_error(tmp_path, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "empty" in _prepare_error(tmp_path, tmp_path / "empty")
    # No manual_dir at all: TFDS's default (data_dir/downloads/manual) is missing.
    assert "--manual_dir" in _prepare_error(tmp_path, None)


def test_builder_errors_are_one_line_and_reach_the_trainer_unchanged(tmp_path):
    """The builder raises its own DatasetError; cgan.inputs.datasets passes the message on as a UserError."""
    write_kaggle_tree(tmp_path / "two" / "a")
    write_kaggle_tree(tmp_path / "two" / "b")
    (tmp_path / "empty").mkdir()
    cases = [("real_64", tmp_path / "nowhere", "does not exist"), ("real_64", tmp_path / "empty", "empty"),
             ("real_64", "", "--manual_dir"), ("folders_64", "", "--manual_dir"),
             ("real_64", tmp_path / "two", "several folders")]
    for config, manual_dir, words in cases:
        data_dir = str(tmp_path / "tfds" / config)
        with pytest.raises(isic.DatasetError) as raised:
            isic.prepare(config, data_dir=data_dir, manual_dir=str(manual_dir))
        message = str(raised.value)
        assert words in message and "\n" not in message, message
        with pytest.raises(UserError) as user_error:
            datasets.prepare(f"isic_skin_cancer/{config}", data_dir=data_dir, manual_dir=str(manual_dir))
        assert str(user_error.value) == message
    with pytest.raises(isic.DatasetError, match="unknown --config=real_32: valid configs are real_64, .*folders_256"):
        isic.make_builder("real_32")
    assert isic.CONFIG_NAMES[0] == "real_64" and isic.make_builder("synthetic_64").builder_config.name == "synthetic_64"


# Imports the dataset package and its command line, runs the command on a missing manual_dir, then
# lists every cgan module loaded: data/ must work without the trainer's package.
_IMPORTS_OF_THE_DATA_PACKAGE = """
import sys
import data.isic_skin_cancer
from data.isic_skin_cancer import __main__ as command
from absl import flags
flags.FLAGS(["build", "--config=real_64", f"--manual_dir={sys.argv[1]}", f"--data_dir={sys.argv[2]}"])
try:
    command.main(["build"])
except SystemExit as exit:
    assert exit.code == 2, exit.code
print(sorted(name for name in sys.modules if name == "cgan" or name.startswith("cgan.")))
"""


def test_data_package_imports_nothing_from_cgan(tmp_path):
    output = run_script(_IMPORTS_OF_THE_DATA_PACKAGE, tmp_path / "nowhere", tmp_path / "tfds")
    assert output.splitlines()[-1] == "[]", output  # TFDS's progress lines come first


def test_real_128_shape(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("Train", "Test"):
        for class_name in CLASS_NAMES:
            _save(tmp_path / "data" / split / class_name / "0.jpg", _noise_image(rng, 150, 200))
    builder = datasets.prepare("isic_skin_cancer/real_128", data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path / "data")
    )
    assert builder.info.features["image"].shape == (128, 128, 3)
    images = [e["image"] for e in _examples(builder, "test")]
    assert len(images) == 9 and all(image.shape == (128, 128, 3) for image in images)


# What `tfds build` runs. The `tfds` script itself also imports its convert_format command, which
# needs apache_beam in tensorflow-datasets 4.9.10, so the test calls the build command directly.
_TFDS_BUILD = """
import sys, simple_parsing
from tensorflow_datasets.scripts.cli import build
simple_parsing.parse(build.Args, args=sys.argv[1:]).execute()
"""


@pytest.mark.slow
def test_tfds_build_command_line(kaggle_download, tmp_path):
    """`tfds build data/isic_skin_cancer` imports the builder as `isic_skin_cancer.*`, not `data.*`."""
    manual_dir, expected = kaggle_download
    builder_dir = pathlib.Path(__file__).resolve().parents[1] / "data" / "isic_skin_cancer"
    result = subprocess.run(
        [sys.executable, "-c", _TFDS_BUILD, str(builder_dir), "--config=real_64",
         f"--manual_dir={manual_dir}", f"--data_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((tmp_path / "isic_skin_cancer" / "real_64" / "1.0.0" / "dataset_info.json").read_text())
    counts = {split["name"]: sum(int(n) for n in split["shardLengths"]) for split in info["splits"]}
    assert counts == {"train": sum(map(len, expected["Train"].values())), "test": 9}
