"""Differential privacy of the discriminator's training (DP-SGD) and its accounting.

    plan = privacy.plan(config, num_examples=2239)          # σ for --dp_epsilon over --train_steps
    plan.noise_multiplier, plan.sampling_rate, plan.delta    # σ, q = batch / N, δ
    privacy.epsilon_spent(plan, steps=1000)                  # ε after 1,000 steps
    state = privacy.PrivacyState()                           # in the checkpoint: σ and the steps it was set for
    sums = privacy.clipped_gradient_sum(per_example_loss, variables, inputs, mask, clip=1.0)

Only D touches real images, so only D's update on them is private: each real image's gradient is
clipped to --dp_clip (L2 over all of D's weights), the clipped gradients are summed, Gaussian noise of
standard deviation σ · clip is added, and the sum is divided by the expected batch size. The real
images of a step are a Poisson sample (each image independently with probability q = --batch_size / N;
cgan.inputs.input_pipeline), which is what the accountant assumes. G only sees D's outputs, so G, the
EMA generator and every image made from them are post-processing of a private D, with the same (ε, δ).

The accountant is dp_accounting's RDP accountant for the Poisson-subsampled Gaussian under add-or-remove-
one neighbouring datasets. σ is calibrated once, when the run starts, so that --train_steps spend at
most --dp_epsilon; it is stored in the checkpoint, so a resumed run keeps it and its accounting, and
a run that would spend more than --dp_epsilon (more steps, or a lower target) is refused before it trains.
The noise and the sample come from secret seeds, not --seed (`PrivacyState`).
"""

import dataclasses
import logging
import math
import secrets

import tensorflow as tf

from cgan.core.errors import UserError

ACCOUNTANT = "rdp"          # dp_accounting.rdp.RdpAccountant, add-or-remove-one neighbouring datasets
NEIGHBOURING = "add_or_remove_one"
MAX_NOISE_MULTIPLIER = 1e4  # a σ beyond this is no training: the target cannot be met usefully
_NORM_EPSILON = 1e-12
_SECRET_BITS = 62           # int64 seeds, with room for the input pipeline's salts


@dataclasses.dataclass(frozen=True)
class Plan:
    """The mechanism of one private run: what the accountant composes at every step."""
    epsilon: float            # the target, --dp_epsilon
    delta: float              # --dp_delta, or 1 / (2 N)
    clip: float               # --dp_clip, the L2 bound of each real image's gradient
    noise_multiplier: float   # σ: the noise's standard deviation is σ · clip
    sampling_rate: float      # q: each real image's chance to be in a step's batch
    planned_steps: int        # the steps σ was calibrated for
    num_examples: int         # N

    def to_dict(self, steps=None):
        """The plan as config.json, generator.json and the export's manifest state it."""
        values = {"epsilon_target": self.epsilon, "delta": self.delta, "clip": self.clip,
                  "noise_multiplier": self.noise_multiplier, "sampling_rate": self.sampling_rate,
                  "planned_steps": self.planned_steps, "num_examples": self.num_examples,
                  "accountant": ACCOUNTANT, "neighbouring": NEIGHBOURING, "sampling": "poisson"}
        if steps is not None:
            values.update(steps=int(steps), epsilon=epsilon_spent(self, steps))
        return values


def _event(noise_multiplier, sampling_rate, steps):
    import dp_accounting
    step = dp_accounting.PoissonSampledDpEvent(sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier))
    return dp_accounting.SelfComposedDpEvent(step, int(steps))


class _QuietFractionalOrders(logging.Filter):
    """Drops the RDP accountant's warning that a fractional order near 1 did not converge: it leaves such
    an order out of the minimum over orders, which can only make ε larger (never wrong), and would
    otherwise print at every ε computed."""

    def filter(self, record):
        return not (record.module == "rdp_privacy_accountant" and "failed to converge" in record.getMessage())


def _accountant():
    from dp_accounting.rdp import rdp_privacy_accountant
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, _QuietFractionalOrders) for f in absl_logger.filters):
        absl_logger.addFilter(_QuietFractionalOrders())
    return rdp_privacy_accountant.RdpAccountant(
        neighboring_relation=rdp_privacy_accountant.NeighborRel.ADD_OR_REMOVE_ONE)


