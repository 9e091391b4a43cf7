"""The baseline's conditional DCGAN in PyTorch, trained by the usual eager loop: the benchmark's
second reference beside the Keras `fit` baseline. Needs `pip install -r requirements-benchmark.txt`.

    from benchmarks import torch_reference
    generator = torch_reference.Generator(resolution=64, latent_dim=100, num_classes=9)
    images = generator(z, labels)          # z [B, 100] float32, labels [B] int64 -> [B, 3, 64, 64]
    discriminator = torch_reference.Discriminator(resolution=64, num_classes=9)
    logits = discriminator(images, labels) # [B, 1]

    loop = torch_reference.TorchLoop(config, data, batch_size=16)   # the benchmark's loop interface
    loop.warm_up(); steps, wall, cpu = loop.measure()

The same model as cgan.model.networks' defaults, layer for layer (channels first, as PyTorch has it):
kernel 4, stride 2, padding 1 (what 'same' pads for kernel 4 and stride 2), the same channel counts,
a 50-wide label embedding concatenated to z in G and a label plane beside the image in D, batch norm
with Keras' momentum and epsilon, LeakyReLU 0.2, tanh images and a float32 logit; Glorot-uniform
weights and zero biases as Keras starts them. `parameter_counts` equals the Keras models' counts.

One step, as the trainer's: one discriminator update on a real and a generated batch, then one
generator update through the updated discriminator on the same generated batch (detached for the D
update, as PyTorch's DCGAN example does); Adam 2e-4, β1 0.5; BCE with logits; float32 on the CPU
with PyTorch's default thread count (recorded by `runtime_info`). Like that example, the G update's
backward pass also fills D's weight gradients, which the next D update zeroes. The example's
`torch.no_grad` serves only its fixed-noise sample grid, which no timed loop draws.
"""

import os

import numpy as np
import torch
from torch import nn

from benchmarks.baseline import BETA_1, LEARNING_RATE
from benchmarks.machine import clock
from cgan.model import networks
from cgan.core.errors import UserError

KERAS_BN_EPSILON = 1e-3        # keras.layers.BatchNormalization's default
KERAS_ADAM_EPSILON = 1e-7      # keras.optimizers.Adam's default
BETA_2 = 0.999
SAME_PADDING = (networks.KERNEL_SIZE - 2) // 2    # 'same' at stride 2: output side = input side · 2 (or / 2)


def _batch_norm(channels, dims):
    norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    # PyTorch's momentum weighs the new batch; Keras' weighs the running average.
    return norm(channels, momentum=1 - networks.BN_MOMENTUM, eps=KERAS_BN_EPSILON)


def _init_like_keras(module):
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=networks.EMBEDDING_STDDEV)


