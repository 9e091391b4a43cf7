"""Differentially private training: the accountant, clipping, the noise, the Poisson sample, refusals,
the budget in every artefact, and a resumed run's accounting and weights."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from cgan import train
from cgan.core.config import TrainConfig
from cgan.core.errors import UserError
from cgan.inputs import datasets, input_pipeline
from cgan.model import networks
from cgan.run import workdir
from cgan.training import privacy
from conftest import checkpoint_tensors, interrupted_copy, read_scalars, run_python

# TensorFlow Privacy's published MNIST table (tutorials/README.md): N = 60,000, batch 256, δ = 1e-5,
# (noise multiplier, epochs, ε), computed with the RDP orders and the ε conversion of its time.
_PUBLISHED = [(1.12, 60, 2.92, 0.005), (0.6, 30, 9.74, 0.03), (1.2, 10, 1.20, 0.005)]
_PUBLISHED_ORDERS = [1 + x / 10 for x in range(1, 100)] + list(range(12, 64))


@pytest.mark.parametrize("sigma,epochs,published,tolerance", _PUBLISHED)
def test_the_accountant_reproduces_tensorflow_privacy_s_published_epsilons(sigma, epochs, published, tolerance):
    import dp_accounting
    from dp_accounting.rdp import rdp_privacy_accountant
    rate, steps = 256 / 60_000, epochs * 60_000 // 256
    accountant = rdp_privacy_accountant.RdpAccountant(_PUBLISHED_ORDERS)
    accountant.compose(privacy._event(sigma, rate, steps))
    orders, rdp = np.array(_PUBLISHED_ORDERS), np.array(accountant._rdp)
    classic = np.min(rdp - np.log(1e-5) / (orders - 1))      # the conversion the table was computed with
    assert abs(classic - published) <= tolerance
    # What the trainer reports: the same RDP curve with today's tighter conversion, never above it.
    ours = privacy.epsilon(sigma, rate, steps, 1e-5)
    assert 0.75 * published < ours <= published + tolerance
    assert isinstance(accountant, dp_accounting.PrivacyAccountant)


def test_epsilon_grows_with_steps_and_falls_with_noise():
    values = [privacy.epsilon(1.0, 0.01, steps, 1e-5) for steps in (0, 100, 1000, 10_000)]
    assert values[0] == 0 and values == sorted(values) and len(set(values)) == 4
    assert privacy.epsilon(2.0, 0.01, 1000, 1e-5) < privacy.epsilon(1.0, 0.01, 1000, 1e-5)


@pytest.mark.parametrize("target", [10.0, 3.0, 1.0])
def test_calibration_meets_the_target_tightly(target):
    rate, steps, delta = 32 / 2239, 5000, 1 / (2 * 2239)
    sigma = privacy.calibrate(target, delta, rate, steps)
    assert privacy.epsilon(sigma, rate, steps, delta) <= target
    assert privacy.epsilon(sigma * 0.99, rate, steps, delta) > target


def test_an_unreachable_target_is_one_line():
    with pytest.raises(UserError, match="raise --dp_epsilon"):
        privacy.calibrate(0.01, 1e-5, 1.0, 100_000)


def _config(**overrides):
    values = dict(workdir="w", d_norm="spectral", dp_epsilon=3.0, batch_size=8, train_steps=100)
    return TrainConfig(**{**values, **overrides})


def test_delta_defaults_to_half_of_one_over_n_and_refuses_one_over_n_or_more():
    assert privacy.resolve_delta(_config(), 1000) == 1 / 2000
    assert privacy.resolve_delta(_config(dp_delta=1e-6), 1000) == 1e-6
    with pytest.raises(UserError, match="--dp_delta=0.001 is not below 1/N"):
        privacy.resolve_delta(_config(dp_delta=1e-3), 1000)


def test_a_resumed_plan_keeps_its_noise_and_refuses_steps_past_its_budget():
    fresh = privacy.plan(_config(), 1000)
    assert fresh.planned_steps == 100 and fresh.sampling_rate == 8 / 1000 and fresh.clip == 1.0
    assert privacy.epsilon_spent(fresh, 100) <= 3.0
    shorter = privacy.plan(_config(train_steps=50), 1000, fresh.noise_multiplier, fresh.planned_steps)
    assert shorter.noise_multiplier == fresh.noise_multiplier and privacy.epsilon_spent(shorter, 50) < 3.0
    with pytest.raises(UserError, match="--train_steps=200 would spend .* pass --train_steps=100 or fewer"):
        privacy.plan(_config(train_steps=200), 1000, fresh.noise_multiplier, fresh.planned_steps)
    with pytest.raises(UserError, match="--batch_size=8 is more than the 5 training images"):
        privacy.plan(_config(), 5)


@pytest.mark.parametrize("overrides,message", [
    (dict(d_norm="batch"), "--d_norm=spectral"),
    (dict(d_minibatch_std=True), "--d_minibatch_std"),
    (dict(r1_gamma=1.0), "--r1_gamma=0"),
    (dict(lecam=0.1), "--lecam=0"),
    (dict(ada_target=0.6, augment="translation"), "--ada_target=0"),
    (dict(cpu_replicas=2), "one replica"),
    (dict(strategy="multi_worker"), "one replica"),
    (dict(jit_compile="true"), "--jit_compile=auto"),
    (dict(dp_epsilon=None, dp_delta=1e-6), "pass --dp_epsilon too"),
    (dict(dp_epsilon=0.0), "--dp_epsilon=0 is out of range"),
])
def test_options_that_break_per_example_clipping_are_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        _config(**overrides)


def test_auto_xla_stays_off_for_a_private_step():
    from cgan.training import distribute
    assert distribute.resolve_jit_compile(_config(), gpus=["GPU:0"]) is False
    assert distribute.resolve_jit_compile(_config(dp_epsilon=None), gpus=["GPU:0"]) is True


def test_the_noise_and_the_sample_come_from_secret_seeds_kept_in_the_checkpoint(tmp_path):
    """Two runs of one command draw other secrets (--seed, which config.json publishes, would let anyone
    redraw the noise); a restored state keeps its own, and resumes its noise where it stopped."""
    config = _config(train_steps=10)
    first, second = privacy.PrivacyState(), privacy.PrivacyState()
    first.start(config, 1000)
    second.start(config, 1000)
    assert first.sampling_seed != second.sampling_seed and first.sampling_seed > 0
    assert not np.array_equal(first.noise.normal([4]).numpy(), second.noise.normal([4]).numpy())
    saved = tf.train.Checkpoint(privacy=first).write(str(tmp_path / "ckpt"))
    expected = first.noise.normal([4]).numpy()
    restored = privacy.PrivacyState()
    tf.train.Checkpoint(privacy=restored).read(saved).assert_consumed()
    restored.start(config, 1000)
    assert restored.sampling_seed == first.sampling_seed
    np.testing.assert_array_equal(restored.noise.normal([4]).numpy(), expected)


def _per_example_gradients(discriminator, images, labels):
    """One backward pass per example, compiled as the step is: oneDNN's fused CPU kernels in a graph and
    its eager kernels need not give the same gradient."""
    @tf.function
    def gradient(image, label):
        with tf.GradientTape() as tape:
            loss = discriminator([image[None], label[None]], training=False)[0, 0]
        return tape.gradient(loss, discriminator.trainable_variables)
    return [gradient(image, label) for image, label in zip(images, labels)]


def test_clipping_bounds_every_example_and_the_sum_is_the_clipped_sum():
    tf.keras.utils.set_random_seed(0)
    discriminator = networks.build_discriminator(64, 3, conditioning="projection", norm="spectral")
    images = tf.random.uniform([6, 64, 64, 3], -1, 1)
    labels = tf.constant([0, 1, 2, 0, 1, 2])
    mask = tf.constant([1, 1, 1, 1, 1, 0], tf.float32)         # the last row is padding
    variables = discriminator.trainable_variables

    def term(image, label):
        logit = discriminator([image[None], label[None]], training=False)
        return logit[0, 0], logit[0, 0]   # a loss that never saturates: every example has a gradient

    reference = _per_example_gradients(discriminator, images, labels)
    norms = np.array([np.sqrt(sum(float(tf.reduce_sum(g ** 2)) for g in grads)) for grads in reference])
    clip = float(np.median(norms[:5]))                           # some examples above it, some below
    assert (norms[:5] > clip).any() and (norms[:5] < clip).any()
    sums, logits, measured = privacy.clipped_gradient_sum(term, variables, (images, labels), mask, clip, 3)
    np.testing.assert_allclose(measured.numpy(), norms, rtol=1e-3)
    np.testing.assert_allclose(logits.numpy(), discriminator([images, labels]).numpy()[:, 0], rtol=1e-4, atol=1e-5)
    for v, total in enumerate(sums):
        terms = np.stack([min(1.0, clip / norms[i]) * reference[i][v].numpy() for i in range(5)])
        # float32 sums of terms that largely cancel: tolerance relative to the terms, not the sum
        np.testing.assert_allclose(total.numpy(), terms.sum(0), rtol=1e-3, atol=1e-4 * np.abs(terms).max())
    for i in range(5):                                           # each example alone: norm ≤ clip
        alone, _, _ = privacy.clipped_gradient_sum(term, variables, (images, labels),
                                                   tf.one_hot(i, 6, dtype=tf.float32), clip, 3)
        assert np.sqrt(sum(float(tf.reduce_sum(g ** 2)) for g in alone)) <= clip * (1 + 1e-5)


def test_poisson_batches_are_a_pure_function_of_seed_and_step_at_the_right_rate():
    first = [input_pipeline.poisson_indices(step, 200, 0.05, seed=3).numpy() for step in range(400)]
    again = [input_pipeline.poisson_indices(step, 200, 0.05, seed=3).numpy() for step in range(400)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert all(len(set(batch)) == len(batch) for batch in first)
    other_seed = input_pipeline.poisson_indices(7, 200, 0.05, seed=4).numpy()
    assert not np.array_equal(first[7], other_seed)
    sizes = np.array([len(batch) for batch in first])
    assert abs(sizes.mean() - 10) < 0.6 and sizes.std() > 2             # Binomial(200, 0.05): mean 10, sd 3.1
    hits = np.bincount(np.concatenate(first), minlength=200)            # each example: Binomial(400, 0.05)
    chi_square = np.sum((hits - 20) ** 2 / (20 * 0.95))
    assert chi_square < 280                                             # 199 degrees of freedom; p ≈ 1e-4


def test_a_resumed_poisson_stream_continues_where_it_stopped():
    images = np.random.default_rng(0).integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(40, dtype=np.int32) % 4
    fetch = input_pipeline.memory_fetch(images, labels)
    whole = [y.numpy() for _, y in input_pipeline.poisson_dataset(fetch, 40, 0.2, 5, mirror="flip").take(6)]
    tail = [y.numpy() for _, y in input_pipeline.poisson_dataset(fetch, 40, 0.2, 5, start_step=3,
                                                                  mirror="flip").take(3)]
    assert all(np.array_equal(a, b) for a, b in zip(whole[3:], tail))


def _private_config(tmp_path, data_dir, **overrides):
    values = dict(workdir=str(tmp_path / "run"), dataset="isic_skin_cancer/real_64", data_dir=str(data_dir),
                  batch_size=4, precision="float32", train_steps=4, checkpoint_every=2, summary_every=2,
                  image_every=1000, steps_per_call=2, d_norm="spectral", d_conditioning="projection",
                  dp_epsilon=5.0, augment="translation,cutout")
    return TrainConfig(**{**values, **overrides})


def test_the_budget_is_in_every_artefact(tmp_path, isic_data_dir):
    from cgan.share import dataset_export
    config = _private_config(tmp_path, isic_data_dir)
    result = train.train_and_evaluate(config)
    assert {"dp_real_images", "dp_clipped"} <= set(result.metrics)
    stored = json.load(open(os.path.join(config.workdir, "config.json")))["privacy"]
    assert stored["accountant"] == "rdp" and stored["sampling_rate"] == 4 / 18 and stored["delta"] == 1 / 36
    assert stored["noise_multiplier"] > 0 and stored["epsilon_target"] == 5.0 and stored["planned_steps"] == 4
    info = json.load(open(os.path.join(config.workdir, "generator.json")))["privacy"]
    assert not any("secret" in key for key in {**stored, **info})
    expected = privacy.epsilon(stored["noise_multiplier"], 4 / 18, 4, 1 / 36)
    assert info["steps"] == 4 and info["epsilon"] == pytest.approx(expected) and info["epsilon"] <= 5.0
    scalars = read_scalars(os.path.join(config.workdir, "train"))
    assert scalars["privacy/epsilon"] == (4, pytest.approx(expected, rel=1e-6))
    assert scalars["dp_real_images"][1] >= 0
    manifest = dataset_export.export_dataset(os.path.join(config.workdir, "generator.keras"),
                                             str(tmp_path / "export"), dataset_export.ExportSettings(per_class=1))
    assert manifest["exports"][0]["model"]["privacy"] == info
    assert manifest["privacy"]["generated_images"]["epsilon"] == pytest.approx(expected)
    assert manifest["privacy"]["real_images"] == 9 and "not protected" in manifest["privacy"]["note"]


def test_a_resumed_run_accounts_as_an_uninterrupted_one_and_refuses_more_steps(tmp_path, isic_data_dir):
    straight = _private_config(tmp_path / "a", isic_data_dir)
    split = _private_config(tmp_path / "b", isic_data_dir)
    train.train_and_evaluate(straight)
    interrupted_copy(straight.workdir, split.workdir, 2)
    assert train.train_and_evaluate(split).restored_step == 2
    read = lambda config: json.load(open(os.path.join(config.workdir, "generator.json")))["privacy"]
    assert read(straight) == read(split)
    assert read_scalars(os.path.join(straight.workdir, "train"))["privacy/epsilon"] == \
        read_scalars(os.path.join(split.workdir, "train"))["privacy/epsilon"]
    with pytest.raises(UserError, match="pass --train_steps=4 or fewer, or --dp_epsilon=.* or more"):
        train.train_and_evaluate(_private_config(tmp_path / "b", isic_data_dir, train_steps=8))
    raised = privacy.epsilon(read(split)["noise_multiplier"], 4 / 18, 8, 1 / 36)
    train.train_and_evaluate(_private_config(tmp_path / "b", isic_data_dir, train_steps=8, dp_epsilon=raised + 1e-6))
    assert read(split)["epsilon"] == pytest.approx(raised) and read(split)["steps"] == 8
    with pytest.raises(UserError, match="holds a private run with --dp_clip=1.0"):
        train.train_and_evaluate(_private_config(tmp_path / "b", isic_data_dir, dp_clip=2.0))
    plain = _private_config(tmp_path, isic_data_dir, dp_epsilon=None, workdir=str(tmp_path / "plain"))
    os.makedirs(plain.workdir)
    workdir.write_config(plain, {})
    with pytest.raises(UserError, match="holds a run without --dp_epsilon"):
        workdir.check_resumable(_private_config(tmp_path, isic_data_dir, workdir=plain.workdir))


def test_the_noise_has_the_stated_scale(tmp_path, isic_data_dir):
    """Two private steps from the same state and draws, one with σ = 0: D's gradients differ by exactly
    σ · clip · z / B, z the step's standard normal draws, so their difference has that spread."""
    from cgan.training import distribute, step as step_lib
    config = _private_config(tmp_path, isic_data_dir, dp_clip=0.5, augment="")
    strategy = distribute.make_strategy(config)
    captured = {}

    def gradients_with(sigma):
        train_step = step_lib.TrainStep(config, strategy, "float32", [str(i) for i in range(9)], 64,
                                        class_counts=np.full(9, 2))
        train_step.start_privacy(18)
        train_step.privacy.noise_multiplier.assign(sigma)
        train_step.privacy.noise.reset_from_seed(7)             # the same secret draws in both
        variables = train_step.discriminator.trainable_variables
        store = [tf.Variable(tf.zeros_like(v)) for v in variables]
        apply = train_step.d_optimizer.apply_gradients

        def capture(pairs):
            pairs = list(pairs)
            for variable, (gradient, _) in zip(store, pairs):
                variable.assign(gradient)
            return apply(pairs)

        train_step.d_optimizer.apply_gradients = capture
        builder = datasets.prepare(config.dataset, config.data_dir)
        split = input_pipeline.open_split(builder, "train", "memory", 1024)
        train_step.run_steps(iter(split.poisson_dataset(4 / 18, seed=5)), 1)
        captured[sigma] = np.concatenate([v.numpy().ravel() for v in store])

    gradients_with(0.0)
    gradients_with(3.0)
    difference = captured[3.0] - captured[0.0]
    assert difference.size > 100_000
    assert np.std(difference) == pytest.approx(3.0 * 0.5 / 4, rel=0.01)
    assert abs(np.mean(difference)) < 0.01 * 3.0 * 0.5 / 4


