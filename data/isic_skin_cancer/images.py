"""Reading source images for the builder: decode any format, centre-crop to a square, resize.

    from data.isic_skin_cancer import images

    try:
        image = images.load("Train/melanoma/ISIC_0000139.jpg", size=64)  # [64, 64, 3] uint8
    except images.UnreadableImageError as error:
        print("skipped:", error.reason)

Sources are 450×600 up to 6000×4000 pixels, mostly JPEG with some PNG, and may be grayscale, RGBA
or CMYK; `tf.io.decode_image(channels=3)` turns all of these into RGB. Files are read with
`tf.io.gfile` so that the builder works on any filesystem TensorFlow knows (and under the TFDS
test harness, which forbids `os` and `open`).
"""

import re

import numpy as np
import tensorflow as tf


class UnreadableImageError(ValueError):
    """A file that is not a usable image; `reason` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode(data: bytes) -> tf.Tensor:
    """Decodes JPEG, PNG, GIF (first frame), BMP or WebP bytes to RGB.

    Args:
        data: the file's contents.

    Returns:
        [H, W, 3] uint8 tensor.

    Raises:
        UnreadableImageError: empty, not an image, or corrupt/truncated.
    """
    if not data:
        raise UnreadableImageError("empty file (0 bytes)")
    try:
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    except tf.errors.OpError as error:
        message = _op_message(error)
        if message.startswith("Unknown image file format"):
            raise UnreadableImageError("not an image (content is not JPEG, PNG, GIF, BMP or WebP)") from None
        raise UnreadableImageError(f"corrupt or truncated image ({message})") from None
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise UnreadableImageError(f"image has no pixels ({image.shape[0]}x{image.shape[1]})")
    return image


def center_crop_and_resize(image: tf.Tensor, size: int) -> np.ndarray:
    """Crops the largest centred square and resizes it to `size`×`size`.

    Lesions are photographed in the middle of the frame, so the centre square keeps them whole
    while giving every image the same aspect ratio without distortion. Antialiasing matters when
    shrinking 6000-pixel photos to 64: without it the result aliases into noise.

    Args:
        image: [H, W, 3] uint8 image.
        size: output height and width.

    Returns:
        [size, size, 3] uint8 array.
    """
    height, width = int(image.shape[0]), int(image.shape[1])
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side]  # [side, side, 3]
    resized = tf.image.resize(square, (size, size), antialias=True)  # float32, may overshoot 0..255
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8).numpy()


def load(path, size: int) -> np.ndarray:
    """Reads, decodes, centre-crops and resizes one image file.

    Args:
        path: file path (str or os.PathLike), local or any `tf.io.gfile` filesystem.
        size: output height and width.

    Returns:
        [size, size, 3] uint8 array.

    Raises:
        UnreadableImageError: the file cannot be read or is not a usable image.
    """
    try:
        with tf.io.gfile.GFile(str(path), "rb") as f:
            data = f.read()
    except (tf.errors.OpError, OSError) as error:
        raise UnreadableImageError(f"cannot read file ({_op_message(error)})") from None
    return center_crop_and_resize(decode(data), size)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a [H, W, 3] uint8 image, at zlib level 1.

    TFDS would encode arrays at zlib's default level 6: several times slower on 256-pixel images for
    files hardly smaller, so level 1 leaves the build's time to making the images.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected a [H, W, 3] uint8 image, got {image.dtype} {image.shape}")
    return tf.io.encode_png(image, compression=1).numpy()


def _op_message(error: Exception) -> str:
    """The useful part of a TensorFlow error: without the function-node prefix and op suffix."""
    message = getattr(error, "message", None) or str(error)
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:\w+\]\s*$", "", message)
    return message.strip().splitlines()[0] if message.strip() else type(error).__name__
