"""tools/screen.py: the runs a screen makes, skipping and resuming, failures, the table, refusals; one real run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, error_lines, run_python
from cgan.core.errors import UserError
from tools import screen

PRESET = os.path.join(REPO, "quality.flags")
HV = "horizontal_and_vertical"


def _flags(argv):
    """{name: value} of a command's --name=value arguments."""
    return dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)


class FakeRunner:
    """Stands in for screen.run_command: records each command; the "trainer" logs progress lines and writes
    generator.json at --train_steps, the "evaluation" writes a report with metrics(workdir)."""

    def __init__(self, metrics=lambda workdir: {"gan_test_ratio": 0.5}, rates=("2.00",), fail=None):
        self.commands, self.metrics, self.rates, self.fail = [], metrics, rates, fail

    def __call__(self, argv, log_path):
        self.commands.append(argv)
        flags = _flags(argv)
        workdir = flags["workdir"]
        with open(log_path, "a") as log:
            if argv[1] == screen.TRAINER:
                if self.fail:
                    status, line, step = self.fail(argv)
                    if line:
                        log.write(f"W1207 noise before the error\n{line}\n")
                    if status:
                        return status
                else:
                    step = int(flags["train_steps"])
                for rate in self.rates:
                    log.write(f"I1207 21:16:33.6 1 train.py:205] step 100/{flags['train_steps']}  d_loss 0.3748  "
                              f"g_loss 5.4401  D(real) 0.943  D(fake) 0.233  {rate} steps/s  ETA 3m46s\n")
                with open(os.path.join(workdir, "generator.json"), "w") as f:
                    json.dump({"step": step}, f)
            else:
                assert argv[1:3] == ["-m", "cgan.evaluate"]
                os.makedirs(os.path.dirname(flags["json"]), exist_ok=True)
                step = json.load(open(os.path.join(workdir, "generator.json")))["step"]
                report = {"step": step, "generated": {"num_per_class": int(flags["num_per_class"])},
                          "classifier": {"settings": {"flips": flags["classifier_flips"]}},
                          "metrics": self.metrics(workdir)}
                with open(flags["json"], "w") as f:
                    json.dump(report, f)
        return 0


def _options(tmp_path, **changes):
    values = dict(out=str(tmp_path / "screen"), variant=("preset=",), preset=PRESET, train_steps=200,
                  num_per_class=5)
    return screen.ScreenOptions(**{**values, **changes})


def _class_folders(path):
    (path / "Train" / "a").mkdir(parents=True)
    (path / "Test" / "a").mkdir(parents=True)
    return path


def test_variants_seeds_and_sets_make_the_commands_and_workdirs(tmp_path):
    devsets = tmp_path / "devsets"
    _class_folders(devsets / "digits")
    mine = _class_folders(tmp_path / "folders" / "mine")
    opts = _options(tmp_path, variant=("preset=", "lecam=--lecam=0.1 --augment=color,cutout"), seeds=(0, 1),
                    sets=("embedded", "digits", f"lesions:{mine}"), devsets=str(devsets))
    runner = FakeRunner()
    screen.screen(opts, run_command=runner, echo=lambda line: None)

    out = tmp_path / "screen"
    workdirs = [_flags(argv)["workdir"] for argv in runner.commands[::2]]
    # One seed of every set and variant before the next seed.
    assert workdirs == [str(out / s / v / f"seed{seed}") for seed in (0, 1)
                        for s in ("embedded", "digits", "lesions") for v in ("preset", "lecam")]
    python = sys.executable
    embedded = str(out / "embedded" / "preset" / "seed0")
    assert runner.commands[0] == [python, screen.TRAINER, f"--flagfile={PRESET}", f"--workdir={embedded}", "--seed=0",
                                  "--train_steps=200", "--dataset=isic_skin_cancer/synthetic_64",
                                  "--checkpoint_every=200", "--image_every=200"]
    assert runner.commands[1] == [python, "-m", "cgan.evaluate", f"--workdir={embedded}", "--num_per_class=5",
                                  "--inception_weights=none", f"--classifier_flips={HV}",
                                  f"--json={embedded}/eval/screen_report.json"]
    digits = str(out / "digits" / "lecam" / "seed1")
    train, evaluate = runner.commands[2 * workdirs.index(digits):][:2]
    assert train == [python, screen.TRAINER, f"--flagfile={PRESET}", f"--workdir={digits}", "--seed=1",
                     "--train_steps=200", "--dataset=isic_skin_cancer/folders_64",
                     f"--manual_dir={devsets / 'digits'}", f"--data_dir={devsets / 'tfds_digits'}",
                     "--lecam=0.1", "--augment=color,cutout", "--checkpoint_every=200", "--image_every=200"]
    assert "--classifier_flips=none" in evaluate
    lesions = runner.commands[2 * workdirs.index(str(out / "lesions" / "preset" / "seed0")):][:2]
    assert _flags(lesions[0])["manual_dir"] == str(mine)
    assert _flags(lesions[0])["data_dir"] == str(tmp_path / "folders" / "tfds_mine")   # the folder's name, not NAME
    assert _flags(lesions[1])["classifier_flips"] == "auto"
    assert sorted(os.listdir(out)) == ["digits", "embedded", "lesions", "screen.json", "screen.md"]
    assert os.path.isfile(os.path.join(embedded, "screen_train.log"))

    flips = {s.name: s.flips for s in screen.data_sets(_options(
        tmp_path, sets=("embedded", "photos", "faces", "digits"), devsets="d", flips_per_set=("digits:horizontal",)))}
    assert flips == {"embedded": HV, "photos": HV, "faces": "horizontal", "digits": "horizontal"}


