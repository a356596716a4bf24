"""Shared pytest set-up: tests run on CPU, single-threaded BLAS for stable timings.

Tests marked ``gpu`` run on the CUDA device and are skipped, with a visible reason,
where there is none, unless ``MATCONV_PORT_GPU_TEST_DEVICE=cpu`` asks for the CPU dry
run of the same tests (``nccl`` tests still skip then)."""
from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


GPU_TEST_DEVICE_ENV = "MATCONV_PORT_GPU_TEST_DEVICE"


def gpu_test_device() -> torch.device:
    """The device the ``gpu`` tests run on: ``$MATCONV_PORT_GPU_TEST_DEVICE`` or ``cuda``."""
    return torch.device(os.environ.get(GPU_TEST_DEVICE_ENV) or "cuda")


def pytest_collection_modifyitems(config, items):
    dry_cpu = os.environ.get(GPU_TEST_DEVICE_ENV, "") == "cpu"
    cuda = torch.cuda.is_available()
    no_cuda = pytest.mark.skip(reason="no CUDA device: run benchmarks/gpu_check.sh on a GPU machine")
    no_nccl = pytest.mark.skip(reason="NCCL needs CUDA (not part of the CPU dry run): run benchmarks/gpu_check.sh "
                                      "on a GPU machine")
    for item in items:
        if "nccl" in item.keywords and not cuda:
            item.add_marker(no_nccl)
        elif "gpu" in item.keywords and not cuda and not dry_cpu:
            item.add_marker(no_cuda)


@pytest.fixture(scope="session")
def synthetic_train_root(tmp_path_factory):
    """One tiny synthetic UCF101-style dataset (2 classes, 4 videos each, 16 frames of
    24 x 32) shared by the training-loop tests of the session."""
    from matconv_port.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("syn_train")
    make_synthetic_dataset(str(root), num_classes=2, videos_per_class=4, frames=16, height=24, width=32, seed=3)
    return str(root)
