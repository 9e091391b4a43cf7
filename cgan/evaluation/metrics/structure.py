"""Colour-blind image structure, and the within-class diversity measured in it.

    maps = structure.descriptors(images)      # [N, R, R, 3] uint8 -> [N, 256] float32
    structure.diversity(maps)                 # median RMS distance between two images of the set

Why: a generator that varies only skin tone, brightness or contrast looks diverse to pixel distances.
This space gives such variety nothing. The descriptor is cgan.core.colour_blind's structure map (each
pixel's Mahalanobis distance from the image's mean colour under the image's own colour covariance,
average-pooled to 16×16), computed in float64: any global affine colour change leaves it unchanged, so
what moves it is the outline, size, position and orientation of the lesion, hairs, texture. The
training's --coverage and --diversity terms may measure in the same space; a run that optimises it
is judged by the classifier-space coverage and the pictures as well.

Diversity of a set = the median, over pairs of its images, of the RMS distance between their
descriptors: the median, so that a few wild pairs cannot make a set of near-copies look varied.
`cgan.evaluation.evaluate` reports it per class for the generated images and for the class's real images, and
their ratio (1: as varied in structure as the real images).
"""

import numpy as np
import tensorflow as tf

from cgan.core import colour_blind
from cgan.evaluation.metrics import precision_recall

SIZE = colour_blind.SIZE  # descriptor maps are SIZE × SIZE
_COLOUR_EPSILON = 1e-6    # added to the colour covariance (pixels in [0, 1]): a flat image stays finite
MIN_SAMPLES = 2
_BLOCK = 128              # images per block, bounding the float64 copies in memory


def descriptors(images, size=SIZE):
    """[N, R, R, 3] uint8 (R a multiple of size) -> [N, size·size] float32 colour-blind structure maps."""
    images = np.asarray(images)
    if images.shape[1] % size:
        raise ValueError(f"images of {images.shape[1]} pixels cannot be pooled to {size}x{size}")
    return np.concatenate([_pooled_maps(images[start:start + _BLOCK], size)
                           for start in range(0, len(images), _BLOCK)] or [np.zeros((0, size * size), np.float32)])


def _pooled_maps(images, size):
    maps = colour_blind.structure_maps(images.astype(np.float64) / 255.0, size, _COLOUR_EPSILON, tf.float64)
    return maps.numpy().reshape(len(images), size * size).astype(np.float32)


def diversity(maps):
    """Median RMS distance between the descriptors of two different images of the set ([N, D], N ≥ 2)."""
    maps = np.asarray(maps, np.float64)
    if len(maps) < MIN_SAMPLES:
        raise ValueError(f"diversity needs {MIN_SAMPLES} or more images, got {len(maps)}")
    squared = precision_recall.squared_distances(maps, maps)                       # [N, N]
    pairs = squared[np.triu_indices(len(maps), k=1)]
    return float(np.sqrt(np.median(pairs) / maps.shape[1]))
