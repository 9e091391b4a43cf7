"""One benchmark run: builds and warms up every loop, times them in rounds, and gathers the figures.

    from benchmarks import report, run
    from benchmarks.config import BenchmarkConfig
    results = run.run(BenchmarkConfig(batch_sizes=(16,), steps=20))   # JSON-ready dict
    print(report.format_report(results))

How the comparison is kept fair:
- Every timed figure is measured `repeats` times and the median is reported (the matmul peak: the
  best repeat, so that a slowed repeat cannot inflate an MFU). The repeats run in rounds that
  visit every loop once, so a burst of load from another process lands on all of them alike
  instead of on whichever happened to run then. Garbage is collected before each timing.
- A repeat is long enough to time what a training run sees: the first calls after another loop ran
  are slower, so short repeats read the trainer below what trainer.py itself logs (BUILD_NOTES.md,
  "Speed", has the figures behind the default of 200 steps).
- Every loop is warmed up (tracing, first allocations) before any clock starts. The baseline's clock
  starts at the end of the first batch of each `fit` call, so Keras' per-call setup is not counted,
  and runs over whole epochs (at least `steps` batches), so each repeat pays Keras' per-epoch cost
  in the proportion training with `fit` does (`slowest_batch_seconds` in the JSON). The baseline's
  rate without the first batch of each epoch is reported beside it, with the trainer's ratio to it.
- Same images (the baseline's array is cut to whole batches, so every step sees batch_size images),
  same networks, same step composition, one process. TensorFlow's loops share its thread settings;
  the PyTorch reference runs with PyTorch's default thread count, recorded in the JSON.
"""

import gc
import statistics

import tensorflow as tf

from benchmarks import baseline, flops, loops, machine, report, training_data
from cgan.training import precision

# p100.flags trains the baseline's schedule: 100,000 steps at batch 16.
P100_STEPS = 100_000
P100_BATCH_SIZE = 16
TORCH_MISSING = ("PyTorch comparison skipped: torch is not installed "
                 "(pip install -r requirements-benchmark.txt)")


def configure_threads(config):
    """TensorFlow's process-wide thread pools: must run before TensorFlow executes anything."""
    if config.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_threads)
    if config.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(config.inter_op_threads)


def import_torch_reference(log):
    """benchmarks.torch_reference, or None after logging TORCH_MISSING when torch cannot be imported."""
    try:
        import torch  # noqa: F401  (only to learn whether it is there)
    except ImportError:
        log(TORCH_MISSING)
        return None
    from benchmarks import torch_reference
    return torch_reference


def loop_name(key):
    """A loop's key as the log names it: ("trainer", 16, "float32") -> "trainer batch 16 float32"."""
    kind, *rest = key
    if kind == "matmul":
        return f"matmul {rest[0]}"
    return f"{kind} batch {' '.join(map(str, rest))}"


def summarise(samples):
    """Median rate, the raw rates and the median cores busy of a list of (work, wall s, CPU s)."""
    rates = [work / wall for work, wall, _ in samples]
    return {"median": statistics.median(rates), "samples": rates,
            "cores_busy": statistics.median(cpu / wall for _, wall, cpu in samples)}


def _build_loops(config, data, policies, torch_reference, memory, log):
    """Every loop, built and warmed up. The trainers come first, so that a trainer's memory phase
    holds little besides the data and the trainers before it: close to what trainer.py needs."""
    built = {}

    def add(key, make):
        name = loop_name(key)
        with memory.phase(name):
            log(f"warming up {name}")
            loop = make()
            loop.warm_up()
        built[key] = loop

    for batch_size in config.batch_sizes:
        for policy in policies:
            add(("trainer", batch_size, policy),
                lambda: loops.TrainerLoop(config, data, loops.trainer_config(config, batch_size, policy)))
    normalised = baseline.normalise(data.images)                     # [N, R, R, 3] float32
    for batch_size in config.batch_sizes:
        add(("baseline", batch_size), lambda: loops.BaselineLoop(config, data, batch_size, normalised))
    if torch_reference:
        for batch_size in config.batch_sizes:
            add(("torch_reference", batch_size), lambda: torch_reference.TorchLoop(config, data, batch_size))
    for batch_size in config.batch_sizes:
        add(("input_pipeline", batch_size), lambda: loops.PipelineLoop(config, data, batch_size))
    for dtype in ("float32", "bfloat16"):
        add(("matmul", dtype), lambda: loops.MatmulLoop(config, tf.as_dtype(dtype)))
    return built


