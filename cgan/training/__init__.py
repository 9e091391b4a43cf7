"""The GAN step (`step.TrainStep`) and its parts: losses and regularisers, DiffAugment and adaptive
augmentation, the EMA generator, the transition schedule, the fused optimiser, precision, devices and
strategy. Imports cgan.core, cgan.model and cgan.inputs only; the loop that drives it is cgan/train.py."""
