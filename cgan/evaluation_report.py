"""Reading an evaluation (cgan.evaluate): metric names per feature space, per-class summaries, the worst
class, and the report as a few lines of text.

    values = evaluator.evaluate(generator, latent_dim)                  # cgan.evaluate.Evaluator
    evaluation_report.class_summaries(values, class_names)    # {"classifier_recall_class_min": 0.21, ...}
    evaluation_report.worst_classes(values, class_names)      # {"lowest_recall": {"class": "nevus", ...}, ...}
    print("\n".join(evaluation_report.summary_lines(report)))  # report: Evaluator.report or the JSON file

Functions here read metric dicts and reports; they compute nothing from images.
"""

import math

import numpy as np

# Metric names per feature space: the Inception ones follow the literature; the classifier's carry its prefix.
SPACE_NAMES = {
    "classifier": {"fd": "classifier_fd", "kid": "classifier_kid", "precision": "classifier_precision",
                   "recall": "classifier_recall"},
    "inception": {"fd": "fid", "kid": "kid", "precision": "inception_precision", "recall": "inception_recall"},
}
# The per-class columns of the text table, in order.
_CLASS_COLUMNS = ("gan_test", "cas", "classifier_fd", "classifier_fd_floor", "classifier_fd_ratio",
                  "classifier_recall", "classifier_recall_floor")


def class_summaries(values, class_names):
    """The per-class figures the quality targets read: mean and lowest recall, highest FD ratio.

    Args:
        values: metrics with per-class entries "<name>/<class name>".
        class_names: the class names.

    Returns:
        {"classifier_recall_class_mean", "classifier_recall_class_min", "classifier_recall_floor_class_mean",
        "classifier_fd_ratio_class_max"}, each absent when no class has a finite value.
    """
    def present(name):
        return [values[f"{name}/{c}"] for c in class_names
                if f"{name}/{c}" in values and math.isfinite(values[f"{name}/{c}"])]
    summaries = {}
    recall, recall_floor, ratio = (present("classifier_recall"), present("classifier_recall_floor"),
                                   present("classifier_fd_ratio"))
    if recall:
        summaries["classifier_recall_class_mean"] = float(np.mean(recall))
        summaries["classifier_recall_class_min"] = float(np.min(recall))
    if recall_floor:
        summaries["classifier_recall_floor_class_mean"] = float(np.mean(recall_floor))
    if ratio:
        summaries["classifier_fd_ratio_class_max"] = float(np.max(ratio))
    return summaries


def worst_classes(values, class_names):
    """The class with the lowest classifier recall and the one with the highest classifier FD / floor.

    Args:
        values: metrics from Evaluator.evaluate (or a report's "metrics").
        class_names: the class names.

    Returns:
        {"lowest_recall": {"class", "recall", "recall_floor"} or None,
         "highest_fd_ratio": {"class", "fd_ratio", "fd", "fd_floor"} or None}.
    """
    def finite(name):
        value = values.get(name)
        return value if value is not None and math.isfinite(value) else None

    recalls = {c: finite(f"classifier_recall/{c}") for c in class_names}
    recalls = {c: v for c, v in recalls.items() if v is not None}
    ratios = {c: finite(f"classifier_fd_ratio/{c}") for c in class_names}
    ratios = {c: v for c, v in ratios.items() if v is not None}
    lowest = min(recalls, key=recalls.get) if recalls else None
    highest = max(ratios, key=ratios.get) if ratios else None
    return {
        "lowest_recall": None if lowest is None else {
            "class": lowest, "recall": recalls[lowest], "recall_floor": finite(f"classifier_recall_floor/{lowest}")},
        "highest_fd_ratio": None if highest is None else {
            "class": highest, "fd_ratio": ratios[highest], "fd": finite(f"classifier_fd/{highest}"),
            "fd_floor": finite(f"classifier_fd_floor/{highest}")},
    }


def finite_or_none(value):
    """A metric as a report stores it: JSON has no NaN, so a non-finite value is None."""
    return value if math.isfinite(value) else None


def _figure(value, digits=4):
    return "n/a" if value is None else f"{value:.{digits}g}"


def summary_lines(report):
    """The report as a few lines of text: the main figures, the worst class, then a line per class."""
    values, names = report["metrics"], report["class_names"]
    get = values.get
    lines = [f"{report.get('generator', 'generator')} (step {report['step']}) on {report['dataset']}: "
             f"{report['generated']['num_per_class']} images per class for gan_test, class c's image i from "
             f"seed {report['generated']['seed']} + c * {report['generated']['seed_stride']} + i"]
    worst = report["worst_class"]
    worst_text = []
    if worst["lowest_recall"]:
        w = worst["lowest_recall"]
        worst_text.append(f"lowest recall {w['class']} {_figure(w['recall'], 3)} "
                          f"(floor {_figure(w['recall_floor'], 3)})")
    if worst["highest_fd_ratio"]:
        w = worst["highest_fd_ratio"]
        worst_text.append(f"highest FD/floor {w['class']} {_figure(w['fd_ratio'], 3)}")
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
        for name in (space_names["kid"], space_names["precision"], space_names["recall"]):
            if get(name) is not None:
                parts.append(f"{name} {_figure(get(name))} (floor {_figure(get(name + '_floor'))})")
        lines.append("  ".join(parts))
    if get("classifier_recall_class_mean") is not None:
        lines.append(f"per-class recall mean {_figure(get('classifier_recall_class_mean'), 3)} "
                     f"(floor {_figure(get('classifier_recall_floor_class_mean'), 3)}), "
                     f"min {_figure(get('classifier_recall_class_min'), 3)}; "
                     f"per-class FD/floor max {_figure(get('classifier_fd_ratio_class_max'), 3)}")
    if "skipped" in report["inception"]:
        lines.append(f"fid, kid: skipped ({report['inception']['skipped']})")
    else:
        lines.append("note: " + report["inception"]["note"])
    shown = [c for c in _CLASS_COLUMNS if any(get(f"{c}/{name}") is not None for name in names)]
    width = max(len(name) for name in names)
    lines.append(f"{'class':<{width}}  " + "  ".join(f"{c.replace('classifier_', ''):>12}" for c in shown))
    for name in names:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{_figure(get(f'{c}/{name}'), 4):>12}" for c in shown))
    return lines
