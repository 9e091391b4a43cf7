"""isic_skin_cancer: dermoscopy images of skin lesions in nine classes, square and small, for a GAN.

Configs are `<source>_<resolution>`, resolution 64, 128 or 256 pixels:

* `real_*`: the Kaggle "Skin Cancer ISIC 9 classes" download, read from `--manual_dir`.
* `synthetic_*`: procedurally painted lesion-like pictures, the real classes and per-class counts,
  generated from a fixed seed. NOT medical images; for trying the pipeline without the download.
* `folders_*`: any `Train/` + `Test/` class-folder dataset. Not in `BUILDER_CONFIGS`: its class
  names come from the folders, or from the prepared dataset, so `make_builder` makes its config.

This module owns everything from a config name to a prepared builder, and imports nothing outside
this folder (`tfds build` imports it as `isic_skin_cancer.*`; the trainer as `data.isic_skin_cancer`):

    tfds build data/isic_skin_cancer --config=real_64 --manual_dir=~/Downloads/isic
    builder = prepare("folders_64", data_dir="/data/my_lesions", manual_dir="/data/raw")
    builder.as_dataset(split="train")  # {"image": [64, 64, 3] uint8, "label": int64, "file_name": str}

Unusable files (hidden or system files, empty, truncated or corrupt images, non-images named .jpg)
are skipped, logged and listed in `builder.info.metadata["skipped_files"]` (metadata.json). Problems
the user must fix (unknown config, no Train/, an unknown or empty class folder, an empty split, a
data_dir holding another folder dataset) raise `DatasetError`, one line naming the problem and the fix.
"""

import dataclasses
import os
import re
from typing import Iterator
from unittest import mock

from absl import logging
from etils import epath
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer

from . import images
from . import synthetic

# Label order of the ISIC classes; fixed, so label ids mean the same in every config.
CLASS_NAMES = (
    "actinic_keratosis",
    "basal_cell_carcinoma",
    "dermatofibroma",
    "melanoma",
    "nevus",
    "pigmented_benign_keratosis",
    "seborrheic_keratosis",
    "squamous_cell_carcinoma",
    "vascular_lesion",
)
RESOLUTIONS = (64, 128, 256)
SPLITS = ("train", "test")
KAGGLE_FOLDER = "Skin cancer ISIC The International Skin Imaging Collaboration"
KAGGLE_URL = "https://www.kaggle.com/datasets/nodoubttome/skin-cancer9-classesisic"

# How deep below manual_dir to look for the folder holding Train/ (the Kaggle zip nests it one or
# two levels down, depending on how it was unpacked).
_SEARCH_DEPTH = 3
# Names that operating systems and archivers leave behind; never images.
_SYSTEM_FILES = {"thumbs.db", "desktop.ini", "__macosx"}


class DatasetError(ValueError):
    """A problem with the source data that the user can fix; the message says what and how."""


@dataclasses.dataclass(eq=False)
class IsicConfig(tfds.core.BuilderConfig):
    """A source of images and the resolution they are stored at.

    Attributes:
        resolution: height and width of the stored images, in pixels.
        source: "real" (the ISIC download), "synthetic" (generated) or "folders" (any class folders).
        class_names: for "folders" only: the label names, if already known; otherwise they are
            discovered from manual_dir at build time or read back from the prepared dataset.
    """

    resolution: int = 64
    source: str = "real"
    class_names: tuple[str, ...] | None = None


def _make_config(source: str, resolution: int, class_names: tuple[str, ...] | None = None) -> IsicConfig:
    descriptions = {
        "real": "ISIC images from the Kaggle download (manual_dir)",
        "synthetic": "procedurally generated lesion-like images, NOT medical images; no download",
        "folders": "any Train/ and Test/ class-folder dataset from manual_dir",
    }
    return IsicConfig(
        name=f"{source}_{resolution}",
        description=f"{descriptions[source]}, centre-cropped and resized to {resolution}x{resolution}.",
        resolution=resolution,
        source=source,
        class_names=class_names,
    )


