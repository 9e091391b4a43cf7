"""Exported models: `generator.keras` and `discriminator.keras` plus `generator.json` beside them.

    model_files.save_models(workdir, generator, discriminator, info)   # info: class_names, latent_dim, ...
    generator, info = model_files.load_generator("runs/demo/generator.keras")

`generator.json` carries what a sampler needs besides weights: class names (index i = label i),
latent_dim, resolution, the training step and the run's config. The three files are written to
temporaries, each model archive is read back and checked (every member's CRC, the members Keras
needs, a config that parses), and only then are they renamed over the previous export: a failed
write or check, or a crash, leaves the previous export whole and loadable. The check reads bytes
only; it does not rebuild the model, which would cost time at every checkpoint and draw from Keras'
global random state. Models load in Keras' safe mode; a damaged file gets a one-line error that says
what is wrong with it instead of Keras' "File not found".
"""

import errno
import json
import os
import zipfile

import keras

from cgan.core import files
from cgan.model import layers  # noqa: F401 -- registers the custom layers that load_model needs
from cgan.core.errors import UserError

GENERATOR_FILE = "generator.keras"
DISCRIMINATOR_FILE = "discriminator.keras"
_ARCHIVE_MEMBERS = ("config.json", "model.weights.h5")  # what keras.models.load_model reads


def info_path(model_path):
    """generator.keras -> generator.json (the metadata that travels with a model)."""
    return os.path.splitext(model_path)[0] + ".json"


def archive_damage(path):
    """What is wrong with a .keras archive, or None when its bytes are whole.

    Reads the whole file: the zip directory, every member against its CRC-32, and config.json.

    Args:
        path: a .keras file.

    Returns:
        None, or a short description such as "empty file" or "not a .keras archive (truncated or
        overwritten)".
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file"
        if not zipfile.is_zipfile(path):
            return f"not a .keras archive (truncated or overwritten; {size} bytes)"
        with zipfile.ZipFile(path) as archive:
            missing = [name for name in _ARCHIVE_MEMBERS if name not in archive.namelist()]
            if missing:
                return f"the archive lacks {', '.join(missing)}"
            bad = archive.testzip()
            if bad is not None:
                return f"{bad} in the archive fails its CRC check"
            json.loads(archive.read("config.json"))
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
        return f"unreadable archive ({type(e).__name__}: {e})"
    return None


def _check_written(path):
    """Raises a StorageError when the archive just written to `path` does not read back whole."""
    damage = archive_damage(path)
    if damage:
        raise OSError(errno.EIO, f"the written file reads back damaged: {damage}", path)


def save_models(workdir, generator, discriminator, info):
    """Exports both networks and the generator's metadata into workdir, replacing the previous export.

    Args:
        workdir: run directory.
        generator, discriminator: keras.Model.
        info: JSON-serialisable dict with at least class_names, latent_dim, resolution, step.

    Raises:
        StorageError: a file could not be written or did not read back whole; the previous export is
            kept.
    """
    generator_path = os.path.join(workdir, GENERATOR_FILE)
    text = (json.dumps(info, indent=2, sort_keys=True) + "\n").encode()
    files.atomic_save_all([(discriminator.save, os.path.join(workdir, DISCRIMINATOR_FILE), _check_written),
                           (generator.save, generator_path, _check_written),
                           (files.bytes_saver(text), info_path(generator_path))])


def load_generator(path):
    """Loads an exported generator and its metadata.

    Args:
        path: a generator .keras file with its .json beside it.

    Returns:
        (keras.Model, info dict).

    Raises:
        UserError: missing, damaged, unreadable or incomplete files.
    """
    if not os.path.isfile(path):
        raise UserError(f"no model file at {path}: pass --model=PATH/generator.keras or the --workdir "
                        f"of a run that has exported one")
    damage = archive_damage(path)
    if damage:
        raise UserError(f"cannot load {path}: the file is damaged ({damage}): export it again by rerunning "
                        f"trainer.py on its workdir, or copy it again from where it came from")
    meta_path = info_path(path)
    try:
        with open(meta_path) as f:
            info = json.load(f)
        info["class_names"], info["latent_dim"]  # noqa: B018 -- both are required
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot read the model's metadata {meta_path} ({type(e).__name__}: {e}): it is "
                        f"written beside {os.path.basename(path)} by trainer.py; copy both files "
                        f"together") from None
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many types for a damaged zip/h5/config.
        raise UserError(f"cannot load {path} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): "
                        f"the file is damaged or not a generator saved by trainer.py; re-export it by "
                        f"rerunning the trainer on its workdir") from None
    return model, info
