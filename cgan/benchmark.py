"""Measures training speed, FLOP utilisation and memory of the conditional DCGAN on this machine.

    python -m cgan.benchmark                                         # batch 16 and 64, 3 repeats
    python -m cgan.benchmark --batch_sizes=16 --steps=5 --repeats=1  # a quick smoke run
    python -m cgan.benchmark --json=runs/benchmark.json --data_dir=/data/tfds

    from cgan import benchmark
    results = benchmark.run(benchmark.BenchmarkConfig(batch_sizes=(16,), steps=20))
    print(benchmark.format_report(results))

What one run measures, in one process, at the dataset's resolution (64×64 by default):
    trainer          cgan.train.Trainer.run_steps on the tf.data stream of cgan.input_pipeline over the
                     prepared --dataset: the code path of trainer.py, for every precision the device
                     supports (and which one --precision=auto picks).
    seed_reference   the seed's way (cgan.seed_reference: keras.Model.fit with a custom train_step,
                     float32, images as a numpy array), same networks.
    input_pipeline   cgan.input_pipeline.train_dataset drained inside a tf.function, with no model.
    matmul_peak      a chain of n×n tf.matmul in float32 and bfloat16: what this machine can reach.
    flops            FLOPs of one training step, counted from the layer shapes (see train_step_flops),
                     and MFU = achieved FLOP/s ÷ matmul peak, against both peaks.
    memory           peak resident set size of the process, overall and per phase.

How the comparison is kept fair:
- Every timed figure is measured `repeats` times and the median is reported (the matmul peak: the
  best repeat, so that a slowed repeat cannot inflate an MFU). The repeats run in rounds that
  visit every configuration once, so a burst of load from another process lands on all of them
  alike instead of on whichever happened to run then. Garbage is collected before each timing.
- A repeat is long enough to time what a training run sees: the first calls after another loop ran
  are slower, so 60-step repeats put the trainer at 13.3 steps/s where trainer.py itself logs 15.3-16.2
  on the same machine; 200-step repeats agree with it (BUILD_NOTES.md, "Speed").
- Both loops are warmed up (tracing, first allocations) before any clock starts. The seed's clock
  starts at the end of the first batch of each `fit` call, so Keras' per-call setup is not counted,
  and runs over whole epochs (at least --steps batches), so each repeat pays Keras' per-epoch cost
  in the proportion training with `fit` does: here the first batch of an epoch over the numpy
  arrays often takes seconds (see `slowest_batch_seconds` in the JSON). The seed's rate without those
  first batches is reported beside it, and the trainer's ratio to it, so that both readings show.
- Same images (the seed's array is cut to whole batches, so every step of both sees batch_size
  images), same networks, same step composition, and one process, so the same thread settings.
"""

import contextlib
import dataclasses
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from cgan import datasets, input_pipeline, networks, precision, seed_reference, train
from cgan.config import TrainConfig

# p100.flags trains the seed's schedule: 100,000 steps at batch 16.
P100_STEPS = 100_000
P100_BATCH_SIZE = 16
GIB = 1024 ** 3

# What the work is expected to reach; reported as met or not, never enforced.
TARGET_SPEEDUP_OVER_SEED = 2.0      # trainer ÷ seed at batch 16, auto precision
TARGET_MFU_BF16 = 0.5               # of the bfloat16 matmul peak, batch 64, auto precision
TARGET_PIPELINE_HEADROOM = 20.0     # input pipeline images/s ÷ what the auto step consumes
TARGET_PEAK_RSS_BYTES = 2 * GIB     # the process while it trains at batch 64, auto precision


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """What to measure and how long; the command-line flags of the same names."""
    dataset: str = TrainConfig.dataset
    data_dir: str = ""
    manual_dir: str = ""
    batch_sizes: tuple = (16, 64)
    precisions: tuple = ()              # empty: every precision the device supports
    steps: int = 200                    # timed steps per repeat
    repeats: int = 3
    warmup_steps: int = 20              # steps (or batches) run before timing, tracing included
    steps_per_call: int = TrainConfig.steps_per_call
    pipeline_batches: int = 400         # batches per timed repeat of the input pipeline
    matmul_size: int = 4096             # n of the n×n matmul
    matmul_count: int = 8               # chained matmuls per timed repeat
    intra_op_threads: int = 0           # 0: TensorFlow's default (one per core)
    inter_op_threads: int = 0
    latent_dim: int = TrainConfig.latent_dim
    seed: int = 0

    def to_dict(self):
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------
# FLOPs.


