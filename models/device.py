"""Choosing the torch device: "auto" means CUDA when there is one."""

from __future__ import annotations

from models.errors import ConfigError


def resolve_device(name: str):
    """"auto" → cuda when available, else cpu."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} is invalid; no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device(name)


def cuda_available() -> bool:
    """True when torch sees a CUDA device (imports torch: seconds, so only where a GPU kind is used)."""
    import torch

    return bool(torch.cuda.is_available())


def channels_last(x):
    """``x``, a module or a 4-d image batch, in channels-last memory format: faster convolutions on the CPU
    (oneDNN; MobileNetV2 at 128 px trains about 1.3-1.7x faster, runs inference 1.4x) as on the GPU."""
    import torch

    if isinstance(x, torch.nn.Module):
        return x.to(memory_format=torch.channels_last)
    return x.contiguous(memory_format=torch.channels_last)


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of unmapping it (no-op elsewhere; True when applied).

    Training frees and re-allocates the same large activation buffers every step; by default glibc maps
    each buffer over 128 KB afresh and the kernel zero-fills its pages again. Measured on MobileNetV2 at
    128 px, batch 64, two CPU cores: about 180,000 page faults and 0.6 s of system time per step, against
    4,000 and 0.02 s with this setting (docs/BENCHMARKS.md, "A stronger CPU recipe"). The process keeps
    its peak memory until it exits, which a training run does anyway.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4
    return bool(mallopt(m_mmap_max, 0) and mallopt(m_trim_threshold, 1 << 30) and mallopt(m_top_pad, 64 << 20))
