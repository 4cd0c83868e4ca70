"""How much memory a device has free, and a clear error when a job will not fit."""

from __future__ import annotations

from pathlib import Path

import torch

from mvr3d.errors import ResourceError

GIB = 2**30


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (CUDA: free plus PyTorch's cached blocks); None if unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def require(needed: int, device: torch.device, what: str, advice: str) -> None:
    """Raise ResourceError, naming the sizes, when ``needed`` bytes are not free."""
    free = available_bytes(device)
    if free is not None and needed > free:
        raise ResourceError(
            f"{what} needs about {needed / GIB:.1f} GiB on {device} but only {free / GIB:.1f} GiB is free; {advice}"
        )


def is_out_of_memory(error: BaseException) -> bool:
    """True for the allocators' out-of-memory errors (CUDA, CPU), not for other RuntimeErrors."""
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(error, RuntimeError) and "alloc" in str(error).lower()


def out_of_memory(needed: int, device: torch.device, what: str, advice: str) -> ResourceError:
    """The ResourceError to raise in place of an allocator's out-of-memory error."""
    return ResourceError(f"{what} ran out of memory on {device} (estimated need {needed / GIB:.1f} GiB); {advice}")
