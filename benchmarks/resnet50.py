"""A ResNet-50-shaped classifier (He et al. 2016: bottleneck blocks 3-4-6-3, widths 64-512,
expansion 4; 25.6 M parameters with a 1000-way head) with random weights, written here because
torchvision does not import beside this project's torch. For benchmarks and the acceptance run:
the cost and shape of a real face classifier, not its accuracy."""
from __future__ import annotations

import torch
from torch import nn


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (stride here) → 1×1 expand, plus the identity or a projected shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet50(nn.Module):
    """Images [N, 3, H, W] (ImageNet-normalised) → logits [N, classes]."""

    def __init__(self, classes: int = 40, blocks: tuple[int, ...] = (3, 4, 6, 3)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)]
        cin = 64
        for stage, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
            for i in range(n):
                layers.append(Bottleneck(cin, width, stride=2 if i == 0 and stage > 0 else 1))
                cin = width * Bottleneck.expansion
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def random_resnet50(classes: int = 40, seed: int = 0) -> ResNet50:
    """Seeded random weights, BatchNorm statistics moved off their init so that eval mode is not
    an identity, in eval mode (a CelebA-style 40-attribute head by default)."""
    torch.manual_seed(seed)
    net = ResNet50(classes)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()