def folders_config(resolution: int, class_names: tuple[str, ...] | None = None) -> IsicConfig:
    """The config for a generic class-folder dataset (not registered in `BUILDER_CONFIGS`).

    Args:
        resolution: one of `RESOLUTIONS`.
        class_names: label names if known (sorted, normalised folder names); None to discover them.

    Returns:
        An `IsicConfig` named `folders_<resolution>`.
    """
    return _make_config("folders", resolution, class_names)


def normalize_class_name(folder_name: str) -> str:
    """`"Actinic Keratosis"`, `"actinic_keratosis"`, `"Actinic-keratosis "` -> `"actinic_keratosis"`."""
    return re.sub(r"[\s_\-]+", "_", folder_name.strip().lower()).strip("_")


def _is_hidden(name: str) -> bool:
    # Covers .DS_Store, macOS resource forks (._x.jpg), .ipynb_checkpoints and Windows thumbnails.
    return name.startswith(".") or name.lower() in _SYSTEM_FILES


def find_source_root(manual_dir: epath.PathLike) -> tuple[epath.Path, epath.Path, epath.Path]:
    """Finds the folder that holds `Train/` and `Test/` (any case) under `manual_dir`.

    Looks in `manual_dir` itself and in its subfolders up to `_SEARCH_DEPTH` levels down, which
    covers the Kaggle layout (`<manual_dir>/Skin cancer ISIC .../Train`), that folder itself, and a
    plain folder with `Train/` and `Test/`.

    Args:
        manual_dir: the folder the user passed.

    Returns:
        (root, train_dir, test_dir).

    Raises:
        DatasetError: manual_dir missing or empty, no Train/ found, several found, or no Test/.
    """
    manual_dir = epath.Path(manual_dir).expanduser()
    if not manual_dir.exists():
        raise DatasetError(
            f"manual_dir {manual_dir} does not exist. Download the data ({KAGGLE_URL}), unzip it and "
            "pass the unzipped folder as --manual_dir, or use a synthetic_* config, which needs no download."
        )
    if not manual_dir.is_dir() or not any(manual_dir.iterdir()):
        raise DatasetError(
            f"manual_dir {manual_dir} is empty or not a folder. It must contain Train/ and Test/ "
            f"(or the Kaggle folder '{KAGGLE_FOLDER}/' holding them)."
        )
    level = [manual_dir]
    for _ in range(_SEARCH_DEPTH + 1):
        found = [folder for folder in level if _child_dir(folder, "train") is not None]
        if len(found) > 1:
            raise DatasetError(
                f"Found several folders with a Train/ subfolder under {manual_dir}: "
                f"{', '.join(str(folder) for folder in found)}. Pass the one you mean as --manual_dir."
            )
        if found:
            root = found[0]
            train_dir = _child_dir(root, "train")
            test_dir = _child_dir(root, "test")
            if test_dir is None:
                raise DatasetError(
                    f"Found {train_dir} but no Test/ folder next to it in {root}. Both splits are needed: "
                    "put the test images in Test/<class>/ beside Train/."
                )
            return root, train_dir, test_dir
        level = [
            child for folder in level for child in sorted(folder.iterdir())
            if child.is_dir() and not _is_hidden(child.name)
        ]
    raise DatasetError(
        f"No Train/ folder (any case) in {manual_dir} or its subfolders up to {_SEARCH_DEPTH} levels down. "
        f"Expected {manual_dir}/Train/<class>/*.jpg and {manual_dir}/Test/<class>/*.jpg, or the Kaggle layout "
        f"{manual_dir}/{KAGGLE_FOLDER}/Train/<class>/*.jpg."
    )


