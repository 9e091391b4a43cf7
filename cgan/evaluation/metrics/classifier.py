"""A small CNN classifier of the real images: offline feature space and class check for generated ones.

    classifier = classifier.load_or_train(builder, class_names, (train_images, train_labels), (test_images, test_labels))
    classifier.info["test_accuracy"]                     # accuracy on the real test split
    labels = classifier.predict(generated)               # [N, R, R, 3] uint8 -> [N] int
    features = classifier.features(generated)            # -> [N, 128] penultimate activations
    classifier.accuracy_per_class(test_images, test_labels, class_names)   # {"melanoma": 0.94, ...}

Why: Inception weights need a download; this needs nothing from outside, and it knows the dataset's
classes. It is trained the first time a dataset is evaluated and cached next to the dataset
(`<builder.data_dir>/classifier/`: `classifier.keras`, and `classifier.json` with the dataset version,
class names, a SHA-256 of the training images and labels, the training settings and the test accuracy);
later calls reuse it while all of those match, so every evaluation on a dataset measures with the same
classifier, and other training images (another split, a rebuilt dataset) or another recipe retrain it.

Network: images scaled to [-1, 1] and resized to 64×64 (the same training cost at every resolution),
randomly flipped where the data allows it, four stride-2 3×3 convolutions (32, 64, 128, 128 channels;
batch norm, ReLU), global average pooling, a 128-unit ReLU layer "features" (the classifier metrics'
feature space), dropout and the logits. Its random state comes from settings.seed alone (per-layer
seeds, each epoch's order from (seed, epoch)): the same classifier whoever trained it first.

Flips: lesions and textures have no up or left, digits and letters do. `flips="auto"` (the default)
trains one classifier per candidate (none, horizontal, horizontal-and-vertical) on a stratified 85 %
of the train split, keeps the best on the other 15 % (the fewer flips on a tie) and caches the choice
in flips.json next to the classifier, for every classifier of an evaluation.
"""

import dataclasses
import hashlib
import json
import math
import os
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from cgan.core import options
from cgan.core.files import atomic_save, atomic_write_json
from cgan.evaluation.metrics import float32_policy

CACHE_DIR = "classifier"
MODEL_FILE = "classifier.keras"
INFO_FILE = "classifier.json"
FLIPS_FILE = "flips.json"
FLIPS = options.FLIPS   # candidates of flips="auto", fewest first


_VALIDATION_SHARE = 0.15
FEATURE_LAYER = "features"
_BATCH = 256  # images per inference call


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
    """The training recipe; part of a cached classifier's identity."""
    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 1e-3       # Adam
    input_size: int = 64              # pixels the convolutions see, whatever the dataset resolution
    seed: int = 0
    flips: str = "auto"               # one of FLIPS, or auto: chosen by validation (resolve_flips)
    architecture: int = 3             # bump when build_ or train_classifier changes: older caches retrain


