"""The MVR network: frozen DINOv2 teacher + Dinomaly student, one image batch at a time."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mvr3d.models.mvr.student import Student, StudentConfig, fuse_groups


class MVRNet(nn.Module):
    def __init__(
        self, teacher: nn.Module, layers: tuple[int, ...], student: StudentConfig,
        mean: tuple[float, ...] = (0.485, 0.456, 0.406), std: tuple[float, ...] = (0.229, 0.224, 0.225),
    ) -> None:
        super().__init__()
        if max(max(g) for g in student.groups) >= len(layers):
            raise ValueError("student groups refer to more layers than the teacher provides")
        # The teacher's input statistics; not persistent: they come from the backbone spec.
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.teacher = teacher
        self.layers = tuple(layers)
        self.student = Student(student)

    def teacher_layers(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Patch tokens (B, T, D) of the chosen teacher blocks for (B, 3, h, w) RGB images in
        [0, 1]; class/register tokens dropped."""
        with torch.no_grad():
            return self.teacher.forward_intermediates(
                (images.to(self.mean.dtype) - self.mean) / self.std,
                indices=list(self.layers),
                output_fmt="NLC",
                intermediates_only=True,
                norm=False,
                stop_early=True,
            )

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Grouped teacher targets and student reconstructions, each a list of (B, T, D)."""
        encoded = self.teacher_layers(images)
        decoded = self.student(torch.stack(encoded).mean(dim=0))
        groups = self.student.config.groups
        return fuse_groups(encoded, groups), fuse_groups(decoded, groups)

    def token_grid(self, images: torch.Tensor) -> tuple[int, int]:
        patch = self.teacher.patch_embed.patch_size
        return images.shape[-2] // patch[0], images.shape[-1] // patch[1]

    @torch.no_grad()
    def anomaly_maps(self, images: torch.Tensor) -> torch.Tensor:
        """(B, gh, gw) mean over groups of 1 - cos(teacher, student) on the token grid."""
        teacher, student = self(images)
        return self._distance(teacher, student, images)

    @torch.no_grad()
    def reference_maps(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """(B, gh, gw) mean over groups of 1 - cos(teacher of ``images``, teacher of ``references``):
        the anomaly maps against reference images of the same views instead of the student."""
        groups = self.student.config.groups
        both = fuse_groups(self.teacher_layers(torch.cat([images, references])), groups)
        count = len(images)
        return self._distance([g[:count] for g in both], [g[count:] for g in both], images)

    def _distance(self, ours: list[torch.Tensor], theirs: list[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        distance = torch.stack(
            [1 - F.cosine_similarity(a.float(), b.float(), dim=-1) for a, b in zip(ours, theirs, strict=True)]
        ).mean(dim=0)
        return distance.reshape(images.shape[0], *self.token_grid(images))