def _child_dir(folder: epath.Path, name: str) -> epath.Path | None:
    """The subfolder of `folder` called `name`, ignoring case; DatasetError if two match."""
    matches = [child for child in folder.iterdir() if child.name.lower() == name and child.is_dir()]
    if len(matches) > 1:
        raise DatasetError(
            f"{folder} has several folders named {name} in different case: "
            f"{', '.join(sorted(m.name for m in matches))}. Merge them into one."
        )
    return matches[0] if matches else None


def discover_class_names(manual_dir: epath.PathLike) -> tuple[str, ...]:
    """Sorted, normalised class folder names of the Train/ split found under `manual_dir`.

    Raises:
        DatasetError: as `find_source_root`, or when Train/ has no class folders.
    """
    _, train_dir, _ = find_source_root(manual_dir)
    folders = [d for d in train_dir.iterdir() if d.is_dir() and not _is_hidden(d.name)]
    names = sorted({normalize_class_name(d.name) for d in folders})
    if not names:
        raise DatasetError(f"{train_dir} has no class folders. Put each class's images in Train/<class name>/.")
    return tuple(names)


@dataclasses.dataclass
class _Candidate:
    """A file that passed the cheap checks; whether it decodes is known only when it is read."""

    file_name: str  # relative to the source root, "/"-separated: the example's key and file_name
    path: epath.Path
    class_name: str