def test_a_finished_run_is_skipped_and_the_others_resume(tmp_path):
    opts = _options(tmp_path, variant=("preset=", "lecam=--lecam=0.1"), seeds=(0, 1))
    screen.screen(opts, run_command=FakeRunner(), echo=lambda line: None)
    again, printed = FakeRunner(), []
    lines = screen.screen(opts, run_command=again, echo=printed.append)
    assert again.commands == [] and printed == ["4 of 4 runs were evaluated before: skipped"]
    assert lines[2].startswith("| embedded | preset | 2/2 | 0.5 |")

    os.remove(tmp_path / "screen" / "embedded" / "lecam" / "seed1" / "eval" / "screen_report.json")
    again = FakeRunner()
    screen.screen(opts, run_command=again, echo=lambda line: None)
    assert [_flags(argv)["workdir"] for argv in again.commands] == [str(tmp_path / "screen/embedded/lecam/seed1")] * 2

    longer = FakeRunner()   # reports of another length or image count are redone: the trainer resumes to step 300
    screen.screen(_options(tmp_path, variant=opts.variant, seeds=(0, 1), train_steps=300), run_command=longer,
                  echo=lambda line: None)
    assert len(longer.commands) == 8 and all("--train_steps=300" in argv for argv in longer.commands[::2])


def test_a_failing_trainer_stops_the_screen_with_its_error_line(tmp_path):
    line = "trainer.py: error: --lecam=-1 is out of range: use a value ≥ 0"
    runner = FakeRunner(fail=lambda argv: (2, line, None) if "--lecam=-1" in argv else (0, None, 200))
    opts = _options(tmp_path, variant=("preset=", "bad=--lecam=-1", "later=--balanced"))
    with pytest.raises(UserError) as raised:
        screen.screen(opts, run_command=runner, echo=lambda line: None)
    log = tmp_path / "screen" / "embedded" / "bad" / "seed0" / "screen_train.log"
    assert str(raised.value) == f"variant bad (embedded, seed 0): {line}  (exit status 2; log: {log})"
    assert len(runner.commands) == 3   # preset trained and evaluated, bad tried; later never started
    table = json.load(open(tmp_path / "screen" / "screen.json"))
    assert [row["seeds"] for row in table["summary"]] == [[0], [], []]

    stopped = FakeRunner(fail=lambda argv: (0, None, 100))   # exit 0 before the last step: a signal
    with pytest.raises(UserError, match=r"embedded/preset/seed0: trainer.py stopped at step 100 of 300 .*rerun"):
        screen.screen(_options(tmp_path, train_steps=300), run_command=stopped, echo=lambda line: None)
    absl = "FATAL Flags parsing error: Unknown command line flag 'lecan'"
    flag_error = FakeRunner(fail=lambda argv: (1, absl + "\nPass --helpshort or --helpfull to see help on flags.", 0))
    with pytest.raises(UserError, match=f"variant typo .*: {absl}  \\(exit status 1"):
        screen.screen(_options(tmp_path, variant=("typo=--lecan=1",)), run_command=flag_error, echo=lambda line: None)


def test_the_real_trainer_s_error_ends_the_screen_with_exit_status_2(tmp_path):
    result = run_python("tools/screen.py", f"--out={tmp_path}", "--variant=bad=--batch_size=0", timeout=120)
    assert result.returncode == 2
    lines = error_lines(result, "screen")
    assert len(lines) == 1 and result.stderr.strip().endswith(lines[0])
    assert lines[0].startswith("screen: error: variant bad (embedded, seed 0): trainer.py: error: --batch_size=0 "
                               "is out of range")


