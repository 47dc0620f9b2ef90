"""U^2-Net (Qin et al., 2020), the network behind rembg's ``u2net`` model, at its published size.

Written from the paper's description (residual U-blocks RSU-7 to RSU-4 and the dilated
RSU-4F, six encoder and five decoder stages, six side outputs fused by a 1x1
convolution) so that the benchmark can time the real amount of compute without the
176 MB download.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBnRelu(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _up(x, like):
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


class RSU(nn.Module):
    """Residual U-block of ``height`` levels (RSU-7 ... RSU-4): a small U-Net plus its input."""

    def __init__(self, height: int, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.height = height
        self.conv_in = ConvBnRelu(in_ch, out_ch)
        self.enc = nn.ModuleList(
            [ConvBnRelu(out_ch, mid_ch)] + [ConvBnRelu(mid_ch, mid_ch) for _ in range(height - 2)]
        )
        self.bottom = ConvBnRelu(mid_ch, mid_ch, dilation=2)
        self.dec = nn.ModuleList(
            [ConvBnRelu(2 * mid_ch, mid_ch) for _ in range(height - 2)]
            + [ConvBnRelu(2 * mid_ch, out_ch)]
        )

    def forward(self, x):
        x_in = self.conv_in(x)
        skips = []
        h = x_in
        for i, conv in enumerate(self.enc):
            h = conv(h)
            skips.append(h)
            if i < len(self.enc) - 1:
                h = F.max_pool2d(h, 2, stride=2, ceil_mode=True)
        h = self.bottom(h)
        for i, conv in enumerate(self.dec):
            skip = skips[-1 - i]
            if h.shape[2:] != skip.shape[2:]:
                h = _up(h, skip)
            h = conv(torch.cat([h, skip], dim=1))
        return h + x_in


class RSU4F(nn.Module):
    """RSU-4F: dilations 1, 2, 4, 8 instead of pooling (the low-resolution stages)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv_in = ConvBnRelu(in_ch, out_ch)
        self.e1 = ConvBnRelu(out_ch, mid_ch, 1)
        self.e2 = ConvBnRelu(mid_ch, mid_ch, 2)
        self.e3 = ConvBnRelu(mid_ch, mid_ch, 4)
        self.e4 = ConvBnRelu(mid_ch, mid_ch, 8)
        self.d3 = ConvBnRelu(2 * mid_ch, mid_ch, 4)
        self.d2 = ConvBnRelu(2 * mid_ch, mid_ch, 2)
        self.d1 = ConvBnRelu(2 * mid_ch, out_ch, 1)

    def forward(self, x):
        x_in = self.conv_in(x)
        h1 = self.e1(x_in)
        h2 = self.e2(h1)
        h3 = self.e3(h2)
        h4 = self.e4(h3)
        d3 = self.d3(torch.cat([h4, h3], 1))
        d2 = self.d2(torch.cat([d3, h2], 1))
        d1 = self.d1(torch.cat([d2, h1], 1))
        return d1 + x_in


class U2NET(nn.Module):
    """The full U^2-Net (about 44 M parameters, 176 MB as float32).

    ``width`` scales every channel count (1 is the published network; the smoke test
    uses a sliver of it).
    """

    def __init__(self, in_ch: int = 3, out_ch: int = 1, width: float = 1.0) -> None:
        super().__init__()

        def c(n: int) -> int:
            return max(2, round(n * width))

        self.stage1 = RSU(7, in_ch, c(32), c(64))
        self.stage2 = RSU(6, c(64), c(32), c(128))
        self.stage3 = RSU(5, c(128), c(64), c(256))
        self.stage4 = RSU(4, c(256), c(128), c(512))
        self.stage5 = RSU4F(c(512), c(256), c(512))
        self.stage6 = RSU4F(c(512), c(256), c(512))
        self.stage5d = RSU4F(2 * c(512), c(256), c(512))
        self.stage4d = RSU(4, 2 * c(512), c(128), c(256))
        self.stage3d = RSU(5, 2 * c(256), c(64), c(128))
        self.stage2d = RSU(6, 2 * c(128), c(32), c(64))
        self.stage1d = RSU(7, 2 * c(64), c(16), c(64))
        self.sides = nn.ModuleList(
            [nn.Conv2d(c(n), out_ch, 3, padding=1) for n in (64, 64, 128, 256, 512, 512)]
        )
        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)

    def forward(self, x):
        pool = lambda t: F.max_pool2d(t, 2, stride=2, ceil_mode=True)  # noqa: E731
        h1 = self.stage1(x)
        h2 = self.stage2(pool(h1))
        h3 = self.stage3(pool(h2))
        h4 = self.stage4(pool(h3))
        h5 = self.stage5(pool(h4))
        h6 = self.stage6(pool(h5))
        d5 = self.stage5d(torch.cat([_up(h6, h5), h5], 1))
        d4 = self.stage4d(torch.cat([_up(d5, h4), h4], 1))
        d3 = self.stage3d(torch.cat([_up(d4, h3), h3], 1))
        d2 = self.stage2d(torch.cat([_up(d3, h2), h2], 1))
        d1 = self.stage1d(torch.cat([_up(d2, h1), h1], 1))
        sides = [
            _up(side(h), x) if i else side(h)
            for i, (side, h) in enumerate(zip(self.sides, (d1, d2, d3, d4, d5, h6), strict=True))
        ]
        fused = self.outconv(torch.cat(sides, 1))
        return tuple(torch.sigmoid(t) for t in [fused, *sides])