class Generator(nn.Module):
    """cgan.model.networks.build_generator's default network: [z ⊕ embedding] -> Dense -> transposed convs."""

    def __init__(self, resolution, latent_dim, num_classes):
        super().__init__()
        base, channels = networks.BASE_SIZE, networks.BASE_CHANNELS
        self.label_embedding = nn.Embedding(num_classes, networks.EMBEDDING_DIM)
        self.dense = nn.Linear(latent_dim + networks.EMBEDDING_DIM, base * base * channels, bias=False)
        self.dense_norm = _batch_norm(base * base * channels, dims=1)
        blocks = []
        for i in range(1, len(networks.feature_sides(resolution))):   # at 64: 256 -> 128 -> 64
            blocks += [nn.ConvTranspose2d(channels, channels // 2, networks.KERNEL_SIZE, stride=2,
                                          padding=SAME_PADDING, bias=False),
                       _batch_norm(channels // 2, dims=2), nn.LeakyReLU(networks.LEAKY_SLOPE)]
            channels //= 2
        blocks += [nn.ConvTranspose2d(channels, 3, networks.KERNEL_SIZE, stride=2, padding=SAME_PADDING),
                   nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)
        self.apply(_init_like_keras)

    def forward(self, z, labels):
        x = torch.cat([z, self.label_embedding(labels)], dim=1)                    # [B, latent + 50]
        x = nn.functional.leaky_relu(self.dense_norm(self.dense(x)), networks.LEAKY_SLOPE)
        x = x.view(-1, networks.BASE_CHANNELS, networks.BASE_SIZE, networks.BASE_SIZE)  # [B, 256, 8, 8]
        return self.blocks(x)                                                       # [B, 3, R, R]


class Discriminator(nn.Module):
    """cgan.model.networks.build_discriminator's default network: [image ⊕ label plane] -> convs -> Dense(1)."""

    def __init__(self, resolution, num_classes):
        super().__init__()
        self.resolution = resolution
        self.label_embedding = nn.Embedding(num_classes, networks.EMBEDDING_DIM)
        self.label_plane = nn.Linear(networks.EMBEDDING_DIM, resolution * resolution)
        num_blocks = len(networks.feature_sides(resolution))
        filters = [networks.BASE_CHANNELS >> i for i in reversed(range(num_blocks))]  # at 64: 64, 128, 256
        layers, channels = [], 4
        for i, f in enumerate(filters):
            batch_norm = i > 0    # the first block has no batch norm, and so keeps its bias
            layers.append(nn.Conv2d(channels, f, networks.KERNEL_SIZE, stride=2, padding=SAME_PADDING,
                                    bias=not batch_norm))
            if batch_norm:
                layers.append(_batch_norm(f, dims=2))
            layers.append(nn.LeakyReLU(networks.LEAKY_SLOPE))
            channels = f
        self.features = nn.Sequential(*layers)
        side = networks.BASE_SIZE
        self.logit = nn.Linear(networks.BASE_CHANNELS * side * side, 1)
        self.apply(_init_like_keras)

    def forward(self, images, labels):
        plane = self.label_plane(self.label_embedding(labels))                     # [B, R·R]
        plane = plane.view(-1, 1, self.resolution, self.resolution)                 # [B, 1, R, R]
        x = self.features(torch.cat([images, plane], dim=1))                        # [B, 256, 8, 8]
        return self.logit(x.flatten(1))                                             # [B, 1]


def parameter_counts(module):
    """{"trainable": parameters, "non_trainable": batch-norm running statistics} of a module, counted
    as Keras counts trainable and non-trainable weights."""
    buffers = [b for name, b in module.named_buffers() if not name.endswith("num_batches_tracked")]
    return {"trainable": sum(p.numel() for p in module.parameters()),
            "non_trainable": sum(b.numel() for b in buffers)}


def runtime_info():
    """PyTorch's version and the thread counts it runs with (OMP_NUM_THREADS changes its default)."""
    return {"version": torch.__version__, "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"), "dtype": "float32", "device": "cpu"}


class TorchLoop:
    """Generator and Discriminator trained by the usual eager loop over a DataLoader of the images."""

    def __init__(self, config, data, batch_size):
        if len(data.images) < batch_size:
            raise UserError(f"--batch_sizes={batch_size} is more than the {len(data.images)} training "
                            f"images: pass smaller batch sizes")
        self.config = config
        torch.manual_seed(config.seed)
        num_classes = len(data.class_names)
        self.generator = Generator(data.resolution, config.latent_dim, num_classes)
        self.discriminator = Discriminator(data.resolution, num_classes)
        adam = dict(lr=LEARNING_RATE, betas=(BETA_1, BETA_2), eps=KERAS_ADAM_EPSILON)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), **adam)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), **adam)
        self.bce = nn.BCEWithLogitsLoss()
        images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()   # [N, 3, R, R] uint8
        labels = torch.from_numpy(data.labels.astype(np.int64))                    # [N]
        self.loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(images, labels), batch_size=batch_size, shuffle=True,
            drop_last=True, generator=torch.Generator().manual_seed(config.seed))
        self._batches = iter(self.loader)

    def _next_batch(self):
        try:
            return next(self._batches)
        except StopIteration:   # an epoch ended: the next one reshuffles
            self._batches = iter(self.loader)
            return next(self._batches)

    def step(self, images, labels):
        """One D and one G update. images [B, 3, R, R] uint8, labels [B] int64; returns the losses."""
        images = images.float() / 127.5 - 1.0                                      # [B, 3, R, R] in [-1, 1]
        z = torch.randn(len(labels), self.config.latent_dim)                       # [B, latent]
        fake = self.generator(z, labels)                                           # [B, 3, R, R]

        self.d_optimizer.zero_grad()
        real_logits = self.discriminator(images, labels)                           # [B, 1]
        fake_logits = self.discriminator(fake.detach(), labels)
        d_loss = (self.bce(real_logits, torch.ones_like(real_logits))
                  + self.bce(fake_logits, torch.zeros_like(fake_logits)))
        d_loss.backward()
        self.d_optimizer.step()

        self.g_optimizer.zero_grad()
        g_logits = self.discriminator(fake, labels)                                # through the updated D
        g_loss = self.bce(g_logits, torch.ones_like(g_logits))
        g_loss.backward()
        self.g_optimizer.step()
        return d_loss.detach(), g_loss.detach()

    def _run(self, num_steps):
        for _ in range(num_steps):
            d_loss, g_loss = self.step(*self._next_batch())
        return float(d_loss), float(g_loss)

    def warm_up(self):
        self._run(self.config.warmup_steps)

    def measure(self):
        wall, cpu = clock()
        self._run(self.config.steps)
        wall_end, cpu_end = clock()
        return self.config.steps, wall_end - wall, cpu_end - cpu