class _KeyOrderSerializer(example_serializer.ExampleSerializer):
    """Serialises each example with its features in key order.

    protobuf's default serialisation writes a map (tf.train.Example's features) in an order that
    changes from process to process, so the same examples would give other shard bytes on every build.
    """

    def serialize_example(self, example):
        return self.get_tf_example(example).SerializeToString(deterministic=True)


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for isic_skin_cancer."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: real, synthetic and folders configs at 64, 128 and 256 pixels.",
    }
    BUILDER_CONFIGS = [_make_config("real", r) for r in RESOLUTIONS] + [
        _make_config("synthetic", r) for r in RESOLUTIONS
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "real_64"
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    For the real_* configs: download "Skin Cancer ISIC - 9 classes" from Kaggle
    ({KAGGLE_URL}), unzip it and pass the unzipped folder as --manual_dir. Any of these works:
      <manual_dir>/{KAGGLE_FOLDER}/Train/<class>/*.jpg (and Test/)
      <manual_dir>/Train/<class>/*.jpg and <manual_dir>/Test/<class>/*.jpg
    Class folder names may use any case and spaces or underscores ("Actinic Keratosis",
    "actinic_keratosis"). The synthetic_* configs need no download.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        """Returns the dataset metadata."""
        config = self.builder_config
        if config.source == "folders":
            # With names=None the label is left undefined, to be named at build time from the class
            # folders or restored from the prepared dataset's label.labels.txt.
            label = tfds.features.ClassLabel(names=config.class_names)
        else:
            label = tfds.features.ClassLabel(names=CLASS_NAMES)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(
                    shape=(config.resolution, config.resolution, 3), encoding_format="png"
                ),
                "label": label,
                "file_name": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
            homepage=KAGGLE_URL,
            # Filled in by _split_generators; saved as metadata.json.
            metadata=tfds.core.MetadataDict(),
        )

    def _download_and_prepare(self, dl_manager, download_config=None):
        """TFDS' preparation, writing the same bytes on every build (TFDS takes no serializer option)."""
        with mock.patch.object(example_serializer, "ExampleSerializer", _KeyOrderSerializer):
            super()._download_and_prepare(dl_manager, download_config)

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        """Returns SplitGenerators."""
        config = self.builder_config
        self.info.metadata.clear()
        self.info.metadata["skipped_files"] = []
        if config.source == "synthetic":
            self.info.metadata["synthetic_seed"] = synthetic.SEED
            return {split: self._generate_examples(split) for split in SPLITS}

        try:
            manual_dir = dl_manager.manual_dir
        except AssertionError as error:  # TFDS's own complaint: missing or empty manual dir
            raise DatasetError(
                f"The {config.name} config reads images from --manual_dir, which is missing or empty "
                f"({_first_sentence(error)}). Download the data, unzip it and pass --manual_dir=<folder>, "
                "or use a synthetic_* config, which needs no download."
            ) from None
        root, train_dir, test_dir = find_source_root(manual_dir)
        self.info.metadata["source_dir"] = str(root)
        self._check_class_folders(train_dir, test_dir)
        # Scan both splits before generating either, so layout errors stop the build before it writes.
        candidates = {"train": self._scan_split(root, train_dir), "test": self._scan_split(root, test_dir)}
        return {split: self._generate_examples(split, candidates[split]) for split in SPLITS}

    def _check_class_folders(self, train_dir: epath.Path, test_dir: epath.Path) -> None:
        """Checks the class folders of both splits; for folders_* configs, sets the label names."""
        config = self.builder_config
        found = {}
        for split_dir in (train_dir, test_dir):
            found[split_dir] = {}
            for folder in sorted(split_dir.iterdir()):
                if not folder.is_dir() or _is_hidden(folder.name):
                    continue
                name = normalize_class_name(folder.name)
                if name in found[split_dir]:
                    raise DatasetError(
                        f"{split_dir} has two folders for class {name}: '{found[split_dir][name]}' and "
                        f"'{folder.name}'. Merge them into one."
                    )
                found[split_dir][name] = folder.name
        if not found[train_dir]:
            raise DatasetError(
                f"{train_dir} has no class folders (empty split). Put each class's images in Train/<class>/."
            )
        if not found[test_dir]:
            raise DatasetError(
                f"{test_dir} has no class folders (empty split). Put each class's images in Test/<class>/."
            )

        if config.source == "real":
            expected = CLASS_NAMES
            for split_dir in (train_dir, test_dir):
                unknown = sorted(set(found[split_dir]) - set(CLASS_NAMES))
                if unknown:
                    folders = ", ".join(f"'{found[split_dir][name]}'" for name in unknown)
                    raise DatasetError(
                        f"Unknown class folder(s) in {split_dir}: {folders}. The {config.name} config expects "
                        f"exactly these nine (any case, spaces or underscores): {', '.join(CLASS_NAMES)}. "
                        "Rename or remove the others, or use a folders_* config for a different set of classes."
                    )
        else:
            expected = tuple(sorted(found[train_dir]))
            label = self.info.features["label"]
            if label.num_classes is None:
                label.names = list(expected)
            elif tuple(label.names) != expected:
                raise DatasetError(
                    f"Class folders in {train_dir} ({', '.join(expected)}) differ from the classes this "
                    f"{config.name} dataset was set up with ({', '.join(label.names)}). "
                    "Use a separate --data_dir for each folder dataset."
                )
        for split_dir in (train_dir, test_dir):
            missing = [name for name in expected if name not in found[split_dir]]
            if missing:
                raise DatasetError(
                    f"{split_dir} has no folder for class(es): {', '.join(missing)}. Every class needs images "
                    f"in both Train/ and Test/; found {', '.join(sorted(found[split_dir]))}."
                )

    def _scan_split(self, root: epath.Path, split_dir: epath.Path) -> list[_Candidate]:
        """Lists a split's files, skipping (and recording) the ones that are obviously unusable."""
        candidates = []
        empty_classes = []
        for entry in sorted(split_dir.iterdir()):
            relative = _relative(root, entry)
            if _is_hidden(entry.name):
                self._skip(relative, "hidden or system " + ("folder" if entry.is_dir() else "file"))
                continue
            if not entry.is_dir():
                self._skip(relative, "file directly in the split folder, not inside a class folder")
                continue
            class_name = normalize_class_name(entry.name)
            usable = 0
            for path in sorted(entry.iterdir()):
                file_name = _relative(root, path)
                if _is_hidden(path.name):
                    self._skip(file_name, "hidden or system " + ("folder" if path.is_dir() else "file"))
                elif path.is_dir():
                    self._skip(file_name, "folder inside a class folder; only files directly in it are read")
                elif path.stat().length == 0:
                    self._skip(file_name, "empty file (0 bytes)")
                else:
                    candidates.append(_Candidate(file_name, path, class_name))
                    usable += 1
            if not usable:
                empty_classes.append(str(entry))
        if empty_classes:
            raise DatasetError(
                "Empty class folder(s), with no image files: " + ", ".join(empty_classes)
                + ". Add images or remove the folder (for the real_* configs every class needs images)."
            )
        return candidates

    def _generate_examples(
        self, split: str, candidates: list[_Candidate] | None = None
    ) -> Iterator[tuple[str, dict]]:
        """Yields (key, example) for one split: read from `candidates`, or generated if None."""
        if candidates is None:
            yield from self._generate_synthetic(split)
        else:
            yield from self._generate_real(split, candidates)

    def _generate_real(self, split: str, candidates: list[_Candidate]) -> Iterator[tuple[str, dict]]:
        """Yields examples of one split from files on disk, skipping those that do not decode."""
        resolution = self.builder_config.resolution
        per_class = {}
        for candidate in candidates:
            per_class.setdefault(candidate.class_name, 0)
            try:
                image = images.load(candidate.path, resolution)
            except images.UnreadableImageError as error:
                self._skip(candidate.file_name, error.reason)
                continue
            per_class[candidate.class_name] += 1
            yield candidate.file_name, {
                "image": images.encode_png(image),
                "label": candidate.class_name,
                "file_name": candidate.file_name,
            }
        unreadable = sorted(name for name, count in per_class.items() if count == 0)
        if unreadable:
            # Raising here aborts the build before anything is written to data_dir.
            raise DatasetError(
                f"No readable image in the {split} folder(s) of class(es) {', '.join(unreadable)}: every "
                "file was skipped (see the warnings above). Replace the files with valid JPEG or PNG images."
            )
        self._log_summary(split, len(candidates), sum(per_class.values()))

    def _generate_synthetic(self, split: str) -> Iterator[tuple[str, dict]]:
        """Yields the procedurally generated examples of one split."""
        resolution = self.builder_config.resolution
        for class_name, index, image in synthetic.generate_split(split, CLASS_NAMES, resolution):
            file_name = f"synthetic/{split}/{class_name}/{index:06d}.png"
            yield file_name, {"image": images.encode_png(image), "label": class_name, "file_name": file_name}

    def _skip(self, file_name: str, reason: str) -> None:
        """Records a file the dataset leaves out: a log line now, an entry in metadata.json later."""
        logging.warning("isic_skin_cancer: skipping %s: %s", file_name, reason)
        skipped = self.info.metadata["skipped_files"]
        skipped.append({"path": file_name, "reason": reason})
        skipped.sort(key=lambda entry: entry["path"])  # same order however the splits were scanned

    def _log_summary(self, split: str, num_candidates: int, num_used: int) -> None:
        skipped = self.info.metadata["skipped_files"]
        split_prefix = {"train": "train/", "test": "test/"}[split]
        in_split = [entry for entry in skipped if entry["path"].lower().startswith(split_prefix)]
        if in_split:
            logging.warning(
                "isic_skin_cancer: %s split: used %d images, skipped %d files (listed under 'skipped_files' in "
                "the dataset's metadata.json).", split, num_used, len(in_split),
            )
        else:
            logging.info("isic_skin_cancer: %s split: used all %d images.", split, num_used)


# Every config name `make_builder` accepts: the registered ones, then folders_* at each resolution.
CONFIG_NAMES = tuple(Builder.builder_configs) + tuple(f"folders_{r}" for r in RESOLUTIONS)


def builder_config(config_name: str) -> IsicConfig:
    """The config called `config_name`; a folders_* config comes without class names.

    Raises:
        DatasetError: `config_name` is not one of `CONFIG_NAMES`.
    """
    if config_name in Builder.builder_configs:
        return Builder.builder_configs[config_name]
    if config_name in CONFIG_NAMES:
        return folders_config(int(config_name.removeprefix("folders_")))
    raise DatasetError(f"unknown --config={config_name}: valid configs are {', '.join(CONFIG_NAMES)}")


def make_builder(config_name: str, data_dir: epath.PathLike = "", manual_dir: epath.PathLike = "") -> Builder:
    """The builder of config `config_name`, prepared or not (see `prepare`).

    A folders_* builder gets its class names from the dataset already prepared in `data_dir` (which
    must then match the class folders of `manual_dir`, if given), else from the class folders of
    `manual_dir`; with neither its label has no names yet and `prepare` asks for `manual_dir`.

    Args:
        config_name: one of `CONFIG_NAMES`, e.g. "real_64".
        data_dir: TFDS data directory; "" means TFDS's default (~/tensorflow_datasets).
        manual_dir: folder with the source images (real_* and folders_*).

    Raises:
        DatasetError: unknown config; for folders_*, an unusable manual_dir or one whose classes differ
            from those of the dataset prepared in data_dir.
    """
    config = builder_config(config_name)
    data_dir = os.fspath(data_dir) if data_dir else None
    builder = Builder(data_dir=data_dir, config=config)
    if config.source != "folders":
        return builder
    if builder.is_prepared():
        if manual_dir:
            _check_same_classes(builder, manual_dir)
        return builder
    if not manual_dir:
        return builder
    return Builder(data_dir=data_dir, config=folders_config(config.resolution, discover_class_names(manual_dir)))


def _check_same_classes(builder: Builder, manual_dir: epath.PathLike) -> None:
    """Stops a prepared folders dataset from being silently used for a different manual_dir."""
    try:
        discovered = discover_class_names(manual_dir)
    except DatasetError:
        return  # the source may be gone once prepared; the prepared data is what is used
    prepared = tuple(builder.info.features["label"].names)
    if discovered != prepared:
        raise DatasetError(
            f"{builder.data_dir} already holds a {builder.builder_config.name} dataset with classes "
            f"{', '.join(prepared)}, but {manual_dir} has classes {', '.join(discovered)}: use a separate "
            "--data_dir for each folder dataset"
        )


def prepare(config_name: str, data_dir: epath.PathLike = "", manual_dir: epath.PathLike = "") -> Builder:
    """The prepared builder of config `config_name`, built first if `data_dir` lacks it.

    Args: as `make_builder`; `manual_dir` is needed only to build a real_* or folders_* config.

    Returns:
        a prepared `Builder`; read it with `builder.as_dataset(split=...)`.

    Raises:
        DatasetError: as `make_builder`, or missing or unusable source data. Nothing is left in
            data_dir then.
    """
    builder = make_builder(config_name, data_dir, manual_dir)
    if builder.is_prepared():
        return builder
    manual_dir = os.path.expanduser(manual_dir) if manual_dir else None
    try:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except AssertionError as error:
        # TFDS reports a missing manual directory with an AssertionError; say what to pass instead.
        if "anual dir" not in str(error):
            raise
        raise DatasetError(
            f"the {builder.builder_config.name} config needs the source images: pass "
            f"--manual_dir=<folder with Train/ and Test/> ({_first_sentence(error)})"
        ) from None
    return builder


def _first_sentence(error: Exception) -> str:
    """TFDS's manual-dir complaint without the MANUAL_DOWNLOAD_INSTRUCTIONS it appends, on one line."""
    text = str(error).strip()
    match = re.match(r"(Manual directory .* does not exist or is empty)\. ", text)
    return match.group(1) if match else " ".join(text.split())


def _relative(root: epath.Path, path: epath.Path) -> str:
    """`path` relative to `root`, with "/" separators on every OS."""
    return "/".join(path.relative_to(root).parts)
