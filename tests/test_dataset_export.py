"""cgan.share.dataset_export and `sample.py --export_dir`, on a tiny imbalanced class-folder dataset."""

import json
import os

import numpy as np
import pytest

from cgan.inputs import datasets, input_pipeline

from cgan.model import model_files, sampling

from cgan.run import run_source

from cgan.share import dataset_export
from cgan.share.dataset_export import ExportSettings
from cgan.core.errors import UserError
from conftest import IMBALANCED_CLASSES as CLASSES
from conftest import IMBALANCED_TEST_COUNTS as TEST_COUNTS
from conftest import IMBALANCED_TRAIN_COUNTS as TRAIN_COUNTS
from conftest import LATENT_DIM, error_lines, make_imbalanced_run, run_python, tree


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_imbalanced_run(tmp_path_factory.mktemp("imbalanced"))


@pytest.fixture(scope="module")
def model(run):
    return os.path.join(run[0], model_files.GENERATOR_FILE)


def class_files(out, split, name):
    return sorted(os.listdir(os.path.join(out, split, name)))


# Arithmetic.

def test_top_up_fills_every_class_to_the_target_and_never_removes():
    real = np.array([6, 3, 1])
    assert dataset_export.top_up_target("max", real) == 6
    assert dataset_export.top_up_counts(6, real).tolist() == [0, 3, 5]
    assert dataset_export.top_up_counts(4, real).tolist() == [0, 1, 3]      # the class above 4 keeps its 6
    assert dataset_export.top_up_counts(10, real + [0, 2, 0]).tolist() == [4, 5, 9]


def test_seeds_are_consecutive_and_disjoint_between_classes():
    seeds = dataset_export.allocate_seeds([3, 0, 2], first_seed=10)
    assert [list(s) for s in seeds] == [[10, 11, 12], [], [13, 14]]
    flat = [s for r in seeds for s in r]
    assert len(flat) == len(set(flat))


@pytest.mark.parametrize("kwargs,message", [
    ({}, "exactly one of --per_class"),
    ({"per_class": 3, "top_up_to": "max"}, "exactly one of --per_class"),
    ({"per_class": 0}, "--per_class=0 must be positive"),
    ({"per_class": -2}, "--per_class=-2 must be positive"),
    ({"top_up_to": "0"}, "--top_up_to=0 is not a positive count"),
    ({"top_up_to": "lots"}, "--top_up_to=lots is not a positive count"),
    ({"per_class": 2, "truncation": 0.0}, "--truncation=0 is out of range"),
])
def test_bad_settings_are_one_line_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message) as error:
        ExportSettings(**kwargs)
    assert "\n" not in str(error.value)


def test_top_up_to_accepts_max_and_counts():
    assert ExportSettings(top_up_to="MAX").top_up_to == "max"
    assert ExportSettings(top_up_to="7").top_up_to == 7
    assert ExportSettings(top_up_to=7).mode == "top_up" and ExportSettings(per_class=1).mode == "per_class"


# Exports.

def test_per_class_export_counts_names_and_manifest(model, tmp_path):
    out = str(tmp_path / "out")
    manifest = dataset_export.export_dataset(model, out, ExportSettings(per_class=4, seed=3, truncation=0.7))
    seeds = dataset_export.allocate_seeds([4, 4, 4], 3)
    for label, name in enumerate(CLASSES):
        expected, _ = sampling.file_names(label, name, seeds[label], 0.7)
        assert class_files(out, "Train", name) == sorted(expected)          # generated only, no real image
        assert len(class_files(out, "Test", name)) == TEST_COUNTS[label]
    assert sorted(os.listdir(out)) == ["Test", "Train", "manifest.json"]
    saved = json.load(open(os.path.join(out, "manifest.json")))
    assert saved == manifest
    assert saved["class_names"] == list(CLASSES) and saved["resolution"] == 64
    assert saved["counts"]["Train"]["gamma"] == {"real": 0, "synthetic": 4}
    assert saved["counts"]["Test"]["alpha"] == {"real": 3}
    entry = saved["exports"][0]
    assert entry["model"]["path"] == model and entry["model"]["step"] == 5 and len(entry["model"]["sha256"]) == 64
    assert entry["model"]["dataset"] == "isic_skin_cancer/folders_64"
    assert entry["settings"]["truncation"] == 0.7 and entry["settings"]["mode"] == "per_class"
    assert entry["seeds"] == {"alpha": {"first": 3, "count": 4}, "beta": {"first": 7, "count": 4},
                              "gamma": {"first": 11, "count": 4}}
    assert saved["next_seed"] == 15
    # The files are the images sampling.generate makes for those seeds.
    generator, info = model_files.load_generator(model)
    expected = sampling.generate(generator, 1, seeds[1], LATENT_DIM, 0.7)
    names, _ = sampling.file_names(1, "beta", seeds[1], 0.7)
    written = np.stack([images_of(os.path.join(out, "Train", "beta", n)) for n in names])
    np.testing.assert_array_equal(written, expected)


