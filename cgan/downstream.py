"""Does a classifier do better with the generated images? Measured on the real test split, over seeds.

    python -m cgan.downstream --workdir=runs/demo            # report: runs/demo/eval/downstream_step_003000.json
    python -m cgan.downstream --workdir=runs/demo --seeds=5 --epochs=30 --json=downstream.json
    python -m cgan.downstream --workdir=runs/demo --downstream_classifier=EfficientNetB0   # for a GPU

    report = downstream.run(source, DownstreamSettings(seeds=3))     # source: dataset_export.load_source
    print("\\n".join(downstream.table_lines(report)))

Two training sets, each used to train a fresh classifier once per classifier seed (0, 1, ...):
- "real": the real train split alone, with its class imbalance;
- "real+synthetic": the same images plus generated ones that fill every class up to the largest
  class's count (exactly the images of `sample.py --export_dir=OUT --top_up_to=max --seed=--seed`).
Both are tested on the real test split. Per run: balanced accuracy (the mean of the per-class
recalls, so every class counts the same whatever its size), macro-F1 (the mean of the per-class F1
scores) and each class's recall. The report gives each metric's mean ± standard deviation over the
seeds for both sets, the difference of the means Δ = real+synthetic − real, and whether
|Δ| > 2 × the pooled standard deviation √((s²_real + s²_real+synthetic) / 2): a rule of thumb that
says the difference is larger than the seed-to-seed spread, not a significance test. The seeds vary
the classifier's initialisation, shuffling, dropout and flips; the generated images are the same in
every run. A test split of a few images per class moves per-class recalls in large steps.

Classifiers:
- "small_cnn" (default): the network and training recipe of the evaluation classifier
  (`cgan.metrics.classifier.build_classifier` / `train_classifier`: four stride-2 convolutions,
  Adam, random flips), trained from scratch at 64×64 whatever the resolution. Why: it needs no
  download, it is small enough to be trained 2 × seeds times on a 2-core CPU (a pretrained-size
  network is not), and with the evaluation's own recipe the "real" arm at seed 0 is the classifier
  whose test accuracy `cgan.evaluate` reports, so the two commands' numbers can be read together.
- any `keras.applications` model by name (MobileNetV3Small, EfficientNetB0, ResNet50, ...): weights
  None (trained from scratch: nothing is downloaded), the application's own `preprocess_input`,
  the images resized (bilinear) to the smallest input it accepts when the dataset's are smaller,
  random flips, global average pooling, dropout and a dense layer of class logits; the same optimiser,
  batch size and epochs. Meant for machines with a GPU.

Outputs: the JSON report (default <workdir>/eval/downstream_step_<step>.json), one table on stdout,
and TensorBoard scalars under downstream/ in <workdir>/eval (downstream/real/balanced_accuracy,
downstream/real+synthetic/macro_f1, downstream/delta/recall/melanoma, ...) with the table as text.
"""

import dataclasses
import json
import math
import os
import re
import sys
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from cgan import dataset_export, export, sampling
from cgan.errors import UserError
from cgan.files import atomic_write_bytes
from cgan.metrics import classifier as classifier_lib

EVAL_DIR = "eval"
SUMMARY_DIR = "downstream"       # TensorBoard scalars, under EVAL_DIR
DEFAULT_CLASSIFIER = "small_cnn"
ARMS = ("real", "real+synthetic")
SPREAD_FACTOR = 2.0              # |Δ mean| > SPREAD_FACTOR × pooled std: beyond the seed-to-seed spread
RULE = (f"|delta| > {SPREAD_FACTOR:g} x pooled std, pooled std = sqrt((s_real^2 + s_real+synthetic^2) / 2) "
        f"over classifier seeds: a rule of thumb for 'larger than the seed-to-seed spread', not a "
        f"significance test")
_SUMMARY_METRICS = ("balanced_accuracy", "macro_f1", "accuracy")
_PREDICT_BATCH = 256


@dataclasses.dataclass(frozen=True)
class DownstreamSettings:
    """How the classifiers are trained; checked once here.

    Attributes:
        seeds: classifier seeds per training set (0 … seeds−1); ≥ 2 gives a spread.
        epochs: passes over each training set.
        classifier: "small_cnn" or the name of a keras.applications model.
        seed: first generator seed of the generated images.
        truncation: truncation threshold of the generated images, or None.
        batch_size: images per optimiser step.
        learning_rate: Adam's.
    """

    seeds: int = 3
    epochs: int = classifier_lib.ClassifierSettings().epochs
    classifier: str = DEFAULT_CLASSIFIER
    seed: int = 0
    truncation: float | None = None
    batch_size: int = classifier_lib.ClassifierSettings().batch_size
    learning_rate: float = classifier_lib.ClassifierSettings().learning_rate

    def __post_init__(self):
        for name in ("seeds", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"--{name}={getattr(self, name)} must be positive")
        if self.seed < 0:
            raise UserError(f"--seed={self.seed} must be 0 or more")
        if self.classifier != DEFAULT_CLASSIFIER:
            application(self.classifier)  # raises for an unknown name
        object.__setattr__(self, "truncation", sampling.check_truncation(self.truncation))


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