def test_the_table_takes_mean_and_worst_over_seeds(tmp_path):
    known = {0: {"gan_test_ratio": 0.8, "classifier_coverage_class_mean": 0.5, "classifier_coverage_class_min": 0.2,
                 "structure_diversity_ratio_class_mean": 0.6, "assigned_elsewhere_class_max": 0.4,
                 "classifier_fd_ratio": 2.0, "cas_ratio": 0.7},
             1: {"gan_test_ratio": 0.6, "classifier_coverage_class_mean": 0.7, "classifier_coverage_class_min": 0.1,
                 "structure_diversity_ratio_class_mean": 0.4, "assigned_elsewhere_class_max": 0.6,
                 "classifier_fd_ratio": 3.0, "cas_ratio": None}}
    opts = _options(tmp_path, seeds=(0, 1))
    screen.screen(opts, run_command=FakeRunner(metrics=lambda workdir: known[int(workdir[-1])],
                                               rates=("nan", "1.00", "3.00")), echo=lambda line: None)
    # seed 1's log gets the same lines: its steps/s median is 2 as well; make it 4.
    with open(tmp_path / "screen" / "embedded" / "preset" / "seed1" / "screen_train.log", "a") as log:
        log.write("step 900/200  d_loss 1  g_loss 1  D(real) 0.5  D(fake) 0.5  4.00 steps/s  ETA 0m00s\n" * 3)
    lines = screen.screen(opts, run_command=FakeRunner(), echo=lambda line: None)

    table = json.load(open(tmp_path / "screen" / "screen.json"))
    figures = table["summary"][0]["figures"]
    expected = {"gan_test_ratio": (0.7, 0.6), "classifier_coverage_class_mean": (0.6, 0.5),
                "classifier_coverage_class_min": (0.15, 0.1), "structure_diversity_ratio_class_mean": (0.5, 0.4),
                "assigned_elsewhere_class_max": (0.5, 0.6), "classifier_fd_ratio": (2.5, 3.0),
                "cas_ratio": (0.7, 0.7), "steps_per_sec": (3.0, 2.0)}
    for key, (mean, worst) in expected.items():
        assert figures[key] == {"mean": pytest.approx(mean), "worst": pytest.approx(worst)}, key
    assert figures["structure_diversity_ratio_class_min"] is None
    assert table["summary"][0]["seeds"] == [0, 1]
    assert [run["figures"]["steps_per_sec"] for run in table["runs"]] == [2.0, 4.0]
    assert table["runs"][1]["figures"]["cas_ratio"] is None

    header, _, row = lines[:3]
    assert header == ("| set | variant | seeds | GAN-test× | coverage mean | coverage lowest | diversity mean | "
                      "diversity lowest | elsewhere worst | FD/floor | CAS× | steps/s |")
    assert row == "| embedded | preset | 2/2 | 0.7 (0.6) | 0.6 (0.5) | 0.15 (0.1) | 0.5 (0.4) | – | 0.5 (0.6) | " \
                  "2.5 (3) | 0.7 | 3 (2) |"
    markdown = (tmp_path / "screen" / "screen.md").read_text()
    assert row in markdown and "## Per run" in markdown and "| embedded | preset | 1 | 0.6 | 0.7 | 0.1 |" in markdown


@pytest.mark.parametrize("changes,message", [
    (dict(variant=()), "no --variant: pass at least one --variant=NAME=TRAINER_FLAGS"),
    (dict(variant=("lecam",)), "--variant=lecam has no '=': write NAME=TRAINER_FLAGS"),
    (dict(variant=("a=", "a=--lecam=1")), "--variant name a is given twice"),
    (dict(variant=("../up=",)), "the name '../up' must be letters, digits"),
    (dict(variant=("q=--tag='open",)), "its flags do not split"),
    (dict(sets=("embedded", "embedded")), "--sets names embedded twice"),
    (dict(seeds=(0, 1, 0)), "--seeds=0,1,0 repeats 0: list each seed once"),
    (dict(sets=("imagenet",)), "unknown set imagenet: use embedded, digits, photos, faces or NAME:PATH"),
    (dict(sets=("photos",)), "the photos set needs --devsets: pass the folder of `python tools/make_devsets.py"),
    (dict(flips_per_set=("embedded:sideways",)), "--flips_per_set=embedded:sideways: write SET:FLIPS"),
    (dict(flips_per_set=("digits:none",)), "digits is not in --sets=embedded"),
])
def test_bad_options_are_one_line_user_errors(tmp_path, changes, message):
    with pytest.raises(UserError) as raised:
        _options(tmp_path, **changes)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_missing_set_folders_and_preset_stop_before_anything_runs(tmp_path):
    runner = FakeRunner()
    devsets = tmp_path / "devsets"
    _class_folders(devsets / "digits")
    opts = _options(tmp_path, sets=("embedded", "digits", "photos"), devsets=str(devsets))
    with pytest.raises(UserError, match=f"the photos set is missing: no folder {devsets / 'photos'}; make it with "
                                        f"`python tools/make_devsets.py --out={devsets} --sets=photos`"):
        screen.screen(opts, run_command=runner)
    with pytest.raises(UserError, match="the mine set is missing: no folder"):
        screen.screen(_options(tmp_path, sets=(f"mine:{tmp_path / 'none'}",)), run_command=runner)
    with pytest.raises(UserError, match="--preset=nope.flags: no such file"):
        screen.screen(_options(tmp_path, preset="nope.flags"), run_command=runner)
    assert runner.commands == [] and not os.path.exists(tmp_path / "screen")