def images_of(path):
    import tensorflow as tf
    return tf.io.decode_png(open(path, "rb").read()).numpy()


def test_top_up_export_balances_the_real_images(model, run, tmp_path):
    out = str(tmp_path / "out")
    manifest = dataset_export.export_dataset(model, out, ExportSettings(top_up_to="max"))
    builder = datasets.prepare("isic_skin_cancer/folders_64", run[1], run[2])
    train_images, train_labels = input_pipeline.load_split(builder, "train")
    for label, name in enumerate(CLASSES):
        files = class_files(out, "Train", name)
        real = [f for f in files if "_real" in f]
        assert len(files) == max(TRAIN_COUNTS) and len(real) == TRAIN_COUNTS[label]
        assert manifest["counts"]["Train"][name] == {"real": TRAIN_COUNTS[label],
                                                     "synthetic": max(TRAIN_COUNTS) - TRAIN_COUNTS[label]}
        # The real ones are the prepared train split of that class, in order, pixel for pixel.
        written = np.stack([images_of(os.path.join(out, "Train", name, f)) for f in real])
        np.testing.assert_array_equal(written, train_images[train_labels == label])
    assert manifest["exports"][0]["settings"]["target_per_class"] == max(TRAIN_COUNTS)
    assert manifest["exports"][0]["seeds"]["alpha"] == {"first": 0, "count": 0}


def test_the_export_reads_back_as_a_folders_dataset(model, tmp_path):
    out = tmp_path / "out"
    manifest = dataset_export.export_dataset(model, str(out), ExportSettings(top_up_to=5))
    builder = datasets.prepare("isic_skin_cancer/folders_64", str(tmp_path / "tfds"), str(out))
    assert datasets.class_names(builder) == CLASSES
    _, labels = input_pipeline.load_split(builder, "train")
    expected = [sum(manifest["counts"]["Train"][name].values()) for name in CLASSES]
    assert np.bincount(labels, minlength=3).tolist() == expected == [6, 5, 5]
    _, test_labels = input_pipeline.load_split(builder, "test")
    assert np.bincount(test_labels, minlength=3).tolist() == list(TEST_COUNTS)


def test_same_settings_give_the_same_files_byte_for_byte(model, tmp_path):
    settings = ExportSettings(top_up_to="max", seed=2, truncation=1.5)
    dataset_export.export_dataset(model, str(tmp_path / "a"), settings)
    dataset_export.export_dataset(model, str(tmp_path / "b"), settings)
    first, second = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert sum(data is not None for data in first.values()) == sum((6, 6, 6)) + sum(TEST_COUNTS) + 1
    assert first == second


def test_the_images_are_flushed_once_then_the_manifest_last(model, tmp_path, monkeypatch):
    out = tmp_path / "out"
    events = []
    real_fsync, real_sync = os.fsync, os.sync

    def fsync(fd):
        events.append("fsync")
        real_fsync(fd)

    def sync():
        written = [path for path, data in tree(out).items() if data is not None]
        events.append(("sync", len(written), "manifest.json" in written))
        real_sync()

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "sync", sync)
    dataset_export.export_dataset(model, str(out), ExportSettings(per_class=2))
    # No flush per image; one flush of all 6 generated and 7 real test images; the manifest, flushed, last.
    assert events == [("sync", 3 * 2 + sum(TEST_COUNTS), False), "fsync"]
    assert (out / "manifest.json").exists()


def test_adding_uses_new_seeds_and_overwrites_nothing(model, tmp_path):
    out = str(tmp_path / "out")
    dataset_export.export_dataset(model, out, ExportSettings(per_class=2, real_test=False))
    before = tree(out)
    manifest = dataset_export.export_dataset(model, out, ExportSettings(per_class=3, add=True))
    after = tree(out)
    assert all(after[path] == data for path, data in before.items() if path != "manifest.json")
    first, second = manifest["exports"]
    used = [set(range(s["first"], s["first"] + s["count"])) for entry in (first, second)
            for s in entry["seeds"].values()]
    assert sum(len(s) for s in used) == len(set().union(*used)) == 15       # no seed used twice
    assert second["seeds"]["alpha"]["first"] == 6 and manifest["next_seed"] == 15
    assert manifest["counts"]["Train"]["beta"] == {"real": 0, "synthetic": 5}
    assert manifest["counts"]["Test"]["beta"] == {"real": 2}                  # the add wrote the test split
    assert len(class_files(out, "Train", "beta")) == 5
    # Topping up the same tree counts what it holds: 6 for every class, real images written once.
    manifest = dataset_export.export_dataset(model, out, ExportSettings(top_up_to="max", add=True))
    for label, name in enumerate(CLASSES):
        assert len(class_files(out, "Train", name)) == max(6, 5 + TRAIN_COUNTS[label])
    assert manifest["exports"][-1]["written"]["Test"]["alpha"] == {"real": 0}


def snapshot(folder):
    return {path: (os.path.getmtime(os.path.join(folder, path)), data) for path, data in tree(folder).items()}


