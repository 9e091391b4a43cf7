"""Exported models: `generator.keras` and `discriminator.keras` plus `generator.json` beside them.

    export.save_models(workdir, generator, discriminator, info)   # info: class_names, latent_dim, ...
    generator, info = export.load_generator("runs/demo/generator.keras")

`generator.json` carries what a sampler needs besides weights: class names (index i = label i),
latent_dim, resolution, the training step and the run's config. Each file is written to a temporary
name and renamed, so a crash leaves the previous export whole. Models load in Keras' safe mode.
"""

import json
import os

import keras

from cgan import layers  # noqa: F401 -- registers the custom layers that load_model needs
from cgan.errors import UserError
from cgan.files import atomic_save, atomic_write_bytes

GENERATOR_FILE = "generator.keras"
DISCRIMINATOR_FILE = "discriminator.keras"


def info_path(model_path):
    """generator.keras -> generator.json (the metadata that travels with a model)."""
    return os.path.splitext(model_path)[0] + ".json"


def save_models(workdir, generator, discriminator, info):
    """Exports both networks and the generator's metadata into workdir.

    Args:
        workdir: run directory.
        generator, discriminator: keras.Model.
        info: JSON-serialisable dict with at least class_names, latent_dim, resolution, step.
    """
    os.makedirs(workdir, exist_ok=True)
    generator_path = os.path.join(workdir, GENERATOR_FILE)
    atomic_save(discriminator.save, os.path.join(workdir, DISCRIMINATOR_FILE))
    atomic_save(generator.save, generator_path)
    atomic_write_bytes(info_path(generator_path),
                       (json.dumps(info, indent=2, sort_keys=True) + "\n").encode())


def load_generator(path):
    """Loads an exported generator and its metadata.

    Args:
        path: a generator .keras file with its .json beside it.

    Returns:
        (keras.Model, info dict).

    Raises:
        UserError: missing, unreadable or incomplete files.
    """
    if not os.path.isfile(path):
        raise UserError(f"no model file at {path}: pass --model=PATH/generator.keras or the --workdir "
                        f"of a run that has exported one")
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
