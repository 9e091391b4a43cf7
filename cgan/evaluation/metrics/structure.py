"""Colour-blind image structure, and the within-class diversity measured in it.

    maps = structure.descriptors(images)      # [N, R, R, 3] uint8 -> [N, 256] float32
    structure.diversity(maps)                 # median RMS distance between two images of the set

Why: a generator that varies only skin tone, brightness or contrast looks diverse to pixel distances.
This space gives such variety nothing. A pixel's descriptor value is its Mahalanobis distance from the
image's mean colour under the image's own colour covariance; the map is average-pooled to 16×16.
Under any global affine colour change y = A·x + b (brightness, contrast, tint, white balance, hue
rotation, channel mixing; A invertible) the whitened pixels of y are a rotation of those of x, and a
rotation keeps lengths, so a recoloured image has the descriptor of the image. What moves it is how the
image departs from its own background: the outline, size, position and orientation of the lesion,
hairs, texture.

Diversity of a set = the median, over pairs of its images, of the RMS distance between their
descriptors: the median, so that a few wild pairs cannot make a set of near-copies look varied.
`cgan.evaluation.evaluate` reports it per class for the generated images and for the class's real images, and
their ratio (1: as varied in structure as the real images).
"""

import numpy as np

from cgan.evaluation.metrics import precision_recall

SIZE = 16                 # descriptor maps are SIZE × SIZE
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
    count, side = len(images), images.shape[1]
    pixels = images.reshape(count, -1, 3).astype(np.float64) / 255.0               # [N, P, 3]
    centred = pixels - pixels.mean(axis=1, keepdims=True)
    covariance = np.einsum("npi,npj->nij", centred, centred) / pixels.shape[1] + _COLOUR_EPSILON * np.eye(3)
    values, vectors = np.linalg.eigh(covariance)                                   # [N, 3], [N, 3, 3]
    whitened = np.einsum("npi,nij->npj", centred, vectors) / np.sqrt(values)[:, None, :]
    distance = np.sqrt((whitened ** 2).sum(axis=2)).reshape(count, side, side)    # [N, R, R]
    factor = side // size
    pooled = distance.reshape(count, size, factor, size, factor).mean(axis=(2, 4))
    return pooled.reshape(count, size * size).astype(np.float32)


def diversity(maps):
    """Median RMS distance between the descriptors of two different images of the set ([N, D], N ≥ 2)."""
    maps = np.asarray(maps, np.float64)
    if len(maps) < MIN_SAMPLES:
        raise ValueError(f"diversity needs {MIN_SAMPLES} or more images, got {len(maps)}")
    squared = precision_recall.squared_distances(maps, maps)                       # [N, N]
    pairs = squared[np.triu_indices(len(maps), k=1)]
    return float(np.sqrt(np.median(pairs) / maps.shape[1]))
