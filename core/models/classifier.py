"""A small CNN digit classifier: the project's own judge of generated MNIST digits.

Its 128-d penultimate features play the role Inception-v3's pool features play in FID (Heusel et al.
2017): "FID-MNIST" is the Fréchet distance between Gaussians fitted to these features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ClassifierConfig:
    channels: int = 32
    feature_dim: int = 128
    num_classes: int = 10
    dropout: float = 0.3

    def to_dict(self) -> dict:
        return asdict(self)


class MNISTClassifier(nn.Module):
    """Two conv-conv-pool stages (28 -> 14 -> 7), a feature layer, and a linear read-out."""

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        c = config.channels

        def stage(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                    nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]

        self.body = nn.Sequential(*stage(1, c), *stage(c, 2 * c), nn.Flatten(),
                                  nn.Linear(2 * c * 7 * 7, config.feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) images in [-1, 1] -> (N, feature_dim) features."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes)."""
        return self.head(self.body(x))
