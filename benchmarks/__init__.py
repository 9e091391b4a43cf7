"""Speed, FLOP utilisation and memory of the conditional DCGAN's training on this machine.

    python -m benchmarks                                         # batch 16 and 64, 3 repeats
    python -m benchmarks --batch_sizes=16 --steps=5 --repeats=1  # a quick smoke run
    python -m benchmarks --quick_gpu                             # p100.flags and quality.flags, XLA on and off
    bash benchmarks/gpu_check.sh                                 # the whole GPU check, on a fresh machine
    pip install -r requirements-benchmark.txt                    # adds the PyTorch reference

    from benchmarks import report, run; from benchmarks.config import BenchmarkConfig
    results = run.run(BenchmarkConfig(batch_sizes=(16,), steps=20)); print(report.format_report(results))

What one run measures, in one process, at the dataset's resolution (64×64 by default):
    trainer          the trainer's step on cgan.inputs.input_pipeline's stream over the prepared --dataset
                     (trainer.py's code path), for every precision the device supports and auto's choice.
    baseline         the original notebook's way (benchmarks.baseline: keras.Model.fit with a custom
                     train_step, float32, images as a numpy array), same networks.
    torch_reference  the same model and step in PyTorch's eager loop, float32; skipped where torch is absent.
    input_pipeline   cgan.inputs.input_pipeline.train_dataset drained inside a tf.function, with no model.
    matmul_peak      a chain of n×n tf.matmul in float32 and bfloat16: what this machine can reach.
    flops            FLOPs of one training step from the layer shapes; MFU = achieved FLOP/s ÷ each peak.
    memory           peak resident set size of the process, overall and per phase.

With --quick_gpu, one run measures instead the trainer for each preset flag file at each batch size
with XLA on and off, and projects each preset's --train_steps (benchmarks.presets); it runs on CPUs
too, and says so when no GPU is visible. How the comparison is kept fair: benchmarks.run.
"""
