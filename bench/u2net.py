"""U^2-Net (Qin et al., 2020), the network behind rembg's ``u2net`` model, at its published size.

Written from the paper's description (residual U-blocks RSU-7 to RSU-4 and the dilated
RSU-4F, six encoder and five decoder stages, six side outputs fused by a 1x1
convolution) so that the benchmark can time the real amount of compute without the
176 MB download.
"""

from __future__ import annotations

import math

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


# --- a brief training, so that the benchmark's mask is an object's mask ---------------------------


def train(net: U2NET, *, steps: int, size: int = 160, batch: int = 4, seed: int = 0, log=None):
    """Teach ``net`` to separate the oracle scenes' objects from random backgrounds, briefly.

    With random weights the network's output is noise about 0.5, so no INT8 copy can agree
    with it and the stages after segmentation mesh most of the photo. A few hundred steps
    on the project's own oracle renders (every scene, several elevations and fields of
    view, squeezed square as rembg's input is, shifted, flipped, recoloured and pasted on
    the scenes' grey or on flat, graded or noisy backgrounds) give confident masks of the
    benchmark's photos, as a trained network's are: 400 steps at 160 x 160 gave masks
    within IoU 0.98-0.998 of the truth on the toy, box and sphere scenes at 640 x 480
    (0.84 on the chair's thin legs). The compute per photo is unchanged; the weights are
    still not rembg's.
    """
    import numpy as np
    from PIL import Image

    from core.masks.sessions import NORMALIZATIONS
    from core.oracle import scenes, shapes

    mean, std = (np.array(v, np.float32) for v in NORMALIZATIONS["imagenet"])  # as rembg's U^2-Net
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    grey = np.array(scenes.BACKGROUND_RGB, np.float32) / 255
    pool = []

    def add(scene) -> None:
        """Square as rembg's 320 x 320 input is: a 4:3 render is squeezed, as a photo is."""
        rgb = Image.fromarray(scene.rgb).resize((size, size), Image.Resampling.BILINEAR)
        mask = Image.fromarray(scene.mask).resize((size, size), Image.Resampling.NEAREST)
        pool.append((np.asarray(rgb, np.float32) / 255, np.asarray(mask)))

    wide = size * 4 // 3
    for name in shapes.SHAPE_SCENES:
        for elevation in (0, 15, 30, 45):
            width = (size, wide)[elevation // 15 % 2]
            fov = float(rng.uniform(35, 60))
            add(
                shapes.make_shape_scene(
                    name, width=width, height=size, elevation=elevation, fov_deg=fov
                )
            )
    for name in scenes.SCENE_NAMES:
        for width in (size, wide, wide):
            fov = float(rng.uniform(45, 70))
            add(scenes.make_scene(name, width=width, height=size, fov_deg=fov))

    def background():
        colour = rng.uniform(0, 1, 3).astype(np.float32)
        kind = rng.integers(6)  # half of them the oracle scenes' own grey
        if kind >= 3:
            return np.broadcast_to(grey, (size, size, 3))
        if kind == 0:
            return np.broadcast_to(colour, (size, size, 3))
        if kind == 1:
            other = rng.uniform(0, 1, 3).astype(np.float32)
            t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
            return colour * (1 - t) + other * t
        noise = rng.normal(0, rng.uniform(0.02, 0.15), (size // 8, size // 8, 3))
        return np.clip(colour + np.kron(noise, np.ones((8, 8, 1))), 0, 1).astype(np.float32)

    def sample():
        rgb, mask = pool[rng.integers(len(pool))]
        if rng.random() < 0.5:
            rgb, mask = rgb[:, ::-1], mask[:, ::-1]
        shift = tuple(int(s) for s in rng.integers(-size // 6, size // 6, 2))
        rgb, mask = np.roll(rgb, shift, (0, 1)), np.roll(mask, shift, (0, 1))
        obj = np.clip(rgb * rng.uniform(0.7, 1.3, 3).astype(np.float32), 0, 1)
        img = np.where(mask[..., None], obj, background())
        img = np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1)
        img = img / max(float(img.max()), 1e-6)  # as rembg does
        img = (img - mean) / std
        return img.transpose(2, 0, 1).astype(np.float32), mask[None].astype(np.float32)

    net.train()
    optimiser = torch.optim.Adam(net.parameters(), 1e-3)
    # a steady rate, then falling (cosine) over the last 30% of the steps to settle the edges
    settle = int(0.7 * steps)

    def rate(step: int) -> float:
        if step < settle:
            return 1.0
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - settle) / (steps - settle)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, rate)
    for step in range(steps):
        xs, ys = zip(*(sample() for _ in range(batch)), strict=True)
        x, y = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
        loss = sum(F.binary_cross_entropy(o.clamp(1e-6, 1 - 1e-6), y) for o in net(x))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if log is not None and (step + 1) % 25 == 0:
            log(f"training U^2-Net: step {step + 1}/{steps}, loss {float(loss.detach()):.3f}")
    return net.eval()
