"""The quick preset comparison: the trainer's steps/s for each preset flag file, XLA on and off.

    python -m benchmarks --quick_gpu                                          # on one GPU
    python -m benchmarks --quick_gpu --steps=3 --repeats=1 --warmup_steps=1   # a smoke run on a CPU

    from benchmarks import presets, report
    from benchmarks.config import BenchmarkConfig
    results = presets.run(BenchmarkConfig(quick_gpu=True))                    # JSON-ready dict
    print(report.format_presets_report(results))

Each preset (`--presets`, by default p100.flags and quality.flags) is read with absl's flag-file
parsing into a cgan.core.config.TrainConfig, as trainer.py reads it, so the figures follow the presets as
they change. Only what a timing needs is set over it: the benchmark's --dataset (the presets' own
may need a download), the batch size (each of --batch_sizes) and --jit_compile (true and false).
Everything else — options, precision (auto: what the device supports best), seed, steps per call —
is the preset's.

Every (preset, batch size, XLA) loop is built and warmed up first (tracing and XLA compilation are
not timed), then timed in rounds that visit every loop once (benchmarks.run), and the median of the
rounds is reported. With --dp_epsilon every preset that allows it is also timed trained privately
(XLA off, as the private step must be), beside its own XLA-off rate. The projection divides each preset's --train_steps by its rate at its own batch
size, with XLA as --jit_compile=auto would choose and with each setting; it counts training steps
only (the trainer's summaries, grids and checkpoints add to it).
"""

import os
import time

from absl import flags

import cgan.core.config
from benchmarks import loops, machine, report, run as benchmark_run, training_data
from cgan.training import distribute, precision
from cgan.core.errors import UserError

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XLA_SETTINGS = {"XLA off": "false", "XLA on": "true"}   # label -> --jit_compile
PRIVATE = "--dp_epsilon, XLA off"                        # the loop label of a preset trained privately


def preset_path(name):
    """The flag file `name`: a path as given when it exists, else the file of that name in the repository root."""
    return name if os.path.isabs(name) or os.path.exists(name) else os.path.join(REPOSITORY, name)


def preset_config(name, config, batch_size=None, jit_compile=None, extra=()):
    """The TrainConfig that trainer.py would run for `--flagfile=name`, with the benchmark's dataset.

    Args:
        name: the flag file (preset_path).
        config: the BenchmarkConfig (dataset, data_dir, manual_dir).
        batch_size: images per step instead of the preset's; None keeps the preset's.
        jit_compile: "true", "false" or "auto" instead of the preset's; None keeps the preset's.
        extra: more flags over the preset, e.g. ("--dp_epsilon=10",).

    Returns:
        a cgan.core.config.TrainConfig.

    Raises:
        UserError: the file cannot be read, or holds a flag or value the trainer does not accept.
    """
    path = preset_path(name)
    if not os.path.isfile(path):
        raise UserError(f"--presets: no flag file {path}: name a file such as p100.flags")
    flag_values = flags.FlagValues()
    cgan.core.config.TrainConfig.define_flags(flag_values)
    overrides = [f"--dataset={config.dataset}", f"--data_dir={config.data_dir}", f"--manual_dir={config.manual_dir}"]
    overrides += [f"--batch_size={batch_size}"] * (batch_size is not None)
    overrides += [f"--jit_compile={jit_compile}"] * (jit_compile is not None)
    overrides += list(extra)
    try:
        flag_values(["benchmarks", f"--flagfile={path}", *overrides])
    except flags.Error as e:
        raise UserError(f"--presets: {path} is not a trainer flag file ({e}): fix the file or name another") from None
    return cgan.core.config.TrainConfig.from_flags(flag_values)


def _rate(samples, batch_size):
    summary = benchmark_run.summarise(samples)
    return {"steps_per_sec": summary["median"], "images_per_sec": summary["median"] * batch_size,
            "steps_per_sec_samples": summary["samples"], "cores_busy": summary["cores_busy"]}


def _projection(train_config, by_batch):
    """The preset's --train_steps at its own batch size, when that batch size was measured."""
    projection = {"steps": train_config.train_steps, "batch_size": train_config.batch_size}
    by_setting = by_batch.get(str(train_config.batch_size))
    if by_setting is None:
        return {**projection, "measured": False}
    seconds = {label: train_config.train_steps / by_setting[label]["steps_per_sec"] for label in XLA_SETTINGS}
    chosen = "XLA on" if distribute.resolve_jit_compile(train_config) else "XLA off"
    return {**projection, "measured": True, "seconds": seconds, "jit_compile": train_config.jit_compile,
            "chosen": chosen, "chosen_seconds": seconds[chosen]}


def _private_flags(config):
    return (f"--dp_epsilon={config.dp_epsilon:g}",)


