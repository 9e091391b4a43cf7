"""Procedural lesion-like images for the `synthetic_*` configs. These are NOT medical images.

Each of the nine ISIC classes gets its own look (colour, outline, border and surface texture),
loosely modelled on how the lesion type is described in dermoscopy atlases, and every image varies
inside its class (size, position, rotation, elongation, skin tone, hue, hairs, scope vignette). The
point is a dataset that needs no download yet gives a conditional GAN something class-specific to
learn; nothing here should be used to study or diagnose skin disease.

    import numpy as np
    from data.isic_skin_cancer import CLASS_NAMES, synthetic

    rng = np.random.default_rng(0)
    image = synthetic.lesion_image("melanoma", size=64, rng=rng)  # [64, 64, 3] uint8

    for class_name, index, image in synthetic.generate_split("train", CLASS_NAMES, size=64):
        ...

    # Look at them: 8 images per class, one row per class.
    synthetic.write_contact_sheet("/tmp/synthetic_sheet.png", size=64, per_class=8)

Images are a pure function of (seed, split, class name, index): the same bytes on every build, and
the same lesion at every resolution except for pixel-level grain.
"""

import functools
import zlib
from typing import Callable, Iterator, Sequence

import numpy as np

SEED = 20190
SPLITS = ("train", "test")

# Images per class in the Kaggle "Skin Cancer ISIC 9 classes" download; the synthetic configs
# reproduce them so the class imbalance a GAN sees is the real one.
TRAIN_COUNTS = {
    "actinic_keratosis": 114,
    "basal_cell_carcinoma": 376,
    "dermatofibroma": 95,
    "melanoma": 438,
    "nevus": 357,
    "pigmented_benign_keratosis": 462,
    "seborrheic_keratosis": 77,
    "squamous_cell_carcinoma": 181,
    "vascular_lesion": 139,
}
TEST_COUNTS = {
    "actinic_keratosis": 16,
    "basal_cell_carcinoma": 16,
    "dermatofibroma": 16,
    "melanoma": 16,
    "nevus": 16,
    "pigmented_benign_keratosis": 16,
    "seborrheic_keratosis": 3,
    "squamous_cell_carcinoma": 16,
    "vascular_lesion": 3,
}
COUNTS = {"train": TRAIN_COUNTS, "test": TEST_COUNTS}


class _Canvas:
    """An RGB float image in [0, 1] over the square [-1, 1]², with the helpers painters share.

    Geometry is in these normalised coordinates rather than pixels so that a lesion looks the same
    at 64, 128 or 256 pixels.
    """

    def __init__(self, size: int, rng: np.random.Generator):
        coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
        self.x, self.y = np.meshgrid(coords, coords)  # [S, S] each; x to the right, y down
        self.size = size
        self.rng = rng
        self.image = np.zeros((size, size, 3))  # [S, S, 3]

    def noise(self, cells: int, octaves: int = 1) -> np.ndarray:
        """Smooth value noise with `cells` features across the image, roughly in [-1, 1].

        Args:
            cells: number of noise cells across the image for the first octave.
            octaves: finer octaves (twice the cells, half the amplitude) to add.

        Returns:
            [S, S] float array.
        """
        total = np.zeros((self.size, self.size))
        amplitude = 1.0
        for octave in range(octaves):
            n = cells * 2**octave
            grid = self.rng.uniform(-1.0, 1.0, size=(n + 1, n + 1))
            left, t = _interpolation(n, self.size)
            rows = grid[left] * (1.0 - t)[:, None] + grid[left + 1] * t[:, None]  # [S, n + 1]
            total += amplitude * (rows[:, left] * (1.0 - t) + rows[:, left + 1] * t)
            amplitude *= 0.5
        return total / (2.0 - 2.0 ** (1 - octaves))

    def window(self, x_min: float, x_max: float, y_min: float, y_max: float) -> tuple[slice, slice]:
        """Rows and columns of the pixels inside a box, to draw small things without a full pass."""

        def span(low, high):
            first = int(np.floor((low + 1.0) / 2.0 * self.size - 0.5))
            last = int(np.ceil((high + 1.0) / 2.0 * self.size - 0.5)) + 1
            return slice(min(max(first, 0), self.size), min(max(last, 0), self.size))

        return span(y_min, y_max), span(x_min, x_max)

    def paint(self, colour, alpha: np.ndarray) -> None:
        """Blends `colour` ([3] or [S, S, 3]) over the image with per-pixel opacity `alpha` [S, S]."""
        alpha = np.clip(alpha, 0.0, 1.0)[..., None]
        self.image = self.image * (1.0 - alpha) + np.asarray(colour) * alpha

    def shade(self, factor: np.ndarray, where: np.ndarray) -> None:
        """Multiplies brightness by `factor` [S, S] inside `where` [S, S] (0..1)."""
        self.image *= (1.0 + (factor - 1.0) * where)[..., None]

    def to_uint8(self) -> np.ndarray:
        return np.round(np.clip(self.image, 0.0, 1.0) * 255.0).astype(np.uint8)


