"""Screens training options: variants × seeds × datasets at a short length, each run evaluated, one table.

    python tools/screen.py --out=runs/screen --train_steps=1000 --seeds=0,1 --sets=embedded,photos,digits \\
        --devsets=/data/devsets --variant='preset=' --variant='lecam=--lecam=0.1' [--preset=quality.flags]
    tensorboard --logdir=runs/screen     # every run is a row of one HParams table

    from tools import screen
    lines = screen.screen(screen.ScreenOptions(out="runs/screen", variant=("preset=",)))   # the table

A run is `trainer.py --flagfile=PRESET --workdir=W --seed=S --train_steps=N [set flags] [variant
flags] --checkpoint_every=N --image_every=N` with W = OUT/<set>/<variant>/seed<S>, then `python -m
cgan.evaluate --workdir=W --num_per_class=K --inception_weights=none --classifier_flips=F` into
W/eval/screen_report.json (sets and their flips: `data_sets`). Runs go one at a time, one seed of every
set and variant before the next seed; their output is appended to W/screen_train.log, screen_eval.log.
Variant flags pass through unchecked: trainer.py's error stops the screen with its line and the variant
named (exit 2). The preset is --preset, as absl reads --flagfile as the screen's own flags (a screen
in a file: `--flagfile=mirror.screen`). Rerunning the command skips each run whose report matches
(`finished_report`) and resumes the others; Ctrl-C or SIGTERM reaches the trainer, which checkpoints.
The table, printed and rewritten to OUT/screen.md and OUT/screen.json after every run: the mean
(worst) over seeds of each of FIGURES per set and variant, then a row per run.
TensorBoard: each workdir holds its run's HParams session (trial ID: the workdir path, so runs whose
folders share a name stay apart), train/ and eval/ beneath it give that row its metrics (steps_per_sec,
eval/gan_test_ratio, ...), so `tensorboard --logdir=OUT` shows every run in one HParams table.
"""

import dataclasses
import json
import math
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time

# Run as `python tools/screen.py`, the repository root is not on sys.path; cgan is imported from it.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from cgan.core import cli, files, options  # noqa: E402  (after the path set-up above)
from cgan.core.config import DATASET_BUILDER  # noqa: E402
from cgan.core.errors import UserError  # noqa: E402
from tools import make_devsets  # noqa: E402

TRAINER = os.path.join(REPO, "trainer.py")
EMBEDDED = "embedded"
EMBEDDED_DATASET = f"{DATASET_BUILDER}/synthetic_64"
FOLDERS_DATASET = f"{DATASET_BUILDER}/folders_64"
# The evaluation classifier's flips per set (--flips_per_set overrides): lesion-like drawings and photo
# crops have no up or left, digits have both, faces are upright and mirror-symmetric. On other class
# folders the evaluation chooses (auto: one classifier training per candidate).
DEFAULT_FLIPS = {EMBEDDED: "horizontal_and_vertical", "photos": "horizontal_and_vertical", "digits": "none",
                 "faces": "horizontal"}
FOLDER_FLIPS = "auto"
FLIP_CHOICES = ("auto",) + options.FLIPS
REPORT = os.path.join("eval", "screen_report.json")
TRAIN_LOG, EVAL_LOG = "screen_train.log", "screen_eval.log"
EXPORT_INFO = "generator.json"   # cgan.model.model_files: the exported generator's info, with its step
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
# A trainer progress line: "... step 300/1000  d_loss ...  0.85 steps/s  ETA 14m" (cgan/train.py).
PROGRESS = re.compile(r"\bstep \d+/\d+\s.*?\s(\S+) steps/s")
MISSING = "–"


@dataclasses.dataclass(frozen=True)
class Figure:
    """A column of the table: a report metric (or steps_per_sec), its label, and which way is better."""
    key: str
    label: str
    higher_is_better: bool


