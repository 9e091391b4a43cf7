"""Does a classifier do better with the generated images? Measured on the real test split, over seeds.

    python -m cgan.downstream --workdir=runs/demo            # report: runs/demo/eval/downstream_step_003000.json
    python -m cgan.downstream --workdir=runs/demo --downstream_classifier=EfficientNetB0   # for a GPU

    report = downstream.measure(source, downstream.Settings(seeds=3))   # source: run_source.load_source

Two training sets, each training a fresh classifier once per classifier seed (0, 1, ...): "real" (the
real train split, imbalanced) and "real+synthetic" (plus the generated images that fill every class
up to the largest: those of `sample.py --export_dir=OUT --top_up_to=max --seed=SEED`). Per run:
balanced accuracy, macro-F1 and each class's recall on the real test split. The report gives each
metric's mean ± standard deviation over seeds, Δ = real+synthetic − real, and whether |Δ| > 2 × the
pooled standard deviation: a rule of thumb, not a significance test. The seeds vary the classifier
only; the generated images are the same in every run.

Classifiers: "small_cnn" (default) is the evaluation classifier's network and recipe
(cgan.evaluation.metrics.classifier), small enough for 2 × seeds trainings on a CPU, and its "real" arm
at seed 0 is the classifier whose accuracy cgan.evaluate reports. Any keras.applications model by
name is trained from scratch (nothing is downloaded) with its own preprocess_input, meant for a GPU.
Outputs: the JSON report, a table, TensorBoard scalars downstream/<arm>/<metric> and downstream/delta/.
"""

import dataclasses
import math
import os
import re
import sys
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from cgan.core import options, seeding

from cgan.model import sampling

from cgan.run import run_source

from cgan.share import dataset_export
from cgan.core.errors import UserError
from cgan.evaluation.metrics import classifier as classifier_lib

PROGRAM = "downstream"
REPORT_NAME = "downstream"       # eval/downstream_step_<step>.json
SUMMARY_DIR = "downstream"       # TensorBoard scalars, in the workdir's eval/
DEFAULT_CLASSIFIER = "small_cnn"
ARMS = ("real", "real+synthetic")
SPREAD_FACTOR = 2.0              # |Δ mean| > SPREAD_FACTOR × pooled std: beyond the seed-to-seed spread
RULE = (f"|delta| > {SPREAD_FACTOR:g} x pooled std, pooled std = sqrt((s_real^2 + s_real+synthetic^2) / 2) "
        f"over classifier seeds: a rule of thumb for 'larger than the seed-to-seed spread', not a "
        f"significance test")
_SUMMARY_METRICS = ("balanced_accuracy", "macro_f1", "accuracy")


@dataclasses.dataclass(frozen=True)
class Settings(options.Options):
    """How the classifiers are trained and which generated images top the classes up; checked once here."""
    seeds: int = options.option(3, "Classifier seeds per training set (0, 1, ...); 2 or more give a spread.", lower=1)
    epochs: int = options.option(classifier_lib.ClassifierSettings().epochs, "Epochs of each classifier's training.",
                                 lower=1)
    downstream_classifier: str = options.option(
        DEFAULT_CLASSIFIER, f"{DEFAULT_CLASSIFIER} (the evaluation classifier's network, for CPUs) or a "
        "keras.applications model name such as MobileNetV3Small, EfficientNetB0 or ResNet50 (trained from "
        "scratch; meant for a GPU).")
    seed: int = options.image_seed("the top-up's images take the seeds sample.py --export_dir --top_up_to=max "
                                   "--seed gives them.")
    truncation: float | None = options.truncation()
    batch_size: int = options.option(classifier_lib.ClassifierSettings().batch_size,
                                     "Images per optimiser step of each classifier.", lower=1)
    learning_rate: float = options.option(classifier_lib.ClassifierSettings().learning_rate,
                                          "Adam learning rate of each classifier.", lower=0.0)
    classifier_flips: str = options.classifier_flips()

    def __post_init__(self):
        super().__post_init__()
        if self.downstream_classifier != DEFAULT_CLASSIFIER:
            application(self.downstream_classifier)  # raises for an unknown name


def application_names():
    """The model constructors of keras.applications (MobileNetV3Small, ResNet50, ...)."""
    return sorted(name for name in dir(keras.applications)
                  if name[:1].isupper() and callable(getattr(keras.applications, name)))


def application(name):
    """The keras.applications constructor called `name`.

    Raises:
        UserError: no such model.
    """
    if name not in application_names():
        raise UserError(f"--downstream_classifier={name} is neither {DEFAULT_CLASSIFIER} nor a keras.applications "
                        f"model: use e.g. MobileNetV3Small, EfficientNetB0 or ResNet50 (exact spelling)")
    return getattr(keras.applications, name)


