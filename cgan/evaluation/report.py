"""Reading an evaluation (cgan.evaluation.evaluate): metric names per feature space, per-class summaries, the worst
class, and the report as a few lines of text.

    values = evaluator.evaluate(generator, latent_dim)                  # cgan.evaluation.evaluate.Evaluator
    evaluation_report.class_summaries(values, class_names)    # {"classifier_coverage_class_min": 0.21, ...}
    evaluation_report.worst_classes(values, class_names)      # {"lowest_coverage": {"class": "nevus", ...}, ...}
    print("\n".join(evaluation_report.summary_lines(report)))  # report: Evaluator.report or the JSON file

Functions here read metric dicts and reports; they compute nothing from images.
"""

import math

import numpy as np

# Metric names per feature space: the Inception ones follow the literature; the classifier's carry its prefix.
SPACE_NAMES = {
    "classifier": {"fd": "classifier_fd", "kid": "classifier_kid", "precision": "classifier_precision",
                   "recall": "classifier_recall", "density": "classifier_density",
                   "coverage": "classifier_coverage"},
    "inception": {"fd": "fid", "kid": "kid", "precision": "inception_precision", "recall": "inception_recall",
                  "density": "inception_density", "coverage": "inception_coverage"},
}
# The per-class columns of the text table, in order.
_CLASS_COLUMNS = ("gan_test", "assigned_elsewhere", "cas", "classifier_fd", "classifier_fd_floor",
                  "classifier_fd_ratio", "classifier_recall", "classifier_recall_floor", "classifier_coverage",
                  "classifier_coverage_floor", "structure_diversity_ratio")
# Per-class figures summarised over classes: (name, summaries) with "mean", "min", "max", "floor_mean".
_SUMMARISED = (("classifier_recall", ("mean", "min", "floor_mean")),
               ("classifier_coverage", ("mean", "min", "floor_mean")),
               ("classifier_fd_ratio", ("max",)),
               ("structure_diversity_ratio", ("mean", "min")),
               ("assigned_elsewhere", ("max",)))
# The worst class by each figure: (key in worst_classes, figure, lowest?, figures beside it, text label).
_WORST = (("lowest_recall", "classifier_recall", True, ("classifier_recall_floor",), "lowest recall"),
          ("lowest_coverage", "classifier_coverage", True, ("classifier_coverage_floor",), "lowest coverage"),
          ("lowest_structure_diversity", "structure_diversity_ratio", True, (), "lowest structure diversity"),
          ("highest_fd_ratio", "classifier_fd_ratio", False, ("classifier_fd", "classifier_fd_floor"),
           "highest FD/floor"),
          ("most_assigned_elsewhere", "assigned_elsewhere", False, (), "most assigned elsewhere"))


def _per_class(values, name, class_names):
    """{class: value} of the classes with a finite "<name>/<class>"."""
    found = {c: values.get(f"{name}/{c}") for c in class_names}
    return {c: v for c, v in found.items() if v is not None and math.isfinite(v)}


def class_summaries(values, class_names):
    """The per-class figures the quality targets read, summarised over the classes.

    Args:
        values: metrics with per-class entries "<name>/<class name>".
        class_names: the class names.

    Returns:
        {"<name>_class_mean" | "_class_min" | "_class_max" | "_floor_class_mean": float} for the figures in
        _SUMMARISED (classifier recall and coverage: mean, min and the floors' mean; FD ratio: max;
        structure diversity ratio: mean, min; assigned elsewhere: max), each absent when no class has
        a finite value.
    """
    summaries = {}
    for name, kinds in _SUMMARISED:
        for kind in kinds:
            figure = f"{name}_floor" if kind == "floor_mean" else name
            present = list(_per_class(values, figure, class_names).values())
            if present:
                reduce = {"mean": np.mean, "floor_mean": np.mean, "min": np.min, "max": np.max}[kind]
                suffix = "floor_class_mean" if kind == "floor_mean" else f"class_{kind}"
                summaries[f"{name}_{suffix}"] = float(reduce(present))
    return summaries


