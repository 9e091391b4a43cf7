import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import torch_reference  # noqa: E402  (needs torch)
from benchmarks.config import BenchmarkConfig  # noqa: E402
from benchmarks.training_data import TrainingData  # noqa: E402
from cgan.model import networks  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    # On a busy machine PyTorch's spinning OpenMP threads slow a step many times over; one thread
    # keeps these tests at seconds whatever else runs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _keras_counts(model):
    return {"trainable": sum(int(np.prod(w.shape)) for w in model.trainable_weights),
            "non_trainable": sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)}


@pytest.mark.parametrize("resolution", [64, 128])
def test_parameter_counts_equal_the_keras_models(resolution):
    generator = torch_reference.Generator(resolution, latent_dim=100, num_classes=9)
    discriminator = torch_reference.Discriminator(resolution, num_classes=9)
    assert torch_reference.parameter_counts(generator) == _keras_counts(
        networks.build_generator(resolution, 100, 9))
    assert torch_reference.parameter_counts(discriminator) == _keras_counts(
        networks.build_discriminator(resolution, 9))


def test_the_networks_keep_the_keras_settings():
    generator = torch_reference.Generator(64, latent_dim=100, num_classes=9)
    norms = [m for m in generator.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    assert len(norms) == 3
    assert all(m.momentum == pytest.approx(1 - networks.BN_MOMENTUM) and m.eps == 1e-3 for m in norms)
    convs = [m for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.kernel_size, m.stride, m.padding) for m in convs] == [((4, 4), (2, 2), (1, 1))] * 3
    z, labels = torch.randn(2, 100), torch.tensor([0, 8])
    images = generator(z, labels)
    assert images.shape == (2, 3, 64, 64) and images.abs().max() <= 1
    assert torch_reference.Discriminator(64, 9)(images, labels).shape == (2, 1)


def test_one_eager_step_updates_both_networks_and_epochs_roll_over():
    rng = np.random.default_rng(0)
    data = TrainingData(rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8),
                        rng.integers(0, 9, 8).astype(np.int32), tuple(f"c{i}" for i in range(9)), "made_up")
    loop = torch_reference.TorchLoop(BenchmarkConfig(batch_sizes=(4,), steps=3, warmup_steps=1), data, 4)
    before = [p.detach().clone() for p in (*loop.generator.parameters(), *loop.discriminator.parameters())]
    images, labels = loop._next_batch()
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    d_loss, g_loss = loop.step(images, labels)
    assert np.isfinite(float(d_loss)) and np.isfinite(float(g_loss))
    after = [p.detach() for p in (*loop.generator.parameters(), *loop.discriminator.parameters())]
    assert all(not torch.equal(b, a) for b, a in zip(before, after))   # Adam moves every parameter
    steps, wall, cpu = loop.measure()   # 3 steps over epochs of 2 batches
    assert steps == 3 and wall > 0 and cpu >= 0


def test_runtime_info_names_the_threads():
    info = torch_reference.runtime_info()
    assert info["threads"] == torch.get_num_threads() >= 1
    assert info["version"] == torch.__version__ and info["dtype"] == "float32"
