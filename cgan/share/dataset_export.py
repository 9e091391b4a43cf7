"""A class-folder dataset from a trained generator: generated images, alone or topping up the real ones.

    python sample.py --export_dir=out/balanced --top_up_to=max            # every class up to the largest
    python sample.py --export_dir=out/balanced --top_up_to=800 --export_add --model=other/generator.keras
    python sample.py --export_dir=out/generated --per_class=500 --noexport_real_test   # no real image at all
    manifest = dataset_export.export_dataset("runs/demo/generator.keras", "out/balanced",
                                             dataset_export.ExportSettings(top_up_to="max"))

The tree reads like the real data, to a classifier and to `--dataset=isic_skin_cancer/folders_64
--manual_dir=OUT`: `Train/<class>/class03_melanoma_real0000.png` (real, top-up mode) and
`..._seed0412.png` (generated, named as sample.py names them), `Test/<class>/` the real test split
(unless real_test=False), `manifest.json` what is in the tree and how it was made.

Modes: `per_class=N` gives N generated images per class and no real training image; `top_up_to=N`
fills each class of Train/ with generated images up to N beside its real ones (a class already at N
gets none); "max" tops up to the largest class's real count. Real images are the run's prepared
dataset (cgan.run.run_source) at the model's resolution, written as PNG, so the embedded data works too.

Seeds are handed out in one run of consecutive numbers, class 0's first, from `seed` or, when adding,
after the last seed the manifest lists: seed s gives the same z in every class, so no two classes
share one. The same settings give the same files, byte for byte; `truncation` is in the file names
(`_trunc0.70`). Adding never overwrites: it refuses a tree whose manifest is missing or made for other
classes or another resolution, and any existing file name; top-up counts what the tree already holds.
Privacy: each entry of the manifest carries its model's (ε, δ) (null without --dp_epsilon); "privacy"
sums them over the tree's distinct models (basic composition) and counts its unprotected real images.
"""

import dataclasses
import hashlib
import json
import os

from absl import logging
import numpy as np

from cgan.core import images

from cgan.model import sampling

from cgan.run import run_source
from cgan.core.errors import UserError
from cgan.core.files import atomic_write_json

MANIFEST_FILE = "manifest.json"
TRAIN_DIR = "Train"
TEST_DIR = "Test"
TOP_UP_MAX = "max"
_MANIFEST_FORMAT = 1
_GENERATE_CHUNK = 256  # images generated and written at a time, bounding memory for large exports


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    """What to export; exactly one of per_class and top_up_to.

    Attributes:
        per_class: generated images per class, no real training images.
        top_up_to: a positive count or "max" (the largest class's real count): real training images
            plus generated ones up to that many per class.
        seed: first seed; None = 0, or the first unused seed of the manifest when adding.
        truncation: truncation threshold as in sample.py, or None.
        add: add to the export already in the folder instead of refusing a non-empty folder.
        real_test: write the real test split into Test/ (once per tree).
    """

    per_class: int | None = None
    top_up_to: int | str | None = None
    seed: int | None = None
    truncation: float | None = None
    add: bool = False
    real_test: bool = True

    def __post_init__(self):
        if (self.per_class is None) == (self.top_up_to is None):
            raise UserError("pass exactly one of --per_class=N (generated images per class) and "
                            "--top_up_to=N|max (fill every class up to N images) with --export_dir")
        if self.per_class is not None and int(self.per_class) < 1:
            raise UserError(f"--per_class={self.per_class} must be positive: pass the number of images per "
                            f"class, e.g. --per_class=500")
        if self.top_up_to is not None:
            object.__setattr__(self, "top_up_to", _parse_top_up(self.top_up_to))
        if self.seed is not None and int(self.seed) < 0:
            raise UserError(f"--seed={self.seed} must be 0 or more")
        object.__setattr__(self, "truncation", sampling.check_truncation(self.truncation))

    @property
    def mode(self):
        return "per_class" if self.per_class is not None else "top_up"


def _parse_top_up(value):
    text = str(value).strip().lower()
    if text == TOP_UP_MAX:
        return TOP_UP_MAX
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise UserError(f"--top_up_to={value} is not a positive count: pass --top_up_to=max (the largest "
                        f"class's count) or a number of images per class such as --top_up_to=500")
    return count


def top_up_target(top_up_to, real_counts):
    """The per-class target of top-up mode: the count given, or the largest class's for "max"."""
    return int(np.max(real_counts)) if top_up_to == TOP_UP_MAX else int(top_up_to)


