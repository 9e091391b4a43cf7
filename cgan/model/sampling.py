"""Class-conditional sampling from an exported generator.

    generator, info = model_files.load_generator("runs/demo/generator.keras")
    label = sampling.resolve_label("melanoma", info["class_names"])            # -> 3
    paths = sampling.write_samples(generator, info, label, seeds=range(16), out_dir="samples")
    pictures = sampling.generate(generator, label, [5, 6], info["latent_dim"], truncation=0.7)
    grid = sampling.class_grid(generator, num_classes=9, latent_dim=100)  # the training runs' fixed-noise grid

Image i of a call comes from seed `seed + i` alone (z = stateless normal of [seed + i]), so an image
is reproducible on its own: seed 5 gives the same picture whether it was drawn alone or in a batch
of 16. Files: `class03_melanoma_seed0005.png` per image and
`class03_melanoma_seeds0000-0015.png` for the grid (`..._trunc0.70.png` when truncated).

Truncation (BigGAN's truncation trick, Brock et al., 2019): each component of z with |z| > t is
redrawn until it lies within t. Redraws come from the seed's own stream (draw k of seed s is the
stateless normal of [s, k], k ≥ 1), so a truncated image still depends on its seed alone, and the
components already within t keep their values: the picture moves towards the class's typical look
without becoming another picture. Smaller t gives more typical, less varied images. The label is
chosen per call, so truncation applies per class. t = None is plain N(0, 1), the latent of
untruncated sampling exactly, and so is t ≥ TRUNCATION_MAX (P(|z| > 10) ≈ 2e-23).
"""

import os

import numpy as np
import tensorflow as tf

from cgan.core import images
from cgan.core import options
from cgan.core.errors import UserError

_BATCH = 64  # images per generator call, bounding memory for large --num
_REDRAW_BLOCK = 64  # candidate redraws per component drawn at once; part of the seed stream's definition

# Below TRUNCATION_MIN redrawing takes long (P(|z| ≤ 0.05) = 4 %) and z is near 0 anyway.
TRUNCATION_MIN, TRUNCATION_MAX = options.TRUNCATION_MIN, options.TRUNCATION_MAX
GRID_COLUMNS = 8
_GRID_NOISE_SEED = 1234


def _canonical(name):
    return "_".join(str(name).strip().lower().replace("-", " ").replace("_", " ").split())


def resolve_label(label, class_names, flag="--label"):
    """Accepts a label index ("3") or a class name ("melanoma", "Melanoma", "basal cell carcinoma").

    Args:
        label: the text given.
        class_names: the model's class names, index i = label i.
        flag: how the value is called in error messages ("--label" on the command line).

    Returns:
        the integer label.

    Raises:
        UserError: out of range or unknown name, listing the valid choices.
    """
    text = str(label).strip()
    choices = ", ".join(f"{i}={name}" for i, name in enumerate(class_names))
    if text.lstrip("-").isdigit():
        index = int(text)
        if 0 <= index < len(class_names):
            return index
        raise UserError(f"{flag}={text} is out of range: this model has {len(class_names)} classes "
                        f"({choices})")
    wanted = _canonical(text)
    for index, name in enumerate(class_names):
        if _canonical(name) == wanted:
            return index
    raise UserError(f"{flag}={text} is not a class of this model: use an index or a name ({choices})")


def check_truncation(value, flag="--truncation"):
    """Validates a truncation threshold.

    Args:
        value: a number, or None for no truncation.
        flag: how the value is called in error messages.

    Returns:
        the float threshold, or None.

    Raises:
        UserError: not a finite number within [TRUNCATION_MIN, TRUNCATION_MAX].
    """
    if value is None:
        return None
    value = float(value)
    if not TRUNCATION_MIN <= value <= TRUNCATION_MAX:  # also false for NaN
        raise UserError(f"{flag}={value:g} is out of range: use {TRUNCATION_MIN:g} to {TRUNCATION_MAX:g} "
                        f"(smaller = more typical images; leave it out for plain N(0, 1) noise)")
    return value


