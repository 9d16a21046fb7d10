"""Network pieces shared by the first-party models, sized from the dataset's image shape.

* :class:`ConvEncoder` / :class:`DeconvDecoder`: the reference study's (Locatello et al.
  2019) VAE architecture -- 4x4 stride-2 convolutions 32, 32, 64, 64 with ReLU, a dense
  layer of 256 and a linear output; the decoder mirrors it (dense 256, dense to the smallest
  feature map, 4x4 stride-2 up-convolutions 64, 32, 32, C) and returns logits.
* :class:`Generator` / :class:`Discriminator`: the GAN networks of InfoGAN and the plain
  GAN, one layer family whose sizes come from the ``arch`` presets of
  :mod:`~disentangle_plugins.models.gan` (the InfoGAN paper's MNIST setting, a scaled-down
  digits one, InfoGAN-CR's dSprites setting).

Every stack halves (or doubles) the image side once per entry of its channel tuple, so a
``(32, 32, 64, 64)`` stack fits 64x64 images (4x4 feature maps) and 16x16 ones (1x1), and
shorter tuples fit smaller images.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def check_image_size(image_shape: tuple[int, ...], n_layers: int, option_name: str) -> None:
    """Raise ValueError unless ``n_layers`` stride-2 halvings divide the image exactly."""
    _, height, width = image_shape
    if height % (1 << n_layers) or width % (1 << n_layers):
        raise ValueError(
            f"image size {height}x{width} is not divisible by 2^{n_layers} "
            f"(one halving per {option_name} entry); set {option_name} to fewer layers")


def _smallest_map(image_shape: tuple[int, ...], channels: tuple[int, ...]) -> tuple[int, int, int]:
    """The feature map after one halving per channel entry: (channels[-1], H / 2^n, W / 2^n)."""
    n = len(channels)
    return channels[-1], image_shape[1] >> n, image_shape[2] >> n


def _conv_stack(in_channels: int, channels: tuple[int, ...],
                wrap: Callable[[nn.Module], nn.Module],
                hidden: Callable[[int, int], list[nn.Module]]) -> list[nn.Module]:
    """4x4 stride-2 convolutions to each width in ``channels``; ``hidden(i, width)`` follows
    layer ``i`` (activation, normalisation) and ``wrap`` wraps each convolution."""
    layers: list[nn.Module] = []
    widths = (in_channels, *channels)
    for i in range(len(channels)):
        layers.append(wrap(nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1)))
        layers += hidden(i, widths[i + 1])
    return layers


def _deconv_stack(channels: tuple[int, ...], out_channels: int,
                  hidden: Callable[[int], list[nn.Module]]) -> list[nn.Module]:
    """4x4 stride-2 up-convolutions mirroring ``channels`` down to ``out_channels``;
    ``hidden(width)`` follows every layer but the last."""
    layers: list[nn.Module] = []
    widths = [*reversed(channels), out_channels]
    for i in range(len(channels)):
        layers.append(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1))
        if i < len(channels) - 1:
            layers += hidden(widths[i + 1])
    return layers


class ConvEncoder(nn.Module):
    """Image -> ``out_dim`` numbers: convolutions with ReLU, a ReLU dense layer, a linear head."""

    def __init__(self, image_shape: tuple[int, int, int], channels: tuple[int, ...],
                 dense_dim: int, out_dim: int):
        super().__init__()
        check_image_size(image_shape, len(channels), "channels")
        layers = _conv_stack(image_shape[0], channels, lambda conv: conv,
                             lambda i, width: [nn.ReLU()])
        flat = math.prod(_smallest_map(image_shape, channels))
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, dense_dim), nn.ReLU(),
                                 nn.Linear(dense_dim, out_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class DeconvDecoder(nn.Module):
    """Latent vector -> image logits: the mirror of :class:`ConvEncoder`."""

    def __init__(self, in_dim: int, image_shape: tuple[int, int, int],
                 channels: tuple[int, ...], dense_dim: int):
        super().__init__()
        check_image_size(image_shape, len(channels), "channels")
        self.start = _smallest_map(image_shape, channels)
        self.fc = nn.Sequential(nn.Linear(in_dim, dense_dim), nn.ReLU(),
                                nn.Linear(dense_dim, math.prod(self.start)), nn.ReLU())
        self.deconv = nn.Sequential(*_deconv_stack(channels, image_shape[0],
                                                   lambda width: [nn.ReLU()]))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(latent).view(-1, *self.start))


def _maybe_sn(layer: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if enabled else layer


def _activation(leak: float) -> nn.Module:
    return nn.LeakyReLU(leak) if leak > 0 else nn.ReLU()


class Generator(nn.Module):
    """GAN generator: two FC layers to the smallest feature map, then stride-2 up-convolutions
    mirroring D's ``channels``; batch norm after every hidden layer, sigmoid output.

    The FC layers use ReLU; the up-convolutions leaky ReLU with slope ``leak`` (ReLU at 0).
    """

    def __init__(self, in_dim: int, image_shape: tuple[int, int, int], channels: tuple[int, ...],
                 fc_dim: int, leak: float = 0.0):
        super().__init__()
        check_image_size(image_shape, len(channels), "d_channels")
        self.start = _smallest_map(image_shape, channels)
        flat = math.prod(self.start)
        self.fc = nn.Sequential(
            nn.Linear(in_dim, fc_dim), nn.BatchNorm1d(fc_dim), nn.ReLU(),
            nn.Linear(fc_dim, flat), nn.BatchNorm1d(flat), nn.ReLU(),
        )
        self.deconv = nn.Sequential(*_deconv_stack(
            channels, image_shape[0], lambda width: [nn.BatchNorm2d(width), _activation(leak)]))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.deconv(self.fc(latent).view(-1, *self.start)))


class Discriminator(nn.Module):
    """GAN discriminator: a conv trunk (4x4 stride-2 convolutions, then FC ``fc_dim``) with a
    real/fake head ``D`` and, when ``head_out`` > 0, an auxiliary head on the same features:
    FC ``head_dim``, then ``head_out`` outputs (InfoGAN's code head ``Q``, AC-GAN's class
    classifier).

    ``batchnorm`` puts batch norm after every hidden layer but the first convolution (the
    InfoGAN paper's MNIST D), the auxiliary head's hidden layer included; ``spectral_norm``
    wraps every layer.

    ``projection_classes`` > 0 makes it a projection discriminator (Miyato and Koyama 2018):
    the logit of an image ``x`` of class ``y`` is ``D(phi(x)) + <embed(y), phi(x)>``, with
    ``phi`` the trunk's features and ``embed`` a learnt ``fc_dim`` vector per class.
    """

    def __init__(self, image_shape: tuple[int, int, int], channels: tuple[int, ...],
                 fc_dim: int, head_out: int = 0, head_dim: int = 0, leak: float = 0.2,
                 spectral_norm: bool = True, batchnorm: bool = False,
                 projection_classes: int = 0):
        super().__init__()
        check_image_size(image_shape, len(channels), "d_channels")
        if head_out and head_dim < 1:
            raise ValueError("an auxiliary head needs a hidden width >= 1")

        def hidden(i: int, width: int) -> list[nn.Module]:
            norm = [nn.BatchNorm2d(width)] if batchnorm and i > 0 else []
            return [*norm, nn.LeakyReLU(leak)]

        def dense(in_dim: int, out_dim: int) -> list[nn.Module]:
            norm = [nn.BatchNorm1d(out_dim)] if batchnorm else []
            return [_maybe_sn(nn.Linear(in_dim, out_dim), spectral_norm), *norm,
                    nn.LeakyReLU(leak)]

        layers = _conv_stack(image_shape[0], channels,
                             lambda conv: _maybe_sn(conv, spectral_norm), hidden)
        flat = math.prod(_smallest_map(image_shape, channels))
        self.trunk = nn.Sequential(*layers, nn.Flatten(), *dense(flat, fc_dim))
        self.d_head = _maybe_sn(nn.Linear(fc_dim, 1), spectral_norm)
        self.aux_head = nn.Sequential(
            *dense(fc_dim, head_dim), _maybe_sn(nn.Linear(head_dim, head_out), spectral_norm),
        ) if head_out else None
        self.embed = _maybe_sn(nn.Embedding(projection_classes, fc_dim), spectral_norm) \
            if projection_classes else None

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Real/fake logits ``[n]`` and the auxiliary head's outputs ``[n, head_out]`` (None
        without one).

        ``labels`` (int ``[n]``) are the classes a projection discriminator is asked about.
        """
        features = self.trunk(images)
        q = self.aux_head(features) if self.aux_head is not None else None
        logits = self.d_head(features).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError("a projection discriminator needs the images' class labels")
            logits = logits + (self.embed(labels) * features).sum(1)
        return logits, q


    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        # checkpoints written before the auxiliary head was renamed call it ``q_head``
        old = prefix + "q_head."
        for key in [k for k in state_dict if k.startswith(old)]:
            state_dict[prefix + "aux_head." + key[len(old):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args)


def init_gan_weights(module: nn.Module) -> None:
    """N(0, 0.02) weights and zero biases (official InfoGAN code), class embeddings included;
    batch-norm scales near 1."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            weight = getattr(layer, "parametrizations", None)
            target = weight.weight.original if weight is not None else layer.weight
            nn.init.normal_(target, 0.0, 0.02)
            if getattr(layer, "bias", None) is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def adversarial_loss(kind: str, real: torch.Tensor | None, fake: torch.Tensor,
                     for_generator: bool) -> torch.Tensor:
    """The discriminator's loss on (real, fake) logits, or the generator's on fake logits.

    ``kind`` is ``"standard"`` (non-saturating cross-entropy) or ``"hinge"``.
    """
    if for_generator:
        return -fake.mean() if kind == "hinge" else F.softplus(-fake).mean()
    if real is None:
        raise ValueError("the discriminator's loss needs the logits of real images")
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()