@pytest.mark.slow
def test_a_private_run_resumes_bitwise_and_bad_combinations_are_one_line(tmp_path, isic_data_dir):
    common = [f"--dataset=isic_skin_cancer/real_64", f"--data_dir={isic_data_dir}", "--batch_size=4",
              "--precision=float32", "--checkpoint_every=2", "--summary_every=2", "--image_every=1000",
              "--steps_per_call=2", "--deterministic", "--d_norm=spectral", "--loss=hinge", "--dp_epsilon=8",
              "--augment=color,translation,cutout", "--mirror=flip_rot90", "--ema_decay=0.9", "--mode_seeking=1",
              "--balanced"]
    # The secret seeds differ from run to run: the interrupted run is a copy of the straight one that
    # lost its last checkpoint, as a kill right after step 2's checkpoint leaves it.
    straight, split = tmp_path / "straight", tmp_path / "split"
    result = run_python("trainer.py", f"--workdir={straight}", "--train_steps=4", *common)
    assert result.returncode == 0, result.stderr[-3000:]
    interrupted_copy(straight, split, 2)
    result = run_python("trainer.py", f"--workdir={split}", "--train_steps=4", *common)
    assert result.returncode == 0 and "Restored step 2" in result.stderr, result.stderr[-3000:]
    a, b = checkpoint_tensors(str(straight)), checkpoint_tensors(str(split))
    assert a.keys() == b.keys() and any(name.startswith("privacy/") for name in a)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    sampled = run_python("sample.py", f"--workdir={straight}", "--label=0", "--num=2", f"--out_dir={tmp_path / 's'}")
    assert sampled.returncode == 0 and "differentially private at (ε = " in sampled.stdout
    refused = run_python("trainer.py", f"--workdir={tmp_path / 'other'}", "--train_steps=2", *common, "--lecam=0.1")
    lines = [line for line in refused.stderr.splitlines() if line.startswith("trainer.py: error:")]
    assert refused.returncode != 0 and lines == ["trainer.py: error: with --dp_epsilon, --lecam keeps moving "
                                                 "averages of D's outputs on real images: pass --lecam=0"]
    assert "Traceback" not in refused.stderr