def _refusals(config):
    """{preset: None, or why it cannot train with --dp_epsilon} for every preset; {} without --dp_epsilon."""
    if config.dp_epsilon is None:
        return {}
    reasons = {}
    for name in config.presets:
        try:
            preset_config(name, config, extra=_private_flags(config))
            reasons[name] = None
        except UserError as e:
            reasons[name] = str(e)
    return reasons


def _private_presets(config, log):
    """The presets to time with --dp_epsilon as well (XLA off: it cannot compile the private step)."""
    names = []
    for name, reason in _refusals(config).items():
        if reason:
            log(f"{name} is not timed with --dp_epsilon: {reason}")
        else:
            names.append(name)
    return names


def _private_figures(config, samples, preset, name):
    """A preset's private rates beside its own (XLA off both), and what the privacy costs in speed."""
    by_batch = {}
    for batch_size in config.batch_sizes:
        rate = _rate(samples[(name, batch_size, PRIVATE)], batch_size)
        plain = preset["batches"][str(batch_size)]["XLA off"]["steps_per_sec"]
        by_batch[str(batch_size)] = {**rate, "without_steps_per_sec": plain,
                                     "slowdown": plain / rate["steps_per_sec"]}
    return {"dp_epsilon": config.dp_epsilon, "batches": by_batch}


def run(config, data=None, log=print):
    """Builds, warms up and times the trainer of every preset, batch size and XLA setting.

    Args:
        config: a BenchmarkConfig (presets, batch_sizes, steps, repeats, warmup_steps, dataset, threads).
        data: benchmarks.training_data.TrainingData to use instead of preparing config.dataset (tests).
        log: called with one line of progress at a time.

    Returns:
        JSON-ready dict with sections mode, machine, gpu_visible, settings, presets (per flag file: its
        options, the precision and XLA setting it resolves to here, its rates by batch size and XLA
        setting with XLA's speed-up, and the projection of its --train_steps), private (per flag file
        with --dp_epsilon: its private rates, its own, and the slowdown; or why it was refused),
        targets, load and wall_seconds.
    """
    started = time.perf_counter()
    benchmark_run.configure_threads(config)
    configs = {name: preset_config(name, config) for name in config.presets}   # a bad file fails before any work
    info = machine.machine_info()
    load_start = machine.load_average()
    if not info["gpus"]:
        log("No GPU visible: timing on the CPU; the GPU target is not judged.")
    if data is None:
        data = training_data.load(config)
    built = {}
    for name in config.presets:
        for batch_size in config.batch_sizes:
            for label, jit_compile in XLA_SETTINGS.items():
                key = (name, batch_size, label)
                log(f"warming up {benchmark_run.loop_name(key)}")
                built[key] = loops.TrainerLoop(config, data, preset_config(name, config, batch_size, jit_compile))
                built[key].warm_up()
    private_presets = _private_presets(config, log)
    for name in private_presets:
        for batch_size in config.batch_sizes:
            key = (name, batch_size, PRIVATE)
            log(f"warming up {benchmark_run.loop_name(key)}")
            built[key] = loops.TrainerLoop(config, data, preset_config(name, config, batch_size, "false",
                                                                       _private_flags(config)))
            built[key].warm_up()
    samples, rounds = benchmark_run.timed_rounds(config, built, machine.MemoryLog(), log)
    presets = {}
    for name, train_config in configs.items():
        by_batch = {}
        for batch_size in config.batch_sizes:
            by_setting = {label: _rate(samples[(name, batch_size, label)], batch_size) for label in XLA_SETTINGS}
            by_setting["xla_speedup"] = by_setting["XLA on"]["steps_per_sec"] / by_setting["XLA off"]["steps_per_sec"]
            by_batch[str(batch_size)] = by_setting
        presets[name] = {"flag_file": preset_path(name), "options": train_config.to_dict(),
                         "resolved_precision": precision.resolve(train_config.precision),
                         "resolved_jit_compile": distribute.resolve_jit_compile(train_config),
                         "batches": by_batch, "projection": _projection(train_config, by_batch)}
    results = {
        "mode": "quick_gpu",
        "machine": info,
        "gpu_visible": bool(info["gpus"]),
        "settings": {**config.to_dict(), "dataset_full_name": data.name, "num_train_images": len(data.images),
                     "resolution": data.resolution},
        "presets": presets,
        "private": {name: _private_figures(config, samples, presets[name], name) if name in private_presets
                    else {"refused": reason} for name, reason in _refusals(config).items()},
        "load": {"load_average_start": load_start, "load_average_end": machine.load_average(), "rounds": rounds},
    }
    results["targets"] = report.evaluate_preset_targets(results)
    results["wall_seconds"] = time.perf_counter() - started
    return results
