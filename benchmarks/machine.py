"""The machine a benchmark runs on: CPU, devices, versions, load, clocks and resident memory.

    from benchmarks import machine
    info = machine.machine_info()                 # JSON-ready dict: CPU model, cores, TF/Keras, threads
    memory = machine.MemoryLog()
    with memory.phase("trainer batch 16"):
        ...                                       # the phase's peak RSS lands in memory.to_dict()
    wall, cpu = machine.clock()                   # perf_counter and this process's CPU seconds
"""

import contextlib
import os
import platform
import resource
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from cgan.training import precision

GIB = 1024 ** 3


def clock():
    """(wall seconds, CPU seconds of this process), for rates and cores busy."""
    return time.perf_counter(), time.process_time()


def supported_precisions():
    """The trainer's precisions worth timing on this device, float32 first."""
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
    """CPU, cores, accelerators, library versions and TensorFlow's thread settings, for the JSON."""
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


def load_average():
    """The 1, 5 and 15-minute load averages, or None where the system has none."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def busy_cpu_seconds():
    """CPU seconds all processes have spent busy since boot (/proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _, _, irq, softirq = ticks[:7]  # skipping idle and iowait
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def round_load(wall, cpu, busy):
    """How busy the machine was during a round that started at clock() = (wall, cpu) and
    busy_cpu_seconds() = busy, and how much of that was other processes."""
    wall_end, cpu_end = clock()
    busy_end = busy_cpu_seconds()
    seconds = wall_end - wall
    figures = {"seconds": seconds, "load_average": load_average(), "own_cores_busy": (cpu_end - cpu) / seconds}
    if busy is not None and busy_end is not None:
        figures["other_cores_busy"] = max(busy_end - busy - (cpu_end - cpu), 0.0) / seconds
    return figures


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
