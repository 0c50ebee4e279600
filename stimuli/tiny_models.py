"""Tiny randomly initialised models for tests: one per activation layout (torch)."""
from __future__ import annotations

import torch
from torch import nn


class TinyCNN(nn.Module):
    """Channels-first CNN with a residual block whose shared ReLU is reached via `block:input`."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 5, stride=2, padding=2)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.bn3 = nn.BatchNorm2d(2 * width)
        self.block = nn.ReLU()
        self.relu = nn.ReLU()
        self.head = nn.Linear(2 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.bn1(self.conv1(x)))
        x = self.block(self.bn2(self.conv2(x)) + x[:, :, ::2, ::2])
        x = self.relu(self.bn3(self.conv3(x)))
        return self.head(x.mean((2, 3)))


class TinyConvNeXtBlock(nn.Module):
    """ConvNeXt-style block: depthwise conv (NCHW), then norm and MLP in channels-last."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_dw(x).permute(0, 2, 3, 1)
        y = self.fc2(self.act(self.fc1(self.norm(y)))).permute(0, 3, 1, 2)
        return x + y


class TinyConvNeXt(nn.Module):
    """Two ConvNeXt-style blocks after a patchify stem."""

    def __init__(self, dim: int = 16):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 8, stride=8)
        self.blocks = nn.Sequential(TinyConvNeXtBlock(dim), TinyConvNeXtBlock(dim))
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class TinyViTBlock(nn.Module):
    """Pre-norm transformer block on (N, T, C) tokens."""

    def __init__(self, dim: int, heads: int = 2):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class TinyViT(nn.Module):
    """Patch-16 ViT with a class token and two blocks (token layout)."""

    def __init__(self, dim: int = 16, patch: int = 16):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.blocks = nn.Sequential(TinyViTBlock(dim), TinyViTBlock(dim))
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1)
        return self.head(self.blocks(tokens)[:, 0])


def build(kind: str) -> nn.Module:
    """A tiny model by kind: cnn, convnext or vit."""
    return {"cnn": TinyCNN, "convnext": TinyConvNeXt, "vit": TinyViT}[kind]()