def timed_rounds(config, built, memory, log):
    """Times every loop once per round; returns ({key: [(work, wall, cpu)] per round}, round loads)."""
    samples = {key: [] for key in built}
    rounds = []
    with memory.phase("timed rounds"):
        for repeat in range(config.repeats):
            wall, cpu = machine.clock()
            busy = machine.busy_cpu_seconds()
            for key, loop in built.items():
                # Garbage of earlier loops (each fit call leaves a dataset over the numpy arrays) is
                # freed here, not at whatever moment of someone else's clock Python would pick.
                gc.collect()
                samples[key].append(loop.measure())
                work, seconds, _ = samples[key][-1]
                log(f"round {repeat + 1}/{config.repeats}  {loop_name(key)}: {work / seconds:.4g}/s")
            rounds.append(machine.round_load(wall, cpu, busy))
    return samples, rounds


def _rate_figures(samples, batch_size, flops_per_image, peaks):
    summary = summarise(samples)
    return {**flops.step_figures(summary["median"], batch_size, flops_per_image, peaks),
            "steps_per_sec_samples": summary["samples"], "cores_busy": summary["cores_busy"]}


def _figures(config, built, samples, policies, auto, torch_reference):
    """The per-batch sections of the results: trainer, baseline, torch_reference, ratios, pipeline."""
    first_trainer = built[("trainer", config.batch_sizes[0], policies[0])].trainer
    per_image = flops.train_step_flops(first_trainer.generator, first_trainer.discriminator)
    # A peak is the best repeat, not the median: interference only ever slows a matmul down, and a
    # peak that is too low would flatter every MFU computed from it.
    peak_summaries = {dtype: summarise(samples[("matmul", dtype)]) for dtype in ("float32", "bfloat16")}
    peaks = {dtype: max(s["samples"]) for dtype, s in peak_summaries.items()}
    trainer, base, torch_figures, ratios, pipeline = {}, {}, {}, {}, {}
    for batch_size in config.batch_sizes:
        b = str(batch_size)
        trainer[b] = {policy: _rate_figures(samples[("trainer", batch_size, policy)], batch_size,
                                            per_image["step"], peaks) for policy in policies}
        base_loop = built[("baseline", batch_size)]
        base[b] = {**_rate_figures(samples[("baseline", batch_size)], batch_size, per_image["baseline_step"],
                                   peaks),
                   "steps_per_repeat": samples[("baseline", batch_size)][0][0],
                   "batches_per_epoch": base_loop.batches_per_epoch,
                   "slowest_batch_seconds": base_loop.slowest_batch_seconds,
                   "steps_per_sec_without_epoch_starts":
                       statistics.median(base_loop.steps_per_sec_without_epoch_starts),
                   "steps_per_sec_without_epoch_starts_samples": base_loop.steps_per_sec_without_epoch_starts}
        references = {"vs_baseline": base[b]["steps_per_sec"]}
        if torch_reference:
            torch_figures[b] = _rate_figures(samples[("torch_reference", batch_size)], batch_size,
                                             per_image["step"], peaks)
            references["vs_torch"] = torch_figures[b]["steps_per_sec"]
        ratios[b] = {name: {policy: trainer[b][policy]["steps_per_sec"] / rate for policy in policies}
                     for name, rate in references.items()}
        summary = summarise(samples[("input_pipeline", batch_size)])
        pipeline[b] = {"images_per_sec": summary["median"], "images_per_sec_samples": summary["samples"],
                       "cores_busy": summary["cores_busy"]}
        if auto in policies:
            for by_policy in ratios[b].values():
                by_policy["auto"] = by_policy[auto]
            ratios[b]["auto_vs_baseline_without_epoch_starts"] = (
                trainer[b][auto]["steps_per_sec"] / base[b]["steps_per_sec_without_epoch_starts"])
            pipeline[b]["times_auto_step"] = summary["median"] / trainer[b][auto]["images_per_sec"]
    matmul_peak = {"size": config.matmul_size, "count": config.matmul_count,
                   **{dtype: {"flops_per_sec": peaks[dtype], "median_flops_per_sec": s["median"],
                              "samples": s["samples"], "cores_busy": s["cores_busy"]}
                      for dtype, s in peak_summaries.items()}}
    flop_counts = {"method": flops.METHOD, "per_image": per_image,
                   "per_step": {str(b): per_image["step"] * b for b in config.batch_sizes},
                   "baseline_per_step": {str(b): per_image["baseline_step"] * b for b in config.batch_sizes}}
    torch_section = ({**torch_reference.runtime_info(), "skipped": None, "batches": torch_figures}
                     if torch_reference else {"skipped": TORCH_MISSING, "batches": {}})
    return {"flops": flop_counts, "trainer": trainer, "baseline": base, "torch_reference": torch_section,
            "ratios": ratios, "input_pipeline": pipeline, "matmul_peak": matmul_peak}


