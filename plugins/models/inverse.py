"""How a generator without an encoder of its own is scored: a fitted inverse encoder.

A GAN maps latent vectors to images but has no map back, while every metric scores the codes
of *real* images. The protocol used for every such generator in this package (the plain
``gan`` and any later GAN without a classifier or code head):

1. Before each evaluation, a fresh encoder is built: the reference study's convolutional
   encoder (:class:`~disentangle_plugins.models.nets.ConvEncoder`, the VAE family's
   architecture with one deterministic output per latent dimension).
2. It is trained from scratch to predict the latent vector ``z`` from ``G(z)`` by mean
   squared error, with Adam, on fresh draws of the prior pushed through the frozen generator
   (in eval mode): ``inverse_steps`` steps of ``inverse_batch_size`` samples.
3. Its prediction on a real image is the representation (continuous codes, one per latent
   dimension).

Weights and draws come from the run's seed alone, so one generator always gets the same
encoder, whether the run was resumed or evaluated later with ``disentangle evaluate``. The
final mean squared error is logged as ``inverse_encoder.mse``: near the prior's variance
means the images carry little information about ``z``. Caveat: the encoder learns on
generated images and is applied to real ones, so a generator that misses part of the data
distribution is scored on images unlike any it was fitted on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from disentangle_plugins.models.nets import ConvEncoder

#: width of the encoder's dense layer (the reference study's 256)
DENSE_DIM = 256

#: ``sample(n, generator) -> (targets [n, d], images [n, C, H, W])``, both on the model device
Sampler = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


class InverseEncoder(nn.Module):
    """An encoder fitted to invert a generator: images -> the latent vectors that made them."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int,
                 channels: tuple[int, ...]):
        super().__init__()
        self.image_shape, self.latent_dim, self.channels = image_shape, latent_dim, channels
        self.net = self._fresh()

    def _fresh(self) -> ConvEncoder:
        return ConvEncoder(self.image_shape, self.channels, DENSE_DIM, self.latent_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def fit(self, sample: Sampler, steps: int, batch_size: int, lr: float, seed: int) -> float:
        """Re-initialise from ``seed`` and fit on ``sample`` for ``steps`` Adam steps of
        ``batch_size`` samples at learning rate ``lr``; returns the final MSE.

        The final MSE is the mean over the last tenth of the steps (per latent dimension).
        The global random state is left untouched.
        """
        device = next(self.parameters()).device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net.load_state_dict(self._fresh().state_dict())
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        tail = max(1, steps // 10)
        errors = []
        for step in range(steps):
            targets, images = sample(batch_size, generator)
            loss = F.mse_loss(self.net(images.to(device)), targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step >= steps - tail:
                errors.append(loss.item())
        return sum(errors) / len(errors)
