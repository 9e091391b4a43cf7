"""Builds small class-folder datasets of real images, for development, from files inside installed packages.

    pip install -r requirements-devsets.txt
    python tools/make_devsets.py --out=/data/devsets                  # digits and photos
    python tools/make_devsets.py --out=/data/devsets --sets=faces --max_per_class=20 --overwrite
    python -m data.isic_skin_cancer --config=folders_64 --manual_dir=/data/devsets/photos \\
        --data_dir=/data/devsets/tfds_photos

    from tools import make_devsets
    counts = make_devsets.build("/data/devsets", sets=("digits",), max_per_class=5)
    # {"digits": {"train": {"0": 5, ...}, "test": {"0": 5, ...}}}
    make_devsets.write_contact_sheet("/data/devsets/photos", "/tmp/photos.png")

Sets (tools/DEVSETS.md lists sources, licences and counts):
    digits  scikit-learn's 1,797 handwritten digit scans (8×8, 10 classes), dark ink on light paper,
            upscaled to DIGIT_SIDE; a stratified split, TEST_FRACTION of each class in Test/.
    photos  7 classes of square crops of photographs and micrographs from scikit-image and
            scikit-learn: random position, size, small rotation and mirror; Train/ and Test/ crops come
            from disjoint regions of each source; 60 to 400 training images per class.
    faces   scikit-image's subset of Labeled Faces in the Wild: 100 face and 100 non-face 25×25 patches.

Each set is written as OUT/<set>/Train/<class>/<name>.png, OUT/<set>/Test/<class>/<name>.png and
OUT/<set>/manifest.json, which records where every image came from (for photos: the source pixels
each crop was read from). The same installed packages give the same files, byte for byte.
Nothing is downloaded: only files shipped inside the installed wheels are read.
"""

import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import pathlib
import shutil
import sys

import numpy as np

try:
    from PIL import Image, ImageOps
except ImportError:  # reported, with the fix, by check_packages before any image is made
    Image = ImageOps = None

# Run as `python tools/make_devsets.py`, the repository root is not on sys.path; cgan is imported from it.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cgan.core import cli, options  # noqa: E402  (after the path set-up above)
from cgan.core.errors import UserError  # noqa: E402



SEED = 20240607
TEST_FRACTION = 0.15
# Digits are upscaled from 8×8 to 64×64 with bilinear interpolation: at the 64-pixel config the
# builder's resize is then the identity, so what is stored is exactly this file; bilinear (not
# nearest) because nearest would leave an 8-pixel block grid that a GAN would learn as texture,
# which no scanner produces.
DIGIT_SIDE = 64
# Faces: 25×25 patches, upscaled the same way and for the same reason.
FACE_SIDE = 64
# A crop is rejected as near-uniform when its detail (the mean absolute difference between
# neighbouring luminance values, 0-255, once resized to DETAIL_SIDE as the builder will) is below
# MIN_DETAIL: blank sky, a plain wall, a blurred backdrop. It is rejected as background when more
# than MAX_DARK_FRACTION of its pixels are near black (every channel below DARK_LEVEL): the black
# frame around the fundus. A little of that frame is kept, as dermoscopes show one too.
DETAIL_SIDE = 64
MIN_DETAIL = 2.0
DARK_LEVEL = 20
MAX_DARK_FRACTION = 0.15
# Largest rotation of a crop, in degrees either way; larger angles would need larger source regions.
MAX_ANGLE = 20.0
MANIFEST = "manifest.json"
SPLIT_FOLDERS = {"train": "Train", "test": "Test"}
REQUIREMENTS_FIX = "pip install -r requirements-devsets.txt"


@dataclasses.dataclass(frozen=True)
class PhotoSource:
    """One class of the photos set: crops of one source image.

    Attributes:
        class_name: the class folder name.
        package: the installed package that ships the image.
        resource: the image's path inside the package.
        licence: the licence under which the package distributes the image.
        train_count: training crops.
        min_side, max_side: crop side range in source pixels (drawn log-uniformly).
        test_region: (x0, y0, x1, y1) as fractions of the source's width and height: Test/ crops lie
            inside it, Train/ crops never touch it.
    """

    class_name: str
    package: str
    resource: str
    licence: str
    train_count: int
    min_side: int
    max_side: int
    test_region: tuple[float, float, float, float]

    @property
    def test_count(self) -> int:
        return round(self.train_count * TEST_FRACTION / (1.0 - TEST_FRACTION))


