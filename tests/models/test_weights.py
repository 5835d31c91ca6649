import os
from pathlib import Path

import pytest

from models.config import TrainConfig
from models.errors import WeightsError
from tests.requirements import WEIGHTS_HOW, require

MNV2_FILE = "mobilenet_v2-b0353104.pth"  # the name torchvision's registry gives the ImageNet checkpoint
SHARED_MNV2 = Path(__file__).resolve().parents[3] / "shared" / "weights" / MNV2_FILE


@pytest.fixture
def imagenet_mnv2() -> Path:
    """The ImageNet MobileNetV2 checkpoint: $WEIGHTS, else ../shared/weights beside the clone."""
    path = Path(os.environ.get("WEIGHTS") or SHARED_MNV2)
    require(path.is_file(), f"the ImageNet MobileNetV2 checkpoint ({path})", WEIGHTS_HOW)
    return path


def test_offline_imagenet_error_names_both_remedies(tmp_path, monkeypatch):
    from models.weights import load_pretrained

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(WeightsError) as info:
        load_pretrained("mobilenet_v2", "imagenet")
    message = str(info.value)
    assert "mobilenet_v2-" in message and ".pth" in message
    assert "hub/checkpoints" in message and "--weights PATH" in message


def test_imagenet_uses_cached_file(imagenet_mnv2, tmp_path, monkeypatch):
    from models.weights import load_pretrained

    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / MNV2_FILE).symlink_to(imagenet_mnv2.resolve())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert "features.0.0.weight" in load_pretrained("mobilenet_v2", "imagenet")


def test_weights_path_loads_into_network(imagenet_mnv2):
    import torch

    from models.networks import build_network

    net = build_network(TrainConfig(network="mobilenet_v2", weights=str(imagenet_mnv2), image_size=32))
    reference = torch.load(imagenet_mnv2, weights_only=True)
    assert torch.equal(net.backbone.features[0][0].weight, reference["features.0.0.weight"])


def test_missing_and_corrupt_weight_files(tmp_path):
    from models.weights import load_pretrained

    with pytest.raises(WeightsError, match="not found"):
        load_pretrained("resnet18", str(tmp_path / "absent.pth"))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(WeightsError, match="corrupt.pth"):
        load_pretrained("resnet18", str(corrupt))


def test_weights_for_wrong_network(tmp_path):
    import torch

    from models.networks import build_network

    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="do not fit network 'resnet18'"):
        build_network(TrainConfig(network="resnet18", weights=str(path), image_size=32))
