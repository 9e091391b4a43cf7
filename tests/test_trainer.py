"""End to end: trainer.py and sample.py as a user runs them, on a generated ISIC-layout fixture."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


def run(script, *flags, check=True):
    result = subprocess.run([sys.executable, os.path.join(REPO, script), *flags], capture_output=True,
                            text=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def read_scalars(event_dir):
    values = {}
    for name in sorted(os.listdir(event_dir)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(event_dir, name)):
            for value in event.summary.value:
                values.setdefault(value.tag, []).append((event.step, value))
    return values


@pytest.fixture(scope="module")
def trained(tmp_path_factory, isic_folders):
    """Four steps of real_64 on the fixture, checkpoint every 2, then a resumed run to step 6."""
    base = tmp_path_factory.mktemp("run")
    workdir, data_dir = str(base / "work"), str(base / "tfds")
    flags = [f"--workdir={workdir}", "--dataset=isic_skin_cancer/real_64", f"--data_dir={data_dir}",
             f"--manual_dir={isic_folders}", "--batch_size=4", "--checkpoint_every=2", "--summary_every=2",
             "--image_every=2", "--steps_per_call=2", "--precision=float32"]
    first = run("trainer.py", *flags, "--train_steps=4")
    second = run("trainer.py", *flags, "--train_steps=6")
    return workdir, first, second


def test_first_run_writes_checkpoints_exports_and_samples(trained):
    workdir, first, _ = trained
    assert "No checkpoint" in first.stderr and "step 4/4" in first.stderr
    assert "ETA" in first.stderr and "steps/s" in first.stderr
    files = set(os.listdir(workdir))
    assert {"generator.keras", "generator.json", "discriminator.keras", "config.json", "checkpoints",
            "train", "samples"} <= files
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert config["resolution"] == 64 and config["resolved_precision"] == "float32"
    assert config["class_names"][3] == "melanoma" and len(config["class_names"]) == 9
    grid = tf.io.decode_png(open(os.path.join(workdir, "samples", "step_000004.png"), "rb").read())
    assert grid.shape == (9 * 66 - 2, 8 * 66 - 2, 3)  # one row per class, 8 columns, 2-pixel padding


def test_rerun_resumes_from_the_saved_step(trained):
    workdir, _, second = trained
    assert "Restored step 4" in second.stderr
    assert "step 6/6" in second.stderr
    assert json.load(open(os.path.join(workdir, "generator.json")))["step"] == 6
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-6")


def test_rerun_past_the_end_trains_nothing(trained):
    workdir, _, _ = trained
    flags = [f"--workdir={workdir}", "--dataset=isic_skin_cancer/real_64", "--train_steps=6"]
    result = run("trainer.py", *flags, f"--data_dir={json.load(open(os.path.join(workdir, 'config.json')))['data_dir']}")
    assert "already reaches" in result.stderr


def test_tensorboard_events_hold_scalars_images_and_config(trained):
    workdir, _, _ = trained
    values = read_scalars(os.path.join(workdir, "train"))
    for tag in ("d_loss", "g_loss", "d_real", "d_fake"):
        steps = [step for step, _ in values[tag]]
        assert steps == [2, 4, 6], tag
        assert all(np.isfinite(tf.make_ndarray(v.tensor)) for _, v in values[tag])
    d_real = [float(tf.make_ndarray(v.tensor)) for _, v in values["d_real"]]
    assert all(0.0 <= p <= 1.0 for p in d_real)
    assert [step for step, _ in values["samples"]] == [2, 4, 6]
    assert "steps_per_sec" in values and "config" in values
    assert b"melanoma" in values["config"][0][1].tensor.string_val[0]


def test_exports_load_in_a_fresh_process_and_sample(trained, tmp_path):
    workdir, _, _ = trained
    out = tmp_path / "out"
    result = run("sample.py", f"--workdir={workdir}", "--label=melanoma", "--num=3", "--seed=7",
                 f"--out_dir={out}")
    assert "class 3 (melanoma)" in result.stdout
    names = sorted(os.listdir(out))
    assert names == ["class03_melanoma_seed0007.png", "class03_melanoma_seed0008.png",
                     "class03_melanoma_seed0009.png", "class03_melanoma_seeds0007-0009.png"]
    image = tf.io.decode_png((out / names[0]).read_bytes()).numpy()
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    again = tmp_path / "again"
    run("sample.py", f"--model={workdir}/generator.keras", "--label=3", "--num=1", "--seed=7",
        f"--out_dir={again}")
    assert (again / names[0]).read_bytes() == (out / names[0]).read_bytes()
    script = ("import keras, sys\nfor path in sys.argv[1:]:\n"
              "    m = keras.models.load_model(path); print(m.name, m.output_shape)")
    loaded = subprocess.run([sys.executable, "-c", script, *(os.path.join(workdir, f"{name}.keras")
                                                              for name in ("generator", "discriminator"))],
                            capture_output=True, text=True, check=True)
    assert loaded.stdout.splitlines() == ["generator (None, 64, 64, 3)", "discriminator (None, 1)"]


@pytest.mark.parametrize("label,message", [("9", "out of range"), ("mole", "not a class")])
def test_sample_bad_label_is_one_line(trained, tmp_path, label, message):
    workdir, _, _ = trained
    result = run("sample.py", f"--workdir={workdir}", f"--label={label}", f"--out_dir={tmp_path}", check=False)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []


def test_sample_missing_model_is_one_line(tmp_path):
    result = run("sample.py", f"--model={tmp_path}/nope.keras", "--label=3", check=False)
    assert result.returncode != 0 and "no model file" in result.stderr and "Traceback" not in result.stderr


def test_changed_model_flag_refuses_to_resume(trained):
    workdir, _, _ = trained
    result = run("trainer.py", f"--workdir={workdir}", "--dataset=isic_skin_cancer/real_64", "--latent_dim=50",
                 check=False)
    assert result.returncode != 0 and "--latent_dim=100" in result.stderr
    assert "Traceback" not in result.stderr


def test_build_command_reports_counts_and_classes(tmp_path, isic_folders):
    result = subprocess.run([sys.executable, "-m", "data.isic_skin_cancer", "--config=real_64",
                             f"--manual_dir={isic_folders}", f"--data_dir={tmp_path}"],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "train: 18 images" in result.stdout and "test: 9 images" in result.stdout
    assert "3=melanoma" in result.stdout and "skipped files: 0" in result.stdout
    missing = subprocess.run([sys.executable, "-m", "data.isic_skin_cancer", "--config=real_64",
                              f"--manual_dir={tmp_path}/nowhere", f"--data_dir={tmp_path}/other"],
                             capture_output=True, text=True, cwd=REPO, timeout=300)
    assert missing.returncode == 2 and "--manual_dir" in missing.stderr and "Traceback" not in missing.stderr


def test_eval_every_logs_quality_metrics(tmp_path, isic_folders):
    # Its own data_dir: the evaluation classifier it trains is cached there.
    workdir = tmp_path / "work"
    result = run("trainer.py", f"--workdir={workdir}", "--dataset=isic_skin_cancer/real_64",
                 f"--data_dir={tmp_path / 'tfds'}", f"--manual_dir={isic_folders}", "--batch_size=4",
                 "--train_steps=2", "--eval_every=2", "--eval_num_per_class=4", "--inception_weights=none",
                 "--summary_every=1", "--precision=float32")
    assert "eval at step 2: gan_test" in result.stderr
    values = read_scalars(str(workdir / "train"))
    assert [step for step, _ in values["eval/gan_test"]] == [2]
    gan_test = float(tf.make_ndarray(values["eval/gan_test"][0][1].tensor))
    assert 0.0 <= gan_test <= 1.0 and "eval/gan_test/melanoma" in values and "eval/classifier_fd" in values
    assert "eval/classifier_recall_floor" in values and "eval/cas" not in values  # CAS: the report's
    assert {"eval/structure_diversity_ratio/melanoma", "eval/assigned_elsewhere/melanoma",
            "eval/structure_diversity_ratio_class_min", "eval/assigned_elsewhere_class_max"} <= set(values)
    assert "assigned_elsewhere_class_max" in result.stderr
    # 2 training images per class leave 1 held-out image per class: no per-class distances.
    assert "eval/classifier_recall/melanoma" not in values


def test_ema_generator_is_exported_and_required_to_resume(tmp_path, isic_data_dir):
    import keras
    from cgan.model import model_files
    workdir = tmp_path / "work"
    flags = [f"--workdir={workdir}", "--dataset=isic_skin_cancer/real_64", f"--data_dir={isic_data_dir}",
             "--batch_size=4", "--train_steps=3", "--checkpoint_every=3", "--steps_per_call=1",
             "--precision=float32", "--ema_decay=0.5", "--g_conditioning=cbn", "--d_conditioning=projection",
             "--d_norm=spectral", "--loss=hinge", "--r1_gamma=1", "--balanced"]
    first = run("trainer.py", *flags)
    assert "remapper failed" not in first.stderr
    generator, info = model_files.load_generator(str(workdir / "generator.keras"))
    assert info["ema"] is True
    reader = tf.train.load_checkpoint(str(workdir / "checkpoints"))
    names = reader.get_variable_to_shape_map()
    # The export holds the averaged weights: equal to the checkpoint's EMA copy, not to the live G.
    exported = {v.path: v.numpy() for v in generator.weights}
    kernel = next(value for path, value in exported.items() if path.endswith("dense/kernel"))

    def same_shape(prefix):
        return [reader.get_tensor(n) for n in names if n.startswith(prefix) and n.endswith("VARIABLE_VALUE")
                and reader.get_variable_to_shape_map()[n] == list(kernel.shape)]
    assert any(np.array_equal(kernel, value) for value in same_shape("ema_generator/"))
    live = same_shape("g_optimizer/_trainable_variables/")  # where the checkpoint keeps the live G's kernels
    assert live and not any(np.array_equal(kernel, value) for value in live)
    without = run("trainer.py", *[f for f in flags if not f.startswith("--ema_decay")], "--train_steps=4",
                  check=False)
    assert without.returncode != 0 and "--ema_decay=0.5" in without.stderr
    assert "Traceback" not in without.stderr
    other = run("trainer.py", *flags[:-1], "--train_steps=4", "--d_norm=batch", check=False)
    assert other.returncode != 0 and "--d_norm=spectral" in other.stderr


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory, isic_folders):
    """The fixture's class folders (manual_dir) and, built from them once, a folders_64 data_dir."""
    from cgan.inputs import datasets
    source = isic_folders / "Skin cancer ISIC The International Skin Imaging Collaboration"
    data_dir = tmp_path_factory.mktemp("tfds_folders")
    datasets.prepare("isic_skin_cancer/folders_64", data_dir=str(data_dir), manual_dir=str(source))
    return source, data_dir


@pytest.mark.parametrize("flagfile", ["demo.flags", "quality.flags", "quality_gpu.flags", "p100.flags"])
def test_flag_files_train_on_any_class_folder_dataset(tmp_path, class_folders, flagfile):
    """Each shipped preset runs on a dataset of class folders it was not made for (later flags win)."""
    source, data_dir = class_folders
    workdir = tmp_path / "work"
    result = run("trainer.py", f"--flagfile={os.path.join(REPO, flagfile)}", f"--workdir={workdir}",
                 "--dataset=isic_skin_cancer/folders_64", f"--manual_dir={source}",
                 f"--data_dir={data_dir}", "--train_steps=2", "--steps_per_call=1",
                 "--checkpoint_every=2", "--eval_every=0")
    assert "step 2/2" in result.stderr
    info = json.load(open(workdir / "generator.json"))
    assert info["class_names"][3] == "melanoma" and info["step"] == 2
    assert (workdir / "samples" / "step_000002.png").exists()