def build_classifier(resolution, num_classes, settings=ClassifierSettings()):
    """The classifier: [B, R, R, 3] float32 pixels in [0, 255] -> [B, num_classes] logits."""
    seed = settings.seed
    with float32_policy():
        inputs = keras.Input((resolution, resolution, 3), name="pixels")
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
        if resolution != settings.input_size:
            x = keras.layers.Resizing(settings.input_size, settings.input_size, interpolation="area")(x)
        if settings.flips not in FLIPS:
            raise ValueError(f"flips={settings.flips!r}: resolve 'auto' with resolve_flips first, or pick one "
                             f"of {FLIPS}")
        if settings.flips != "none":
            x = keras.layers.RandomFlip(settings.flips, seed=seed)(x)
        for i, filters in enumerate((32, 64, 128, 128)):                 # 64 -> 32 -> 16 -> 8 -> 4 pixels
            x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False,
                                    kernel_initializer=keras.initializers.HeNormal(seed + 1 + i))(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.GlobalAveragePooling2D()(x)                      # [B, 128]
        x = keras.layers.Dense(128, activation="relu", name=FEATURE_LAYER,
                               kernel_initializer=keras.initializers.HeNormal(seed + 10))(x)
        x = keras.layers.Dropout(0.3, seed=seed + 11)(x)
        logits = keras.layers.Dense(num_classes, name="logits",
                                    kernel_initializer=keras.initializers.GlorotUniform(seed + 12))(x)
        return keras.Model(inputs, logits, name="classifier")


def train_classifier(images, labels, num_classes, settings=ClassifierSettings(), model=None):
    """Trains a fresh classifier: Adam, cross-entropy on logits, each epoch's order drawn from settings.seed.

    Args:
        images: [N, R, R, 3] uint8 training images.
        labels: [N] int labels.
        num_classes: number of classes.
        settings: ClassifierSettings.
        model: the untrained network to train, with build_classifier's contract ([B, R, R, 3] float32
            pixels in [0, 255] -> [B, num_classes] logits, a "features" layer); None builds
            build_classifier(R, num_classes, settings). cgan.evaluation.downstream passes keras.applications
            networks here, so that every classifier is trained by this one recipe.

    Returns:
        the trained keras.Model.
    """
    if model is None:
        model = build_classifier(images.shape[1], num_classes, settings)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # Epoch e visits the images in the permutation drawn from (seed, e) alone. tf.data's shuffle would
    # also depend on TensorFlow's global seed, i.e. on whatever set it before in the process.
    num_images = len(images)
    orders = np.stack([np.random.default_rng([settings.seed, epoch]).permutation(num_images)
                       for epoch in range(settings.epochs)])                          # [epochs, N]
    batches = tf.data.Dataset.from_tensor_slices(orders).flat_map(
        lambda order: tf.data.Dataset.from_tensor_slices(order).batch(settings.batch_size))  # [≤ batch] indices
    batches = batches.apply(tf.data.experimental.assert_cardinality(
        settings.epochs * math.ceil(num_images / settings.batch_size)))
    pixels, classes = tf.constant(images), tf.constant(labels.astype(np.int32))
    dataset = batches.map(lambda index: (tf.cast(tf.gather(pixels, index), tf.float32), tf.gather(classes, index)))
    # One pass over every epoch's batches: the same updates as `epochs` epochs of fit.
    model.fit(dataset.prefetch(tf.data.AUTOTUNE), epochs=1, shuffle=False, verbose=0)
    return model


class Classifier:
    """A trained classifier with its metadata; reads uint8 images of the dataset's resolution."""

    def __init__(self, model, info, cached=False, cache_dir=None):
        """
        Args:
            model: keras.Model from build_classifier.
            info: dict, at least test_accuracy; what classifier.json holds.
            cached: whether it was loaded from the cache rather than trained now.
            cache_dir: the folder it was loaded from or saved to; None when not cached.
        """
        self.model = model
        self.info = info
        self.cached = cached
        self.cache_dir = cache_dir
        both = keras.Model(model.inputs, [model.get_layer(FEATURE_LAYER).output, model.outputs[0]])
        self._forward = tf.function(lambda x: both(tf.cast(x, tf.float32), training=False))

    def _run(self, images):
        if len(images) == 0:
            return (np.zeros((0, self.model.get_layer(FEATURE_LAYER).output.shape[-1]), np.float32),
                    np.zeros((0, self.model.outputs[0].shape[-1]), np.float32))
        features, logits = [], []
        for start in range(0, len(images), _BATCH):
            chunk = images[start:start + _BATCH]
            # Every call gets a full batch, so the forward pass is traced once whatever the set sizes.
            padded = np.concatenate([chunk, np.zeros((_BATCH - len(chunk),) + chunk.shape[1:], chunk.dtype)])
            batch_features, batch_logits = self._forward(tf.constant(padded))
            features.append(batch_features.numpy()[:len(chunk)])
            logits.append(batch_logits.numpy()[:len(chunk)])
        return np.concatenate(features), np.concatenate(logits)            # [N, 128], [N, K]

    @property
    def settings(self):
        """The ClassifierSettings it was trained with (flips resolved), as its info records them."""
        return ClassifierSettings(**self.info["settings"])

    def description(self):
        """For reports: classifier.json without the class names (the cache identity, the test accuracy),
        whether it came from the cache, and the cache folder."""
        return {**{k: v for k, v in self.info.items() if k != "class_names"}, "cached": self.cached,
                "cache_dir": self.cache_dir}

    def features(self, images):
        """[N, R, R, 3] uint8 -> [N, 128] float32 activations of the "features" layer."""
        return self._run(images)[0]

    def predict(self, images):
        """[N, R, R, 3] uint8 -> [N] int64 most likely labels."""
        return self._run(images)[1].argmax(axis=1)

    def features_and_predictions(self, images):
        """Both in one pass: ([N, 128] float32, [N] int64)."""
        features, logits = self._run(images)
        return features, logits.argmax(axis=1)

    def accuracy(self, images, labels):
        """Share of images classified as their label."""
        return float(np.mean(self.predict(images) == np.asarray(labels)))

    def accuracy_per_class(self, images, labels, class_names):
        """{class name: share of that class's images classified as it}, for the classes present."""
        return accuracy_per_class(self.predict(images), labels, class_names)


def accuracy_per_class(predictions, labels, class_names):
    """Per-class accuracy (the recall of each class).

    Args:
        predictions: [N] int predicted labels.
        labels: [N] int true labels.
        class_names: label names, index i naming label i.

    Returns:
        {class name: share of the images of that label predicted as it}; classes without images are
        absent.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return {name: float(np.mean(predictions[labels == label] == label))
            for label, name in enumerate(class_names) if np.any(labels == label)}


def data_digest(images, labels):
    """SHA-256 of the training images and labels: names exactly the data a classifier was trained on."""
    hasher = hashlib.sha256()
    for array in (np.ascontiguousarray(images, np.uint8), np.ascontiguousarray(labels, np.int64)):
        hasher.update(str(array.shape).encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()


def _identity(builder, class_names, train, num_test, settings):
    """What a cached classifier must match to be reused."""
    images, labels = train
    return {"dataset": builder.info.full_name, "dataset_version": str(builder.info.version),
            "class_names": list(class_names), "resolution": int(images.shape[1]), "num_train": len(images),
            "train_sha256": data_digest(images, labels), "num_test": int(num_test),
            "settings": dataclasses.asdict(settings)}


def _load_cached(cache_dir, identity):
    try:
        with open(os.path.join(cache_dir, INFO_FILE)) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    if any(info.get(key) != value for key, value in identity.items()):
        logging.info("Cached classifier in %s was made for other data or settings: retraining", cache_dir)
        return None
    try:
        with float32_policy():
            model = keras.models.load_model(os.path.join(cache_dir, MODEL_FILE), compile=False, safe_mode=True)
    except Exception as e:  # a damaged or partly copied cache: retrain rather than fail
        logging.warning("Cannot load the cached classifier in %s (%s): retraining", cache_dir, e)
        return None
    return Classifier(model, info, cached=True, cache_dir=cache_dir)


def _save(cache_dir, model, info):
    """Model first, metadata last: the metadata's presence says the model beside it is complete."""
    os.makedirs(cache_dir, exist_ok=True)
    info_path = os.path.join(cache_dir, INFO_FILE)
    if os.path.exists(info_path):
        os.remove(info_path)
    atomic_save(model.save, os.path.join(cache_dir, MODEL_FILE))
    atomic_write_json(info_path, info, sort_keys=True)


def validation_split(labels, share=_VALIDATION_SHARE, seed=0):
    """A stratified split of the train split: (training indices, validation indices), both sorted.

    Every class with 2 or more images gives ceil(share · n) of them, at least 1, to validation.
    """
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    validation = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) >= 2:
            count = max(1, int(np.ceil(share * len(members))))
            validation.extend(rng.permutation(members)[:count])
    validation = np.sort(np.asarray(validation, dtype=np.int64))
    return np.setdiff1d(np.arange(len(labels)), validation), validation