def layer_forward_flops(layer):
    """FLOPs of one layer's forward pass for one example: 2 per multiply-add of its matmul or conv.

    Dense: 2·in·out (per position, for inputs with more than one axis). Conv2D: 2·H_out·W_out·k_h·k_w·
    C_in·C_out. Conv2DTranspose: 2·H_in·W_in·k_h·k_w·C_in·C_out (each input pixel is spread over a
    k_h×k_w patch). Every other layer (embeddings, batch norm, activations, reshapes) counts 0: for
    the seed networks their elementwise work is under 1 % of the total, and not what a matmul peak
    measures.

    Args:
        layer: a built keras layer.

    Returns:
        int, FLOPs per example.
    """
    if isinstance(layer, keras.layers.Conv2DTranspose):
        _, height, width, channels_in = layer.input.shape
        kernel_h, kernel_w = layer.kernel_size
        return 2 * height * width * kernel_h * kernel_w * channels_in * layer.filters
    if isinstance(layer, keras.layers.Conv2D):
        _, height, width, channels_out = layer.output.shape
        kernel_h, kernel_w = layer.kernel_size
        channels_in = layer.input.shape[-1]
        return 2 * height * width * kernel_h * kernel_w * channels_in * channels_out
    if isinstance(layer, keras.layers.Dense):
        positions = int(np.prod(layer.input.shape[1:-1], dtype=np.int64))
        return 2 * positions * layer.input.shape[-1] * layer.units
    return 0


def forward_flops(model):
    """FLOPs of one forward pass of a functional keras.Model for one example."""
    return sum(layer_forward_flops(layer) for layer in model.layers)


def train_step_flops(generator, discriminator):
    """FLOPs of one training step for one example, by phase, for cgan.train and for the seed.

    A backward pass through a matmul or conv costs its forward FLOPs once for the input gradient and
    once for the weight gradient. With F_G, F_D the forward FLOPs:
        D step = G fwd + D fwd real + D fwd fake + D bwd on both (weights and inputs) = F_G + 6·F_D
        G step = D fwd + D bwd (inputs only: D is not updated) + G bwd = 2·F_G + 2·F_D
    cgan.train's G step reuses the D step's generated batch, so it runs no generator forward pass;
    the seed's G step draws fresh noise and runs one more (+F_G: `seed_step`).
    TensorFlow computes a layer's input gradient whole even where only part of it is needed (D's
    first conv, G's first Dense); the one input gradient counted but never computed, that of D's
    label-plane Dense in the G step, is under 0.1 % of the total.

    Returns:
        dict of FLOPs per example: generator_forward, discriminator_forward, d_step, g_step, step
        (cgan.train's), seed_step (the seed's).
    """
    g, d = forward_flops(generator), forward_flops(discriminator)
    d_step = g + 2 * d + 2 * (2 * d)
    g_step = d + d + 2 * g
    return {"generator_forward": g, "discriminator_forward": d, "d_step": d_step, "g_step": g_step,
            "step": d_step + g_step, "seed_step": d_step + g_step + g}


# ---------------------------------------------------------------------------------------------------
# Machine and memory.


