"""Times the trainer against the Keras `fit` baseline and an eager PyTorch reference; writes JSON.

    python -m benchmarks                                         # batch 16 and 64, 3 repeats
    python -m benchmarks --batch_sizes=16 --steps=5 --repeats=1  # a quick smoke run
    python -m benchmarks --quick_gpu                             # p100.flags and quality.flags, XLA on and off
    pip install -r requirements-benchmark.txt                    # adds the PyTorch reference

What each figure means: benchmarks/__init__.py.
"""

from benchmarks import cli

cli.main()