def resolve_flips(settings, images, labels, num_classes, cache_dir):
    """`settings` with flips="auto" replaced by the choice that validates best on these images.

    Args:
        settings: ClassifierSettings; returned unchanged unless its flips is "auto".
        images: [N, R, R, 3] uint8 training images; labels: [N] int.
        num_classes: K.
        cache_dir: folder of flips.json (the choice, keyed by a digest of the images and the recipe).

    Returns:
        ClassifierSettings with flips one of FLIPS.
    """
    if settings.flips != "auto":
        return settings
    identity = {"train_sha256": data_digest(images, labels), "settings": dataclasses.asdict(settings)}
    path = os.path.join(cache_dir, FLIPS_FILE)
    try:
        with open(path) as f:
            stored = json.load(f)
        if stored.get("identity") == identity and stored.get("flips") in FLIPS:
            return dataclasses.replace(settings, flips=stored["flips"])
    except (OSError, ValueError):
        pass
    fit, held_out = validation_split(labels, seed=settings.seed)
    accuracies = {}
    for flips in FLIPS:
        logging.info("Choosing the evaluation classifier's flips: training with flips=%s", flips)
        candidate = dataclasses.replace(settings, flips=flips)
        model = train_classifier(images[fit], labels[fit], num_classes, candidate)
        accuracies[flips] = Classifier(model, {}).accuracy(images[held_out], labels[held_out])
    chosen = max(FLIPS, key=lambda flips: (accuracies[flips], -FLIPS.index(flips)))
    logging.info("Flips %s: validation accuracy %s", chosen, accuracies)
    os.makedirs(cache_dir, exist_ok=True)
    atomic_write_json(path, {"identity": identity, "flips": chosen, "validation_accuracy": accuracies},
                      sort_keys=True)
    return dataclasses.replace(settings, flips=chosen)


