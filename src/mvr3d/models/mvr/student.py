"""Dinomaly-style student: noisy bottleneck plus a linear-attention decoder (MVR II-D2)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class StudentConfig:
    embed_dim: int = 384
    num_heads: int = 6
    depth: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.2  # bottleneck dropout: the noise that keeps the student from copying
    groups: tuple[tuple[int, ...], ...] = ((0, 1, 2, 3), (4, 5, 6, 7))


class Bottleneck(nn.Module):
    """d -> 4d -> d MLP with dropout on its input, hidden and output (Dinomaly's bMlp)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(F.gelu(self.fc1(self.drop(x))))
        return self.drop(self.fc2(x))


class LinearAttention(nn.Module):
    """Softmax-free attention with the ELU+1 kernel: it cannot focus on a single token,
    so the decoder must reconstruct from global context rather than copy locally."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        # Sums over all tokens overflow float16 (scoring's autocast type), so there they
        # run in float32; bfloat16 (training's) has float32's range and stays as it is.
        exact = torch.autocast(x.device.type, enabled=False) if qkv.dtype == torch.float16 else nullcontext()
        with exact:
            q, k, v = qkv.permute(2, 0, 3, 1, 4).float().unbind(0)  # (B, heads, T, d)
            q, k = F.elu(q) + 1.0, F.elu(k) + 1.0
            kv = torch.einsum("bhtd,bhte->bhde", k, v)
            normaliser = 1.0 / (torch.einsum("bhtd,bhd->bht", q, k.sum(dim=2)) + 1e-6)
            out = torch.einsum("bhtd,bhde,bht->bhte", q, kv, normaliser)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim).to(x.dtype))


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-8)
        self.attn = LinearAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-8)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Student(nn.Module):
    """Maps the mean of the teacher's layers to reconstructions of every layer."""

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.bottleneck = Bottleneck(dim, int(dim * config.mlp_ratio), config.dropout)
        self.blocks = nn.ModuleList(
            DecoderBlock(dim, config.num_heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.apply(_init_weights)

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """tokens: (B, T, D) fused teacher features -> decoder outputs, deepest first."""
        x = self.bottleneck(tokens)
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs[::-1]  # decoder block i mirrors encoder layer depth-1-i


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.01, a=-0.02, b=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def fuse_groups(layers: list[torch.Tensor], groups: tuple[tuple[int, ...], ...]) -> list[torch.Tensor]:
    """Mean of each group of layers: Dinomaly's 'loose' reconstruction target."""
    return [torch.stack([layers[i] for i in group]).mean(dim=0) for group in groups]