@functools.lru_cache(maxsize=64)
def _interpolation(cells: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of `size` pixels: the grid point to its left and the weight of the next one."""
    position = (np.arange(size) + 0.5) / size * cells
    left = np.minimum(np.floor(position).astype(int), cells - 1)
    t = position - left
    t = t * t * (3.0 - 2.0 * t)  # smoothstep: hides the grid that linear interpolation shows
    left.flags.writeable = False
    t.flags.writeable = False
    return left, t


class _Shape:
    """A blob-shaped lesion: `mask` is 1 inside, 0 outside, `distance` is 1 on the border."""

    def __init__(
        self,
        canvas: _Canvas,
        radius: float,
        aspect: float = 1.0,
        irregularity: float = 0.0,
        raggedness: float = 0.0,
        softness: float = 0.03,
        centre: tuple[float, float] | None = None,
    ):
        rng = canvas.rng
        if centre is None:
            centre = tuple(np.clip(rng.normal(0.0, 0.12, size=2), -0.3, 0.3))
        self.centre = centre
        self.radius, self.aspect = radius, aspect
        self.angle = rng.uniform(0.0, 2.0 * np.pi)
        dx, dy = canvas.x - centre[0], canvas.y - centre[1]
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        self.u = (dx * cos + dy * sin) / radius
        self.v = (-dx * sin + dy * cos) / (radius * aspect)
        theta = np.arctan2(self.v, self.u)
        # The outline is a circle perturbed by random harmonics: low ones make it lumpy and
        # asymmetric, high ones make it ragged. Evaluated on an angle table, then looked up.
        table = np.linspace(-np.pi, np.pi, 721)
        boundary = np.ones_like(table)
        for k in range(2, 7):
            boundary += irregularity * rng.normal() / k * np.cos(k * table + rng.uniform(0, 2 * np.pi))
        for k in range(7, 25):
            boundary += raggedness * rng.normal() / np.sqrt(k) * np.cos(k * table + rng.uniform(0, 2 * np.pi))
        boundary = np.maximum(boundary, 0.35)
        # A box that holds the whole lesion, for painting inside it only.
        reach = radius * boundary.max() * max(1.0, aspect) * (1.0 + 8.0 * softness)
        self.window = canvas.window(centre[0] - reach, centre[0] + reach, centre[1] - reach, centre[1] + reach)
        self.distance = np.hypot(self.u, self.v) / np.interp(theta, table, boundary)  # [S, S]
        self.mask = _sigmoid((1.0 - self.distance) / softness)  # [S, S]

    def point(self, u: float, v: float) -> tuple[float, float]:
        """Image coordinates of (u, v) in the lesion's own frame: unit radius, before outline bumps."""
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        x = self.centre[0] + u * self.radius * cos - v * self.radius * self.aspect * sin
        y = self.centre[1] + u * self.radius * sin + v * self.radius * self.aspect * cos
        return x, y


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _jitter(rng: np.random.Generator, rgb, hue: float = 0.05, value: float = 0.1) -> np.ndarray:
    """Warmth, tint and brightness jitter of a colour, so no two lesions share one tint."""
    # Mostly a warm-cool shift (red against blue): per-channel noise alone turns browns olive.
    warmth = rng.normal(0.0, hue) * np.array([1.0, 0.0, -1.0])
    tint = rng.normal(0.0, hue / 3.0, size=3)
    return np.asarray(rgb, dtype=float) * (1.0 + warmth + tint) * rng.uniform(1.0 - value, 1.0 + value)


def _segments_distance(canvas: _Canvas, starts: np.ndarray, ends: np.ndarray, reach: float) -> np.ndarray:
    """Distance from every pixel to the nearest of the segments `starts[i]`–`ends[i]` ([N, 2]).

    Only pixels within `reach` of a segment get a finite distance: the lines drawn from this fade
    out well before it, and skipping the rest keeps 256-pixel images fast.
    """
    best = np.full(canvas.x.shape, np.inf)
    for (x0, y0), (x1, y1) in zip(starts, ends):
        rows, cols = canvas.window(
            min(x0, x1) - reach, max(x0, x1) + reach, min(y0, y1) - reach, max(y0, y1) + reach
        )
        x, y = canvas.x[rows, cols], canvas.y[rows, cols]
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
        best[rows, cols] = np.minimum(best[rows, cols], np.hypot(x - x0 - t * dx, y - y0 - t * dy))
    return best


def _random_walk(rng, start, heading, steps, step_length, turn, branch_probability=0.0):
    """Segments of a wandering, optionally branching line (vessels, hairs, cracks)."""
    starts, ends = [], []
    walkers = [(np.asarray(start, dtype=float), heading, steps)]
    while walkers:
        point, heading, left = walkers.pop()
        for _ in range(left):
            heading += rng.normal(0.0, turn)
            step = step_length * rng.uniform(0.6, 1.2)
            next_point = point + step * np.array([np.cos(heading), np.sin(heading)])
            starts.append(point)
            ends.append(next_point)
            point = next_point
            left -= 1
            if left > 1 and rng.random() < branch_probability:
                walkers.append((point, heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1), left // 2))
    return np.array(starts), np.array(ends)


def _line(distance: np.ndarray, width: float) -> np.ndarray:
    """Soft line profile from a distance field: 1 on the line, falling off over `width`."""
    return np.exp(-((distance / width) ** 2))


def _dots(canvas: _Canvas, count: int, radius: float, where: _Shape, spread: float = 0.85) -> np.ndarray:
    """Soft round dots scattered inside a lesion; returns their [S, S] coverage."""
    rng = canvas.rng
    coverage = np.zeros(canvas.x.shape)
    for _ in range(count):
        r = spread * np.sqrt(rng.random())
        a = rng.uniform(0.0, 2 * np.pi)
        px, py = where.point(r * np.cos(a), r * np.sin(a))
        size = radius * rng.uniform(0.6, 1.4)
        rows, cols = canvas.window(px - 3 * size, px + 3 * size, py - 3 * size, py + 3 * size)
        dot = np.exp(-((canvas.x[rows, cols] - px) ** 2 + (canvas.y[rows, cols] - py) ** 2) / size**2)
        coverage[rows, cols] = np.maximum(coverage[rows, cols], dot)
    return coverage


def _skin(canvas: _Canvas) -> None:
    """Skin background: a random tone from pale to tan, blotchy shading, optional scope vignette."""
    rng = canvas.rng
    pale = np.array([0.93, 0.78, 0.70])
    tan = np.array([0.72, 0.52, 0.40])
    tone = _jitter(rng, pale + rng.uniform(0.0, 1.0) * (tan - pale), hue=0.03, value=0.05)
    canvas.image[:] = tone
    canvas.image *= (1.0 + 0.05 * canvas.noise(3, octaves=3))[..., None]
    canvas.image *= (1.0 + 0.02 * canvas.noise(24))[..., None]
    # Dermoscopes light the centre and darken the corners; some images show the black lens rim.
    r = np.hypot(canvas.x, canvas.y)
    canvas.image *= (1.0 - rng.uniform(0.0, 0.25) * np.clip(r - 0.6, 0.0, None) ** 2)[..., None]
    if rng.random() < 0.3:
        rim = rng.uniform(1.05, 1.4)
        canvas.paint([0.05, 0.04, 0.04], _sigmoid((r - rim) / 0.03))


def _hairs(canvas: _Canvas) -> None:
    """A few dark hairs across some images, independent of the class (as in real dermoscopy)."""
    rng = canvas.rng
    if rng.random() > 0.25:
        return
    colour = _jitter(rng, [0.18, 0.12, 0.09], value=0.3)
    for _ in range(rng.integers(1, 4)):
        start = rng.uniform(-1.2, 1.2, size=2)
        heading = np.arctan2(-start[1], -start[0]) + rng.normal(0.0, 0.6)
        starts, ends = _random_walk(rng, start, heading, steps=8, step_length=0.3, turn=0.12)
        width = rng.uniform(0.008, 0.016)
        canvas.paint(colour, 0.85 * _line(_segments_distance(canvas, starts, ends, 3 * width), width))


# One painter per class. Each draws on the skin already on the canvas; the comments give the
# dermoscopic feature each step imitates.


def _actinic_keratosis(canvas: _Canvas) -> None:
    rng = canvas.rng
    shape = _Shape(canvas, radius=rng.uniform(0.4, 0.7), aspect=rng.uniform(0.6, 0.95),
                   irregularity=0.25, raggedness=0.02, softness=rng.uniform(0.12, 0.2))
    # Reddish patch ("strawberry" background) fading into the skin.
    red = _jitter(rng, [0.84, 0.44, 0.42])
    canvas.paint(red, 0.85 * shape.mask * (1.0 + 0.25 * canvas.noise(6, 2)))
    # Surface scale: white-yellow flakes on the patch.
    scale = np.clip((canvas.noise(14, 2) - rng.uniform(0.05, 0.25)) * 4.0, 0.0, 1.0)
    canvas.paint(_jitter(rng, [0.95, 0.92, 0.84], value=0.03), 0.9 * scale * shape.mask)
    # Follicular openings: small pale dots with a red halo.
    follicles = _dots(canvas, int(rng.integers(6, 14)), 0.035, shape)
    canvas.paint([0.70, 0.22, 0.24], 0.5 * np.clip(follicles * 3.0, 0, 1) * shape.mask)
    canvas.paint([0.97, 0.93, 0.88], follicles**2 * shape.mask)


def _basal_cell_carcinoma(canvas: _Canvas) -> None:
    rng = canvas.rng
    shape = _Shape(canvas, radius=rng.uniform(0.3, 0.6), aspect=rng.uniform(0.7, 1.0),
                   irregularity=0.2, raggedness=0.01, softness=rng.uniform(0.05, 0.09))
    # Pink, translucent, pearly nodule.
    canvas.paint(_jitter(rng, [0.92, 0.70, 0.70], value=0.05), 0.85 * shape.mask)
    # Rolled, shiny border.
    rim = np.exp(-(((shape.distance - 0.85) / 0.12) ** 2))
    canvas.paint([0.99, 0.90, 0.90], 0.45 * rim * shape.mask)
    # Blue-grey ovoid nests.
    nests = _dots(canvas, int(rng.integers(0, 4)), 0.07, shape, spread=0.6)
    canvas.paint(_jitter(rng, [0.42, 0.45, 0.55]), 0.8 * np.clip(nests * 2.0, 0, 1))
    # Arborizing vessels: sharp, thin, branching red lines over the lesion.
    starts, ends = [], []
    for _ in range(rng.integers(2, 5)):
        a = rng.uniform(0, 2 * np.pi)
        origin = shape.point(0.7 * np.cos(a), 0.7 * np.sin(a))
        heading = np.arctan2(shape.centre[1] - origin[1], shape.centre[0] - origin[0]) + rng.normal(0, 0.5)
        s, e = _random_walk(rng, origin, heading, steps=6, step_length=0.07 * shape.radius / 0.45 + 0.03,
                            turn=0.5, branch_probability=0.35)
        starts.append(s)
        ends.append(e)
    vessels = _line(_segments_distance(canvas, np.concatenate(starts), np.concatenate(ends), 0.05), 0.014)
    canvas.paint(_jitter(rng, [0.78, 0.10, 0.16]), 0.95 * vessels * shape.mask)
    # Specular highlight from the glossy surface.
    glint = _dots(canvas, int(rng.integers(1, 3)), 0.04, shape, spread=0.5)
    canvas.paint([1.0, 0.98, 0.98], 0.8 * glint)


def _dermatofibroma(canvas: _Canvas) -> None:
    rng = canvas.rng
    shape = _Shape(canvas, radius=rng.uniform(0.25, 0.4), aspect=rng.uniform(0.75, 1.0),
                   irregularity=0.15, softness=rng.uniform(0.1, 0.15))
    # Pale brown, fading outward, with a delicate pigment network at the rim.
    brown = _jitter(rng, [0.60, 0.41, 0.31], value=0.08)
    network = 0.5 + 0.5 * np.sin(shape.u * 22.0) * np.sin(shape.v * 22.0)
    canvas.paint(brown, 0.95 * shape.mask * (0.8 + 0.2 * network))
    # Central white scar-like patch.
    centre = _Shape(canvas, radius=shape.radius * rng.uniform(0.3, 0.45), aspect=rng.uniform(0.6, 1.0),
                    irregularity=0.25, softness=0.2, centre=shape.point(*rng.normal(0, 0.1, 2)))
    canvas.paint(_jitter(rng, [0.94, 0.88, 0.84], value=0.02), 0.9 * centre.mask)


def _melanoma(canvas: _Canvas) -> None:
    rng = canvas.rng
    shape = _Shape(canvas, radius=rng.uniform(0.5, 0.8), aspect=rng.uniform(0.65, 1.0),
                   irregularity=0.55, raggedness=0.025, softness=rng.uniform(0.02, 0.06))
    # Several colours in asymmetric zones: brown, black, blue-grey veil, red, white regression.
    canvas.paint(_jitter(rng, [0.42, 0.25, 0.15]), shape.mask)
    zones = [
        ([0.10, 0.06, 0.06], 0.0, 0.95),   # black blotch
        ([0.36, 0.40, 0.52], 0.25, 0.85),  # blue-grey veil
        ([0.62, 0.24, 0.22], 0.3, 0.8),    # red areas
        ([0.27, 0.15, 0.09], -0.1, 0.9),   # dark brown
        ([0.88, 0.84, 0.84], 0.45, 0.8),   # white regression
    ]
    tilt = rng.normal(0.0, 1.0, size=2)  # pushes the dark zones to one side: asymmetry
    for rgb, threshold, opacity in zones:
        field = canvas.noise(4, 2) + 0.35 * (tilt[0] * shape.u + tilt[1] * shape.v) / 2.0
        zone = np.clip((field - threshold - rng.uniform(-0.1, 0.2)) * 3.0, 0.0, 1.0)
        canvas.paint(_jitter(rng, rgb), opacity * zone * shape.mask)
    # Atypical network and irregular dots: coarse, dark, patchy.
    grain = np.clip(canvas.noise(20, 2) * 2.0, 0.0, 1.0)
    canvas.paint([0.12, 0.08, 0.07], 0.5 * grain * shape.mask)


def _nevus(canvas: _Canvas) -> None:
    rng = canvas.rng
    shape = _Shape(canvas, radius=rng.uniform(0.3, 0.55), aspect=rng.uniform(0.8, 1.0),
                   irregularity=0.05, softness=rng.uniform(0.03, 0.06))
    # Uniform medium brown, a little darker in the middle, with a fine regular network.
    brown = _jitter(rng, [0.45, 0.28, 0.17], hue=0.04, value=0.15)
    canvas.paint(brown, shape.mask)
    canvas.shade(1.0 - 0.15 * np.clip(1.0 - shape.distance, 0.0, 1.0), shape.mask)
    network = np.sin(shape.u * 30.0 + 0.8 * canvas.noise(6)) * np.sin(shape.v * 30.0)
    canvas.shade(1.0 - 0.06 * network, shape.mask)


def _pigmented_benign_keratosis(canvas: _Canvas) -> None:
    rng = canvas.rng
    shape = _Shape(canvas, radius=rng.uniform(0.45, 0.75), aspect=rng.uniform(0.55, 0.9),
                   irregularity=0.35, raggedness=0.02, softness=rng.uniform(0.03, 0.06))
    # Flat light brown, faint and mottled, with a moth-eaten edge and curved "fingerprint" ridges.
    colour = _jitter(rng, [0.70, 0.52, 0.36], value=0.06)
    canvas.paint(colour, rng.uniform(0.6, 0.85) * shape.mask * (1.0 + 0.2 * canvas.noise(5, 2)))
    # Ridges are arcs around a far-away point, wobbled by noise, like a fingerprint's.
    far = rng.uniform(1.2, 2.5)
    angle = rng.uniform(0, 2 * np.pi)
    along = np.hypot(canvas.x - far * np.cos(angle), canvas.y - far * np.sin(angle))
    ridges = np.sin(along * rng.uniform(30.0, 45.0) + 3.0 * canvas.noise(3))
    canvas.shade(1.0 - 0.035 * ridges, shape.mask)


def _seborrheic_keratosis(canvas: _Canvas) -> None:
    rng = canvas.rng
    shape = _Shape(canvas, radius=rng.uniform(0.4, 0.7), aspect=rng.uniform(0.6, 0.9),
                   irregularity=0.15, raggedness=0.01, softness=0.02)
    # Waxy tan-yellow "stuck-on" plaque with a sharp edge.
    tan = _jitter(rng, [0.70, 0.51, 0.32], hue=0.03, value=0.08)
    canvas.paint(tan, shape.mask * (1.0 + 0.1 * canvas.noise(8)))
    # Cracks (fissures) between the plaque's cells: Voronoi borders.
    count = 30
    r = np.sqrt(rng.random(count)) * 1.05
    a = rng.uniform(0, 2 * np.pi, count)
    points = np.array([shape.point(ri * np.cos(ai), ri * np.sin(ai)) for ri, ai in zip(r, a)])
    rows, cols = shape.window
    x, y = canvas.x[rows, cols], canvas.y[rows, cols]
    distances = np.hypot(x[None] - points[:, 0, None, None], y[None] - points[:, 1, None, None])  # [N, h, w]
    nearest = np.partition(distances, 1, axis=0)
    cracks = np.zeros(canvas.x.shape)
    cracks[rows, cols] = _line(nearest[1] - nearest[0], 0.025)
    canvas.paint(_jitter(rng, [0.30, 0.20, 0.13]), 0.85 * cracks * shape.mask)
    # Milia-like cysts (white) and comedo-like openings (dark).
    canvas.paint([0.98, 0.96, 0.86], _dots(canvas, int(rng.integers(2, 7)), 0.03, shape))
    canvas.paint([0.20, 0.14, 0.10], 0.9 * _dots(canvas, int(rng.integers(1, 5)), 0.025, shape))


def _squamous_cell_carcinoma(canvas: _Canvas) -> None:
    rng = canvas.rng
    shape = _Shape(canvas, radius=rng.uniform(0.35, 0.65), aspect=rng.uniform(0.7, 1.0),
                   irregularity=0.3, raggedness=0.02, softness=rng.uniform(0.06, 0.1))
    # Red-pink base.
    canvas.paint(_jitter(rng, [0.82, 0.34, 0.33]), 0.95 * shape.mask)
    # Glomerular (dotted, clustered) vessels.
    vessels = _dots(canvas, int(rng.integers(8, 20)), 0.025, shape, spread=0.95)
    canvas.paint([0.60, 0.06, 0.10], 0.9 * vessels * shape.mask)
    # Central keratin crust: yellow-brown, rough, off-centre.
    crust = _Shape(canvas, radius=shape.radius * rng.uniform(0.4, 0.65), irregularity=0.6, raggedness=0.06,
                   softness=0.05, centre=shape.point(*rng.normal(0, 0.15, 2)))
    rough = 1.0 + 0.3 * canvas.noise(16, 2)
    canvas.paint(_jitter(rng, [0.80, 0.68, 0.42]), crust.mask * np.clip(rough, 0, 1))
    canvas.shade(rough, crust.mask)
    # White structureless keratin around the crust.
    halo = np.exp(-(((crust.distance - 1.15) / 0.2) ** 2)) * shape.mask
    canvas.paint([0.95, 0.92, 0.88], 0.6 * halo * np.clip(canvas.noise(10) + 0.6, 0, 1))


def _vascular_lesion(canvas: _Canvas) -> None:
    rng = canvas.rng
    outline = _Shape(canvas, radius=rng.uniform(0.25, 0.5), aspect=rng.uniform(0.7, 1.0), irregularity=0.2)
    # Red to purple lacunae (lobules) separated by pale septa; the lesion is their union.
    count = int(rng.integers(4, 10))
    masks, colours = [], []
    for _ in range(count):
        r = 0.75 * np.sqrt(rng.random())
        a = rng.uniform(0, 2 * np.pi)
        lobule = _Shape(canvas, radius=outline.radius * rng.uniform(0.3, 0.5), aspect=rng.uniform(0.7, 1.0),
                        irregularity=0.1, softness=0.06,
                        centre=outline.point(r * np.cos(a), r * np.sin(a)))
        masks.append(lobule.mask)
        red_or_purple = [0.70, 0.10, 0.18] if rng.random() < 0.5 else [0.45, 0.10, 0.32]
        colours.append(_jitter(rng, red_or_purple, value=0.2))
    masks = np.stack(masks)  # [K, S, S]
    owner = np.argmax(masks, axis=0)
    lesion = masks.max(axis=0)
    canvas.paint(np.asarray(colours)[owner], lesion)
    # Septa: where two lobules overlap, the boundary between them shows as a pale line.
    second = np.partition(masks, count - 2, axis=0)[count - 2]
    septa = np.clip(second * 2.0 - 0.4, 0, 1) * np.clip(1.0 - (lesion - second) * 4.0, 0, 1)
    canvas.paint([0.88, 0.62, 0.66], 0.6 * septa)
    # Glossy highlights.
    canvas.paint([1.0, 0.9, 0.92], 0.6 * _dots(canvas, int(rng.integers(1, 3)), 0.03, outline, spread=0.6))


PAINTERS: dict[str, Callable[[_Canvas], None]] = {
    "actinic_keratosis": _actinic_keratosis,
    "basal_cell_carcinoma": _basal_cell_carcinoma,
    "dermatofibroma": _dermatofibroma,
    "melanoma": _melanoma,
    "nevus": _nevus,
    "pigmented_benign_keratosis": _pigmented_benign_keratosis,
    "seborrheic_keratosis": _seborrheic_keratosis,
    "squamous_cell_carcinoma": _squamous_cell_carcinoma,
    "vascular_lesion": _vascular_lesion,
}


def lesion_image(class_name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Paints one synthetic lesion of class `class_name`.

    Args:
        class_name: one of `PAINTERS` (the ISIC class names, lowercase with underscores).
        size: output height and width in pixels.
        rng: source of all randomness for this image.

    Returns:
        [size, size, 3] uint8 RGB image.
    """
    canvas = _Canvas(size, rng)
    _skin(canvas)
    PAINTERS[class_name](canvas)
    _hairs(canvas)
    # Pixel grain last, so that everything drawn above is independent of the resolution.
    canvas.image *= 1.0 + 0.015 * rng.standard_normal((size, size, 1))
    return canvas.to_uint8()


def image_rng(seed: int, split: str, class_name: str, index: int) -> np.random.Generator:
    """The random generator for one image; independent of every other image and of the order."""
    return np.random.default_rng([seed, SPLITS.index(split), zlib.crc32(class_name.encode()), index])


def generate_split(
    split: str, class_names: Sequence[str], size: int, seed: int = SEED
) -> Iterator[tuple[str, int, np.ndarray]]:
    """Yields every image of a split, class by class, with the real per-class counts.

    Args:
        split: "train" or "test".
        class_names: classes to generate, in the order to yield them.
        size: image height and width in pixels.
        seed: base seed; the same seed gives the same bytes.

    Returns:
        Iterator of (class_name, index within class, [size, size, 3] uint8 image).
    """
    for class_name in class_names:
        for index in range(COUNTS[split][class_name]):
            yield class_name, index, lesion_image(class_name, size, image_rng(seed, split, class_name, index))


def contact_sheet(class_names: Sequence[str], size: int, per_class: int, seed: int = SEED) -> np.ndarray:
    """A grid of training images, one row per class, with a 2-pixel white gap.

    Returns:
        [rows * (size + 2), per_class * (size + 2), 3] uint8 image.
    """
    gap = 2
    sheet = np.full((len(class_names) * (size + gap), per_class * (size + gap), 3), 255, np.uint8)
    for row, class_name in enumerate(class_names):
        for column in range(per_class):
            image = lesion_image(class_name, size, image_rng(seed, "train", class_name, column))
            top, left = row * (size + gap), column * (size + gap)
            sheet[top : top + size, left : left + size] = image
    return sheet


def write_contact_sheet(path: str, size: int = 64, per_class: int = 8, seed: int = SEED) -> None:
    """Writes `contact_sheet` of all classes, in `PAINTERS` order, as a PNG file."""
    import tensorflow as tf  # only needed to write the PNG

    tf.io.write_file(path, tf.io.encode_png(contact_sheet(tuple(PAINTERS), size, per_class, seed)))