def _projection(config, figures, policies, auto):
    """How long p100.flags' 100,000 steps at batch 16 would take at the measured rates."""
    if P100_BATCH_SIZE not in config.batch_sizes or auto not in policies:
        return None
    b = str(P100_BATCH_SIZE)
    projection = {"flags": "p100.flags", "steps": P100_STEPS, "batch_size": P100_BATCH_SIZE, "precision": auto,
                  "seconds": P100_STEPS / figures["trainer"][b][auto]["steps_per_sec"],
                  "baseline_seconds": P100_STEPS / figures["baseline"][b]["steps_per_sec"]}
    torch_batches = figures["torch_reference"]["batches"]
    if b in torch_batches:
        projection["torch_reference_seconds"] = P100_STEPS / torch_batches[b]["steps_per_sec"]
    return projection


def run(config, data=None, log=print):
    """Builds, warms up and times every loop (benchmarks.loops, benchmarks.torch_reference).

    Args:
        config: a BenchmarkConfig.
        data: benchmarks.training_data.TrainingData to use instead of preparing config.dataset (tests).
        log: called with one line of progress at a time.

    Returns:
        JSON-ready dict with sections machine, settings, auto_precision, flops, trainer, baseline and
        torch_reference (rates and MFU per batch size), ratios, input_pipeline, matmul_peak, memory,
        projection, load and targets.
    """
    configure_threads(config)
    load_start = machine.load_average()
    memory = machine.MemoryLog()
    with memory.phase("load data"):
        if data is None:
            data = training_data.load(config)
    auto = precision.resolve("auto")
    policies = tuple(config.precisions) or machine.supported_precisions()
    torch_reference = import_torch_reference(log)
    log(f"{data.name}: {len(data.images)} training images at {data.resolution}x{data.resolution}; "
        f"precisions {', '.join(policies)}; --precision=auto is {auto}")
    built = _build_loops(config, data, policies, torch_reference, memory, log)
    samples, rounds = timed_rounds(config, built, memory, log)
    figures = _figures(config, built, samples, policies, auto, torch_reference)
    results = {
        "machine": machine.machine_info(),
        "settings": {**config.to_dict(), "dataset_full_name": data.name, "num_train_images": len(data.images),
                     "resolution": data.resolution, "precisions": list(policies)},
        "auto_precision": auto,
        **figures,
        "memory": memory.to_dict(),
        "projection": _projection(config, figures, policies, auto),
        "load": {"load_average_start": load_start, "load_average_end": machine.load_average(), "rounds": rounds},
    }
    results["targets"] = report.evaluate_targets(results)
    return results
