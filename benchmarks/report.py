"""The benchmark's targets, its text report and its JSON file, all read from a run's results dict.

    from benchmarks import report
    results["targets"] = report.evaluate_targets(results)   # done by benchmarks.run.run
    print(report.format_report(results))
    report.write_json(results, "benchmark.json")

    results["targets"] = report.evaluate_preset_targets(results)   # --quick_gpu: done by benchmarks.presets.run
    print(report.format_presets_report(results))
"""

import json
import os

from benchmarks.machine import GIB

# What the work is expected to reach; reported as met or not, never enforced.
TARGET_SPEEDUP = 2.0                # trainer ÷ each reference (baseline, PyTorch) at batch 16, auto precision
TARGET_SPEEDUP_BATCH_SIZE = "16"
TARGET_MFU_BF16 = 0.5               # of the bfloat16 matmul peak, batch 64, auto precision
TARGET_PIPELINE_HEADROOM = 20.0     # input pipeline images/s ÷ what the auto step consumes
TARGET_PEAK_RSS_BYTES = 2 * GIB     # the process while it trains at batch 64, auto precision
TARGET_GPU_PRESET = "p100.flags"    # --quick_gpu: this preset's --train_steps on one H100-class GPU ...
TARGET_GPU_SECONDS = 600.0          # ... within this many seconds, with XLA as --jit_compile=auto picks
REFERENCES = {"vs_baseline": "baseline (Keras fit)", "vs_torch": "PyTorch eager"}


def evaluate_targets(results):
    """Each target that the measured batch sizes and precisions allow to judge, as met or not.

    Args:
        results: a benchmarks.run.run result (targets not needed).

    Returns:
        list of {"name", "value", "threshold", "met"}.
    """
    auto = results["auto_precision"]
    targets = []

    def add(name, value, threshold, met):
        targets.append({"name": name, "value": value, "threshold": threshold, "met": bool(met)})

    ratios = results["ratios"].get(TARGET_SPEEDUP_BATCH_SIZE, {})
    for key, reference in REFERENCES.items():
        if "auto" in ratios.get(key, {}):
            ratio = ratios[key]["auto"]
            add(f"trainer / {reference} steps/s at batch {TARGET_SPEEDUP_BATCH_SIZE}, auto precision", ratio,
                TARGET_SPEEDUP, ratio >= TARGET_SPEEDUP)
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


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _load_line(load):
    others = [r["other_cores_busy"] for r in load["rounds"] if "other_cores_busy" in r]
    others_text = (f"; other processes kept {', '.join(f'{x:.2f}' for x in others)} cores busy in the "
                   f"timed rounds" if others else "")
    return (f"load average (1/5/15 min) {load['load_average_start']} at start, {load['load_average_end']} at "
            f"end{others_text}")


def _header(results):
    machine, settings = results["machine"], results["settings"]
    torch = results["torch_reference"]
    torch_line = torch["skipped"] or (f"PyTorch {torch['version']}, {torch['dtype']} on the {torch['device']}, "
                                      f"{torch['threads']} threads (its default)")
    return [
        f"cGAN training benchmark: {settings['dataset_full_name']}, {settings['num_train_images']} images at "
        f"{settings['resolution']}x{settings['resolution']}; median of {settings['repeats']} x "
        f"{settings['steps']} steps (the baseline: whole epochs) after {settings['warmup_steps']} warm-up steps",
        f"{machine['cpu_model']}, {machine['usable_cores']} cores; device {machine['device']}; TF "
        f"{machine['tensorflow']}, Keras {machine['keras']}; threads intra {machine['intra_op_threads']} "
        f"inter {machine['inter_op_threads']} (0 = default)",
        torch_line,
        _load_line(results["load"]),
        f"--precision=auto resolves to {results['auto_precision']}",
    ]