class _ApplicationClassifier:
    """A keras.applications network with a fresh head, trained from scratch."""

    def __init__(self, name, resolution, num_classes, settings, seed):
        constructor = application(name)
        self.preprocess = sys.modules[constructor.__module__].preprocess_input
        keras.utils.set_random_seed(seed)  # the applications' layers take no per-layer seeds
        self.size = resolution
        try:
            backbone = constructor(include_top=False, weights=None, input_shape=(resolution, resolution, 3),
                                   pooling="avg")
        except ValueError as e:  # "Input size must be at least 75x75; ..." (InceptionV3, Xception)
            match = re.search(r"at least (\d+)x(\d+)", str(e))
            if not match:
                raise
            self.size = int(match.group(1))
            backbone = constructor(include_top=False, weights=None, input_shape=(self.size, self.size, 3),
                                   pooling="avg")
        inputs = keras.Input((self.size, self.size, 3))
        x = keras.layers.RandomFlip("horizontal_and_vertical", seed=seed)(inputs)
        x = keras.layers.Dropout(0.3, seed=seed + 1)(backbone(x))
        logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
        self.model = keras.Model(inputs, logits, name=f"downstream_{name}")
        self.model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def _pixels(self, pictures):
        x = tf.cast(pictures, tf.float32)                                     # [B, R, R, 3] in [0, 255]
        if self.size != x.shape[1]:
            x = tf.image.resize(x, (self.size, self.size), method="bilinear")  # [B, S, S, 3]
        return self.preprocess(x)

    def fit(self, pictures, labels, settings, seed):
        dataset = tf.data.Dataset.from_tensor_slices((pictures, labels.astype(np.int32)))
        dataset = dataset.shuffle(len(pictures), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(settings.batch_size).map(lambda x, y: (self._pixels(x), y))
        self.model.fit(dataset.prefetch(tf.data.AUTOTUNE), epochs=settings.epochs, shuffle=False, verbose=0)

    def predict(self, pictures):
        logits = [self.model(self._pixels(pictures[start:start + _PREDICT_BATCH]), training=False)
                  for start in range(0, len(pictures), _PREDICT_BATCH)]
        return np.concatenate([np.asarray(batch) for batch in logits]).argmax(axis=1)


def train_and_predict(train, test_images, num_classes, settings, seed):
    """Trains one fresh classifier and labels the test images.

    Args:
        train: (images [N, R, R, 3] uint8, labels [N] int).
        test_images: [M, R, R, 3] uint8.
        num_classes: K.
        settings: DownstreamSettings.
        seed: the classifier seed.

    Returns:
        [M] int predicted labels.
    """
    train_images, train_labels = train
    if settings.classifier == DEFAULT_CLASSIFIER:
        recipe = classifier_lib.ClassifierSettings(epochs=settings.epochs, batch_size=settings.batch_size,
                                                   learning_rate=settings.learning_rate, seed=seed)
        model = classifier_lib.train_classifier(train_images, train_labels, num_classes, recipe)
        return classifier_lib.Classifier(model, {}).predict(test_images)
    network = _ApplicationClassifier(settings.classifier, train_images.shape[1], num_classes, settings, seed)
    network.fit(train_images, train_labels, settings, seed)
    return network.predict(test_images)


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


def run(source, settings):
    """Trains the classifiers of both training sets and compares them on the real test split.

    Args:
        source: dataset_export.Source (the generator and its real data).
        settings: DownstreamSettings.

    Returns:
        the report dict (see the module docstring); "metrics" holds compare()'s result.
    """
    start = time.perf_counter()
    names = source.class_names
    generated, generated_labels, seeds = dataset_export.generate_top_up(source, settings.seed, settings.truncation)
    real_images, real_labels = source.train
    training_sets = {
        ARMS[0]: (real_images, real_labels),
        ARMS[1]: (np.concatenate([real_images, generated]), np.concatenate([real_labels, generated_labels])),
    }
    test_images, test_labels = source.test
    runs = {arm: [] for arm in ARMS}
    for seed in range(settings.seeds):
        for arm, training_set in training_sets.items():
            logging.info("Downstream classifier %s, seed %d, on %s (%d images)", settings.classifier, seed, arm,
                         len(training_set[0]))
            predictions = train_and_predict(training_set, test_images, len(names), settings, seed)
            runs[arm].append(classification_metrics(test_labels, predictions, names))
    real_counts = source.train_counts
    return {
        "generator": source.model_path,
        "step": source.step,
        "dataset": source.dataset,
        "class_names": list(names),
        "classifier": {"name": settings.classifier, "epochs": settings.epochs, "batch_size": settings.batch_size,
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


def table_lines(report):
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


def write_summaries(report, log_dir):
    """TensorBoard: downstream/<arm>/<metric> means, downstream/delta/<metric>, and the table as text."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default(step=report["step"]):
        for name, row in report["metrics"].items():
            for arm in ARMS:
                tf.summary.scalar(f"{SUMMARY_DIR}/{arm}/{name}", row[arm]["mean"])
            tf.summary.scalar(f"{SUMMARY_DIR}/delta/{name}", row["delta"])
        tf.summary.text(f"{SUMMARY_DIR}/table", "```\n" + "\n".join(table_lines(report)) + "\n```")
    writer.flush()


def measure(workdir, settings, json_path=None):
    """Runs the comparison for a run directory and writes the report.

    Args:
        workdir: run directory of trainer.py (generator.keras, config.json).
        settings: DownstreamSettings.
        json_path: report path; None = <workdir>/eval/downstream_step_<step>.json.

    Returns:
        (report, path of the JSON written).

    Raises:
        UserError: missing workdir or model, dataset that cannot be found.
    """
    if not os.path.isdir(workdir):
        raise UserError(f"--workdir={workdir} is not a directory: pass the run directory of trainer.py")
    source = dataset_export.load_source(os.path.join(workdir, export.GENERATOR_FILE))
    report = run(source, settings)
    eval_dir = os.path.join(workdir, EVAL_DIR)
    json_path = json_path or os.path.join(eval_dir, f"downstream_step_{report['step']:06d}.json")
    atomic_write_bytes(json_path, (json.dumps(report, indent=2) + "\n").encode())
    write_summaries(report, eval_dir)
    return report, json_path


def _define_flags():
    # Defined only when run as a program, so importing this module adds no flags.
    from absl import flags
    flags.DEFINE_string("workdir", None, "Run directory of trainer.py (generator.keras, config.json).")
    flags.DEFINE_integer("seeds", DownstreamSettings.seeds, "Classifier seeds per training set (0, 1, ...).")
    flags.DEFINE_integer("epochs", DownstreamSettings.epochs, "Epochs of each classifier's training.")
    flags.DEFINE_string("downstream_classifier", DEFAULT_CLASSIFIER,
                        f"'{DEFAULT_CLASSIFIER}' (the evaluation classifier's network, for CPUs) or a "
                        f"keras.applications model name such as MobileNetV3Small, EfficientNetB0 or ResNet50 "
                        f"(trained from scratch; meant for a GPU).")
    flags.DEFINE_integer("seed", 0, "First seed of the generated images (as sample.py --export_dir --seed).")
    flags.DEFINE_float("truncation", None, "Truncation threshold of the generated images, as in sample.py.")
    flags.DEFINE_string("json", None, "Report path; default <workdir>/eval/downstream_step_<step>.json.")


def _parse_flags(argv):
    from absl import flags
    _define_flags()
    try:
        parsed = flags.FLAGS(argv)
        if flags.FLAGS.workdir is None:
            raise flags.Error("--workdir is required: pass the run directory of trainer.py")
        return parsed
    except flags.Error as e:
        print(f"downstream: error: {e}", file=sys.stderr)
        sys.exit(2)


def main(argv):
    from absl import flags
    values = flags.FLAGS
    start = time.perf_counter()
    try:
        if len(argv) > 1:
            raise UserError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
        settings = DownstreamSettings(seeds=values.seeds, epochs=values.epochs, classifier=values.downstream_classifier,
                                      seed=values.seed, truncation=values.truncation)
        report, path = measure(values.workdir, settings, values.json)
    except UserError as e:
        print(f"downstream: error: {e}", file=sys.stderr)
        sys.exit(2)
    for line in table_lines(report):
        print(line)
    print(f"Report: {path}  TensorBoard: {os.path.join(values.workdir, EVAL_DIR)}  "
          f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    from absl import app
    app.run(main, flags_parser=_parse_flags)