def application_classifier(name, resolution, num_classes, seed):
    """A keras.applications network with a fresh head, untrained, with build_classifier's contract.

    Like cgan.evaluation.metrics.classifier.build_classifier it takes [B, R, R, 3] float32 pixels in [0, 255] and
    gives [B, num_classes] logits, and its "features" layer is the penultimate activation (here the
    backbone's pooled output), so train_classifier and Classifier serve both.

    Args:
        name: a keras.applications model, e.g. "MobileNetV3Small".
        resolution: R.
        num_classes: K.
        seed: seeds the weights, the flips and the dropout.

    Raises:
        UserError: no such model.
    """
    constructor = application(name)
    preprocess = sys.modules[constructor.__module__].preprocess_input
    seeding.set_global_seed(seed)  # the applications' layers take no per-layer seeds
    size = resolution
    try:
        backbone = constructor(include_top=False, weights=None, input_shape=(size, size, 3), pooling="avg")
    except ValueError as e:  # "Input size must be at least 75x75; ..." (InceptionV3, Xception)
        match = re.search(r"at least (\d+)x(\d+)", str(e))
        if not match:
            raise
        size = int(match.group(1))
        seeding.set_global_seed(seed)
        backbone = constructor(include_top=False, weights=None, input_shape=(size, size, 3), pooling="avg")
    inputs = keras.Input((resolution, resolution, 3), name="pixels")                 # [B, R, R, 3] in [0, 255]
    x = inputs
    if size != resolution:
        x = keras.layers.Resizing(size, size, interpolation="bilinear")(x)           # [B, S, S, 3]
    x = keras.layers.Lambda(preprocess, name="preprocess_input")(x)
    x = keras.layers.RandomFlip("horizontal_and_vertical", seed=seed)(x)
    features = keras.layers.Identity(name=classifier_lib.FEATURE_LAYER)(backbone(x))  # [B, C]
    x = keras.layers.Dropout(0.3, seed=seed + 1)(features)
    logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=f"downstream_{name}")


def train_and_predict(train, test_images, num_classes, settings, seed):
    """Trains one fresh classifier and labels the test images.

    Args:
        train: (images [N, R, R, 3] uint8, labels [N] int).
        test_images: [M, R, R, 3] uint8.
        num_classes: K.
        settings: Settings.
        seed: the classifier seed.

    Returns:
        [M] int predicted labels.
    """
    train_images, train_labels = train
    recipe = classifier_lib.ClassifierSettings(epochs=settings.epochs, batch_size=settings.batch_size,
                                               learning_rate=settings.learning_rate, seed=seed, flips=settings.classifier_flips)
    model = None  # train_classifier builds the small CNN
    if settings.downstream_classifier != DEFAULT_CLASSIFIER:
        model = application_classifier(settings.downstream_classifier, train_images.shape[1], num_classes, seed)
    model = classifier_lib.train_classifier(train_images, train_labels, num_classes, recipe, model=model)
    return classifier_lib.Classifier(model, {}).predict(test_images)


