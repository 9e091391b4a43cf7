"""Shared test setup: quiet TensorFlow logs, and helpers that write image fixtures."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests are CPU tests unless marked gpu