def epsilon(noise_multiplier, sampling_rate, steps, delta):
    """ε of `steps` Poisson-subsampled Gaussian steps at δ (0 for no steps)."""
    if steps <= 0:
        return 0.0
    accountant = _accountant()
    accountant.compose(_event(noise_multiplier, sampling_rate, steps))
    return float(accountant.get_epsilon(delta))


def epsilon_spent(plan, steps):
    """ε spent by the first `steps` steps of a run with this plan."""
    return epsilon(plan.noise_multiplier, plan.sampling_rate, steps, plan.delta)


def calibrate(target_epsilon, delta, sampling_rate, steps):
    """The smallest σ (within 1e-4 relative) whose `steps` steps spend at most `target_epsilon`.

    Raises:
        UserError: a target so small that σ would exceed MAX_NOISE_MULTIPLIER.
    """
    import dp_accounting
    spend = lambda sigma: epsilon(sigma, sampling_rate, steps, delta)
    if spend(MAX_NOISE_MULTIPLIER) > target_epsilon:
        raise UserError(f"--dp_epsilon={target_epsilon:g} cannot be met over {steps} steps at batch rate "
                        f"{sampling_rate:.4g}: the noise would drown every update; raise --dp_epsilon or "
                        f"lower --train_steps or --batch_size")
    sigma = dp_accounting.calibrate_dp_mechanism(
        _accountant, lambda s: _event(s, sampling_rate, steps), target_epsilon, delta,
        bracket_interval=dp_accounting.ExplicitBracketInterval(1e-3, MAX_NOISE_MULTIPLIER), tol=1e-6)
    # calibrate_dp_mechanism returns a σ that meets the target; round up, not down, for the record.
    return float(math.ceil(sigma * 1e6) / 1e6)


def resolve_delta(config, num_examples):
    """--dp_delta, or 1 / (2 N); UserError when a given δ is not below 1 / N (a guarantee that allows
    releasing one whole record outright)."""
    if config.dp_delta is None:
        return 1.0 / (2 * num_examples)
    if config.dp_delta >= 1.0 / num_examples:
        raise UserError(f"--dp_delta={config.dp_delta:g} is not below 1/N = {1 / num_examples:.3g} for these "
                        f"{num_examples} training images: pass a smaller --dp_delta, or leave it out for 1/(2N)")
    return float(config.dp_delta)


def plan(config, num_examples, noise_multiplier=None, planned_steps=None):
    """The run's Plan: σ calibrated for --train_steps, or the σ a checkpoint holds.

    Args:
        config: the TrainConfig (dp_epsilon set).
        num_examples: N, the training images.
        noise_multiplier, planned_steps: a resumed run's stored σ and the steps it was set for; None
            for a new run.

    Raises:
        UserError: an unreachable target, a bad δ, or --train_steps beyond what the stored σ allows.
    """
    if config.batch_size > num_examples:
        raise UserError(f"--batch_size={config.batch_size} is more than the {num_examples} training images: "
                        f"with --dp_epsilon each image joins a step with probability batch / N; lower "
                        f"--batch_size")
    delta = resolve_delta(config, num_examples)
    rate = config.batch_size / num_examples
    if noise_multiplier is None:
        sigma, steps = calibrate(config.dp_epsilon, delta, rate, config.train_steps), config.train_steps
    else:
        sigma, steps = float(noise_multiplier), int(planned_steps)
    result = Plan(float(config.dp_epsilon), delta, float(config.dp_clip), sigma, rate, steps, int(num_examples))
    needed = epsilon_spent(result, config.train_steps)
    if needed > config.dp_epsilon:
        raise UserError(f"--train_steps={config.train_steps} would spend ε={needed:.4g}, more than --dp_epsilon="
                        f"{config.dp_epsilon:g}: this run's noise was set for {steps} steps; pass "
                        f"--train_steps={steps} or fewer, or --dp_epsilon={math.ceil(needed * 1e4) / 1e4:g} or more "
                        f"to spend that much")
    return result