def supported_precisions():
    """The precisions worth timing on this device, float32 first."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
                        for gpu in gpus]
        if min(capabilities) >= (8, 0):
            return ("float32", "mixed_float16", "mixed_bfloat16")
        return ("float32", "mixed_float16")
    return ("float32", "mixed_bfloat16") if precision.cpu_supports_bfloat16() else ("float32",)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return platform.processor() or platform.machine()
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    # A VM often reports only "AMD EPYC": family and model say which generation it is.
    return (f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')}, "
            f"model {fields.get('model', '?')})")


def machine_info():
    """CPU, cores, accelerators, library versions and thread settings, for the JSON."""
    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        gpus.append({"name": details.get("device_name", gpu.name),
                     "compute_capability": list(details.get("compute_capability", ()))})
    device = ", ".join(f"{g['name']} (compute capability {'.'.join(map(str, g['compute_capability']))})"
                       for g in gpus) or "CPU"
    usable_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores,
        "cpu_bfloat16": precision.cpu_supports_bfloat16(),
        "device": device,
        "gpus": gpus,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "tensor_float_32": tf.config.experimental.tensor_float_32_execution_enabled(),
    }


def _load_average():
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _busy_cpu_seconds():
    """CPU seconds all processes have spent busy since boot (/proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _, _, irq, softirq = ticks[:7]  # skipping idle and iowait
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _peak_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def _current_rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _reset_peak_rss():
    """Restarts the kernel's peak-RSS counter (Linux ≥ 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class MemoryLog:
    """Peak resident memory per phase: the kernel's peak counter is reset when a phase starts.

    Where it cannot be reset, a phase's peak is the process's peak so far (`per_phase` is False).
    """

    def __init__(self):
        self.process_peak = _peak_rss_bytes()   # includes imports and anything before the first phase
        self.per_phase = _reset_peak_rss()
        self.phases = {}

    @contextlib.contextmanager
    def phase(self, name):
        at_start = _current_rss_bytes()
        self.process_peak = max(self.process_peak, _peak_rss_bytes())
        if self.per_phase:
            _reset_peak_rss()
        try:
            yield
        finally:
            peak = _peak_rss_bytes()
            self.process_peak = max(self.process_peak, peak)
            self.phases[name] = {"peak_rss_bytes": peak, "rss_at_start_bytes": at_start}

    def to_dict(self):
        return {"peak_rss_bytes": self.process_peak, "per_phase": self.per_phase,
                "method": "getrusage ru_maxrss; reset per phase via /proc/self/clear_refs"
                          if self.per_phase else "getrusage ru_maxrss, cumulative",
                "phases": self.phases}


# ---------------------------------------------------------------------------------------------------
# The timed loops. Each has warm_up() and measure() -> (work units, wall seconds, CPU seconds).


@dataclasses.dataclass(frozen=True)
class TrainingData:
    images: np.ndarray          # [N, R, R, 3] uint8
    labels: np.ndarray          # [N] int32
    class_names: tuple
    name: str

    @property
    def resolution(self):
        return int(self.images.shape[1])


def load_data(config):
    """The prepared training split of config.dataset, decoded into memory as the trainer does."""
    builder = datasets.prepare(config.dataset, config.data_dir, config.manual_dir)
    images, labels = input_pipeline.load_split(builder, "train")
    return TrainingData(images, labels, tuple(datasets.class_names(builder)), builder.info.full_name)


def _clock():
    return time.perf_counter(), time.process_time()


def _chunks(total, size):
    while total > 0:
        yield min(size, total)
        total -= size


class TrainerLoop:
    """cgan.train.Trainer stepping on cgan.input_pipeline's stream: what trainer.py runs."""

    def __init__(self, config, data, batch_size, policy):
        self.config = config
        train_config = TrainConfig(workdir="", dataset=config.dataset, batch_size=batch_size,
                                   latent_dim=config.latent_dim, precision=policy, seed=config.seed,
                                   steps_per_call=config.steps_per_call)
        keras.utils.set_random_seed(config.seed)
        self.trainer = train.Trainer(train_config, train.make_strategy(train_config), policy,
                                     data.class_names, data.resolution)
        self.iterator = iter(input_pipeline.train_dataset(data.images, data.labels, batch_size, config.seed))

    def _run(self, num_steps):
        # Calls of steps_per_call steps, as train_and_evaluate makes between summaries; run_steps
        # returns Python floats, so each call has finished when it returns.
        for steps in _chunks(num_steps, self.config.steps_per_call):
            self.trainer.run_steps(self.iterator, steps)

    def warm_up(self):
        self._run(self.config.warmup_steps)

    def measure(self):
        wall, cpu = _clock()
        self._run(self.config.steps)
        wall_end, cpu_end = _clock()
        return self.config.steps, wall_end - wall, cpu_end - cpu


class _BatchClock(keras.callbacks.Callback):
    """Notes wall and CPU time at the end of every batch; stops fit after `batches` batches."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches
        self.marks = []

    def on_train_batch_end(self, batch, logs=None):
        float(logs["d_loss"])  # a value of this step: reading it waits until the step has run
        self.marks.append(_clock())
        if len(self.marks) >= self.batches:
            self.model.stop_training = True


def rate_without_epoch_starts(durations, batches_per_epoch):
    """Batches per second over the batches that do not start an epoch.

    Args:
        durations: seconds of batches 2, 3, ... of one fit call (batch 1 starts the clock).
        batches_per_epoch: batches in one epoch.
    """
    # durations[k] is batch k + 2 (1-based), which starts an epoch when k + 1 is a multiple of the epoch.
    inside = [seconds for k, seconds in enumerate(durations) if (k + 1) % batches_per_epoch]
    inside = inside or durations   # one-batch epochs: every batch starts one
    return len(inside) / sum(inside)


class SeedLoop:
    """cgan.seed_reference.SeedGAN trained with fit on numpy images: the seed's way."""

    def __init__(self, config, data, batch_size, normalised_images):
        self.config = config
        self.batch_size = batch_size
        keras.utils.set_random_seed(config.seed)
        num_classes = len(data.class_names)
        self.gan = seed_reference.SeedGAN(
            networks.build_generator(data.resolution, config.latent_dim, num_classes),
            networks.build_discriminator(data.resolution, num_classes), config.latent_dim)
        self.gan.compile()
        # Whole batches only: Keras would end each epoch with a short batch the trainer never has.
        usable = len(normalised_images) // batch_size * batch_size
        self.images = normalised_images[:usable]                       # [N', R, R, 3] float32
        self.labels = data.labels[:usable]
        self.batches_per_epoch = usable // batch_size
        self.slowest_batch_seconds = []   # one per measure(): where Keras' per-epoch cost shows
        self.steps_per_sec_without_epoch_starts = []   # one per measure(): the rate between those costs

    def _fit(self, batches):
        """Runs `batches` batches in one fit call; returns the clock marks at each batch's end."""
        clock = _BatchClock(batches)
        epochs = -(-batches // self.batches_per_epoch)
        self.gan.fit(self.images, self.labels, batch_size=self.batch_size, epochs=epochs, shuffle=True,
                     callbacks=[clock], verbose=0)
        return clock.marks

    def warm_up(self):
        self._fit(self.config.warmup_steps)

    def measure(self):
        # The clock starts when the first batch of this call ends, after Keras' per-call setup, and
        # stops after whole epochs, so that the window holds one epoch start per epoch.
        batches = -(-self.config.steps // self.batches_per_epoch) * self.batches_per_epoch
        marks = self._fit(batches + 1)
        (wall, cpu), (wall_end, cpu_end) = marks[0], marks[-1]
        durations = [end[0] - start[0] for start, end in zip(marks, marks[1:])]  # batches 2, 3, ... of the call
        self.slowest_batch_seconds.append(max(durations))
        self.steps_per_sec_without_epoch_starts.append(rate_without_epoch_starts(durations, self.batches_per_epoch))
        return batches, wall_end - wall, cpu_end - cpu


def _drain(iterator, num_batches):
    checksum = tf.constant(0.0)
    for _ in tf.range(num_batches):
        images, labels = next(iterator)
        # Depending on every batch keeps any of them from being optimised away.
        checksum += images[0, 0, 0, 0] + tf.cast(labels[0], tf.float32)
    return checksum


class PipelineLoop:
    """cgan.input_pipeline.train_dataset consumed the way the trainer consumes it, with no model."""

    def __init__(self, config, data, batch_size):
        self.config = config
        self.batch_size = batch_size
        self.iterator = iter(input_pipeline.train_dataset(data.images, data.labels, batch_size, config.seed))
        self._drain = tf.function(_drain)

    def _run(self, num_batches):
        self._drain(self.iterator, tf.constant(num_batches, tf.int64)).numpy()

    def warm_up(self):
        self._run(max(self.config.pipeline_batches // 4, 1))

    def measure(self):
        wall, cpu = _clock()
        self._run(self.config.pipeline_batches)
        wall_end, cpu_end = _clock()
        return self.config.pipeline_batches * self.batch_size, wall_end - wall, cpu_end - cpu


def _matmul_chain(x, w, count):
    for _ in tf.range(count):
        x = tf.matmul(x, w)  # each product feeds the next, so none can be skipped or reused
    return tf.reduce_sum(tf.cast(x[0], tf.float32))


class MatmulLoop:
    """A chain of n×n matmuls in one tf.function: the practical FLOP/s peak in one dtype."""

    def __init__(self, config, dtype):
        n = config.matmul_size
        self.config = config
        self.x = tf.cast(tf.random.stateless_normal([n, n], seed=[1, 2]), dtype)
        # Scaled by 1/√n so the chain's values keep their size instead of overflowing bfloat16.
        self.w = tf.cast(tf.random.stateless_normal([n, n], seed=[3, 4]) / n ** 0.5, dtype)
        self._chain = tf.function(_matmul_chain)

    def _run(self, count):
        self._chain(self.x, self.w, tf.constant(count)).numpy()

    def warm_up(self):
        self._run(1)

    def measure(self):
        wall, cpu = _clock()
        self._run(self.config.matmul_count)
        wall_end, cpu_end = _clock()
        return 2 * self.config.matmul_size ** 3 * self.config.matmul_count, wall_end - wall, cpu_end - cpu


# ---------------------------------------------------------------------------------------------------
# The run.


def _summary(samples):
    """Median rate and the raw samples of a list of (work, wall seconds, CPU seconds)."""
    rates = [work / wall for work, wall, _ in samples]
    return {"median": statistics.median(rates), "samples": rates,
            "cores_busy": statistics.median(cpu / wall for _, wall, cpu in samples)}


def _round_load(wall, cpu, busy):
    """How busy the machine was during a round, and how much of that was other processes."""
    wall_end, cpu_end = _clock()
    busy_end = _busy_cpu_seconds()
    seconds = wall_end - wall
    figures = {"seconds": seconds, "load_average": _load_average(), "own_cores_busy": (cpu_end - cpu) / seconds}
    if busy is not None and busy_end is not None:
        figures["other_cores_busy"] = max(busy_end - busy - (cpu_end - cpu), 0.0) / seconds
    return figures


def _loop_name(key):
    kind, *rest = key
    if kind == "matmul":
        return f"matmul {rest[0]}"
    return f"{kind} batch {' '.join(map(str, rest))}"


def configure_threads(config):
    """Process-wide thread pools: must run before TensorFlow executes anything."""
    if config.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_threads)
    if config.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(config.inter_op_threads)


def run(config, data=None, log=print):
    """Runs every measurement of the module docstring; returns the results as a JSON-ready dict.

    Args:
        config: a BenchmarkConfig.
        data: TrainingData to use instead of preparing config.dataset (tests).
        log: called with one line of progress at a time.

    Returns:
        dict with sections machine, settings, auto_precision, flops, trainer and seed_reference (rates
        and MFU per batch size), ratios, input_pipeline, matmul_peak, memory, projection, targets and
        load_average.
    """
    configure_threads(config)
    load_start = _load_average()
    memory = MemoryLog()
    with memory.phase("load data"):
        if data is None:
            data = load_data(config)
    auto = precision.resolve("auto")
    policies = tuple(config.precisions) or supported_precisions()
    log(f"{data.name}: {len(data.images)} training images at {data.resolution}x{data.resolution}; "
        f"precisions {', '.join(policies)}; --precision=auto is {auto}")

    # Every loop is built and warmed up first, then timed in rounds (see the module docstring). The
    # trainers come first, so that a trainer's phase holds little besides the data and the trainers
    # before it: its peak memory is close to what trainer.py itself needs.
    loops = {}

    def add(key, make):
        name = _loop_name(key)
        with memory.phase(name):
            log(f"warming up {name}")
            loop = make()
            loop.warm_up()
        loops[key] = loop

    for batch_size in config.batch_sizes:
        for policy in policies:
            add(("trainer", batch_size, policy), lambda: TrainerLoop(config, data, batch_size, policy))
    normalised = seed_reference.normalise(data.images)              # [N, R, R, 3] float32
    for batch_size in config.batch_sizes:
        add(("seed_reference", batch_size), lambda: SeedLoop(config, data, batch_size, normalised))
    for batch_size in config.batch_sizes:
        add(("input_pipeline", batch_size), lambda: PipelineLoop(config, data, batch_size))
    for dtype in ("float32", "bfloat16"):
        add(("matmul", dtype), lambda: MatmulLoop(config, tf.as_dtype(dtype)))

    samples = {key: [] for key in loops}
    rounds = []
    with memory.phase("timed rounds"):
        for repeat in range(config.repeats):
            wall, cpu = _clock()
            busy = _busy_cpu_seconds()
            for key, loop in loops.items():
                # Garbage of earlier loops (each fit call leaves a dataset over the numpy arrays) is
                # freed here, not at whatever moment of someone else's clock Python would pick.
                gc.collect()
                samples[key].append(loop.measure())
                work, seconds, _ = samples[key][-1]
                log(f"round {repeat + 1}/{config.repeats}  {_loop_name(key)}: {work / seconds:.4g}/s")
            rounds.append(_round_load(wall, cpu, busy))

    first_trainer = loops[("trainer", config.batch_sizes[0], policies[0])].trainer
    flops = train_step_flops(first_trainer.generator, first_trainer.discriminator)
    # A peak is the best repeat, not the median: interference only ever slows a matmul down, and a
    # peak that is too low would flatter every MFU computed from it.
    peaks = {dtype: {**_summary(samples[("matmul", dtype)]),
                     "best": max(work / wall for work, wall, _ in samples[("matmul", dtype)])}
             for dtype in ("float32", "bfloat16")}

    def step_figures(steps_summary, batch_size, flops_per_image):
        steps_per_sec = steps_summary["median"]
        achieved = flops_per_image * batch_size * steps_per_sec
        return {"steps_per_sec": steps_per_sec, "images_per_sec": steps_per_sec * batch_size,
                "steps_per_sec_samples": steps_summary["samples"], "cores_busy": steps_summary["cores_busy"],
                "achieved_flops_per_sec": achieved,
                "mfu_vs_float32_peak": achieved / peaks["float32"]["best"],
                "mfu_vs_bfloat16_peak": achieved / peaks["bfloat16"]["best"]}

    trainer, seed, ratios, pipeline = {}, {}, {}, {}
    for batch_size in config.batch_sizes:
        b = str(batch_size)
        trainer[b] = {policy: step_figures(_summary(samples[("trainer", batch_size, policy)]), batch_size,
                                             flops["step"])
                      for policy in policies}
        seed_loop = loops[("seed_reference", batch_size)]
        seed[b] = {**step_figures(_summary(samples[("seed_reference", batch_size)]), batch_size,
                                flops["seed_step"]),
                   "steps_per_repeat": samples[("seed_reference", batch_size)][0][0],
                   "batches_per_epoch": seed_loop.batches_per_epoch,
                   "slowest_batch_seconds": seed_loop.slowest_batch_seconds,
                   "steps_per_sec_without_epoch_starts":
                       statistics.median(seed_loop.steps_per_sec_without_epoch_starts),
                   "steps_per_sec_without_epoch_starts_samples": seed_loop.steps_per_sec_without_epoch_starts}
        ratios[b] = {policy: trainer[b][policy]["steps_per_sec"] / seed[b]["steps_per_sec"]
                     for policy in policies}
        if auto in policies:
            ratios[b]["auto"] = ratios[b][auto]
            ratios[b]["auto_vs_seed_without_epoch_starts"] = (trainer[b][auto]["steps_per_sec"]
                                                              / seed[b]["steps_per_sec_without_epoch_starts"])
        summary = _summary(samples[("input_pipeline", batch_size)])
        pipeline[b] = {"images_per_sec": summary["median"], "images_per_sec_samples": summary["samples"],
                       "cores_busy": summary["cores_busy"]}
        if auto in policies:
            pipeline[b]["times_auto_step"] = summary["median"] / trainer[b][auto]["images_per_sec"]

    projection = None
    if P100_BATCH_SIZE in config.batch_sizes and auto in policies:
        b = str(P100_BATCH_SIZE)
        projection = {"flags": "p100.flags", "steps": P100_STEPS, "batch_size": P100_BATCH_SIZE,
                      "precision": auto, "seconds": P100_STEPS / trainer[b][auto]["steps_per_sec"],
                      "seed_reference_seconds": P100_STEPS / seed[b]["steps_per_sec"]}

    results = {
        "machine": machine_info(),
        "settings": {**config.to_dict(), "dataset_full_name": data.name, "num_train_images": len(data.images),
                     "resolution": data.resolution, "precisions": list(policies)},
        "auto_precision": auto,
        "flops": {"method": "analytic: 2 FLOPs per multiply-add of Dense/Conv2D/Conv2DTranspose, "
                            "backward = 2x forward except D's weights in the G step; "
                            "the seed's step has one more generator forward pass "
                            "(cgan.benchmark.train_step_flops)",
                  "per_image": flops,
                  "per_step": {str(b): flops["step"] * b for b in config.batch_sizes},
                  "seed_per_step": {str(b): flops["seed_step"] * b for b in config.batch_sizes}},
        "trainer": trainer,
        "seed_reference": seed,
        "ratios": ratios,
        "input_pipeline": pipeline,
        "matmul_peak": {"size": config.matmul_size, "count": config.matmul_count,
                        **{dtype: {"flops_per_sec": s["best"], "median_flops_per_sec": s["median"],
                                   "samples": s["samples"], "cores_busy": s["cores_busy"]}
                           for dtype, s in peaks.items()}},
        "memory": memory.to_dict(),
        "projection": projection,
        "load": {"load_average_start": load_start, "load_average_end": _load_average(), "rounds": rounds},
    }
    results["targets"] = evaluate_targets(results)
    return results


def evaluate_targets(results):
    """Each target that the measured batch sizes and precisions allow to judge, as met or not."""
    auto = results["auto_precision"]
    targets = []

    def add(name, value, threshold, met):
        targets.append({"name": name, "value": value, "threshold": threshold, "met": bool(met)})

    if "16" in results["ratios"] and "auto" in results["ratios"]["16"]:
        ratio = results["ratios"]["16"]["auto"]
        add("trainer / seed_reference steps/s at batch 16, auto precision", ratio,
            TARGET_SPEEDUP_OVER_SEED, ratio >= TARGET_SPEEDUP_OVER_SEED)
    if "64" in results["trainer"] and auto in results["trainer"]["64"]:
        mfu = results["trainer"]["64"][auto]["mfu_vs_bfloat16_peak"]
        add("MFU vs bfloat16 peak at batch 64, auto precision", mfu, TARGET_MFU_BF16, mfu >= TARGET_MFU_BF16)
    headroom = [p["times_auto_step"] for p in results["input_pipeline"].values() if "times_auto_step" in p]
    if headroom:
        add("input pipeline images/s / auto step images/s (lowest batch size)", min(headroom),
            TARGET_PIPELINE_HEADROOM, min(headroom) >= TARGET_PIPELINE_HEADROOM)
    trainer_64 = results["memory"]["phases"].get(f"trainer batch 64 {auto}")
    if trainer_64:
        peak = trainer_64["peak_rss_bytes"]
        add(f"peak RSS (bytes) while training at batch 64 with {auto}", peak, TARGET_PEAK_RSS_BYTES,
            peak <= TARGET_PEAK_RSS_BYTES)
    return targets


# ---------------------------------------------------------------------------------------------------
# Report.


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _load_line(load):
    others = [r["other_cores_busy"] for r in load["rounds"] if "other_cores_busy" in r]
    others_text = (f"; other processes kept {', '.join(f'{x:.2f}' for x in others)} cores busy in the "
                   f"timed rounds" if others else "")
    return (f"load average (1/5/15 min) {load['load_average_start']} at start, {load['load_average_end']} at "
            f"end{others_text}")


def format_report(results):
    """The human-readable table of a run() result."""
    machine, settings, auto = results["machine"], results["settings"], results["auto_precision"]
    flops, peaks = results["flops"], results["matmul_peak"]
    lines = [
        f"cGAN training benchmark: {settings['dataset_full_name']}, {settings['num_train_images']} images at "
        f"{settings['resolution']}x{settings['resolution']}; median of {settings['repeats']} x "
        f"{settings['steps']} steps (the seed: whole epochs) after {settings['warmup_steps']} warm-up steps",
        f"{machine['cpu_model']}, {machine['usable_cores']} cores; device {machine['device']}; TF "
        f"{machine['tensorflow']}, Keras {machine['keras']}; threads intra {machine['intra_op_threads']} "
        f"inter {machine['inter_op_threads']} (0 = default)",
        _load_line(results["load"]),
        f"--precision=auto resolves to {auto}",
        "",
        f"{'batch':>5}  {'loop':<32} {'steps/s':>8} {'images/s':>9} {'vs seed':>8} "
        f"{'MFU f32':>8} {'MFU bf16':>9} {'cores':>6}",
    ]

    def row(batch, name, figures, ratio):
        ratio_text = f"{ratio:.2f}x" if ratio is not None else ""
        return (f"{batch:>5}  {name:<32} {figures['steps_per_sec']:>8.2f} {figures['images_per_sec']:>9.1f} "
                f"{ratio_text:>8} {figures['mfu_vs_float32_peak']:>8.1%} "
                f"{figures['mfu_vs_bfloat16_peak']:>9.1%} {figures['cores_busy']:>6.2f}")

    for b, by_policy in results["trainer"].items():
        for policy, figures in by_policy.items():
            name = f"trainer {policy}" + (" (auto)" if policy == auto else "")
            lines.append(row(b, name, figures, results["ratios"][b][policy]))
        lines.append(row(b, "seed reference (fit, float32)", results["seed_reference"][b], 1.0))
    lines += ["MFU: analytic FLOPs per step x steps/s / the matmul peak below; cores: CPU seconds of this "
              "process per wall second"]
    for b, figures in results["seed_reference"].items():
        slowest = ", ".join(f"{x:.2f}" for x in figures["slowest_batch_seconds"])
        lines.append(f"seed reference, batch {b}: repeats of {figures['steps_per_repeat']} steps (whole epochs of "
                     f"{figures['batches_per_epoch']}); slowest batch of each repeat {slowest} s")
        steady = figures["steps_per_sec_without_epoch_starts"]
        versus = results["ratios"][b].get("auto_vs_seed_without_epoch_starts")
        versus_text = f"; the {auto} trainer is {versus:.2f}x that" if versus is not None else ""
        lines.append(f"    without the first batch of each epoch: {steady:.2f} steps/s{versus_text}")
    lines.append("")
    for b, figures in results["input_pipeline"].items():
        headroom = (f" = {figures['times_auto_step']:.0f}x what the {auto} step consumes"
                    if "times_auto_step" in figures else "")
        lines.append(f"input pipeline alone, batch {b}: {figures['images_per_sec']:,.0f} images/s{headroom}")
    per_image = flops["per_image"]
    lines += [
        f"matmul peak ({peaks['size']}x{peaks['size']}, best repeat): float32 "
        f"{peaks['float32']['flops_per_sec'] / 1e9:,.0f} GFLOP/s, bfloat16 "
        f"{peaks['bfloat16']['flops_per_sec'] / 1e9:,.0f} GFLOP/s (medians "
        f"{peaks['float32']['median_flops_per_sec'] / 1e9:,.0f} and "
        f"{peaks['bfloat16']['median_flops_per_sec'] / 1e9:,.0f})",
        f"FLOPs per image per step (analytic): {per_image['step'] / 1e9:.3f} G = D step "
        f"{per_image['d_step'] / 1e9:.3f} G + G step {per_image['g_step'] / 1e9:.3f} G (forward G "
        f"{per_image['generator_forward'] / 1e6:.1f} M, D {per_image['discriminator_forward'] / 1e6:.1f} M)",
    ]
    memory = results["memory"]
    lines.append(f"peak RSS: process {memory['peak_rss_bytes'] / GIB:.2f} GiB ({memory['method']})")
    for name, phase in memory["phases"].items():
        start = phase["rss_at_start_bytes"]
        start_text = f" (at start {start / GIB:.2f})" if start is not None else ""
        lines.append(f"    {name:<36} {phase['peak_rss_bytes'] / GIB:.2f} GiB{start_text}")
    projection = results["projection"]
    if projection:
        lines += ["", f"p100.flags projection: {projection['steps']:,} steps at batch {projection['batch_size']} "
                      f"with {projection['precision']}: {projection['seconds']:,.0f} s "
                      f"({_duration(projection['seconds'])}); seed reference "
                      f"{projection['seed_reference_seconds']:,.0f} s "
                      f"({_duration(projection['seed_reference_seconds'])})"]
    if results["targets"]:
        lines += ["", "targets:"]
        for target in results["targets"]:
            value, threshold = target["value"], target["threshold"]
            if "bytes" in target["name"]:
                value, threshold = f"{value / GIB:.2f} GiB", f"{threshold / GIB:.0f} GiB"
            else:
                value, threshold = f"{value:.3g}", f"{threshold:g}"
            lines.append(f"    {'met    ' if target['met'] else 'NOT met'}  {target['name']}: {value} "
                         f"(target {threshold})")
    return "\n".join(lines)


def write_json(results, path):
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------------------------------------------
# Command line.


def define_flags():
    """The command-line flags; defined only when run as a program (trainer.py shares some names)."""
    from absl import flags
    defaults = BenchmarkConfig()
    flags.DEFINE_string("dataset", defaults.dataset, "isic_skin_cancer/<config> whose train split is used.")
    flags.DEFINE_string("data_dir", defaults.data_dir, "TFDS data directory; empty = ~/tensorflow_datasets.")
    flags.DEFINE_string("manual_dir", defaults.manual_dir, "Source images, for the real_* and folders_* datasets.")
    flags.DEFINE_list("batch_sizes", [str(b) for b in defaults.batch_sizes], "Batch sizes in images.")
    flags.DEFINE_list("precisions", [], "Precisions to time; empty = every one this device supports.")
    flags.DEFINE_integer("steps", defaults.steps, "Timed steps per repeat.", lower_bound=1)
    flags.DEFINE_integer("repeats", defaults.repeats, "Repeats of each timed figure; the median is reported.",
                         lower_bound=1)
    flags.DEFINE_integer("warmup_steps", defaults.warmup_steps, "Untimed steps first (tracing included).",
                         lower_bound=1)
    flags.DEFINE_integer("steps_per_call", defaults.steps_per_call, "Trainer steps per tf.function call.",
                         lower_bound=1)
    flags.DEFINE_integer("pipeline_batches", defaults.pipeline_batches,
                         "Batches per timed repeat of the input pipeline.", lower_bound=1)
    flags.DEFINE_integer("matmul_size", defaults.matmul_size, "n of the n×n matmul of the peak.", lower_bound=1)
    flags.DEFINE_integer("matmul_count", defaults.matmul_count, "Chained matmuls per timed repeat.",
                         lower_bound=1)
    flags.DEFINE_integer("intra_op_threads", defaults.intra_op_threads, "0 = TensorFlow's default.",
                         lower_bound=0)
    flags.DEFINE_integer("inter_op_threads", defaults.inter_op_threads, "0 = TensorFlow's default.",
                         lower_bound=0)
    flags.DEFINE_integer("seed", defaults.seed, "Seed of weights, data order and noise.", lower_bound=0)
    flags.DEFINE_string("json", "benchmark.json", "Where to write every figure as JSON.")
    flags.register_validator("batch_sizes", lambda v: all(s.isdigit() and int(s) > 0 for s in v),
                             "--batch_sizes takes positive integers, e.g. --batch_sizes=16,64")
    flags.register_validator("precisions", lambda v: all(p in precision.PRECISIONS[1:] for p in v),
                             f"--precisions takes names from {', '.join(precision.PRECISIONS[1:])}")


def main(argv):
    from absl import app, flags
    from cgan.errors import UserError
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    FLAGS = flags.FLAGS
    config = BenchmarkConfig(
        dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
        batch_sizes=tuple(int(b) for b in FLAGS.batch_sizes), precisions=tuple(FLAGS.precisions),
        steps=FLAGS.steps, repeats=FLAGS.repeats, warmup_steps=FLAGS.warmup_steps,
        steps_per_call=FLAGS.steps_per_call, pipeline_batches=FLAGS.pipeline_batches,
        matmul_size=FLAGS.matmul_size, matmul_count=FLAGS.matmul_count,
        intra_op_threads=FLAGS.intra_op_threads, inter_op_threads=FLAGS.inter_op_threads, seed=FLAGS.seed)
    try:
        results = run(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    except UserError as e:
        print(f"cgan.benchmark: error: {e}", file=sys.stderr)
        sys.exit(2)
    write_json(results, FLAGS.json)
    print(format_report(results))
    print(f"\nevery figure: {FLAGS.json}")


if __name__ == "__main__":
    from absl import app
    define_flags()
    app.run(main)
