"""How good is a run: `metrics/` (one file per metric), the evaluation (`evaluate`, `report`), the
downstream study and the memorisation check, all three on one skeleton (`tool`). Imports every folder
before it in cgan.LAYERS; the loop (cgan/train.py) imports it for in-training evaluation."""