class PrivacyState(tf.Module):
    """What a private run keeps in its checkpoint: σ, the steps it was calibrated for (0: not set yet),
    and the secret randomness of the mechanism.

    The gradient noise (`noise`) and the Poisson sample (`sampling_seed`) must be unknown to anyone who
    sees what the run releases: noise that a published --seed reproduces could be subtracted, and a
    known sample voids the amplification the accountant counts on. So a new run seeds both from the
    operating system's randomness (`secrets`), never from --seed, and keeps them only here: resumes
    continue them exactly, and the checkpoints must stay private while generator.keras is shared.
    """

    def __init__(self, name="privacy"):
        super().__init__(name=name)
        first = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.noise_multiplier = tf.Variable(0.0, dtype=tf.float64, trainable=False, aggregation=first,
                                            name="noise_multiplier")
        self.planned_steps = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=first, name="planned_steps")
        self.secret_sampling_seed = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=first,
                                                name="secret_sampling_seed")
        self.noise = tf.random.Generator.from_seed(0)   # reseeded in secret by `start` on a new run

    def start(self, config, num_examples):
        """The Plan of this run: calibrated and stored, and the secret seeds drawn, on a new run; read back
        on a resumed one."""
        stored = int(self.planned_steps.numpy())
        result = plan(config, num_examples, *((float(self.noise_multiplier.numpy()), stored) if stored else ()))
        if not stored:
            self.secret_sampling_seed.assign(secrets.randbits(_SECRET_BITS))
            self.noise.reset_from_seed(secrets.randbits(_SECRET_BITS))
        self.noise_multiplier.assign(result.noise_multiplier)
        self.planned_steps.assign(result.planned_steps)
        return result

    @property
    def sampling_seed(self):
        """The seed of the run's Poisson samples (cgan.inputs.input_pipeline.poisson_dataset); secret."""
        return int(self.secret_sampling_seed.numpy())


def clipped_gradient_sum(per_example, variables, inputs, mask, clip, chunk_size):
    """Σ_i mask_i · clip(∇ loss_i): each example's gradient scaled to L2 norm ≤ `clip`, then summed.

    Args:
        per_example: function of one example's inputs (each without the batch axis) -> (scalar loss,
            scalar output to report, e.g. D's logit).
        variables: the variables to differentiate.
        inputs: tuple of tensors [M, ...], M a multiple of `chunk_size` (padding rows allowed).
        mask: [M] float32, 1 for a real example and 0 for a padding row.
        clip: the L2 bound, a float or scalar tensor.
        chunk_size: examples whose gradients are computed at once (vectorised); bounds memory.

    Returns:
        (list of float32 tensors shaped like `variables`, [M] outputs, [M] gradient norms before clipping).
    """
    def one(example):
        with tf.GradientTape() as tape:
            loss, output = per_example(*example)
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return [tf.cast(g, tf.float32) for g in grads], tf.cast(output, tf.float32)

    num_chunks = tf.shape(mask)[0] // chunk_size
    zeros = [tf.zeros(v.shape, tf.float32) for v in variables]
    outputs = tf.TensorArray(tf.float32, size=num_chunks, element_shape=[chunk_size])
    norms = tf.TensorArray(tf.float32, size=num_chunks, element_shape=[chunk_size])

    def body(i, sums, outputs, norms):
        rows = slice(i * chunk_size, (i + 1) * chunk_size)
        grads, output = tf.vectorized_map(one, tuple(x[rows] for x in inputs))    # each [c, *shape]; [c]
        norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.reshape(tf.square(g), [chunk_size, -1]), axis=1)
                                 for g in grads]))                                # [c]
        weight = mask[rows] * tf.minimum(1.0, clip / tf.maximum(norm, _NORM_EPSILON))   # [c]
        sums = [s + tf.tensordot(weight, g, axes=1) for s, g in zip(sums, grads)]
        return i + 1, sums, outputs.write(i, output), norms.write(i, norm)

    _, sums, outputs, norms = tf.while_loop(lambda i, *_: i < num_chunks, body,
                                            (tf.constant(0), zeros, outputs, norms))
    return sums, tf.reshape(outputs.stack(), [-1]), tf.reshape(norms.stack(), [-1])
