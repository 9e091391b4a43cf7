"""The conditional GAN library; `trainer.py` and `sample.py` at the repository root are its entry points.

Folders by concern, each importing only from itself and the folders before it in LAYERS (the test
tests/test_layout.py checks this):

    core/        errors, atomic files, seeds, the option machinery, the run configuration, PNG grids, CLI
    model/       the networks and their layers, model files (generator.keras + .json), sampling
    inputs/      dataset preparation (the TFDS builder in data/), the resumable input pipeline
    training/    the GAN step and what it is made of: losses, augmentation, EMA, optimisers, devices
    run/         the run directory: checkpoints, lock, stop signals, a finished run and its real data
    share/       what a run gives away: the dataset export and the web page
    evaluation/  metrics, the evaluation, downstream study and memorisation check, their one skeleton

Modules directly in cgan/ sit above every folder: `train.py` (the loop: data, step, run directory,
in-training evaluation) and the `python -m cgan.<tool>` entry points.
"""

LAYERS = ("core", "model", "inputs", "training", "run", "share", "evaluation")