# Counts are imbalanced on purpose (60-400 per class), like the small real sets these stand in for.
# Test regions were chosen by looking at each source so that they hold the same kinds of content
# as the rest of it (vessels on the fundus, gland and stroma on the micrograph, ...).
PHOTO_SOURCES = (
    PhotoSource("fundus", "skimage", "data/retina.jpg",
                "CC0 1.0 (Häggström, Wikimedia Commons, via scikit-image)",
                train_count=400, min_side=128, max_side=384, test_region=(0.22, 0.66, 0.78, 1.0)),
    PhotoSource("immunohistochemistry", "skimage", "data/ihc.png",
                "no known copyright restrictions (CMMI, via scikit-image)",
                train_count=300, min_side=64, max_side=176, test_region=(0.42, 0.55, 0.78, 0.95)),
    PhotoSource("cat", "skimage", "data/chelsea.png",
                "CC0 (Stefan van der Walt, via scikit-image)",
                train_count=220, min_side=64, max_side=128, test_region=(0.6, 0.12, 0.92, 0.66)),
    PhotoSource("coffee", "skimage", "data/coffee.png",
                "CC0 (Rachel Michetti, via scikit-image)",
                train_count=160, min_side=64, max_side=176, test_region=(0.45, 0.0, 0.75, 0.55)),
    PhotoSource("astronaut", "skimage", "data/astronaut.png",
                "public domain (NASA, via scikit-image)",
                train_count=120, min_side=64, max_side=160, test_region=(0.0, 0.5, 0.4, 0.85)),
    PhotoSource("dahlia", "sklearn", "datasets/images/flower.jpg",
                "CC BY 2.0 (vultilion on Flickr, via scikit-learn)",
                train_count=90, min_side=64, max_side=160, test_region=(0.5, 0.2, 0.8, 0.8)),
    PhotoSource("pagoda", "sklearn", "datasets/images/china.jpg",
                "CC BY 2.0 (danielbuechele on Flickr, via scikit-learn)",
                train_count=60, min_side=64, max_side=160, test_region=(0.0, 0.55, 0.42, 1.0)),
)

# Packages each set reads, with their pip names for the error message.
SET_PACKAGES = {
    "digits": (("sklearn", "scikit-learn"), ("PIL", "pillow")),
    "photos": (("skimage", "scikit-image"), ("sklearn", "scikit-learn"), ("PIL", "pillow")),
    "faces": (("skimage", "scikit-image"), ("PIL", "pillow")),
}
SETS = tuple(SET_PACKAGES)
# faces is left out unless asked for: its source states no licence (see tools/DEVSETS.md).
DEFAULT_SETS = ("digits", "photos")


@dataclasses.dataclass(frozen=True)
class DevsetOptions(options.Options):
    out: str = options.option("", "Parent folder of the sets; each is written to <out>/<set>.",
                              required="pass --out=<folder for the sets>")
    sets: tuple[str, ...] = options.option(DEFAULT_SETS, "Sets to write.", choices=SETS,
                                           nonempty=True)
    max_per_class: int | None = options.option(None, "At most this many images per class and split (small test "
                                               "versions); default: all.", lower=1)
    overwrite: bool = options.option(False, "Replace <out>/<set> when it already holds a set written by this "
                                     "script.")


def check_packages(sets) -> None:
    """Raises UserError naming the first package a requested set needs that is not installed."""
    for name in sets:
        for module, pip_name in SET_PACKAGES[name]:
            if importlib.util.find_spec(module) is None:
                raise UserError(f"{pip_name} is not installed (the {name} set needs it): {REQUIREMENTS_FIX}")