def load_or_train(builder, class_names, train, test, settings=ClassifierSettings(), cache_dir=None):
    """The dataset's classifier: from the cache when it matches, otherwise trained and cached.

    Args:
        builder: the prepared TFDS builder the images come from (names the dataset and the cache).
        class_names: label names, index i naming label i.
        train: (images [N, R, R, 3] uint8, labels [N] int) to train on: the real train split, or a
            part of it (the cache is keyed by a digest of exactly these images and labels).
        test: (images [M, R, R, 3] uint8, labels [M] int) of the real test split.
        settings: ClassifierSettings; flips="auto" is resolved on `train` first (resolve_flips).
        cache_dir: folder of the cache; None means <builder.data_dir>/classifier.

    Returns:
        a Classifier; info holds the identity fields (with the resolved settings), test_accuracy,
        test_accuracy_per_class and train_seconds; `.settings` is the resolved recipe, for the other
        classifiers that must match it.
    """
    cache_dir = cache_dir or os.path.join(builder.data_dir, CACHE_DIR)
    (train_images, train_labels), (test_images, test_labels) = train, test
    settings = resolve_flips(settings, train_images, train_labels, len(class_names), cache_dir)
    identity = _identity(builder, class_names, train, len(test_images), settings)
    cached = _load_cached(cache_dir, identity)
    if cached is not None:
        return cached
    logging.info("Training the evaluation classifier on %d images of %s (%d epochs)", len(train_images),
                 builder.info.full_name, settings.epochs)
    start = time.perf_counter()
    model = train_classifier(train_images, train_labels, len(class_names), settings)
    seconds = time.perf_counter() - start
    classifier = Classifier(model, {}, cached=False)
    predictions = classifier.predict(test_images)
    per_class = accuracy_per_class(predictions, test_labels, class_names)
    classifier.info = {**identity, "test_accuracy": float(np.mean(predictions == test_labels)),
                       "test_accuracy_per_class": per_class, "train_seconds": round(seconds, 1),
                       "keras_version": keras.__version__}
    logging.info("Evaluation classifier: test accuracy %.3f after %.1f s",
                 classifier.info["test_accuracy"], seconds)
    try:
        _save(cache_dir, model, classifier.info)
        classifier.cache_dir = cache_dir
    except OSError as e:  # e.g. a read-only shared data_dir: evaluate anyway, retrain next time
        logging.warning("Cannot cache the evaluation classifier in %s (%s); it will be retrained next time",
                        cache_dir, e.strerror or e)
    return classifier
