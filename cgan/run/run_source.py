"""A trained generator and the real data it was trained on: what the tools that measure a run read.

    source = run_source.load_workdir("runs/demo")               # runs/demo/generator.keras and its dataset
    source = run_source.load_source("other/generator.keras")    # any exported generator
    source.train, source.test                                   # ([N, R, R, 3] uint8, [N] int32), ...
    pictures, labels = run_source.generate_classes(source, [range(0, 4), range(4, 6)])   # 4 + 2 images

    path = run_source.report_path("runs/demo", "downstream", source.step)  # runs/demo/eval/downstream_step_003000.json

The dataset is the one the run's config names (dataset, data_dir, manual_dir): config.json beside
the model when there is one (trainer.py writes it into the workdir), otherwise the copy of the config
that trainer.py stores in the model's generator.json, so a model copied elsewhere alone still finds
its data. Its train and test splits are loaded whole, as uint8 at the model's resolution.

Used by `python -m cgan.evaluate`, `cgan.evaluation.downstream`, `cgan.evaluation.memorisation` and `sample.py
--export_dir` (cgan.share.dataset_export); the first three write their reports into <workdir>/eval/.
"""

import dataclasses
import json
import os

import numpy as np

from cgan.inputs import datasets, input_pipeline

from cgan.model import model_files, sampling
from cgan.core.errors import UserError
from cgan.run.workdir import CONFIG_FILE

EVAL_DIR = "eval"  # reports of the tools that measure a run, inside its workdir


@dataclasses.dataclass(frozen=True)
class Source:
    """A generator and the real data it was trained on.

    Attributes:
        generator: keras.Model from model_files.load_generator.
        info: its metadata (class_names, latent_dim, resolution, step, ...).
        model_path: the generator file (absolute).
        dataset: the run's --dataset, e.g. "isic_skin_cancer/synthetic_64".
        builder: the prepared TFDS builder of that dataset.
        class_names: tuple of label names, index i naming label i.
        train: (images [N, R, R, 3] uint8, labels [N] int32), the real train split.
        test: (images [M, R, R, 3] uint8, labels [M] int32), the real test split.
    """

    generator: object
    info: dict
    model_path: str
    dataset: str
    builder: object
    class_names: tuple
    train: tuple
    test: tuple

    @property
    def train_counts(self):
        """[K] int: real training images per class."""
        return np.bincount(self.train[1], minlength=len(self.class_names))

    @property
    def step(self):
        """The training step the generator was exported at."""
        return int(self.info.get("step", 0))

    @property
    def latent_dim(self):
        return int(self.info["latent_dim"])

    @property
    def resolution(self):
        """R, the side of the images in pixels (the model's and the dataset's)."""
        return int(self.train[0].shape[1])


def run_dataset(model_path, info):
    """Which dataset a generator was trained on: {"dataset", "data_dir", "manual_dir"}.

    Read from the run's config.json beside the model when there is one, otherwise from the config
    that trainer.py stores in the model's .json.

    Args:
        model_path: an exported generator .keras file.
        info: its metadata (model_files.load_generator).

    Raises:
        UserError: neither says, or config.json cannot be read.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), CONFIG_FILE)
    config = None
    if os.path.isfile(path):
        try:
            with open(path) as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read {path} ({type(e).__name__}: {e}): it is written by trainer.py; "
                            f"restore it or move the model out of that folder") from None
    if not isinstance(config, dict) or not config.get("dataset"):
        config = info.get("config")
    if not isinstance(config, dict) or not config.get("dataset"):
        raise UserError(f"cannot tell which dataset {model_path} was trained on: neither {CONFIG_FILE} "
                        f"beside it nor its {os.path.basename(model_files.info_path(model_path))} names one; "
                        f"use the generator.keras of a run made by trainer.py")
    return {"dataset": config["dataset"], "data_dir": config.get("data_dir") or "",
            "manual_dir": config.get("manual_dir") or ""}


def load_source(model_path):
    """Loads a generator and the real train and test splits of its dataset.

    Args:
        model_path: an exported generator .keras file (generator.json beside it).

    Returns:
        a Source.

    Raises:
        UserError: missing or damaged model, dataset that cannot be found or prepared, or one whose
            classes or resolution are not the model's.
    """
    generator, info = model_files.load_generator(model_path)
    where = run_dataset(model_path, info)
    try:
        builder = datasets.prepare(where["dataset"], where["data_dir"], where["manual_dir"])
    except UserError as e:
        raise UserError(f"the dataset of {model_path} ({where['dataset']}) cannot be found: {e}") from None
    class_names = tuple(info["class_names"])
    dataset_classes = tuple(datasets.class_names(builder))
    if class_names != dataset_classes:
        raise UserError(f"{model_path} makes classes {', '.join(class_names)} but {where['dataset']} has "
                        f"{', '.join(dataset_classes)}: use the data_dir the run was trained with")
    train = input_pipeline.load_split(builder, "train")
    test = input_pipeline.load_split(builder, "test")
    resolution = int(info.get("resolution") or generator.output_shape[1])
    if train[0].shape[1] != resolution:
        raise UserError(f"{model_path} makes {resolution}x{resolution} images but {where['dataset']} holds "
                        f"{train[0].shape[1]}x{train[0].shape[2]}: use the dataset the run was trained on")
    return Source(generator, info, os.path.abspath(model_path), where["dataset"], builder, class_names,
                  train, test)


def load_workdir(workdir):
    """load_source of a run directory's exported generator (<workdir>/generator.keras).

    Raises:
        UserError: workdir is not a directory; see load_source.
    """
    if not os.path.isdir(workdir):
        raise UserError(f"--workdir={workdir} is not a directory: pass the run directory of trainer.py")
    return load_source(os.path.join(workdir, model_files.GENERATOR_FILE))


def generate_classes(source, seeds, truncation=None):
    """The generator's images of every class, from given seeds (sampling.generate, class by class).

    Args:
        source: a Source.
        seeds: K sequences of seeds, class c's first; image i of class c comes from seeds[c][i].
        truncation: None, or the truncation threshold.

    Returns:
        (images [G, R, R, 3] uint8, labels [G] int32), class 0's images first; G may be 0.
    """
    counts = [len(class_seeds) for class_seeds in seeds]
    pictures = [sampling.generate(source.generator, label, class_seeds, source.latent_dim, truncation)
                for label, class_seeds in enumerate(seeds) if len(class_seeds)]
    side = source.resolution
    pictures = np.concatenate(pictures) if pictures else np.zeros((0, side, side, 3), np.uint8)
    return pictures, np.repeat(np.arange(len(seeds), dtype=np.int32), counts)


def eval_dir(workdir):
    """<workdir>/eval: the reports and TensorBoard events of the tools that measure a run."""
    return os.path.join(workdir, EVAL_DIR)


def report_path(workdir, report_name, step, json_path=None):
    """Where a tool's report goes: json_path when given, else <workdir>/eval/<report_name>_step_<step>.json."""
    return json_path or os.path.join(eval_dir(workdir), f"{report_name}_step_{step:06d}.json")