@pytest.mark.parametrize("args,message", [
    (("--variant=a b=",), "screen: error: --variant=a b=: the name 'a b' must be"),
    (("--variant=p=", "--sets=digits", "--devsets=/nonexistent"),
     "screen: error: the digits set is missing: no folder /nonexistent/digits; make it with `python "
     "tools/make_devsets.py --out=/nonexistent --sets=digits`"),
])
def test_the_command_refuses_in_one_line_with_exit_status_2(tmp_path, args, message):
    result = run_python("tools/screen.py", f"--out={tmp_path}", *args, timeout=60)
    assert result.returncode == 2 and error_lines(result, "screen") == [result.stderr.strip()]
    assert result.stderr.startswith(message)


def test_ctrl_c_is_passed_to_the_running_command_once(tmp_path):
    """The command gets SIGINT (the trainer checkpoints on it) and the screen waits for it, then stops."""
    log = tmp_path / "log.txt"
    child = ("import signal, sys, time\n"
             "signal.signal(signal.SIGINT, lambda *a: (print('checkpointed', flush=True), sys.exit(0)))\n"
             "print('ready', flush=True)\n"
             "time.sleep(60)\n")
    # A suite started from a background shell job inherits an ignored SIGINT; a terminal's screen has it.
    wrapper = ("import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
               "from tools import screen\n"
               "try:\n    screen.run_command([sys.executable, '-c', sys.argv[1]], sys.argv[2])\n"
               "except KeyboardInterrupt:\n    print('interrupted')\n")
    process = subprocess.Popen([sys.executable, "-c", wrapper, child, str(log)], cwd=REPO, stdout=subprocess.PIPE,
                               text=True)
    deadline = time.time() + 30
    while "\nready\n" not in (log.read_text() if log.exists() else "") and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)   # the screen's wait has begun (Ctrl-C comes from a person, not within a millisecond)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=30)
    assert stdout.strip() == "interrupted"
    assert log.read_text().endswith("\nready\ncheckpointed\n")


def _group_names(workdir):
    """The HParams session group names (trial IDs) in the event files of the workdir itself."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2
    names = []
    for name in [n for n in os.listdir(workdir) if n.startswith("events.out")]:
        for event in tf.compat.v1.train.summary_iterator(os.path.join(workdir, name)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        names.append(data.session_start_info.group_name)
    return names


def test_runs_of_a_screen_are_separate_rows_of_one_hparams_table(tmp_path):
    """TensorBoard merges sessions of one trial ID into one row: seed0 of two variants must not share one."""
    from cgan.core.config import TrainConfig
    from cgan.run import workdir
    paths = [str(tmp_path / "embedded" / variant / "seed0") for variant in ("preset", "lecam")]
    for path in paths:
        workdir.write_hparams(TrainConfig(workdir=path), {})
    assert [_group_names(path) for path in paths] == [[path] for path in paths]


@pytest.mark.slow
def test_a_real_screen_trains_evaluates_and_skips_on_rerun(tmp_path, isic_folders):
    lesions = tmp_path / "lesions"
    shutil.copytree(isic_folders / "Skin cancer ISIC The International Skin Imaging Collaboration", lesions)
    preset = tmp_path / "tiny.flags"
    preset.write_text(f"--flagfile={PRESET}\n--batch_size=4\n--precision=float32\n--summary_every=1\n"
                      "--steps_per_call=1\n")
    flags = [f"--out={tmp_path / 'screen'}", f"--preset={preset}", "--train_steps=2", "--num_per_class=2",
             f"--sets=lesions:{lesions}", "--flips_per_set=lesions:none", "--variant=preset="]
    result = run_python("tools/screen.py", *flags, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    workdir = str(tmp_path / "screen" / "lesions" / "preset" / "seed0")
    table = json.load(open(tmp_path / "screen" / "screen.json"))
    figures = table["runs"][0]["figures"]
    assert 0.0 <= figures["gan_test_ratio"] and figures["steps_per_sec"] > 0 and figures["cas_ratio"] is not None
    assert "| lesions | preset | 1/1 |" in result.stdout
    assert os.path.isdir(tmp_path / "tfds_lesions")
    assert _group_names(workdir) == [workdir]
    assert os.listdir(os.path.join(workdir, "eval"))   # the evaluation's scalars beside the report
    again = run_python("tools/screen.py", *flags, timeout=120)
    assert again.returncode == 0 and "1 of 1 runs were evaluated before: skipped" in again.stdout