def _rate_table(results):
    """One row per loop and batch size, each with its ratio to both references."""
    auto = results["auto_precision"]
    torch_batches = results["torch_reference"]["batches"]
    lines = [f"{'batch':>5}  {'loop':<32} {'steps/s':>8} {'images/s':>9} {'vs base':>8} {'vs torch':>8} "
             f"{'MFU f32':>8} {'MFU bf16':>9} {'cores':>6}"]
    for b, by_policy in results["trainer"].items():
        rows = [(f"trainer {policy}" + (" (auto)" if policy == auto else ""), figures)
                for policy, figures in by_policy.items()]
        rows.append(("baseline (Keras fit, float32)", results["baseline"][b]))
        if b in torch_batches:
            rows.append(("PyTorch eager (float32)", torch_batches[b]))
        for name, figures in rows:
            ratio_texts = []
            for reference in (results["baseline"][b], torch_batches.get(b)):
                ratio_texts.append(f"{figures['steps_per_sec'] / reference['steps_per_sec']:.2f}x"
                                   if reference else "")
            lines.append(f"{b:>5}  {name:<32} {figures['steps_per_sec']:>8.2f} {figures['images_per_sec']:>9.1f} "
                         f"{ratio_texts[0]:>8} {ratio_texts[1]:>8} {figures['mfu_vs_float32_peak']:>8.1%} "
                         f"{figures['mfu_vs_bfloat16_peak']:>9.1%} {figures['cores_busy']:>6.2f}")
    lines.append("MFU: analytic FLOPs per step x steps/s / the matmul peak below; cores: CPU seconds of this "
                 "process per wall second")
    return lines


def _speedup_lines(results):
    """Trainer / baseline beside trainer / PyTorch at each batch size, with the target for both."""
    auto, lines = results["auto_precision"], []
    for b, ratios in results["ratios"].items():
        parts = [f"/ {reference} {ratios[key]['auto']:.2f}x" for key, reference in REFERENCES.items()
                 if "auto" in ratios.get(key, {})]
        if parts:
            target = (f" (target {TARGET_SPEEDUP:g}x{' for both' if len(parts) > 1 else ''})"
                      if b == TARGET_SPEEDUP_BATCH_SIZE else "")
            lines.append(f"batch {b}: trainer {auto} {', '.join(parts)}{target}")
    return lines


def _baseline_lines(results):
    lines = []
    for b, figures in results["baseline"].items():
        slowest = ", ".join(f"{x:.2f}" for x in figures["slowest_batch_seconds"])
        lines.append(f"baseline, batch {b}: repeats of {figures['steps_per_repeat']} steps (whole epochs of "
                     f"{figures['batches_per_epoch']}); slowest batch of each repeat {slowest} s")
        versus = results["ratios"][b].get("auto_vs_baseline_without_epoch_starts")
        versus_text = f"; the {results['auto_precision']} trainer is {versus:.2f}x that" if versus is not None else ""
        lines.append(f"    without the first batch of each epoch: "
                     f"{figures['steps_per_sec_without_epoch_starts']:.2f} steps/s{versus_text}")
    return lines


def _machine_lines(results):
    auto, peaks, per_image = results["auto_precision"], results["matmul_peak"], results["flops"]["per_image"]
    lines = []
    for b, figures in results["input_pipeline"].items():
        headroom = (f" = {figures['times_auto_step']:.0f}x what the {auto} step consumes"
                    if "times_auto_step" in figures else "")
        lines.append(f"input pipeline alone, batch {b}: {figures['images_per_sec']:,.0f} images/s{headroom}")
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
    return lines


def _projection_lines(projection):
    if not projection:
        return []
    torch = projection.get("torch_reference_seconds")
    torch_text = f"; PyTorch eager {torch:,.0f} s ({_duration(torch)})" if torch is not None else ""
    return ["", f"p100.flags projection: {projection['steps']:,} steps at batch {projection['batch_size']} "
                f"with {projection['precision']}: {projection['seconds']:,.0f} s ({_duration(projection['seconds'])}); "
                f"baseline {projection['baseline_seconds']:,.0f} s ({_duration(projection['baseline_seconds'])})"
                f"{torch_text}"]


def _target_lines(targets):
    if not targets:
        return []
    lines = ["", "targets:"]
    for target in targets:
        value, threshold = target["value"], target["threshold"]
        if "bytes" in target["name"]:
            value, threshold = f"{value / GIB:.2f} GiB", f"{threshold / GIB:.0f} GiB"
        else:
            value, threshold = f"{value:.3g}", f"{threshold:g}"
        lines.append(f"    {'met    ' if target['met'] else 'NOT met'}  {target['name']}: {value} "
                     f"(target {threshold})")
    return lines


def format_report(results):
    """The human-readable report of a benchmarks.run.run result, as one string."""
    lines = (_header(results) + [""] + _rate_table(results) + _speedup_lines(results) + _baseline_lines(results)
             + [""] + _machine_lines(results) + _projection_lines(results["projection"])
             + _target_lines(results["targets"]))
    return "\n".join(lines)


