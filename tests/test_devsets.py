"""tools/make_devsets.py: layout, counts, determinism, disjoint photo regions, refusals, and the builder reading it."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import tree

pytest.importorskip("sklearn")
pytest.importorskip("skimage")

from PIL import Image  # noqa: E402

from cgan.core.errors import UserError  # noqa: E402
from tools import make_devsets  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = 3  # images per class and split in the small builds
PHOTO_CLASSES = sorted(s.class_name for s in make_devsets.PHOTO_SOURCES)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Every set, SMALL images per class and split; returns (out_dir, counts)."""
    out = tmp_path_factory.mktemp("devsets")
    return out, make_devsets.build(str(out), sets=make_devsets.SETS, max_per_class=SMALL)


def _files(set_dir):
    """{relative path: bytes} of every file under set_dir."""
    return {path: data for path, data in tree(set_dir).items() if data is not None}


def test_layout_counts_and_manifest(small):
    out, counts = small
    expected_classes = {"digits": [str(d) for d in range(10)], "photos": PHOTO_CLASSES, "faces": ["face", "non_face"]}
    for name, classes in expected_classes.items():
        set_dir = out / name
        assert sorted(os.listdir(set_dir)) == ["Test", "Train", "manifest.json"]
        manifest = make_devsets.read_manifest(str(set_dir))
        for split, folder in make_devsets.SPLIT_FOLDERS.items():
            assert sorted(os.listdir(set_dir / folder)) == classes
            for class_name in classes:
                files = sorted(os.listdir(set_dir / folder / class_name))
                assert len(files) == SMALL and all(f.endswith(".png") for f in files)
                assert counts[name][split][class_name] == SMALL
            assert manifest["counts"][split] == counts[name][split]
        assert len(manifest["images"]) == 2 * SMALL * len(classes)
        assert all((set_dir / r["path"]).is_file() for r in manifest["images"])


def test_images_are_rgb_png_of_the_expected_size(small):
    out, _ = small
    for name, class_name in (("digits", "0"), ("faces", "face")):
        folder = out / name / "Train" / class_name
        with Image.open(folder / sorted(os.listdir(folder))[0]) as image:
            assert image.format == "PNG" and image.mode == "RGB" and image.size == (64, 64)
            pixels = np.asarray(image)
        assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2])
        assert pixels.min() < 100 < pixels.max()  # ink and paper, not a blank page
    manifest = make_devsets.read_manifest(str(out / "photos"))
    sources = {s.class_name: s for s in make_devsets.PHOTO_SOURCES}
    for record in manifest["images"]:
        with Image.open(out / "photos" / record["path"]) as image:
            assert image.format == "PNG" and image.mode == "RGB"
            assert image.size == (record["side"], record["side"])
        source = sources[record["class"]]
        assert source.min_side <= record["side"] <= source.max_side
        assert abs(record["angle"]) <= make_devsets.MAX_ANGLE


def test_full_photo_counts_are_small_and_imbalanced():
    train = [s.train_count for s in make_devsets.PHOTO_SOURCES]
    assert 5 <= len(train) <= 8
    assert 1000 <= sum(train) <= 1600
    assert min(train) >= 60 and max(train) <= 400 and max(train) >= 4 * min(train)
    for source in make_devsets.PHOTO_SOURCES:
        fraction = source.test_count / (source.test_count + source.train_count)
        assert abs(fraction - make_devsets.TEST_FRACTION) < 0.02


def test_digit_split_is_stratified_and_disjoint():
    from sklearn.datasets import load_digits
    labels = load_digits().target
    split = make_devsets._stratified_split(labels, np.random.default_rng(make_devsets.SEED))
    train, test = set(split["train"].tolist()), set(split["test"].tolist())
    assert not train & test and len(train | test) == len(labels) == 1797
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        in_test = sum(int(i) in test for i in members)
        assert in_test == round(len(members) * make_devsets.TEST_FRACTION)


def test_two_runs_write_identical_bytes(tmp_path):
    first = make_devsets.build(str(tmp_path / "a"), sets=make_devsets.SETS, max_per_class=2)
    second = make_devsets.build(str(tmp_path / "b"), sets=make_devsets.SETS, max_per_class=2)
    assert first == second
    for name in make_devsets.SETS:
        files_a, files_b = _files(tmp_path / "a" / name), _files(tmp_path / "b" / name)
        assert len(files_a) == 2 * 2 * len(first[name]["train"]) + 1
        assert files_a == files_b


def test_a_smaller_cap_gives_the_first_images_of_a_larger_one(small, tmp_path):
    out, _ = small
    make_devsets.build(str(tmp_path), sets=("photos", "digits"), max_per_class=2)
    for name in ("photos", "digits"):
        smaller = {p: b for p, b in _files(tmp_path / name).items() if p.endswith(".png")}
        larger = _files(out / name)
        assert len(smaller) > 0 and all(larger[p] == b for p, b in smaller.items())


def test_photo_train_and_test_crops_come_from_disjoint_regions(small):
    out, _ = small
    manifest = make_devsets.read_manifest(str(out / "photos"))
    for class_name, source in manifest["sources"].items():
        records = [r for r in manifest["images"] if r["class"] == class_name]
        train = [r["box"] for r in records if r["split"] == "train"]
        test = [r["box"] for r in records if r["split"] == "test"]
        assert len(train) == len(test) == SMALL
        x0, y0, x1, y1 = source["test_box"]
        width, height = source["size"]
        for box in test:
            assert x0 <= box[0] < box[2] <= x1 and y0 <= box[1] < box[3] <= y1
        for box in train:
            assert 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height
            assert not make_devsets.boxes_overlap(box, source["test_box"])
            assert not any(make_devsets.boxes_overlap(box, other) for other in test)


