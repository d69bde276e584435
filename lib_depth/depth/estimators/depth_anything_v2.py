"""Depth Anything V2 (DINOv2 ViT backbone + DPT head) in plain torch.

The WebUI pins transformers 4.30.2, which has no Depth Anything, and timm's DINOv2 differs across
the timm versions WebUI installs carry, so the whole network is here. Module and parameter names
follow the original release (`pretrained.*` backbone, `depth_head.*` head) so its checkpoints load
as they are; `dav2_weights` maps the Hugging Face layout onto these names.

Position embeddings: the grid is trained for 518x518 (37x37 patches). For any other input the two
reference implementations resample it differently:
  - the original release (`interpolate_pos_encoding` in its dinov2.py) calls bicubic
    `interpolate(scale_factor=((rows + 0.1) / 37, (cols + 0.1) / 37))`: the +0.1 offset is a
    work-around for a floating point rounding issue in DINO; because a scale factor is given, the
    sampling positions use that scale, i.e. they are spaced 37 / (n + 0.1) apart, not 37 / n;
  - transformers' Dinov2 calls bicubic `interpolate(size=(rows, cols))`: spacing 37 / n.
Both leave the grid untouched for a square 518x518 input. Elsewhere they differ (on a random
grid, by about 40% of its range at 196x280; less on trained, smooth grids), so `pos_embed_mode`
selects which one this model reproduces:
"original" (the release's numerics; default when loading its .pth) or "transformers" (when
loading the -hf safetensors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...validation import check_image_batch
from ..midas_input import cubic_resize

PATCH_SIZE = 14
DAV2_NET_SIZE = 518
TRAINED_GRID = 37  # 518 / 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PosEmbedMode = Literal["original", "transformers"]
POS_EMBED_MODES: tuple[str, ...] = ("original", "transformers")


@dataclass(frozen=True)
class DAv2Config:
    """Architecture of one Depth Anything V2 model (the original release's `model_configs`)."""

    encoder: str
    embed_dim: int
    depth: int
    num_heads: int
    features: int
    out_channels: tuple[int, int, int, int]
    layer_indices: tuple[int, int, int, int]  # blocks whose outputs feed the DPT head
    mlp_ratio: float = 4.0
    pos_grid: int = TRAINED_GRID
    layer_norm_eps: float = 1e-6
    head_features: int = 32


# encoder -> architecture, as in the original dpt.py / run.py
CONFIGS: dict[str, DAv2Config] = {
    "vits": DAv2Config("vits", 384, 12, 6, 64, (48, 96, 192, 384), (2, 5, 8, 11)),
    "vitb": DAv2Config("vitb", 768, 12, 12, 128, (96, 192, 384, 768), (2, 5, 8, 11)),
    "vitl": DAv2Config("vitl", 1024, 24, 16, 256, (256, 512, 1024, 1024), (4, 11, 17, 23)),
}


class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, config: DAv2Config) -> None:
        super().__init__()
        dim = config.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = Attention(dim, config.num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV2(nn.Module):
    """The DINOv2 ViT, returning the normalised tokens of the requested blocks."""

    def __init__(self, config: DAv2Config, pos_embed_mode: PosEmbedMode = "original") -> None:
        super().__init__()
        if pos_embed_mode not in POS_EMBED_MODES:
            raise ValueError(f"pos_embed_mode must be one of {POS_EMBED_MODES}, got {pos_embed_mode!r}")
        dim = config.embed_dim
        self.pos_grid = config.pos_grid
        self.pos_embed_mode: PosEmbedMode = pos_embed_mode
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.pos_grid**2 + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # training only; kept so checkpoints load strictly
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)

    def position_embedding(self, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
        """[1, 1 + rows*cols, dim] position embedding for a rows x cols patch grid (see module doc)."""
        grid = self.pos_grid
        if rows == grid and cols == grid:
            return self.pos_embed.to(dtype)
        pos = self.pos_embed.float()
        if pos.device.type == "mps":  # bicubic resampling is missing from some MPS builds; 37x37 is cheap on the CPU
            return self._resample(pos.cpu(), rows, cols).to(device=pos.device, dtype=dtype)
        return self._resample(pos, rows, cols).to(dtype)

    def _resample(self, pos: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        grid = self.pos_grid
        patches = pos[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        if self.pos_embed_mode == "original":
            scale = ((rows + 0.1) / math.sqrt(grid * grid), (cols + 0.1) / math.sqrt(grid * grid))
            patches = F.interpolate(patches, scale_factor=scale, mode="bicubic", antialias=False)
        else:
            patches = F.interpolate(patches, size=(rows, cols), mode="bicubic", align_corners=False)
        if patches.shape[-2:] != (rows, cols):
            raise RuntimeError(f"position embedding resampled to {tuple(patches.shape[-2:])}, expected {(rows, cols)}")
        patches = patches.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat((pos[:, :1], patches), dim=1)

    def forward(self, x: torch.Tensor, layer_indices: tuple[int, ...]) -> list[torch.Tensor]:
        rows, cols = x.shape[-2] // PATCH_SIZE, x.shape[-1] // PATCH_SIZE
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens), dim=1)
        tokens = tokens + self.position_embedding(rows, cols, tokens.dtype)
        outputs = []
        for index, block in enumerate(self.blocks):
            tokens = block(tokens)
            if index in layer_indices:
                outputs.append(self.norm(tokens))
        return outputs


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FeatureFusionBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size: tuple[int, int] | None = None):
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        resize = {"scale_factor": 2} if size is None else {"size": size}
        return self.out_conv(F.interpolate(x, **resize, mode="bilinear", align_corners=True))


