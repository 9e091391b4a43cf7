"""Process-wide TensorFlow set-up and the distribution strategy of a run.

    distribute.configure_devices(config)        # before anything else touches TensorFlow
    strategy = distribute.make_strategy(config)  # before other TensorFlow work (multi-worker needs it)
    worker = distribute.worker_info(strategy)    # WorkerInfo(num_workers, index); .is_chief
    distribute.configure_tensorflow(config)     # determinism, graph options

These are the only functions in `cgan/` that change TensorFlow's process-wide settings; building a
model, a step or a dataset never does. The training loop (cgan.train) calls them in this order.

    distribute.resolve_jit_compile(config)      # bool: XLA on? (make_strategy and cgan.training.step ask)

XLA (`--jit_compile`) and the strategy go together. The compiled unit is one replica's whole step,
optimizer updates included (cgan.training.step). Inside it a MirroredStrategy on CPUs would synchronise the
replicas by `merge_call`, which XLA cannot compile; on GPUs TensorFlow all-reduces without it. So with
XLA on and a single local device, the run uses TensorFlow's default strategy (no synchronisation to
compile), and XLA on several CPU replicas or CPU workers is refused.
"""

import dataclasses
import os

import tensorflow as tf

from cgan.core.errors import UserError


def configure_devices(config):
    """Splits the CPU into `--cpu_replicas` logical devices; must run before TensorFlow starts."""
    if config.cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * config.cpu_replicas)


def make_strategy(config):
    """The tf.distribute strategy of --strategy.

    mirrored: MirroredStrategy over every local GPU, or over the CPU (split into replicas when asked);
        with XLA on a single device, TensorFlow's default strategy.
    multi_worker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG.

    Raises:
        UserError: multi_worker without TF_CONFIG; --jit_compile=true where XLA cannot compile the step.
    """
    if config.strategy == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise UserError("--strategy=multi_worker needs TF_CONFIG describing the cluster and this "
                            "task, e.g. {\"cluster\": {\"worker\": [\"host1:2222\", \"host2:2222\"]}, "
                            "\"task\": {\"type\": \"worker\", \"index\": 0}}")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if resolve_jit_compile(config) and (len(gpus) or config.cpu_replicas) == 1:
        return tf.distribute.get_strategy()   # the default strategy: one device, nothing to synchronise
    if gpus:
        return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")][:config.cpu_replicas]
    return tf.distribute.MirroredStrategy(devices=cpus)


def configure_tensorflow(config):
    """Determinism and graph options of a run (process-wide); the seeds are set where they are drawn
    (cgan.core.seeding)."""
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    if config.d_norm != "batch":
        # D then has Conv2D + bias + LeakyReLU (or, in the resnet, residual Adds and average pooling),
        # on whose gradient graph TensorFlow 2.21's remapper fails ("remapper failed: ... exist for
        # missing node ..."), printed as an error and the pass dropped for the whole function.
        # Skipping the pass gives the same graph without the alarming line.
        tf.config.optimizer.set_experimental_options({"remapping": False})


def resolve_jit_compile(config, gpus=None):
    """Whether each replica's training step is compiled with XLA: --jit_compile, `auto` decided here.

    auto is on where a GPU is visible: a step of these small networks is bound there by kernel
    launches, which XLA's fusion removes; off on CPUs, where it made their step slower (BUILD_NOTES.md,
    "Training step"; `python -m benchmarks --quick_gpu` times both on any machine).

    Args:
        config: the run's TrainConfig (jit_compile, strategy, cpu_replicas, dp_epsilon).
        gpus: the physical GPUs to decide for; None asks TensorFlow.

    Returns:
        bool.

    Raises:
        UserError: --jit_compile=true on several CPU replicas or CPU workers, whose synchronisation
            inside the step XLA cannot compile.
    """
    gpus = tf.config.list_physical_devices("GPU") if gpus is None else gpus
    if config.jit_compile == "auto":
        # TensorFlow 2.21's XLA cannot compile the private step's vectorised per-example gradients.
        return bool(gpus) and not config.private
    if config.jit_compile == "true" and not gpus and (config.cpu_replicas > 1 or config.strategy == "multi_worker"):
        where = (f"--cpu_replicas={config.cpu_replicas}" if config.cpu_replicas > 1
                 else "--strategy=multi_worker on CPUs")
        raise UserError(f"--jit_compile=true cannot compile the step with {where} (XLA compiles it on one "
                        f"device or on GPUs): pass --jit_compile=false")
    return config.jit_compile == "true"


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """Where this process sits in the cluster (one worker, index 0, chief, without multi-worker)."""
    num_workers: int = 1
    index: int = 0

    @property
    def is_chief(self):
        return self.index == 0


def worker_info(strategy):
    """Reads the worker count and this worker's index from a MultiWorkerMirroredStrategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().jobs:
        return WorkerInfo()
    spec = resolver.cluster_spec()
    tasks = [("chief", i) for i in range(spec.num_tasks("chief") if "chief" in spec.jobs else 0)]
    tasks += [("worker", i) for i in range(spec.num_tasks("worker") if "worker" in spec.jobs else 0)]
    return WorkerInfo(num_workers=len(tasks), index=tasks.index((resolver.task_type, resolver.task_id)))


def check_batch_size(config, strategy):
    """Refuses a global batch that does not split evenly over the replicas."""
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise UserError(f"--batch_size={config.batch_size} cannot be split over {replicas} replicas: "
                        f"use a multiple of {replicas}")


def any_worker(strategy, worker, flag):
    """True on every worker when `flag` is True on any (so that all workers stop at the same step)."""
    if worker.num_workers == 1:
        return flag
    votes = strategy.run(lambda: tf.constant(float(flag)))
    return float(strategy.reduce("SUM", votes, axis=None)) > 0
