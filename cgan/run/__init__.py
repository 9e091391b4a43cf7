"""The run directory: its layout and resume rules (`workdir`), damage-tolerant checkpoints, the lock,
stop signals, and a finished run loaded with its real data (`run_source`, which every tool reads).
Imports cgan.core, model, inputs and training only."""