class Scratch(nn.Module):
    def __init__(self, out_channels: tuple[int, ...], features: int, head_features: int) -> None:
        super().__init__()
        for index, channels in enumerate(out_channels, start=1):
            setattr(self, f"layer{index}_rn", nn.Conv2d(channels, features, 3, padding=1, bias=False))
        for index in range(1, 5):
            setattr(self, f"refinenet{index}", FeatureFusionBlock(features))
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, head_features, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(head_features, 1, 1),
            nn.ReLU(),
        )


class DPTHead(nn.Module):
    def __init__(self, config: DAv2Config) -> None:
        super().__init__()
        channels = config.out_channels
        self.projects = nn.ModuleList(nn.Conv2d(config.embed_dim, c, 1) for c in channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(channels[0], channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(channels[1], channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(channels[3], channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = Scratch(channels, config.features, config.head_features)

    def forward(self, features: list[torch.Tensor], rows: int, cols: int) -> torch.Tensor:
        maps = []
        for index, tokens in enumerate(features):
            grid = tokens[:, 1:].permute(0, 2, 1).reshape(tokens.shape[0], tokens.shape[-1], rows, cols)
            maps.append(self.resize_layers[index](self.projects[index](grid)))
        s = self.scratch
        layer1, layer2 = s.layer1_rn(maps[0]), s.layer2_rn(maps[1])
        layer3, layer4 = s.layer3_rn(maps[2]), s.layer4_rn(maps[3])
        path = s.refinenet4(layer4, size=layer3.shape[2:])
        path = s.refinenet3(path, layer3, size=layer2.shape[2:])
        path = s.refinenet2(path, layer2, size=layer1.shape[2:])
        path = s.refinenet1(path, layer1)
        out = s.output_conv1(path)
        out = F.interpolate(out, (rows * PATCH_SIZE, cols * PATCH_SIZE), mode="bilinear", align_corners=True)
        return s.output_conv2(out)


class DepthAnythingV2(nn.Module):
    """[B, 3, H, W] normalised input (H, W multiples of 14) -> [B, 1, H, W] relative inverse depth."""

    def __init__(self, config: DAv2Config, pos_embed_mode: PosEmbedMode = "original") -> None:
        super().__init__()
        self.config = config
        self.pretrained = DinoV2(config, pos_embed_mode)
        self.depth_head = DPTHead(config)

    @property
    def pos_embed_mode(self) -> PosEmbedMode:
        return self.pretrained.pos_embed_mode

    @pos_embed_mode.setter
    def pos_embed_mode(self, mode: PosEmbedMode) -> None:
        if mode not in POS_EMBED_MODES:
            raise ValueError(f"pos_embed_mode must be one of {POS_EMBED_MODES}, got {mode!r}")
        self.pretrained.pos_embed_mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % PATCH_SIZE or width % PATCH_SIZE:
            raise ValueError(f"Depth Anything V2: input {width}x{height} must be a multiple of {PATCH_SIZE} each side")
        rows, cols = height // PATCH_SIZE, width // PATCH_SIZE
        features = self.pretrained(x, self.config.layer_indices)
        return self.depth_head(features, rows, cols)


def build_depth_anything_v2(encoder: str, pos_embed_mode: PosEmbedMode = "original") -> DepthAnythingV2:
    """An untrained model of the named size ("vits", "vitb", "vitl")."""
    if encoder not in CONFIGS:
        raise ValueError(f"Depth Anything V2: unknown encoder {encoder!r}; choose one of {sorted(CONFIGS)}")
    return DepthAnythingV2(CONFIGS[encoder], pos_embed_mode).eval()


def dav2_input_size(height: int, width: int, resolution: int = DAV2_NET_SIZE) -> tuple[int, int]:
    """(height, width) of the model input: the reference "lower_bound" keep-aspect rule.

    Scale so that the shorter side reaches `resolution`, round each side to a multiple of 14
    (half to even, as numpy does) and round up instead where that falls below `resolution`.
    """
    scale_h = resolution / height
    scale_w = resolution / width
    if scale_w > scale_h:
        scale_h = scale_w
    else:
        scale_w = scale_h
    return _lower_bound_multiple(scale_h * height, resolution), _lower_bound_multiple(scale_w * width, resolution)


def _lower_bound_multiple(value: float, minimum: int) -> int:
    rounded = int(round(value / PATCH_SIZE)) * PATCH_SIZE
    return rounded if rounded >= minimum else math.ceil(value / PATCH_SIZE) * PATCH_SIZE


def prepare_dav2_input(images: torch.Tensor, resolution: int = DAV2_NET_SIZE) -> torch.Tensor:
    """[B, 3, H, W] images in [-1, 1], any float dtype and device -> Depth Anything V2 input.

    Float32 [B, 3, h, w] on the images' device: the reference's cv2 INTER_CUBIC resize (here as
    float32 matrix products) to `dav2_input_size`, then ImageNet mean/std.
    """
    check_image_batch(images)
    unit = (images.to(torch.float32) + 1.0) * 0.5
    resized = cubic_resize(unit, dav2_input_size(*images.shape[-2:], resolution))
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (resized - mean) / std