def test_each_photo_is_the_crop_its_manifest_records(small):
    out, _ = small
    manifest = make_devsets.read_manifest(str(out / "photos"))
    sources = {s.class_name: make_devsets.load_photo_source(s) for s in make_devsets.PHOTO_SOURCES}
    for record in manifest["images"][::5]:
        crop = make_devsets.render_crop(sources[record["class"]], record["box"], record["side"], record["angle"],
                                        record["mirror"])
        with Image.open(out / "photos" / record["path"]) as image:
            assert np.array_equal(np.asarray(image), np.asarray(crop)), record["path"]


def test_boxes_overlap():
    assert make_devsets.boxes_overlap((0, 0, 10, 10), (9, 9, 20, 20))
    assert not make_devsets.boxes_overlap((0, 0, 10, 10), (10, 0, 20, 10))  # touching edges share no pixel
    assert not make_devsets.boxes_overlap((0, 0, 10, 10), (0, 10, 10, 20))


def test_photo_crops_are_neither_blank_nor_background(small):
    out, _ = small
    manifest = make_devsets.read_manifest(str(out / "photos"))
    for record in manifest["images"]:
        with Image.open(out / "photos" / record["path"]) as image:
            assert make_devsets.detail(image) >= make_devsets.MIN_DETAIL
            dark = np.mean(np.asarray(image).max(axis=-1) < make_devsets.DARK_LEVEL)
            assert dark <= make_devsets.MAX_DARK_FRACTION
    assert make_devsets.detail(Image.new("RGB", (100, 100), (200, 120, 90))) == 0.0


def test_refuses_a_non_empty_target_unless_overwrite(tmp_path):
    make_devsets.build(str(tmp_path), sets=("digits",), max_per_class=1)
    before = _files(tmp_path / "digits")
    with pytest.raises(UserError, match="--overwrite"):
        make_devsets.build(str(tmp_path), sets=("digits",), max_per_class=2)
    assert _files(tmp_path / "digits") == before
    counts = make_devsets.build(str(tmp_path), sets=("digits",), max_per_class=2, overwrite=True)
    assert counts["digits"]["train"]["0"] == 2 and len(os.listdir(tmp_path / "digits" / "Train" / "0")) == 2
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no partial folder left


def test_overwrite_never_replaces_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="notes.txt"):
        make_devsets.build(str(tmp_path), sets=("digits",), max_per_class=1, overwrite=True)
    assert os.listdir(tmp_path / "digits") == ["notes.txt"]


def test_an_empty_target_folder_is_used(tmp_path):
    (tmp_path / "digits").mkdir()
    assert make_devsets.build(str(tmp_path), sets=("digits",), max_per_class=1)["digits"]["test"]["9"] == 1


def test_a_missing_package_names_the_requirements_file(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "skimage" else real_find_spec(name, *args))
    with pytest.raises(UserError) as error:
        make_devsets.build(str(tmp_path), sets=("digits", "photos"), max_per_class=1)
    message = str(error.value)
    assert "scikit-image" in message and "pip install -r requirements-devsets.txt" in message
    assert "\n" not in message
    assert not os.listdir(tmp_path)  # checked before anything is written


def test_unknown_set_is_refused(tmp_path):
    with pytest.raises(UserError, match="unknown set cifar"):
        make_devsets.build(str(tmp_path), sets=("digits", "cifar"))


def test_command_line_prints_counts_and_exits_2_with_one_line_on_a_user_error(tmp_path):
    command = [sys.executable, os.path.join("tools", "make_devsets.py"), f"--out={tmp_path}", "--sets=faces",
               "--max_per_class=2"]
    first = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "face" in first.stdout and "train    2  test    2" in first.stdout
    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "--overwrite" in again.stderr


def test_contact_sheet_has_a_row_per_class(small, tmp_path):
    out, _ = small
    path = tmp_path / "sheet.png"
    make_devsets.write_contact_sheet(str(out / "photos"), str(path), per_class=SMALL, side=32)
    with Image.open(path) as sheet:
        assert sheet.size == (SMALL * 32, len(PHOTO_CLASSES) * 32)
        rows = np.asarray(sheet).reshape(len(PHOTO_CLASSES), 32, SMALL * 32, 3).mean(axis=(1, 2))
    assert len({tuple(np.round(row)) for row in rows}) == len(PHOTO_CLASSES)  # every row differs


@pytest.mark.slow  # imports TensorFlow and runs the real builder
def test_the_dataset_builder_reads_a_written_set(small, tmp_path):
    from cgan.inputs import datasets
    out, counts = small
    builder = datasets.prepare("isic_skin_cancer/folders_64", data_dir=str(tmp_path),
                               manual_dir=str(out / "photos"))
    assert datasets.class_names(builder) == tuple(PHOTO_CLASSES)
    assert builder.info.splits["train"].num_examples == sum(counts["photos"]["train"].values())
    assert builder.info.splits["test"].num_examples == sum(counts["photos"]["test"].values())
    assert list(builder.info.metadata["skipped_files"]) == []
    image, label = next(iter(builder.as_dataset(split="train", as_supervised=True)))
    assert image.shape == (64, 64, 3) and 0 <= int(label) < len(PHOTO_CLASSES)