def _truncated_normal(seed, latent_dim, truncation):
    """[latent_dim] float32: the z of `seed` with every component outside ±truncation redrawn."""
    z = tf.random.stateless_normal([latent_dim], seed=[seed, 0]).numpy()
    draw = 1
    while True:
        outside = np.abs(z) > truncation                                                    # [latent]
        if not outside.any():
            return z
        candidates = tf.random.stateless_normal([_REDRAW_BLOCK, latent_dim], seed=[seed, draw]).numpy()
        inside = np.abs(candidates) <= truncation                                           # [block, latent]
        replace = outside & inside.any(axis=0)
        first = inside.argmax(axis=0)   # per component, the first candidate within bounds
        z[replace] = candidates[first[replace], np.flatnonzero(replace)]
        draw += 1


def latent_for_seeds(seeds, latent_dim, truncation=None):
    """Latent vectors, each from its own seed alone.

    Args:
        seeds: iterable of non-negative ints.
        latent_dim: size of z.
        truncation: None for N(0, 1); else redraw components until |z| ≤ truncation (module docstring).

    Returns:
        [len(seeds), latent_dim] float32.
    """
    if truncation is None or truncation >= TRUNCATION_MAX:
        return tf.stack([tf.random.stateless_normal([latent_dim], seed=[int(s), 0]) for s in seeds])
    return tf.constant(np.stack([_truncated_normal(int(s), latent_dim, truncation) for s in seeds]))


def generate(generator, label, seeds, latent_dim, truncation=None):
    """Generates one uint8 image per seed for one label.

    Args:
        generator: keras.Model from model_files.load_generator.
        label: integer label.
        seeds: iterable of non-negative ints.
        latent_dim: size of z.
        truncation: None, or the truncation threshold t (see the module docstring).

    Returns:
        [len(seeds), R, R, 3] uint8.
    """
    seeds = list(seeds)
    batches = []
    for start in range(0, len(seeds), _BATCH):
        chunk = seeds[start:start + _BATCH]
        z = latent_for_seeds(chunk, latent_dim, truncation)               # [b, latent]
        labels = tf.fill([len(chunk)], tf.constant(label, tf.int32))      # [b]
        batches.append(images.to_uint8(generator([z, labels], training=False)))
    return np.concatenate(batches)


def class_grid(generator, num_classes, latent_dim, columns=GRID_COLUMNS):
    """The fixed-noise grid of a training run: row c shows class c, column j uses the same z in every row.

    Returns:
        [num_classes·(R+2)-2, columns·(R+2)-2, 3] uint8.
    """
    noise = tf.random.stateless_normal([columns, latent_dim], seed=[_GRID_NOISE_SEED, 0])   # [cols, latent]
    z = tf.tile(noise, [num_classes, 1])                                     # [C·cols, latent]
    labels = tf.repeat(tf.range(num_classes, dtype=tf.int32), columns)       # [C·cols]
    generated = generator([z, labels], training=False)                       # [C·cols, R, R, 3]
    return images.image_grid(images.to_uint8(generated), rows=num_classes)


def file_stem(label, class_name):
    return f"class{label:02d}_{class_name}"


def file_names(label, class_name, seeds, truncation=None):
    """The PNG names of one call: (one per seed, the grid's).

    Returns:
        (list of str, str), e.g. (["class03_melanoma_seed0005.png", ...], "class03_melanoma_seeds0005-0020.png").
    """
    seeds = list(seeds)
    stem = file_stem(label, class_name)
    suffix = "" if truncation is None or truncation >= TRUNCATION_MAX else f"_trunc{truncation:.2f}"
    return ([f"{stem}_seed{seed:04d}{suffix}.png" for seed in seeds],
            f"{stem}_seeds{seeds[0]:04d}-{seeds[-1]:04d}{suffix}.png")


def write_samples(generator, info, label, seeds, out_dir, truncation=None):
    """Writes one PNG per seed and a grid of all of them.

    Args:
        generator: keras.Model from model_files.load_generator.
        info: its metadata (class_names, latent_dim).
        label: integer label.
        seeds: iterable of non-negative ints.
        out_dir: folder to write into (created).
        truncation: None, or the truncation threshold t (see the module docstring).

    Returns:
        list of written paths, the grid last.
    """
    seeds = list(seeds)
    pictures = generate(generator, label, seeds, info["latent_dim"], truncation)
    names, grid_name = file_names(label, info["class_names"][label], seeds, truncation)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, picture in zip(names, pictures):
        path = os.path.join(out_dir, name)
        images.write_png(path, picture)
        paths.append(path)
    grid_path = os.path.join(out_dir, grid_name)
    images.write_png(grid_path, images.image_grid(pictures))
    paths.append(grid_path)
    return paths