def package_file(package: str, resource: str) -> pathlib.Path:
    """The path of a file shipped inside an installed package, found without importing the package."""
    return pathlib.Path(importlib.util.find_spec(package).submodule_search_locations[0]) / resource


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stratified_split(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Indices of each split: TEST_FRACTION of every class (rounded) in test, in index order."""
    test = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        test.extend(rng.permutation(members)[: round(len(members) * TEST_FRACTION)])
    is_test = np.zeros(len(labels), bool)
    is_test[test] = True
    return {"train": np.flatnonzero(~is_test), "test": np.flatnonzero(is_test)}


def _grey_to_rgb(grey: np.ndarray, side: int):
    """A [h, w] uint8 scan as a side×side RGB PIL image, upscaled bilinearly (see DIGIT_SIDE)."""
    return Image.fromarray(grey, mode="L").resize((side, side), Image.Resampling.BILINEAR).convert("RGB")


def _labelled_scans(images: np.ndarray, labels: np.ndarray, class_names, prefix: str, side: int,
                    max_per_class: int | None, seed: int):
    """Yields (split, class_name, file_name, PIL image, record) for a set of labelled grey scans.

    Args:
        images: [N, h, w] uint8, dark on light.
        labels: [N] int class ids into class_names.
    """
    splits = _stratified_split(labels, np.random.default_rng(seed))
    for split, indices in splits.items():
        taken = {}
        for index in indices:
            class_name = class_names[labels[index]]
            if max_per_class is not None and taken.get(class_name, 0) >= max_per_class:
                continue
            taken[class_name] = taken.get(class_name, 0) + 1
            file_name = f"{prefix}_{index:04d}.png"
            yield split, class_name, file_name, _grey_to_rgb(images[index], side), {"index": int(index)}


def _digits(max_per_class: int | None):
    from sklearn.datasets import load_digits
    digits = load_digits()
    # Values are ink density 0..16; scans are dark ink on light paper, like a lesion on skin.
    images = np.round(255.0 - digits.images * (255.0 / 16.0)).astype(np.uint8)  # [1797, 8, 8]
    class_names = tuple(str(d) for d in range(10))
    path = package_file("sklearn", "datasets/data/digits.csv.gz")
    sources = {"digits": {"package": "sklearn", "resource": "datasets/data/digits.csv.gz", "sha256": _sha256(path),
                          "licence": "UCI Optical Recognition of Handwritten Digits, CC BY 4.0"}}
    return sources, _labelled_scans(images, digits.target, class_names, "digit", DIGIT_SIDE, max_per_class,
                                    seed=SEED)


def _faces(max_per_class: int | None):
    resource = "data/lfw_subset.npy"
    path = package_file("skimage", resource)
    patches = np.load(path, allow_pickle=False)  # [200, 25, 25] float in [0, 1]: 100 faces, then 100 not
    images = np.round(patches * 255.0).astype(np.uint8)
    labels = np.repeat([0, 1], len(images) // 2)
    sources = {"lfw_subset": {"package": "skimage", "resource": resource, "sha256": _sha256(path),
                                  "licence": "no licence stated; Labeled Faces in the Wild (news photographs), "
                                             "distributed for research"}}
    return sources, _labelled_scans(images, labels, ("face", "non_face"), "lfw", FACE_SIDE, max_per_class,
                                    seed=SEED + 1)


def _region_pixels(region: tuple[float, float, float, float], width: int, height: int) -> tuple[int, ...]:
    """Fractional (x0, y0, x1, y1) as pixel bounds (x1, y1 exclusive)."""
    x0, y0, x1, y1 = region
    return round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height)


def boxes_overlap(a, b) -> bool:
    """Whether two (x0, y0, x1, y1) pixel boxes (x1, y1 exclusive) share a pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def render_crop(source, box, side: int, angle: float, mirror: bool):
    """The crop a manifest record describes: the pixels of `box`, rotated, centre-cropped, mirrored.

    Args:
        source: the source PIL image (RGB).
        box: (x0, y0, x1, y1) square region of the source, large enough for `side` at `angle`.
        side: the crop's side in pixels.
        angle: counter-clockwise rotation in degrees.
        mirror: whether to flip left-right.

    Returns:
        A side×side RGB PIL image whose pixels all come from `box`.
    """
    region = source.crop(box)
    if angle:
        region = region.rotate(angle, resample=Image.Resampling.BICUBIC)
    left = (region.width - side) // 2
    crop = region.crop((left, left, left + side, left + side))
    return ImageOps.mirror(crop) if mirror else crop


def detail(crop) -> float:
    """Mean absolute difference between neighbouring luminance values of `crop` at DETAIL_SIDE pixels."""
    small = crop.convert("L").resize((DETAIL_SIDE, DETAIL_SIDE), Image.Resampling.BILINEAR)
    luminance = np.asarray(small, np.float32)  # [64, 64]
    return float((np.abs(np.diff(luminance, axis=0)).mean() + np.abs(np.diff(luminance, axis=1)).mean()) / 2)


def _rejected(crop) -> bool:
    """Near-uniform or mostly black crops (see MIN_DETAIL)."""
    pixels = np.asarray(crop)  # [side, side, 3] uint8
    dark = np.mean(np.max(pixels, axis=-1) < DARK_LEVEL)
    return dark > MAX_DARK_FRACTION or detail(crop) < MIN_DETAIL


def _photo_crops(source: PhotoSource, image, split: str, count: int, rng: np.random.Generator):
    """Yields (file_name, crop, record) for `count` accepted crops of one split of one source."""
    test_box = _region_pixels(source.test_region, image.width, image.height)
    bounds = test_box if split == "test" else (0, 0, image.width, image.height)
    accepted = 0
    for _ in range(200 * count):
        if accepted == count:
            return
        side = round(math.exp(rng.uniform(math.log(source.min_side), math.log(source.max_side))))
        angle = round(float(rng.uniform(-MAX_ANGLE, MAX_ANGLE)), 1)
        mirror = bool(rng.random() < 0.5)
        # Half the side of the square that holds the rotated crop, plus a pixel for the bicubic kernel.
        radians = math.radians(angle)
        half = math.ceil(side / 2 * (abs(math.cos(radians)) + abs(math.sin(radians)))) + 1
        if bounds[2] - bounds[0] < 2 * half or bounds[3] - bounds[1] < 2 * half:
            continue
        x = int(rng.integers(bounds[0] + half, bounds[2] - half + 1))
        y = int(rng.integers(bounds[1] + half, bounds[3] - half + 1))
        box = (x - half, y - half, x + half, y + half)
        if split == "train" and boxes_overlap(box, test_box):
            continue
        crop = render_crop(image, box, side, angle, mirror)
        if _rejected(crop):
            continue
        record = {"box": list(box), "side": side, "angle": angle, "mirror": mirror}
        yield f"{source.class_name}_{accepted:04d}.png", crop, record
        accepted += 1
    raise RuntimeError(f"{source.class_name}: only {accepted} of {count} {split} crops were accepted; "
                       "widen its region or side range")


def load_photo_source(source: PhotoSource):
    """The source image of a photos class, read from its package's files, as an RGB PIL image."""
    with Image.open(package_file(source.package, source.resource)) as image:
        return image.convert("RGB")


def _photos(max_per_class: int | None):
    sources = {}
    images = {}
    for source in PHOTO_SOURCES:
        path = package_file(source.package, source.resource)
        images[source.class_name] = load_photo_source(source)
        width, height = images[source.class_name].size
        sources[source.class_name] = {
            "package": source.package, "resource": source.resource, "sha256": _sha256(path),
            "licence": source.licence, "size": [width, height],
            "test_box": list(_region_pixels(source.test_region, width, height)),
        }

    def examples():
        for split in SPLIT_FOLDERS:
            for class_index, source in enumerate(PHOTO_SOURCES):
                count = source.train_count if split == "train" else source.test_count
                if max_per_class is not None:
                    count = min(count, max_per_class)
                # One stream per class and split, so a smaller --max_per_class gives a prefix of the full set.
                rng = np.random.default_rng([SEED, class_index, split == "test"])
                for file_name, crop, record in _photo_crops(source, images[source.class_name], split, count, rng):
                    yield split, source.class_name, file_name, crop, record

    return sources, examples()


_SET_MAKERS = {"digits": _digits, "photos": _photos, "faces": _faces}


def _check_target(target: str, overwrite: bool) -> None:
    """Refuses a non-empty target unless overwrite, and never replaces a folder this script did not write."""
    if not os.path.exists(target):
        return
    if not os.path.isdir(target):
        raise UserError(f"{target} exists and is not a folder: remove it or choose another --out")
    entries = sorted(os.listdir(target))
    if not entries:
        return
    if not overwrite:
        raise UserError(f"{target} is not empty: pass --overwrite to replace it, or choose another --out")
    foreign = [e for e in entries if e not in (*SPLIT_FOLDERS.values(), MANIFEST)]
    if foreign:
        raise UserError(f"{target} holds files this script does not write ({', '.join(foreign[:3])}): "
                        "move them away or choose another --out")


def _write_set(name: str, target: str, max_per_class: int | None) -> dict[str, dict[str, int]]:
    """Writes one set into a temporary sibling of `target`, then moves it into place."""
    partial = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by a run that was killed mid-write
    sources, examples = _SET_MAKERS[name](max_per_class)
    counts = {split: {} for split in SPLIT_FOLDERS}
    records = []
    for split, class_name, file_name, image, record in examples:
        relative = f"{SPLIT_FOLDERS[split]}/{class_name}/{file_name}"
        os.makedirs(os.path.join(partial, SPLIT_FOLDERS[split], class_name), exist_ok=True)
        # zlib level 1: several times faster than the default for files a little larger.
        image.save(os.path.join(partial, relative), format="PNG", compress_level=1)
        counts[split][class_name] = counts[split].get(class_name, 0) + 1
        records.append({"path": relative, "split": split, "class": class_name, **record})
    manifest = {"set": name, "seed": SEED, "test_fraction": TEST_FRACTION, "max_per_class": max_per_class,
                "sources": sources, "counts": counts, "images": records}
    with open(os.path.join(partial, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return counts


def build(out_dir: str, sets=DEFAULT_SETS, max_per_class: int | None = None, overwrite: bool = False):
    """Writes each requested set into `out_dir/<set>`.

    Args:
        out_dir: parent folder; created if missing.
        sets: names from SETS.
        max_per_class: if given, at most this many images per class in each split (for tests).
        overwrite: replace an existing `out_dir/<set>` written by this script.

    Returns:
        {set: {"train": {class: count}, "test": {class: count}}}.

    Raises:
        UserError: an unknown set, a missing package, or a non-empty target without overwrite; checked
            for every set before anything is written.
    """
    unknown = [name for name in sets if name not in SETS]
    if unknown:
        raise UserError(f"unknown set {', '.join(unknown)}: choose from --sets={','.join(SETS)}")
    if max_per_class is not None and max_per_class < 1:
        raise UserError(f"--max_per_class must be at least 1, got {max_per_class}")
    check_packages(sets)
    targets = {name: os.path.join(os.path.expanduser(out_dir), name) for name in sets}
    for target in targets.values():
        _check_target(target, overwrite)
    os.makedirs(os.path.expanduser(out_dir), exist_ok=True)
    return {name: _write_set(name, target, max_per_class) for name, target in targets.items()}


def read_manifest(set_dir: str) -> dict:
    """The manifest.json of a set written by `build`."""
    with open(os.path.join(set_dir, MANIFEST)) as f:
        return json.load(f)


def write_contact_sheet(set_dir: str, path: str, per_class: int = 8, side: int = 64) -> None:
    """Writes a PNG with one row per class of the set's first `per_class` Train/ images at side×side.

    Images are centre-cropped and resized with antialiasing, as the dataset builder does.
    """
    manifest = read_manifest(set_dir)
    classes = sorted(manifest["counts"]["train"])
    sheet = Image.new("RGB", (per_class * side, len(classes) * side), "white")
    for row, class_name in enumerate(classes):
        paths = [r["path"] for r in manifest["images"] if r["split"] == "train" and r["class"] == class_name]
        for column, relative in enumerate(paths[:per_class]):
            with Image.open(os.path.join(set_dir, relative)) as image:
                square = min(image.size)
                left, top = (image.width - square) // 2, (image.height - square) // 2
                tile = image.convert("RGB").crop((left, top, left + square, top + square))
                sheet.paste(tile.resize((side, side), Image.Resampling.BILINEAR), (column * side, row * side))
    sheet.save(path, format="PNG")


def _print_counts(counts) -> None:
    for name, splits in counts.items():
        print(f"{name}:")
        for class_name in sorted(splits["train"]):
            train, test = splits["train"][class_name], splits["test"].get(class_name, 0)
            print(f"  {class_name:<22} train {train:4d}  test {test:4d}")
        print(f"  {'total':<22} train {sum(splits['train'].values()):4d}  test {sum(splits['test'].values()):4d}")


def main(opts):
    counts = build(opts.out, sets=opts.sets, max_per_class=opts.max_per_class, overwrite=opts.overwrite)
    _print_counts(counts)


if __name__ == "__main__":
    cli.run("make_devsets.py", (DevsetOptions,), main)
