"""Global cosine loss with hard mining (Dinomaly; MVR II-D4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _scale_easy_gradients(mask: torch.Tensor, factor: float):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, grad * factor, grad)

    return hook


def global_cosine_hard_mining(
    teacher: list[torch.Tensor],
    student: list[torch.Tensor],
    easy_fraction: float = 0.9,
    easy_factor: float = 0.1,
) -> torch.Tensor:
    """Mean over groups of 1 - cos(flattened teacher map, flattened student map).

    Tensors are (B, T, D). The gradient reaching the ``easy_fraction`` best-restored token
    locations is multiplied by ``easy_factor`` so training concentrates on hard ones.
    """
    total = torch.zeros((), device=teacher[0].device)
    for target, output in zip(teacher, student, strict=True):
        target = target.detach().float()
        output = output.float()
        if output.requires_grad and easy_fraction > 0:
            with torch.no_grad():
                distance = 1 - F.cosine_similarity(target, output, dim=-1)  # (B, T)
                keep = max(1, round(distance.numel() * (1 - easy_fraction)))
                threshold = torch.topk(distance.flatten(), keep).values[-1]
                easy = (distance < threshold).unsqueeze(-1)
            output.register_hook(_scale_easy_gradients(easy, easy_factor))
        flat_t = target.reshape(target.shape[0], -1)
        flat_s = output.reshape(output.shape[0], -1)
        total = total + (1 - F.cosine_similarity(flat_t, flat_s, dim=-1)).mean()
    return total / len(teacher)
