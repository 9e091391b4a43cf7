"""Speed, FLOP utilisation and memory of the conditional DCGAN's training on this machine.

    python -m benchmarks                                         # batch 16 and 64, 3 repeats
    python -m benchmarks --batch_sizes=16 --steps=5 --repeats=1  # a quick smoke run
    python -m benchmarks --quick_gpu                             # p100.flags and quality.flags, XLA on and off
    pip install -r requirements-benchmark.txt                    # adds the PyTorch reference

    from benchmarks import report, run
    from benchmarks.config import BenchmarkConfig
    results = run.run(BenchmarkConfig(batch_sizes=(16,), steps=20))
    print(report.format_report(results))

What one run measures, in one process, at the dataset's resolution (64×64 by default):
    trainer          the trainer's step on the tf.data stream of cgan.inputs.input_pipeline over the prepared
                     --dataset: the code path of trainer.py, for every precision the device supports
                     (and which one --precision=auto picks).
    baseline         the original notebook's way (benchmarks.baseline: keras.Model.fit with a custom
                     train_step, float32, images as a numpy array), same networks.
    torch_reference  the same model and step in PyTorch, trained by the usual eager loop, float32
                     (benchmarks.torch_reference; skipped, with one line, where torch is not installed).
    input_pipeline   cgan.inputs.input_pipeline.train_dataset drained inside a tf.function, with no model.
    matmul_peak      a chain of n×n tf.matmul in float32 and bfloat16: what this machine can reach.
    flops            FLOPs of one training step, counted from the layer shapes, and MFU = achieved
                     FLOP/s ÷ matmul peak, against both peaks.
    memory           peak resident set size of the process, overall and per phase.

With --quick_gpu, one run measures instead the trainer for each preset flag file (p100.flags and
quality.flags) at each batch size with XLA on and off, and projects each preset's --train_steps
(benchmarks.presets); it runs on CPUs too, and says so when no GPU is visible.
`bash benchmarks/gpu_check.sh` does the whole GPU check on a fresh machine: a venv with
tensorflow[and-cuda], the quick comparison, and a short p100.flags run of trainer.py.

The modules: config (the fields and their flags), training_data, loops and torch_reference (the
timed loops), baseline, flops, machine (CPU, load, clocks, memory), run (warm-up, timed rounds,
figures; how the comparison is kept fair), presets (the quick preset comparison), report (targets,
text, JSON), cli.
"""