# The table's columns: report metrics (cgan.evaluation.report names them) and the training speed. "Worst"
# over seeds is the lowest, or the highest where lower is better; a figure a report lacks shows as MISSING.
FIGURES = (
    Figure("gan_test_ratio", "GAN-test×", True),
    Figure("classifier_coverage_class_mean", "coverage mean", True),
    Figure("classifier_coverage_class_min", "coverage lowest", True),
    Figure("structure_diversity_ratio_class_mean", "diversity mean", True),
    Figure("structure_diversity_ratio_class_min", "diversity lowest", True),
    Figure("assigned_elsewhere_class_max", "elsewhere worst", False),
    Figure("classifier_fd_ratio", "FD/floor", False),
    Figure("cas_ratio", "CAS×", True),
    Figure("steps_per_sec", "steps/s", True),
)


@dataclasses.dataclass(frozen=True)
class ScreenOptions(options.Options):
    out: str = options.option("", "Folder of the screen: a workdir <out>/<set>/<variant>/seed<S> per run, and the "
                              "table as screen.md and screen.json.", required="pass --out=runs/screen")
    variant: tuple[str, ...] = options.option((), "A variant as NAME=TRAINER_FLAGS: trainer.py flags added after "
                                              "--preset and the set's flags (empty = the preset alone), e.g. "
                                              "--variant='lecam=--lecam=0.1'; NAME names its folder.", repeated=True)
    seeds: tuple[int, ...] = options.option((0,), "Run seeds (trainer.py --seed) of every set and variant.", lower=0,
                                            nonempty=True)
    sets: tuple[str, ...] = options.option((EMBEDDED,), "Datasets: embedded (the embedded synthetic set), photos, "
                                           "digits, faces (tools/make_devsets.py's, under --devsets), or NAME:PATH "
                                           "for the class folders at PATH.", nonempty=True)
    devsets: str = options.option("", "Folder of tools/make_devsets.py's sets (its --out); needed for photos, "
                                  "digits and faces.")
    preset: str = options.option("quality.flags", "trainer.py flag file every run starts from (relative to the "
                                 "current folder).")
    train_steps: int = options.option(1000, "Training steps of every run.", lower=1)
    num_per_class: int = options.num_per_class("Generated images per class for GAN-test in each run's evaluation.")
    flips_per_set: tuple[str, ...] = options.option((), "The evaluation classifier's flips on a set, as SET:FLIPS "
                                                    f"with FLIPS one of {', '.join(FLIP_CHOICES)}; defaults: "
                                                    "none for digits, horizontal for faces, auto for NAME:PATH "
                                                    "sets, horizontal_and_vertical for the others.")

    def __post_init__(self):
        super().__post_init__()
        repeated = sorted({seed for seed in self.seeds if self.seeds.count(seed) > 1})
        if repeated:
            raise UserError(f"--seeds={','.join(map(str, self.seeds))} repeats {repeated[0]}: list each seed once")
        variants(self)
        data_sets(self)


