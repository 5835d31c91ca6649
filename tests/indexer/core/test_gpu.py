"""GPU helpers: auto falls back to the CPU; an explicit --gpu without one is a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.core import gpu as gpu_module
from indexer.core.build import build_index
from indexer.core.errors import InputError
from indexer.core.factory import IndexParams
from indexer.core.gpu import faiss_gpu_count, resolve_gpu, to_cpu
from tests.requirements import GPU_HOW, require


@pytest.fixture
def no_gpu(monkeypatch):
    """FAISS as the CPU-only build sees it, so these run on a GPU machine too."""
    monkeypatch.setattr(gpu_module, "faiss_gpu_count", lambda: 0)


def test_auto_uses_cpu_without_gpu_and_explicit_gpu_errors(no_gpu):
    assert resolve_gpu(None) is False and resolve_gpu(False) is False
    with pytest.raises(InputError, match="--gpu: FAISS has no usable GPU"):
        resolve_gpu(True)


def test_build_on_auto_device_equals_the_cpu_build_without_a_gpu(no_gpu):
    x = np.random.default_rng(0).random((3000, 16), dtype=np.float32)
    cpu, cpu_info = build_index(IndexParams("ivf", nlist=16, nprobe=4), x, np.arange(3000), device="cpu")
    auto, auto_info = build_index(IndexParams("ivf", nlist=16, nprobe=4), x, np.arange(3000), device="auto")
    assert auto_info.device == cpu_info.device == "cpu"
    assert np.array_equal(cpu.search(x[:20], 10)[1], auto.search(x[:20], 10)[1])
    with pytest.raises(InputError, match="device must be one of"):
        build_index(IndexParams("flat"), x, np.arange(3000), device="tpu")


def test_to_cpu_leaves_cpu_index_alone():
    import faiss

    index = faiss.IndexFlatIP(4)
    assert to_cpu(index) is index


@pytest.mark.gpu
def test_gpu_build_trains_on_the_same_sample_and_agrees_with_cpu():
    require(faiss_gpu_count() > 0, "FAISS's GPU build (faiss-gpu) and a GPU", GPU_HOW)
    x = np.random.default_rng(0).random((20000, 16), dtype=np.float32)
    cpu, cpu_info = build_index(IndexParams("flat"), x, np.arange(20000), device="cpu")
    gpu, gpu_info = build_index(IndexParams("flat"), x, np.arange(20000), device="gpu")
    assert gpu_info.device == "gpu" and gpu_info.train_n == cpu_info.train_n
    assert np.array_equal(cpu.search(x[:5], 10)[1], gpu.search(x[:5], 10)[1])
