"""Class-conditional sampling from an exported generator.

    generator, info = export.load_generator("runs/demo/generator.keras")
    label = sampling.resolve_label("melanoma", info["class_names"])            # -> 3
    paths = sampling.write_samples(generator, info, label, seeds=range(16), out_dir="samples")

Image i of a call comes from seed `seed + i` alone (z = stateless normal of [seed + i]), so an image
is reproducible on its own: seed 5 gives the same picture whether it was drawn alone or in a batch
of 16. Files: `class03_melanoma_seed0005.png` per image and
`class03_melanoma_seeds0000-0015.png` for the grid.
"""

import math
import os

import numpy as np
import tensorflow as tf

from cgan import images
from cgan.errors import UserError

_BATCH = 64  # images per generator call, bounding memory for large --num


def _canonical(name):
    return "_".join(str(name).strip().lower().replace("-", " ").replace("_", " ").split())


def resolve_label(label, class_names):
    """Accepts a label index ("3") or a class name ("melanoma", "Melanoma", "basal cell carcinoma").

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
        raise UserError(f"--label={text} is out of range: this model has {len(class_names)} classes "
                        f"({choices})")
    wanted = _canonical(text)
    for index, name in enumerate(class_names):
        if _canonical(name) == wanted:
            return index
    raise UserError(f"--label={text} is not a class of this model: use an index or a name ({choices})")


def latent_for_seeds(seeds, latent_dim):
    """[len(seeds), latent_dim] float32: row i is the standard normal z of seeds[i] alone."""
    return tf.stack([tf.random.stateless_normal([latent_dim], seed=[int(s), 0]) for s in seeds])


def generate(generator, label, seeds, latent_dim):
    """Generates one uint8 image per seed for one label.

    Returns:
        [len(seeds), R, R, 3] uint8.
    """
    seeds = list(seeds)
    batches = []
    for start in range(0, len(seeds), _BATCH):
        chunk = seeds[start:start + _BATCH]
        z = latent_for_seeds(chunk, latent_dim)                           # [b, latent]
        labels = tf.fill([len(chunk)], tf.constant(label, tf.int32))      # [b]
        batches.append(images.to_uint8(generator([z, labels], training=False)))
    return np.concatenate(batches)


def file_stem(label, class_name):
    return f"class{label:02d}_{class_name}"


def write_samples(generator, info, label, seeds, out_dir):
    """Writes one PNG per seed and a grid of all of them.

    Args:
        generator: keras.Model from export.load_generator.
        info: its metadata (class_names, latent_dim).
        label: integer label.
        seeds: iterable of non-negative ints.
        out_dir: folder to write into (created).

    Returns:
        list of written paths, the grid last.
    """
    seeds = list(seeds)
    pictures = generate(generator, label, seeds, info["latent_dim"])
    stem = file_stem(label, info["class_names"][label])
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for seed, picture in zip(seeds, pictures):
        path = os.path.join(out_dir, f"{stem}_seed{seed:04d}.png")
        images.write_png(path, picture)
        paths.append(path)
    columns = math.ceil(math.sqrt(len(pictures)))
    rows = math.ceil(len(pictures) / columns)
    padded = np.concatenate([pictures, np.zeros((rows * columns - len(pictures),) + pictures.shape[1:],
                                                np.uint8)])
    grid_path = os.path.join(out_dir, f"{stem}_seeds{seeds[0]:04d}-{seeds[-1]:04d}.png")
    images.write_png(grid_path, images.image_grid(padded, rows=rows))
    paths.append(grid_path)
    return paths
