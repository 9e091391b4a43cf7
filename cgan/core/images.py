"""Turning generator output into pictures: denormalise, tile into grids, label, write PNGs atomically.

    pixels = images.to_uint8(generated)                  # [B, R, R, 3] float [-1, 1] -> uint8
    grid = images.image_grid(pixels, rows=9)             # [9·R, (B/9)·R, 3] uint8
    labelled = images.draw_text(grid, [(2, 2, "melanoma")])   # text at (left, top), one TEXT_LINE high
    images.write_png("runs/demo/samples/step_003000.png", labelled)

Text is drawn in Pillow's default font (it comes with TensorBoard), here only.
"""

import functools
import math

import numpy as np
import tensorflow as tf

from cgan.core import files

TEXT_LINE = 14  # pixels per line of text, Pillow's default font being 10 pixels high


def to_uint8(images):
    """[..., 3] float in [-1, 1] -> uint8 numpy in [0, 255], rounding to the nearest level."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images, rows=None, padding=2):
    """The one way pictures are tiled: row by row (the first B/rows images form row 0).

    Args:
        images: [B, H, W, C] uint8.
        rows: number of rows, B divisible by it; None = the most square layout (ceil(sqrt(B)) columns),
            the last row padded with black.
        padding: pixels of black between tiles.

    Returns:
        [rows·(H+p)-p, cols·(W+p)-p, C] uint8.
    """
    images = np.asarray(images)
    count, height, width, channels = images.shape
    if rows is None:
        cols = math.ceil(math.sqrt(count))
        rows = math.ceil(count / cols)
        images = np.concatenate([images, np.zeros((rows * cols - count, height, width, channels), images.dtype)])
    elif count % rows:
        raise ValueError(f"{count} images do not fill {rows} rows")
    cols = len(images) // rows
    grid = np.zeros((rows * (height + padding) - padding, cols * (width + padding) - padding, channels),
                    dtype=images.dtype)
    for i, image in enumerate(images):
        top, left = (i // cols) * (height + padding), (i % cols) * (width + padding)
        grid[top:top + height, left:left + width] = image
    return grid


@functools.lru_cache(maxsize=1)
def _font():
    from PIL import ImageFont  # Pillow comes with TensorBoard
    return ImageFont.load_default()


def text_width(text):
    """Pixels the text spans when draw_text draws it."""
    return int(np.ceil(_font().getlength(text)))


def draw_text(image, texts, fill=(0, 0, 0)):
    """The one way pictures are labelled: lines of text drawn onto a copy of an image.

    Args:
        image: [H, W, 3] uint8.
        texts: iterable of (left, top, text), in pixels; a line takes TEXT_LINE pixels from its top.
        fill: the text's RGB colour.

    Returns:
        [H, W, 3] uint8.
    """
    from PIL import Image, ImageDraw
    canvas = Image.fromarray(np.asarray(image, dtype=np.uint8))
    draw, font = ImageDraw.Draw(canvas), _font()
    for left, top, text in texts:
        draw.text((left, top), text, fill=tuple(fill), font=font)
    return np.asarray(canvas)


def encode_png(image):
    """[H, W, 3] uint8 image -> PNG bytes."""
    return tf.io.encode_png(np.asarray(image, dtype=np.uint8)).numpy()


def write_png(path, image, sync=True):
    """Writes a [H, W, 3] uint8 image as PNG; a reader never sees a half-written file.

    Args:
        path: the .png file.
        image: [H, W, 3] uint8.
        sync: flush it to disk before it is renamed into place (cgan.core.files.atomic_write_bytes).
    """
    files.atomic_write_bytes(path, encode_png(image), sync)
