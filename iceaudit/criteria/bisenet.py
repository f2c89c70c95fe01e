"""A BiSeNet face parser (19 CelebAMask-HQ classes), state-dict compatible with the
widely shared zllrunning/face-parsing.PyTorch checkpoint ``79999_iter.pth``.

ResNet-18 spatial path + context path with attention refinement, feature fusion,
one main and two auxiliary heads (the auxiliary heads exist only so that the
checkpoint loads strictly). Written from the architecture description; no
torchvision. Inputs are ImageNet-normalised RGB at ``size``² (512 for that
checkpoint); logits come back at the input image's resolution.

Label orders differ between checkpoints (see `regions.LABEL_ORDERS`): the
adapter must be told which one its weights use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from iceaudit.criteria.regions import label_order
from iceaudit.errors import UserError, brief

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        feat8 = self.layer2(self.layer1(x))  # 1/8
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32


class AttentionRefinement(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x):
        feat = self.conv(x)
        atten = torch.sigmoid(self.bn_atten(self.conv_atten(feat.mean(dim=(2, 3), keepdim=True))))
        return feat * atten


class ContextPath(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.resnet = ResNet18()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, 1, 1, 0)

    def forward(self, x):
        feat8, feat16, feat32 = self.resnet(x)
        avg = self.conv_avg(feat32.mean(dim=(2, 3), keepdim=True))
        up32 = self.arm32(feat32) + F.interpolate(avg, feat32.shape[2:], mode="nearest")
        up32 = self.conv_head32(F.interpolate(up32, feat16.shape[2:], mode="nearest"))
        up16 = self.arm16(feat16) + up32
        up16 = self.conv_head16(F.interpolate(up16, feat8.shape[2:], mode="nearest"))
        return feat8, up16, up32


class FeatureFusion(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, 1, 1, 0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, spatial, context):
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        atten = torch.sigmoid(self.conv2(F.relu(self.conv1(feat.mean(dim=(2, 3), keepdim=True)))))
        return feat * atten + feat


class Head(nn.Module):
    def __init__(self, cin: int, mid: int, n_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.conv_out = nn.Conv2d(mid, n_classes, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    def __init__(self, n_classes: int = 19) -> None:
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = Head(256, 256, n_classes)
        self.conv_out16 = Head(128, 64, n_classes)  # auxiliary heads: unused at inference
        self.conv_out32 = Head(128, 64, n_classes)

    def forward(self, x):
        feat8, cp8, _ = self.cp(x)
        out = self.conv_out(self.ffm(feat8, cp8))
        return F.interpolate(out, x.shape[2:], mode="bilinear", align_corners=True)


class BiSeNetParser(nn.Module):
    """images [N,3,R,R] in [-1,1] -> logits [N, 19, R, R]; ``labels`` in the checkpoint's order."""

    def __init__(self, net: BiSeNet, labels: Sequence[str], size: int = 512) -> None:
        super().__init__()
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.labels = list(labels)
        self.size = int(size)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    @classmethod
    def random(cls, order: str = "bisenet", seed: int = 0, size: int = 512) -> "BiSeNetParser":
        labels = label_order(order)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return cls(BiSeNet(len(labels)), labels, size)

    @classmethod
    def from_file(cls, path: str | Path, order: str = "bisenet", size: int = 512) -> "BiSeNetParser":
        from iceaudit.criteria.fan import _load_state

        path = Path(path)
        if not path.is_file():
            raise UserError(
                f"face parser weights not found: {path}",
                hint="Pass a BiSeNet CelebAMask-HQ checkpoint (e.g. zllrunning/face-parsing.PyTorch's "
                "79999_iter.pth) with --parser PATH, and its label order with --label-order.",
            )
        labels = label_order(order)
        net = BiSeNet(len(labels))
        try:
            net.load_state_dict(_load_state(path))
        except RuntimeError as err:
            raise UserError(f"{path}: not a 19-class BiSeNet face parser ({brief(err)})") from None
        return cls(net, labels, size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        r = images.shape[-1]
        x = (images + 1) / 2
        if r != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        logits = self.net((x - self.mean) / self.std)
        if r != self.size:
            logits = F.interpolate(logits, size=(r, r), mode="bilinear", align_corners=False)
        return logits
