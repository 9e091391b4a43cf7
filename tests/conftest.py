"""Shared test setup: quiet TensorFlow logs, and helpers that write image fixtures."""

import os
import shutil
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
    from cgan.inputs import datasets
    data_dir = tmp_path_factory.mktemp("tfds")
    datasets.prepare("isic_skin_cancer/real_64", data_dir=str(data_dir), manual_dir=str(isic_folders))
    return data_dir


def run_python(*args, timeout=300):
    """Runs `python args` from the repository root in a fresh process, as a user runs a command.

    Returns:
        The subprocess.CompletedProcess (stdout and stderr as text); the caller checks the exit status.
    """
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=timeout)


def error_lines(result, program):
    """The `<program>: error: ...` lines of a command's stderr (TensorFlow's start-up lines may precede them)."""
    return [line for line in result.stderr.splitlines() if line.startswith(f"{program}: error:")]


def tree(directory):
    """{relative path: bytes, or None for a folder} of everything under directory."""
    found = {}
    for root, folders, names in os.walk(directory):
        for name in folders:
            found[os.path.relpath(os.path.join(root, name), directory)] = None
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, directory)] = f.read()
    return found


def read_scalars(event_dir):
    """{tag: (step, value)} of the TensorBoard scalars in event_dir's event files (the last one of a tag)."""
    import tensorflow as tf
    values = {}
    for name in [n for n in os.listdir(event_dir) if n.startswith("events.out")]:
        for event in tf.compat.v1.train.summary_iterator(os.path.join(event_dir, name)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    values[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
    return values


def checkpoint_tensors(workdir):
    """{name: array} of the latest checkpoint in workdir: weights, optimizer slots, batch-norm statistics,
    the noise generator's state and the step."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name not in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")}


def interrupted_copy(workdir, copy, step):
    """A copy of a finished run as a kill right after step `step`'s checkpoint leaves it: the later
    checkpoints' files are gone, so the next run on `copy` resumes at `step`."""
    shutil.copytree(workdir, copy)
    folder = os.path.join(copy, "checkpoints")
    for name in os.listdir(folder):
        if name.startswith("ckpt-") and int(name.split("-")[1].split(".")[0]) > step:
            os.remove(os.path.join(folder, name))


def find_picture(canvas, picture):
    """The top-left corners where `picture` ([h, w, 3]) appears in `canvas` ([H, W, 3]), pixel for pixel."""
    height, width = picture.shape[:2]
    window = canvas[:canvas.shape[0] - height + 1, :canvas.shape[1] - width + 1]
    ys, xs = np.nonzero(np.all(window == picture[0, 0], axis=-1))
    return [(int(y), int(x)) for y, x in zip(ys, xs) if np.array_equal(canvas[y:y + height, x:x + width], picture)]


LATENT_DIM = 8  # tiny_generator's


def tiny_generator(num_classes, resolution=64):
    """A conditional generator that builds in milliseconds: [z [B, 8], label [B]] -> [B, R, R, 3] tanh images."""
    import keras
    z = keras.Input((LATENT_DIM,), name="z")
    label = keras.Input((), dtype="int32", name="label")
    embedded = keras.layers.Embedding(num_classes, 4,
                                      embeddings_initializer=keras.initializers.RandomNormal(seed=1))(label)
    x = keras.layers.Concatenate()([z, embedded])
    x = keras.layers.Dense(4 * 4 * 3, activation="tanh", kernel_initializer=keras.initializers.GlorotUniform(2))(x)
    x = keras.layers.Reshape((4, 4, 3))(x)
    return keras.Model([z, label], keras.layers.UpSampling2D(resolution // 4)(x), name="generator")


def make_run(workdir, class_names, dataset, data_dir, manual_dir, step):
    """A run directory as trainer.py leaves it: an exported tiny_generator with its generator.json, and
    config.json naming the dataset."""
    from cgan.model import model_files
    from cgan.core.config import TrainConfig
    info = {"class_names": list(class_names), "latent_dim": LATENT_DIM, "resolution": 64, "step": step}
    generator = tiny_generator(len(class_names))
    model_files.save_models(str(workdir), generator, generator, info)
    TrainConfig(workdir=str(workdir), dataset=dataset, data_dir=str(data_dir),
                manual_dir=str(manual_dir)).to_json(os.path.join(str(workdir), "config.json"))


# make_imbalanced_run's dataset: three classes of very different sizes.
IMBALANCED_CLASSES = ("alpha", "beta", "gamma")
IMBALANCED_TRAIN_COUNTS = (6, 3, 1)
IMBALANCED_TEST_COUNTS = (3, 2, 2)


def make_imbalanced_run(root, train_counts=IMBALANCED_TRAIN_COUNTS, test_counts=IMBALANCED_TEST_COUNTS, step=5):
    """A class-folder dataset of IMBALANCED_CLASSES (class-coloured noise PNGs), prepared as folders_64, and
    a run trained on it (make_run).

    Returns:
        (workdir, data_dir, manual_dir) as str.
    """
    from cgan.core import images
    from cgan.inputs import datasets
    manual_dir, data_dir, workdir = root / "folders", root / "tfds", root / "run"
    rng = np.random.default_rng(0)
    for label, name in enumerate(IMBALANCED_CLASSES):
        colour = np.array([80 * label, 200 - 60 * label, 120], np.int64)
        for split, counts in (("Train", train_counts), ("Test", test_counts)):
            for i in range(counts[label]):
                picture = np.clip(colour + rng.integers(-40, 40, (64, 64, 3)), 0, 255).astype(np.uint8)
                images.write_png(str(manual_dir / split / name / f"{name}_{i}.png"), picture)
    dataset = "isic_skin_cancer/folders_64"
    datasets.prepare(dataset, str(data_dir), str(manual_dir))
    make_run(workdir, IMBALANCED_CLASSES, dataset, data_dir, manual_dir, step)
    return str(workdir), str(data_dir), str(manual_dir)