def test_refusals_are_one_line_and_touch_nothing(model, run, tmp_path):
    out = tmp_path / "out"
    dataset_export.export_dataset(model, str(out), ExportSettings(per_class=1))
    before = snapshot(out)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    cases = [
        (str(a_file), ExportSettings(per_class=1), "is a file"),
        (str(a_file / "sub"), ExportSettings(per_class=1), "which is a file"),
        (str(out), ExportSettings(per_class=1), "is not empty: pass --export_add"),
        (str(stranger), ExportSettings(per_class=1, add=True), "holds no readable manifest.json"),
        (str(out), ExportSettings(per_class=1, add=True, seed=0), "seeds below 3 are already in"),
    ]
    for folder, settings, message in cases:
        with pytest.raises(UserError, match=message) as error:
            dataset_export.export_dataset(model, folder, settings)
        assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="no model file"):
        dataset_export.export_dataset(os.path.join(run[0], "missing.keras"), str(tmp_path / "new"),
                                      ExportSettings(per_class=1))
    assert snapshot(out) == before and (stranger / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["file.txt", "out", "stranger"]


def test_a_model_whose_dataset_cannot_be_found_is_refused(run, tmp_path):
    workdir = tmp_path / "moved"
    generator, info = model_files.load_generator(os.path.join(run[0], model_files.GENERATOR_FILE))
    model_files.save_models(str(workdir), generator, generator, info)          # no config.json, no config in info
    with pytest.raises(UserError, match="cannot tell which dataset"):
        dataset_export.export_dataset(str(workdir / model_files.GENERATOR_FILE), str(tmp_path / "o1"),
                                      ExportSettings(per_class=1))
    info["config"] = {"dataset": "isic_skin_cancer/folders_64", "data_dir": str(tmp_path / "empty_tfds"),
                      "manual_dir": str(tmp_path / "gone")}
    model_files.save_models(str(workdir), generator, generator, info)
    with pytest.raises(UserError, match="cannot be found") as error:
        dataset_export.export_dataset(str(workdir / model_files.GENERATOR_FILE), str(tmp_path / "o2"),
                                      ExportSettings(per_class=1))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_the_config_stored_with_the_model_finds_the_dataset(run, tmp_path):
    generator, info = model_files.load_generator(os.path.join(run[0], model_files.GENERATOR_FILE))
    info["config"] = json.load(open(os.path.join(run[0], "config.json")))
    model_files.save_models(str(tmp_path / "copied"), generator, generator, info)
    source = run_source.load_source(str(tmp_path / "copied" / model_files.GENERATOR_FILE))
    assert source.train_counts.tolist() == list(TRAIN_COUNTS) and len(source.test[1]) == sum(TEST_COUNTS)


def test_generate_top_up_matches_the_export(model, tmp_path):
    source = run_source.load_source(model)
    pictures, labels, seeds = dataset_export.generate_top_up(source, seed=4)
    assert np.bincount(labels, minlength=3).tolist() == [0, 3, 5] and pictures.shape == (8, 64, 64, 3)
    out = str(tmp_path / "out")
    dataset_export.export_dataset(model, out, ExportSettings(top_up_to="max", seed=4))
    names, _ = sampling.file_names(2, "gamma", seeds[2])
    np.testing.assert_array_equal(np.stack([images_of(os.path.join(out, "Train", "gamma", n)) for n in names]),
                                  pictures[labels == 2])


# The command line.

@pytest.mark.slow
def test_sample_py_exports_and_refuses_bad_flags_in_one_line(run, tmp_path):
    workdir = run[0]
    out = tmp_path / "out"
    result = run_python("sample.py", f"--workdir={workdir}", f"--export_dir={out}", "--top_up_to=max")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Wrote 8 generated and 10 real training images" in result.stdout
    assert json.load(open(out / "manifest.json"))["counts"]["Train"]["gamma"] == {"real": 1, "synthetic": 5}
    before = snapshot(out)
    # The mode and parse errors come before TensorFlow starts; one of each kind of the others (the rest
    # are tested in-process above).
    for args, message in [
        ([f"--export_dir={out}", "--label=3", "--per_class=2"], "--label cannot be used with --export_dir"),
        (["--per_class=2", "--label=3"], "--per_class only applies with --export_dir"),
        (["--serve", f"--export_dir={out}"], "--export_dir cannot be used with --serve"),
        ([f"--export_dir={out}"], "pass exactly one of --per_class"),
        ([f"--export_dir={tmp_path / 'new'}", "--per_class=abc"], "flag --per_class=abc"),
        ([f"--export_dir={tmp_path / 'new'}", "--per_class=0"], "--per_class=0 must be positive"),
        ([f"--export_dir={out}", "--per_class=1"], "is not empty: pass --export_add"),
        ([f"--export_dir={tmp_path / 'new'}", "--per_class=1", f"--workdir={tmp_path / 'nothing'}"], "no model file"),
    ]:
        result = run_python("sample.py", f"--workdir={workdir}", *args)
        lines = error_lines(result, "sample.py")
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr
    assert snapshot(out) == before and not (tmp_path / "new").exists()