def worst_classes(values, class_names):
    """The worst class by each of the per-class figures in _WORST.

    Args:
        values: metrics from Evaluator.evaluate (or a report's "metrics").
        class_names: the class names.

    Returns:
        {"lowest_recall", "lowest_coverage", "lowest_structure_diversity", "highest_fd_ratio",
         "most_assigned_elsewhere"}: each {"class", <figure name without "classifier_">, <the figures
         beside it>} or None when no class has the figure.
    """
    worst = {}
    for key, name, lowest, beside, _ in _WORST:
        found = _per_class(values, name, class_names)
        if not found:
            worst[key] = None
            continue
        chosen = (min if lowest else max)(found, key=found.get)
        entry = {"class": chosen, _short(name): found[chosen]}
        for other in beside:
            value = values.get(f"{other}/{chosen}")
            entry[_short(other)] = value if value is not None and math.isfinite(value) else None
        worst[key] = entry
    return worst


def _short(name):
    return name.replace("classifier_", "")


def finite_or_none(value):
    """A metric as a report stores it: JSON has no NaN, so a non-finite value is None."""
    return value if math.isfinite(value) else None


def _figure(value, digits=4):
    return "n/a" if value is None else f"{value:.{digits}g}"


def summary_lines(report):
    """The report as a few lines of text: the main figures, the worst class, a line per class, the card's path."""
    values, names = report["metrics"], report["class_names"]
    get = values.get
    lines = [f"{report.get('generator', 'generator')} (step {report['step']}) on {report['dataset']}: "
             f"{report['generated']['num_per_class']} images per class for gan_test, class c's image i from "
             f"seed {report['generated']['seed']} + c * {report['generated']['seed_stride']} + i"]
    worst_text = []
    for key, name, _, beside, label in _WORST:
        w = report["worst_class"].get(key)
        if w:
            floor = [f" (floor {_figure(w[_short(b)], 3)})" for b in beside if b.endswith("_floor")]
            worst_text.append(f"{label} {w['class']} {_figure(w[_short(name)], 3)}" + "".join(floor))
    accuracy = [f"classifier_test_accuracy {_figure(get('classifier_test_accuracy'))}",
                f"gan_test {_figure(get('gan_test'))} ({_figure(get('gan_test_ratio'), 3)}x)"]
    if get("cas") is not None:
        accuracy.append(f"cas {_figure(get('cas'))} ({_figure(get('cas_ratio'), 3)}x)")
    lines.append("  ".join(accuracy) + "  worst class: " + ("; ".join(worst_text) or "n/a"))
    for space_names in SPACE_NAMES.values():
        fd = space_names["fd"]
        if get(fd) is None:
            continue
        parts = [f"{fd} {_figure(get(fd))} (floor {_figure(get(fd + '_floor'))}, {_figure(get(fd + '_ratio'), 3)}x)"]
        for name in (space_names["kid"], space_names["precision"], space_names["recall"], space_names["coverage"]):
            if get(name) is not None:
                parts.append(f"{name} {_figure(get(name))} (floor {_figure(get(name + '_floor'))})")
        lines.append("  ".join(parts))
    if get("classifier_recall_class_mean") is not None:
        lines.append(f"per-class recall mean {_figure(get('classifier_recall_class_mean'), 3)} "
                     f"(floor {_figure(get('classifier_recall_floor_class_mean'), 3)}), "
                     f"min {_figure(get('classifier_recall_class_min'), 3)}; "
                     f"per-class FD/floor max {_figure(get('classifier_fd_ratio_class_max'), 3)}")
    if get("classifier_coverage_class_mean") is not None:
        lines.append(f"per-class coverage mean {_figure(get('classifier_coverage_class_mean'), 3)} "
                     f"(floor {_figure(get('classifier_coverage_floor_class_mean'), 3)}), "
                     f"min {_figure(get('classifier_coverage_class_min'), 3)}")
    if get("structure_diversity_ratio_class_mean") is not None:
        lines.append(f"structure diversity / real (colour-blind): mean "
                     f"{_figure(get('structure_diversity_ratio_class_mean'), 3)}, min "
                     f"{_figure(get('structure_diversity_ratio_class_min'), 3)}; assigned to another class: "
                     f"max {_figure(get('assigned_elsewhere_class_max'), 3)}")
    if "skipped" in report["inception"]:
        lines.append(f"fid, kid: skipped ({report['inception']['skipped']})")
    else:
        lines.append("note: " + report["inception"]["note"])
    shown = [c for c in _CLASS_COLUMNS if any(get(f"{c}/{name}") is not None for name in names)]
    width = max(len(name) for name in names)
    lines.append(f"{'class':<{width}}  " + "  ".join(f"{c.replace('classifier_', ''):>12}" for c in shown))
    for name in names:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{_figure(get(f'{c}/{name}'), 4):>12}" for c in shown))
    if report.get("report_card"):
        lines.append(f"Report card: {report['report_card']}")
    return lines