def top_up_counts(target, held):
    """Generated images per class so that every class holds at least `target` images.

    Args:
        target: images wanted per class.
        held: [K] int, images each class holds already (real, and generated by earlier exports).

    Returns:
        [K] int, target − held where positive, else 0 (a class above the target keeps what it has).
    """
    return np.maximum(0, int(target) - np.asarray(held, dtype=np.int64))


def allocate_seeds(counts, first_seed):
    """Consecutive, disjoint seed ranges, class 0's first.

    Why one run of consecutive seeds (cgan.evaluation.evaluate gives class c the seeds from seed + c * 1,000,000
    instead): an export grows by later commands (`--export_add`) with counts per class that nothing
    bounds in advance, and one number in its manifest (next_seed) says where the next command starts,
    whatever classes it adds to. The memorisation check and the downstream comparison take their
    images from here too, so that they measure exactly the images an export writes.

    Args:
        counts: [K] images per class.
        first_seed: the first seed.

    Returns:
        list of K ranges; class c's seeds.
    """
    starts = int(first_seed) + np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return [range(int(start), int(start) + int(count)) for start, count in zip(starts, counts)]


def generate_top_up(source, seed=0, truncation=None):
    """The generated images of a top-up to the largest class, as `sample.py --export_dir=OUT
    --top_up_to=max --seed=SEED` writes them, in memory.

    Args:
        source: a run_source.Source.
        seed: first seed.
        truncation: None, or the truncation threshold.

    Returns:
        (images [G, R, R, 3] uint8, labels [G] int32, list of K seed ranges); G may be 0.
    """
    counts = top_up_counts(top_up_target(TOP_UP_MAX, source.train_counts), source.train_counts)
    seeds = allocate_seeds(counts, seed)
    pictures, labels = run_source.generate_classes(source, seeds, truncation)
    return pictures, labels, seeds


def real_file_names(label, class_name, count):
    """Names of a class's real images in the tree, in split order: class03_melanoma_real0000.png, ..."""
    stem = sampling.file_stem(label, class_name)
    return [f"{stem}_real{index:04d}.png" for index in range(count)]


def _check_out_dir(out_dir, add):
    """The manifest already in out_dir (None for a new export); refuses what would be unsafe to touch."""
    path = os.path.abspath(out_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"--export_dir={out_dir} is a file: pass a new or empty folder")
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(f"--export_dir={out_dir} is inside {parent}, which is a file: pass a folder path")
    if not os.path.isdir(path) or not os.listdir(path):
        return None
    manifest_path = os.path.join(path, MANIFEST_FILE)
    if not add:
        raise UserError(f"--export_dir={out_dir} is not empty: pass --export_add to add to the export in it, "
                        f"or a new folder")
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
        manifest["class_names"], manifest["counts"], manifest["next_seed"]  # noqa: B018 -- all required
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"--export_add: {out_dir} holds no readable {MANIFEST_FILE} ({type(e).__name__}), so it "
                        f"is not an export of sample.py: pass a new folder") from None
    return manifest