def evaluate_preset_targets(results):
    """The GPU target of a --quick_gpu run, judged only when a GPU was visible.

    Args:
        results: a benchmarks.presets.run result (targets not needed).

    Returns:
        list of {"name", "value", "threshold", "met"}; empty on a CPU or when the preset's own batch
        size was not measured.
    """
    projection = results["presets"].get(TARGET_GPU_PRESET, {}).get("projection", {})
    if not results["gpu_visible"] or not projection.get("measured"):
        return []
    seconds = projection["chosen_seconds"]
    return [{"name": f"{TARGET_GPU_PRESET} {projection['steps']:,} steps at batch {projection['batch_size']} on "
                     f"one GPU, {projection['chosen']} (seconds)",
             "value": seconds, "threshold": TARGET_GPU_SECONDS, "met": bool(seconds <= TARGET_GPU_SECONDS)}]


def _minutes(seconds):
    """8m20s under an hour, 2h05m from an hour on."""
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds < 3600 else _duration(seconds)


def format_presets_report(results):
    """The human-readable report of a benchmarks.presets.run result, as one string."""
    machine, settings = results["machine"], results["settings"]
    lines = [f"Quick preset comparison: {settings['dataset_full_name']}, {settings['num_train_images']} images at "
             f"{settings['resolution']}x{settings['resolution']}; median of {settings['repeats']} x "
             f"{settings['steps']} steps after {settings['warmup_steps']} warm-up steps (tracing and XLA "
             f"compilation untimed)",
             f"device {machine['device']}; {machine['cpu_model']}, {machine['usable_cores']} cores; TF "
             f"{machine['tensorflow']}, Keras {machine['keras']}"]
    if not results["gpu_visible"]:
        lines.append("No GPU visible: these figures are the CPU's; the GPU target is not judged.")
    lines.append(_load_line(results["load"]))
    lines += ["", f"{'preset':<16} {'batch':>5} {'precision':<15} {'XLA off':>9} {'XLA on':>9} {'on/off':>7}  "
                  f"(steps/s)"]
    for name, preset in results["presets"].items():
        for b, by_setting in preset["batches"].items():
            lines.append(f"{name:<16} {b:>5} {preset['resolved_precision']:<15} "
                         f"{by_setting['XLA off']['steps_per_sec']:>9.2f} {by_setting['XLA on']['steps_per_sec']:>9.2f} "
                         f"{by_setting['xla_speedup']:>6.2f}x")
    for name, private in results.get("private", {}).items():
        if "refused" in private:
            lines.append(f"{name} with --dp_epsilon: not timed ({private['refused']})")
            continue
        for b, figures in private["batches"].items():
            lines.append(f"{name} with --dp_epsilon={private['dp_epsilon']:g}, batch {b}, XLA off: "
                         f"{figures['steps_per_sec']:.2f} steps/s against {figures['without_steps_per_sec']:.2f} "
                         f"without ({figures['slowdown']:.2f}x slower)")
    lines.append("")
    for name, preset in results["presets"].items():
        projection = preset["projection"]
        head = f"{name} projection: {projection['steps']:,} steps at batch {projection['batch_size']}"
        if not projection["measured"]:
            lines.append(f"{head}: not measured at that batch size (add it to --batch_sizes)")
            continue
        seconds = projection["seconds"]
        lines.append(f"{head}: XLA on {seconds['XLA on']:,.0f} s ({_minutes(seconds['XLA on'])}), XLA off "
                     f"{seconds['XLA off']:,.0f} s ({_minutes(seconds['XLA off'])}); --jit_compile="
                     f"{projection['jit_compile']} picks {projection['chosen']} here (training steps only)")
    for target in results["targets"]:
        lines.append(f"target {'met' if target['met'] else 'NOT met'}: {target['name']}: {target['value']:,.0f} "
                     f"(target ≤ {target['threshold']:,.0f}, i.e. ≥ "
                     f"{results['presets'][TARGET_GPU_PRESET]['projection']['steps'] / target['threshold']:.0f} "
                     f"steps/s)")
    lines.append(f"total wall time {_minutes(results['wall_seconds'])}")
    return "\n".join(lines)


def write_json(results, path):
    """Writes the results as indented JSON, creating the folder when needed."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