@dataclasses.dataclass(frozen=True)
class DataSet:
    """A set of the screen: the trainer flags that select it and the evaluation classifier's flips."""
    name: str
    flags: tuple[str, ...]
    flips: str
    folder: str | None = None   # class folders that must exist before the screen starts
    fix: str = ""               # what to do when they do not


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run and its evaluation: the two commands and where they write."""
    set_name: str
    variant: str
    seed: int
    workdir: str
    flips: str
    train_command: tuple[str, ...]
    eval_command: tuple[str, ...]

    @property
    def label(self):
        return f"{self.set_name}/{self.variant}/seed{self.seed}"

    @property
    def report_path(self):
        return os.path.join(self.workdir, REPORT)

    @property
    def train_log(self):
        return os.path.join(self.workdir, TRAIN_LOG)

    @property
    def eval_log(self):
        return os.path.join(self.workdir, EVAL_LOG)


def _check_name(name, flag, spec):
    if not NAME.match(name):
        raise UserError(f"{flag}={spec}: the name {name!r} must be letters, digits, '_', '-' or '.', starting with a "
                        "letter or digit (it names a folder)")


def variants(opts):
    """{name: trainer flags} of the --variant specs, in order; UserError for a bad or repeated name."""
    if not opts.variant:
        raise UserError("no --variant: pass at least one --variant=NAME=TRAINER_FLAGS, e.g. --variant='preset=' "
                        "for --preset alone")
    found = {}
    for spec in opts.variant:
        name, equals, flags_text = spec.partition("=")
        if not equals:
            raise UserError(f"--variant={spec} has no '=': write NAME=TRAINER_FLAGS, e.g. --variant='{spec}=' for "
                            "--preset alone")
        _check_name(name, "--variant", spec)
        if name in found:
            raise UserError(f"--variant name {name} is given twice: every variant needs its own name")
        try:
            found[name] = tuple(shlex.split(flags_text))
        except ValueError as e:
            raise UserError(f"--variant={spec}: its flags do not split ({e}): quote them as in a shell") from None
    return found


def _folder_set(name, path):
    """A NAME:PATH set: class folders at PATH, prepared into its sibling tfds_<folder name> (README's convention)."""
    folder = os.path.normpath(os.path.expanduser(path))
    data_dir = os.path.join(os.path.dirname(folder), f"tfds_{os.path.basename(folder)}")
    return DataSet(name, (f"--dataset={FOLDERS_DATASET}", f"--manual_dir={folder}", f"--data_dir={data_dir}"),
                   FOLDER_FLIPS, folder, "pass NAME:PATH with PATH the folder holding Train/ and Test/")


def _development_set(name, devsets):
    if not devsets:
        raise UserError(f"the {name} set needs --devsets: pass the folder of `python tools/make_devsets.py "
                        f"--out=FOLDER --sets={name}`")
    root = os.path.expanduser(devsets)
    folder = os.path.join(root, name)
    return DataSet(name, (f"--dataset={FOLDERS_DATASET}", f"--manual_dir={folder}",
                          f"--data_dir={os.path.join(root, f'tfds_{name}')}"),
                   DEFAULT_FLIPS[name], folder, f"make it with `python tools/make_devsets.py --out={devsets} "
                                                f"--sets={name}`")


def data_sets(opts):
    """The DataSets of --sets with --flips_per_set applied.

    embedded: --dataset=isic_skin_cancer/synthetic_64. photos, digits, faces: tools/make_devsets.py's sets
    in --devsets=D (tools/DEVSETS.md): --dataset=isic_skin_cancer/folders_64 --manual_dir=D/<set>
    --data_dir=D/tfds_<set>. NAME:PATH: the class folders (Train/, Test/) at PATH, folders_64 with
    --manual_dir=PATH --data_dir=<PATH's parent>/tfds_<PATH's folder name>: the README's convention, so
    the same folders reuse one prepared dataset whatever NAME they get. Flips: DEFAULT_FLIPS.

    Raises:
        UserError: an unknown, badly named or repeated set; a development set without --devsets; a bad
            --flips_per_set.
    """
    found = {}
    for spec in opts.sets:
        name, colon, path = spec.partition(":")
        _check_name(name, "--sets", spec)
        if colon:
            if not path:
                raise UserError(f"--sets={spec}: give the class folders after the colon, as NAME:PATH")
            data_set = _folder_set(name, path)
        elif name == EMBEDDED:
            data_set = DataSet(name, (f"--dataset={EMBEDDED_DATASET}",), DEFAULT_FLIPS[name])
        elif name in make_devsets.SETS:
            data_set = _development_set(name, opts.devsets)
        else:
            raise UserError(f"--sets: unknown set {name}: use {EMBEDDED}, {', '.join(make_devsets.SETS)} or "
                            "NAME:PATH for class folders at PATH")
        if name in found:
            raise UserError(f"--sets names {name} twice: every set needs its own name")
        found[name] = data_set
    for spec in opts.flips_per_set:
        name, colon, flips = spec.partition(":")
        if not colon or flips not in FLIP_CHOICES:
            raise UserError(f"--flips_per_set={spec}: write SET:FLIPS with FLIPS one of {', '.join(FLIP_CHOICES)}")
        if name not in found:
            raise UserError(f"--flips_per_set={spec}: {name} is not in --sets={','.join(opts.sets)}")
        found[name] = dataclasses.replace(found[name], flips=flips)
    return list(found.values())


def plan(opts):
    """Every Run of the screen, one seed of every set and variant before the next seed."""
    steps = opts.train_steps
    found = variants(opts)
    runs = []
    for seed in opts.seeds:
        for data_set in data_sets(opts):
            for variant, variant_flags in found.items():
                workdir = os.path.join(opts.out, data_set.name, variant, f"seed{seed}")
                train = (sys.executable, TRAINER, f"--flagfile={opts.preset}", f"--workdir={workdir}",
                         f"--seed={seed}", f"--train_steps={steps}", *data_set.flags, *variant_flags,
                         f"--checkpoint_every={steps}", f"--image_every={steps}")
                evaluate = (sys.executable, "-m", "cgan.evaluate", f"--workdir={workdir}",
                            f"--num_per_class={opts.num_per_class}", "--inception_weights=none",
                            f"--classifier_flips={data_set.flips}", f"--json={os.path.join(workdir, REPORT)}")
                runs.append(Run(data_set.name, variant, seed, workdir, data_set.flips, train, evaluate))
    return runs


def check_inputs(opts):
    """UserError when the preset or a set's class folders are missing: before anything runs."""
    if not os.path.isfile(opts.preset):
        raise UserError(f"--preset={opts.preset}: no such file; name a trainer.py flag file such as quality.flags "
                        f"(relative to the current folder, {os.getcwd()})")
    for data_set in data_sets(opts):
        if data_set.folder and not os.path.isdir(data_set.folder):
            raise UserError(f"the {data_set.name} set is missing: no folder {data_set.folder}; {data_set.fix}")


def run_command(argv, log_path):
    """Runs argv with its output appended to log_path; returns its exit status.

    The command gets a session of its own, so a Ctrl-C reaches the screen only: the screen passes it on
    (the trainer checkpoints and exits; a second Ctrl-C stops it at once), waits, and raises
    KeyboardInterrupt. The repository root is put on PYTHONPATH for `python -m cgan.evaluate`.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (REPO, os.environ.get("PYTHONPATH"))))}
    with open(log_path, "a") as log:
        log.write(f"$ {shlex.join(argv)}\n")
        log.flush()
        process = None
        try:   # (Popen inside: a Ctrl-C just after the command starts still reaches it)
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            return process.wait()
        except KeyboardInterrupt:
            if process is None:
                raise
            process.send_signal(signal.SIGINT)
            while True:
                try:
                    process.wait()
                    break
                except KeyboardInterrupt:
                    process.send_signal(signal.SIGINT)
            raise


def _log_size(path):
    return os.path.getsize(path) if os.path.exists(path) else 0


def error_line(log_path, start, program):
    """The line that says why a command failed: its `<program>: error:` line, absl's flag error, or its last line."""
    with open(log_path, "rb") as f:
        f.seek(start)
        lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    for prefix in (f"{program}: error:", "FATAL Flags parsing error:"):
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[-1]
    return lines[-1] if lines else "no output"


def _run_step(run, argv, log_path, program, run_command):
    """Runs one of a run's commands; UserError naming the variant and the command's error line if it fails."""
    os.makedirs(run.workdir, exist_ok=True)
    start = _log_size(log_path)
    status = run_command(list(argv), log_path)
    if status != 0:
        raise UserError(f"variant {run.variant} ({run.set_name}, seed {run.seed}): "
                        f"{error_line(log_path, start, program)}  (exit status {status}; log: {log_path})")


def _exported_step(workdir):
    try:
        with open(os.path.join(workdir, EXPORT_INFO)) as f:
            return json.load(f)["step"]
    except (OSError, ValueError, KeyError):
        return None


def _check_trained(run, train_steps):
    """UserError unless the trainer exported its generator at exactly --train_steps."""
    step = _exported_step(run.workdir)
    if step is None or step < train_steps:
        raise UserError(f"{run.label}: trainer.py stopped at step {step or 0} of {train_steps} (a signal?): rerun "
                        f"the same command to resume it")
    if step > train_steps:
        raise UserError(f"{run.workdir} holds a run at step {step}, beyond --train_steps={train_steps}: pass "
                        f"--train_steps={step} or another --out")


def finished_report(run, opts):
    """The run's report if it is there for this --train_steps and --num_per_class (and flips, unless auto).

    A run without one is run again: trainer.py resumes the workdir (a report of fewer steps: it trains on
    to --train_steps) and the evaluation is redone.
    """
    try:
        with open(run.report_path) as f:
            report = json.load(f)
        same = (report["step"] == opts.train_steps
                and report["generated"]["num_per_class"] == opts.num_per_class
                and (run.flips == "auto" or report["classifier"]["settings"]["flips"] == run.flips))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return report if same else None


def steps_per_sec(log_path):
    """The median steps/s of the trainer's progress lines in its log, over every attempt; None if none.

    The trainer logs one line per --summary_every steps and does not time its first call (tracing).
    """
    try:
        with open(log_path, errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    readings = []
    for match in PROGRESS.finditer(text):
        try:
            value = float(match.group(1))
        except ValueError:
            continue
        if math.isfinite(value):
            readings.append(value)
    return statistics.median(readings) if readings else None


def run_figures(report, rate):
    """{figure key: value or None} of one run: its report's metrics and its steps/s."""
    metrics = report.get("metrics", {})
    figures = {figure.key: metrics.get(figure.key) for figure in FIGURES}
    figures["steps_per_sec"] = rate
    return figures


def aggregate(values, higher_is_better):
    """{"mean", "worst"} over the seeds' values that are present, or None when none is."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"mean": statistics.fmean(present), "worst": min(present) if higher_is_better else max(present)}


def summary_rows(opts, runs, results):
    """One row per set and variant: the seeds measured and {figure key: aggregate} over them."""
    rows = []
    for data_set in data_sets(opts):
        for variant in variants(opts):
            measured = [run for run in runs if (run.set_name, run.variant) == (data_set.name, variant)
                        and run in results]
            rows.append({"set": data_set.name, "variant": variant, "seeds": [run.seed for run in measured],
                         "figures": {figure.key: aggregate([results[run][figure.key] for run in measured],
                                                           figure.higher_is_better) for figure in FIGURES}})
    return rows


def _number(value):
    return MISSING if value is None else f"{value:.3g}"


def _cell(summary):
    if summary is None:
        return MISSING
    mean, worst = _number(summary["mean"]), _number(summary["worst"])
    return mean if mean == worst else f"{mean} ({worst})"


def _markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def table_lines(opts, rows):
    """The summary table (markdown) and the note under it."""
    header = ["set", "variant", "seeds", *(figure.label for figure in FIGURES)]
    cells = [[row["set"], row["variant"], f"{len(row['seeds'])}/{len(opts.seeds)}",
              *(_cell(row["figures"][figure.key]) for figure in FIGURES)] for row in rows]
    note = (f"Mean (worst) over seeds after {opts.train_steps} steps of {opts.preset} + the variant; worst = the "
            f"lowest, the highest for elsewhere and FD/floor; {MISSING} = not measured.")
    return _markdown(header, cells) + ["", note]


def run_lines(runs, results):
    header = ["set", "variant", "seed", *(figure.label for figure in FIGURES), "workdir"]
    cells = [[run.set_name, run.variant, str(run.seed), *(_number(results[run][figure.key]) for figure in FIGURES),
              run.workdir] for run in runs if run in results]
    return _markdown(header, cells)


def write_tables(opts, runs, results):
    """Writes OUT/screen.md and OUT/screen.json; returns the printed table's lines."""
    rows = summary_rows(opts, runs, results)
    lines = table_lines(opts, rows)
    sets = ", ".join(f"{data_set.name} (flips {data_set.flips})" for data_set in data_sets(opts))
    markdown = [f"# Screen {opts.out}", "", f"Preset {opts.preset}, {opts.train_steps} steps, seeds "
                f"{','.join(map(str, opts.seeds))}, {opts.num_per_class} images per class; sets: {sets}.", "",
                *(f"- {name}: {shlex.join(flags) or '(the preset alone)'}" for name, flags in variants(opts).items()),
                "", *lines, "", "## Per run", "", *run_lines(runs, results), ""]
    files.atomic_write_bytes(os.path.join(opts.out, "screen.md"), "\n".join(markdown).encode())
    files.atomic_write_json(os.path.join(opts.out, "screen.json"), {
        "options": opts.to_dict(),
        "figures": [dataclasses.asdict(figure) for figure in FIGURES],
        "summary": rows,
        "runs": [{"set": run.set_name, "variant": run.variant, "seed": run.seed, "workdir": run.workdir,
                  "trainer": list(run.train_command), "evaluate": list(run.eval_command),
                  "report": run.report_path if run in results else None, "figures": results.get(run)}
                 for run in runs]})
    return lines


def _progress(figures):
    """A finished run's line: a few of its figures."""
    shown = ("gan_test_ratio", "classifier_coverage_class_min", "classifier_fd_ratio", "steps_per_sec")
    return "  ".join(f"{figure.label} {_number(figures[figure.key])}" for figure in FIGURES if figure.key in shown)


def _echo(line):
    print(line, flush=True)


def screen(opts, run_command=run_command, echo=_echo):
    """Runs every run of the screen that has no report yet, then returns the table's lines.

    Args:
        opts: ScreenOptions.
        run_command: run_command(argv, log_path) -> exit status: runs a command with its output
            appended to log_path (the seam for tests).
        echo: prints a progress line.

    Raises:
        UserError: a missing preset or set folder (before anything runs), or a run that failed: its
            variant, its command's error line and its log.
    """
    check_inputs(opts)
    runs = plan(opts)
    results = {}
    for run in runs:
        report = finished_report(run, opts)
        if report is not None:
            results[run] = run_figures(report, steps_per_sec(run.train_log))
    if results:
        echo(f"{len(results)} of {len(runs)} runs were evaluated before: skipped")
    for number, run in enumerate(runs, 1):
        if run in results:
            continue
        prefix = f"[{number}/{len(runs)}] {run.label}"
        started = time.perf_counter()
        echo(f"{prefix}: training to step {opts.train_steps}  (log: {run.train_log})")
        _run_step(run, run.train_command, run.train_log, "trainer.py", run_command)
        _check_trained(run, opts.train_steps)
        echo(f"{prefix}: evaluating, flips {run.flips}  (log: {run.eval_log})")
        _run_step(run, run.eval_command, run.eval_log, "evaluate", run_command)
        report = finished_report(run, opts)
        if report is None:
            raise UserError(f"{run.label}: cgan.evaluate wrote no report for step {opts.train_steps} at "
                            f"{run.report_path} (log: {run.eval_log})")
        results[run] = run_figures(report, steps_per_sec(run.train_log))
        echo(f"{prefix}: {_progress(results[run])}  ({time.perf_counter() - started:.0f} s)")
        write_tables(opts, runs, results)
    lines = write_tables(opts, runs, results)
    return lines + [f"Per run: {os.path.join(opts.out, 'screen.md')}, {os.path.join(opts.out, 'screen.json')}; "
                    f"TensorBoard: tensorboard --logdir={opts.out}"]


def _interrupt(signum, frame):
    del signum, frame
    raise KeyboardInterrupt


def main(opts):
    for signum in (signal.SIGTERM, signal.SIGHUP):   # like Ctrl-C: the running trainer checkpoints first
        signal.signal(signum, _interrupt)
    try:
        return screen(opts)
    except KeyboardInterrupt:
        table = os.path.join(opts.out, "screen.md")
        print("screen: interrupted: rerun the same command to resume" +
              (f" (the finished runs: {table})" if os.path.exists(table) else ""), file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    cli.run("screen", (ScreenOptions,), main)
