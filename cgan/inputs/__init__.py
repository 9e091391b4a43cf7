"""Training data: `datasets` prepares a `--dataset` through the TFDS builder in data/isic_skin_cancer;
`input_pipeline` turns it into resumable, per-replica batches, in memory or streamed (`input_stream`).
Imports cgan.core and cgan.model only."""