def _model_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _held(manifest, class_names, split, kind):
    """[K] images of one kind ("real"/"synthetic") per class that the manifest lists in a split."""
    counts = (manifest or {}).get("counts", {}).get(split, {})
    return np.array([counts.get(name, {}).get(kind, 0) for name in class_names], np.int64)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What one command writes: per class, whether its real training images and how many generated ones."""

    write_real: np.ndarray         # [K] bool
    synthetic_counts: np.ndarray   # [K] int
    seeds: list                    # K ranges
    target: int | None             # images per class in top-up mode
    write_test: bool


def _plan(settings, source, manifest, out_dir):
    """Decides what to write, given what the tree holds (manifest None: a new tree)."""
    names = source.class_names
    real_counts = source.train_counts
    held_real = _held(manifest, names, TRAIN_DIR, "real")
    if settings.mode == "per_class":
        write_real, target = np.zeros(len(names), bool), None
        synthetic_counts = np.full(len(names), settings.per_class, np.int64)
    else:
        write_real = held_real == 0  # real images go in once per tree
        target = top_up_target(settings.top_up_to, real_counts)
        held = held_real + np.where(write_real, real_counts, 0) + _held(manifest, names, TRAIN_DIR, "synthetic")
        synthetic_counts = top_up_counts(target, held)
    next_seed = int(manifest["next_seed"]) if manifest else 0
    first_seed = next_seed if settings.seed is None else int(settings.seed)
    if first_seed < next_seed:
        raise UserError(f"--seed={first_seed}: seeds below {next_seed} are already in {out_dir}/{MANIFEST_FILE}; "
                        f"leave --seed out to continue after them, or pass --seed={next_seed} or more")
    write_test = settings.real_test and not _held(manifest, names, TEST_DIR, "real").any()
    return _Plan(write_real, synthetic_counts, allocate_seeds(synthetic_counts, first_seed), target, write_test)


def _planned_files(plan, source, out_dir, truncation):
    """{path: ("train" | "test", label, index in the class) or ("generated", label, seed)} of one command."""
    planned = {}
    test_labels = source.test[1]
    for label, name in enumerate(source.class_names):
        train_dir, test_dir = os.path.join(out_dir, TRAIN_DIR, name), os.path.join(out_dir, TEST_DIR, name)
        if plan.write_real[label]:
            for index, file_name in enumerate(real_file_names(label, name, source.train_counts[label])):
                planned[os.path.join(train_dir, file_name)] = ("train", label, index)
        if len(plan.seeds[label]):
            file_names, _ = sampling.file_names(label, name, plan.seeds[label], truncation)
            for seed, file_name in zip(plan.seeds[label], file_names):
                planned[os.path.join(train_dir, file_name)] = ("generated", label, seed)
        if plan.write_test:
            for index, file_name in enumerate(real_file_names(label, name, int(np.sum(test_labels == label)))):
                planned[os.path.join(test_dir, file_name)] = ("test", label, index)
    return planned


def _new_manifest(old, source, settings, plan):
    """The manifest after this command: old counts plus what it wrote, and its entry in "exports"."""
    names = source.class_names
    test_counts = np.bincount(source.test[1], minlength=len(names))
    written_train = {name: {"real": int(source.train_counts[c]) if plan.write_real[c] else 0,
                            "synthetic": int(plan.synthetic_counts[c])} for c, name in enumerate(names)}
    written_test = {name: {"real": int(test_counts[c]) if plan.write_test else 0} for c, name in enumerate(names)}
    held = {kind: _held(old, names, TRAIN_DIR, kind) for kind in ("real", "synthetic")}
    counts = {TRAIN_DIR: {name: {kind: int(held[kind][c]) + written_train[name][kind] for kind in held}
                          for c, name in enumerate(names)}}
    if plan.write_test:
        counts[TEST_DIR] = written_test
    elif (old or {}).get("counts", {}).get(TEST_DIR):
        counts[TEST_DIR] = old["counts"][TEST_DIR]
    entry = {
        "model": {"path": source.model_path, "sha256": _model_digest(source.model_path), "step": source.step,
                  "dataset": source.dataset, "privacy": source.info.get("privacy")},
        "settings": {"mode": settings.mode, "per_class": settings.per_class, "top_up_to": settings.top_up_to,
                     "target_per_class": plan.target, "seed": plan.seeds[0].start, "truncation": settings.truncation,
                     "add": settings.add, "real_test": settings.real_test},
        "seeds": {name: {"first": class_seeds.start, "count": len(class_seeds)}
                  for name, class_seeds in zip(names, plan.seeds)},
        "written": {TRAIN_DIR: written_train, TEST_DIR: written_test},
    }
    next_seed = int(old["next_seed"]) if old else 0
    exports = (old or {}).get("exports", []) + [entry]
    return {
        "format": _MANIFEST_FORMAT,
        "class_names": list(names),
        "resolution": source.resolution,
        "counts": counts,
        "next_seed": max(next_seed, plan.seeds[-1].stop),
        "seeds": "generated image k of a command uses seed `first + k` of its class's range (sampling.generate)",
        "privacy": privacy_statement(exports, counts),
        "exports": exports,
    }


def privacy_statement(exports, counts):
    """What protects the tree: the generated images' (ε, δ), summed over the distinct models that made them
    (basic composition; None when one was trained without differential privacy), and the real images."""
    models = {entry["model"]["sha256"]: entry["model"].get("privacy") for entry in exports}
    real = sum(kinds.get("real", 0) for split in counts.values() for kinds in split.values())
    private = all(models.values())
    return {
        "generated_images": {"epsilon": sum(p["epsilon"] for p in models.values()),
                             "delta": sum(p["delta"] for p in models.values()),
                             "models": len(models), "accountant": models and next(iter(models.values()))["accountant"]}
        if private else None,
        "real_images": real,
        "note": ("the generated images are differentially private with this (epsilon, delta) over the training "
                 "images" if private else "a model here was trained without --dp_epsilon: no guarantee")
                + ("; the real images in the tree are copies and are not protected" if real else ""),
    }


def export_dataset(model_path, out_dir, settings):
    """Writes (or adds to) a class-folder dataset; see the module docstring.

    Checks everything it can before writing: on a UserError nothing has been written.

    Args:
        model_path: an exported generator .keras file.
        out_dir: the folder of the tree (created).
        settings: ExportSettings.

    Returns:
        the manifest written (a dict): counts per split, class and kind, and one entry per command
        in "exports" (model, step, settings, seeds and counts of that command).

    Raises:
        UserError: out_dir is a file, or not empty without settings.add, or not an export to add to;
            bad model or dataset (run_source.load_source); seeds or files that already exist.
    """
    old = _check_out_dir(out_dir, settings.add)
    source = run_source.load_source(model_path)
    resolution = source.resolution
    if old is not None and (tuple(old["class_names"]) != source.class_names or old.get("resolution") != resolution):
        raise UserError(f"--export_add: {out_dir} holds {old.get('resolution')}px images of classes "
                        f"{', '.join(old['class_names'])}, not this model's {resolution}px "
                        f"{', '.join(source.class_names)}: pass a new folder")
    plan = _plan(settings, source, old, out_dir)
    out_dir = os.path.abspath(out_dir)
    planned = _planned_files(plan, source, out_dir, settings.truncation)
    existing = [path for path in planned if os.path.exists(path)]
    if existing:
        raise UserError(f"{existing[0]} already exists but {MANIFEST_FILE} does not list it (an export that "
                        f"was interrupted?): export into a new folder")

    _write_real(planned, "train", source.train)
    _write_real(planned, "test", source.test)
    _write_generated(source, plan.seeds, settings.truncation, out_dir)
    # The images were written without a flush each (a large export would wait on the disk once per
    # file); one flush of them all, then the manifest, last and flushed: a tree whose manifest does
    # not list a file was interrupted while writing it, even by a power cut.
    os.sync()
    manifest = _new_manifest(old, source, settings, plan)
    atomic_write_json(os.path.join(out_dir, MANIFEST_FILE), manifest)
    return manifest


def summary_line(manifest, out_dir):
    """One line on what the latest command wrote and what the tree holds now."""
    written = manifest["exports"][-1]["written"]
    synthetic = sum(counts["synthetic"] for counts in written[TRAIN_DIR].values())
    real = sum(counts["real"] for counts in written[TRAIN_DIR].values())
    test = sum(counts["real"] for counts in written[TEST_DIR].values())
    totals = [sum(counts.values()) for counts in manifest["counts"][TRAIN_DIR].values()]
    guarantee = manifest["privacy"]["generated_images"]
    privacy = (f"; generated images at (ε = {guarantee['epsilon']:.3g}, δ = {guarantee['delta']:.2g})"
               + (", real images unprotected" if manifest["privacy"]["real_images"] else "")) if guarantee else ""
    return (f"Wrote {synthetic} generated and {real} real training images and {test} real test images into "
            f"{out_dir} ({TRAIN_DIR}/ now holds {min(totals)} to {max(totals)} images per class{privacy}); "
            f"manifest: {os.path.join(out_dir, MANIFEST_FILE)}")


def _write_real(planned, kind, split):
    """Writes the planned real images of one split ("train" or "test") as PNG."""
    split_images, split_labels = split
    members = {}   # label -> indices of its images in split order
    for path, (what, label, index) in planned.items():
        if what != kind:
            continue
        if label not in members:
            members[label] = np.flatnonzero(split_labels == label)
        images.write_png(path, split_images[members[label][index]], sync=False)


def _write_generated(source, seeds, truncation, out_dir):
    """Generates and writes each class's images a chunk at a time."""
    for label, (name, class_seeds) in enumerate(zip(source.class_names, seeds)):
        if not len(class_seeds):
            continue
        logging.info("Generating %d images of class %s", len(class_seeds), name)
        class_dir = os.path.join(out_dir, TRAIN_DIR, name)
        for start in range(0, len(class_seeds), _GENERATE_CHUNK):
            chunk = class_seeds[start:start + _GENERATE_CHUNK]
            pictures = sampling.generate(source.generator, label, chunk, source.latent_dim, truncation)  # [n, R, R, 3]
            file_names, _ = sampling.file_names(label, name, chunk, truncation)
            for file_name, picture in zip(file_names, pictures):
                images.write_png(os.path.join(class_dir, file_name), picture, sync=False)