def classification_metrics(labels, predictions, class_names):
    """Balanced accuracy, macro-F1, accuracy and per-class recall, precision and F1.

    Classes without test images are left out of the per-class values and of both means.

    Args:
        labels: [M] int true labels.
        predictions: [M] int predicted labels.
        class_names: names, index i naming label i.

    Returns:
        dict: "balanced_accuracy", "macro_f1", "accuracy", "recall/<name>", "precision/<name>", "f1/<name>".
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    values = {"accuracy": float(np.mean(labels == predictions))}
    recalls, f1s = [], []
    for label, name in enumerate(class_names):
        support = int(np.sum(labels == label))
        if not support:
            continue
        hits = int(np.sum((labels == label) & (predictions == label)))
        predicted = int(np.sum(predictions == label))
        recall = hits / support
        precision = hits / predicted if predicted else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        values[f"recall/{name}"], values[f"precision/{name}"], values[f"f1/{name}"] = recall, precision, f1
        recalls.append(recall)
        f1s.append(f1)
    values["balanced_accuracy"] = float(np.mean(recalls))
    values["macro_f1"] = float(np.mean(f1s))
    return values


def compare(runs_real, runs_augmented):
    """Mean ± std per metric for both training sets, their difference and the spread rule.

    Args:
        runs_real, runs_augmented: lists (one per seed) of classification_metrics dicts.

    Returns:
        {metric: {"real": {"mean", "std", "values"}, "real+synthetic": {...}, "delta", "pooled_std",
        "beyond_spread"}}; std is the sample standard deviation (0 with one seed, and then
        beyond_spread is None: one seed shows no spread).
    """
    summary = {}
    for name in runs_real[0]:
        arms = {}
        for arm, runs in zip(ARMS, (runs_real, runs_augmented)):
            values = np.array([run[name] for run in runs], np.float64)
            arms[arm] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                         "values": [float(v) for v in values]}
        delta = arms[ARMS[1]]["mean"] - arms[ARMS[0]]["mean"]
        pooled = math.sqrt((arms[ARMS[0]]["std"] ** 2 + arms[ARMS[1]]["std"] ** 2) / 2)
        beyond = None if len(runs_real) < 2 else bool(abs(delta) > SPREAD_FACTOR * pooled)
        summary[name] = {**arms, "delta": delta, "pooled_std": pooled, "beyond_spread": beyond}
    return summary


def measure(source, settings, report_path=None):
    """Trains the classifiers of both training sets and compares them on the real test split.

    Args:
        source: run_source.Source (the generator and its real data).
        settings: Settings.

    Returns:
        the report dict (see the module docstring); "metrics" holds compare()'s result.
    """
    start = time.perf_counter()
    names = source.class_names
    generated, generated_labels, seeds = dataset_export.generate_top_up(source, settings.seed, settings.truncation)
    real_images, real_labels = source.train
    if settings.downstream_classifier == DEFAULT_CLASSIFIER and settings.classifier_flips == "auto":
        recipe = classifier_lib.ClassifierSettings(epochs=settings.epochs, batch_size=settings.batch_size,
                                                   learning_rate=settings.learning_rate)
        flips = classifier_lib.resolve_flips(recipe, real_images, real_labels, len(names),
                                             os.path.join(source.builder.data_dir, classifier_lib.CACHE_DIR)).flips
        settings = dataclasses.replace(settings, classifier_flips=flips)
    training_sets = {
        ARMS[0]: (real_images, real_labels),
        ARMS[1]: (np.concatenate([real_images, generated]), np.concatenate([real_labels, generated_labels])),
    }
    test_images, test_labels = source.test
    runs = {arm: [] for arm in ARMS}
    for seed in range(settings.seeds):
        for arm, training_set in training_sets.items():
            logging.info("Downstream classifier %s, seed %d, on %s (%d images)", settings.downstream_classifier, seed, arm,
                         len(training_set[0]))
            predictions = train_and_predict(training_set, test_images, len(names), settings, seed)
            runs[arm].append(classification_metrics(test_labels, predictions, names))
    real_counts = source.train_counts
    return {
        "generator": source.model_path,
        "step": source.step,
        "dataset": source.dataset,
        "class_names": list(names),
        "classifier": {"name": settings.downstream_classifier, "epochs": settings.epochs, "batch_size": settings.batch_size,
                       "flips": settings.classifier_flips,
                       "learning_rate": settings.learning_rate, "seeds": list(range(settings.seeds)),
                       "weights": "none (trained from scratch)"},
        "training_sets": {
            ARMS[0]: {name: int(n) for name, n in zip(names, real_counts)},
            ARMS[1]: {name: int(n) + len(s) for name, n, s in zip(names, real_counts, seeds)},
            "generated": {name: {"first_seed": s.start, "count": len(s)} for name, s in zip(names, seeds)},
            "generated_as": (f"sample.py --export_dir=OUT --top_up_to=max --seed={settings.seed}"
                             + (f" --truncation={settings.truncation:g}" if settings.truncation else "")),
        },
        "test_split": {name: int(np.sum(test_labels == c)) for c, name in enumerate(names)},
        "rule": RULE,
        "metrics": compare(runs[ARMS[0]], runs[ARMS[1]]),
        "seconds": round(time.perf_counter() - start, 1),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }


def summary_lines(report):
    """The report as a table: one row per metric, mean ± std of both sets, Δ and the spread rule."""
    metrics = report["metrics"]
    sizes = {arm: sum(report["training_sets"][arm].values()) for arm in ARMS}
    lines = [f"{report['generator']} (step {report['step']}) on {report['dataset']}: "
             f"{report['classifier']['name']}, {len(report['classifier']['seeds'])} seeds x "
             f"{report['classifier']['epochs']} epochs; train {sizes[ARMS[0]]} real / "
             f"{sizes[ARMS[1]]} real+synthetic images; test {sum(report['test_split'].values())} real images",
             f"{'metric':<36} {'real':>15} {'real+synthetic':>15} {'delta':>8}  beyond spread"]
    ordered = list(_SUMMARY_METRICS) + [f"recall/{name}" for name in report["class_names"]
                                        if f"recall/{name}" in metrics]
    for name in ordered:
        row = metrics[name]
        cells = [f"{row[arm]['mean']:.3f} ± {row[arm]['std']:.3f}" for arm in ARMS]
        beyond = {True: "yes", False: "no", None: "-"}[row["beyond_spread"]]
        lines.append(f"{name:<36} {cells[0]:>15} {cells[1]:>15} {row['delta']:>+8.3f}  {beyond}")
    lines.append(f"beyond spread: {report['rule']}")
    return lines


def write_scalars(writer, report):
    """TensorBoard: downstream/<arm>/<metric> means, downstream/delta/<metric>, and the table as text."""
    with writer.as_default(step=report["step"]):
        for name, row in report["metrics"].items():
            for arm in ARMS:
                tf.summary.scalar(f"{SUMMARY_DIR}/{arm}/{name}", row[arm]["mean"])
            tf.summary.scalar(f"{SUMMARY_DIR}/delta/{name}", row["delta"])
        tf.summary.text(f"{SUMMARY_DIR}/table", "```\n" + "\n".join(summary_lines(report)) + "\n```")
