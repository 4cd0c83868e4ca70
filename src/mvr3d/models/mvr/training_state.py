"""Resumable training: the student, optimiser, schedule and random states mid-fit.

A run that is killed restarts from its last saved iteration and, with the same config
and data, ends with bit-identical weights (on the CPU) to a run that never stopped.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import Module
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from mvr3d.errors import CheckpointError
from mvr3d.models.components.weights import torch_load_problem
from mvr3d.models.mvr.config import RUNTIME_FIELDS
from mvr3d.utils.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

STATE_NAME = "training-state.pt"
STATE_VERSION = 1


@dataclass
class TrainingState:
    iteration: int  # iterations completed
    student: dict
    optimizer: dict
    scheduler: dict
    numpy_rng: dict
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor]
    history: list[float]


def fingerprint(clouds: Sequence[np.ndarray]) -> str:
    """sha256 over the training clouds, so a state is never resumed on other data."""
    digest = hashlib.sha256()
    for cloud in clouds:
        array = np.ascontiguousarray(cloud)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_state(path: Path, state: TrainingState, config: dict, data_hash: str) -> None:
    payload = {
        "version": STATE_VERSION,
        "config": config,
        "data": data_hash,
        "iteration": state.iteration,
        "student": state.student,
        "optimizer": state.optimizer,
        "scheduler": state.scheduler,
        "numpy_rng": state.numpy_rng,
        "torch_rng": state.torch_rng,
        "cuda_rng": state.cuda_rng,
        "history": state.history,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: Path, config: dict, data_hash: str) -> TrainingState:
    """The saved state, after checking it belongs to this config and these scans."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged files
        raise CheckpointError(
            f"{path}: cannot read the training state ({torch_load_problem(error)}); delete it to start over"
        ) from None
    if not isinstance(payload, dict) or payload.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path}: not an mvr3d training state of version {STATE_VERSION}; delete it to start over")
    _check_payload(path, payload)
    # How the run executes may change between runs; everything else must match.
    keys = (set(config) | set(payload["config"])) - set(RUNTIME_FIELDS)
    changed = sorted(key for key in keys if config.get(key) != payload["config"].get(key))
    if changed:
        raise CheckpointError(
            f"{path}: saved by a fit with other settings ({', '.join(changed)}); "
            "use the same settings to resume, or delete the file to start over"
        )
    if payload["data"] != data_hash:
        raise CheckpointError(f"{path}: saved by a fit on other training scans; delete it to start over")
    fields = TrainingState.__dataclass_fields__
    return TrainingState(**{name: payload[name] for name in fields})


_PAYLOAD_TYPES = {
    "config": dict, "data": str, "iteration": int, "student": dict, "optimizer": dict, "scheduler": dict,
    "numpy_rng": dict, "torch_rng": torch.Tensor, "cuda_rng": list, "history": list,
}  # fmt: skip


def _check_payload(path: Path, payload: dict) -> None:
    """Every field present with its type, or CheckpointError naming the field."""
    for name, kind in _PAYLOAD_TYPES.items():
        if name not in payload:
            raise CheckpointError(f"{path}: training state lacks field '{name}'; delete it to start over")
        value = payload[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CheckpointError(
                f"{path}: training state field '{name}' must be a {kind.__name__}, got {type(value).__name__}; "
                "delete it to start over"
            )


class StateSaver:
    """Saves a fit's training state every few iterations and restores it on the next fit."""

    def __init__(self, path: Path, config: dict, clouds: Sequence[np.ndarray], every: int) -> None:
        self.path, self.config, self.every = path, config, every
        self.data = fingerprint(clouds)

    def restore(
        self, student: Module, optimizer: Optimizer, scheduler: LRScheduler, rng: np.random.Generator
    ) -> tuple[int, list[float]]:
        """Load a saved state into the training objects; the iteration to go on from and the
        loss history so far."""
        if not self.path.is_file():
            return 0, []
        state = load_state(self.path, self.config, self.data)
        student.load_state_dict(state.student)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        rng.bit_generator.state = state.numpy_rng
        torch.set_rng_state(state.torch_rng)
        if state.cuda_rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state.cuda_rng)
        log.info("resuming training from iteration %d (%s)", state.iteration, self.path)
        return state.iteration, list(state.history)

    def step(
        self, done: int, student: Module, optimizer: Optimizer, scheduler: LRScheduler,
        rng: np.random.Generator, history: list[float],
    ) -> None:
        if done % self.every and done != self.config["iterations"]:
            return
        state = TrainingState(
            iteration=done,
            student=student.state_dict(),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            numpy_rng=rng.bit_generator.state,
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            history=list(history),
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_state(self.path, state, self.config, self.data)
