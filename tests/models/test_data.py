import numpy as np
import pytest

from models.config import AUGMENTS
from models.data import ImageDataset, augmentation
from models.errors import ConfigError
from models.preprocess import PreprocessSpec


@pytest.mark.parametrize("policy", AUGMENTS)
def test_every_policy_gives_random_views_of_the_model_size(tiny_items, policy):
    import torch

    torch.manual_seed(0)
    dataset = ImageDataset(tiny_items[:1], np.zeros(1, np.int64), PreprocessSpec(48), augment=True, policy=policy)
    views = [dataset[0][0] for _ in range(4)]
    assert all(view.shape == (3, 48, 48) and view.dtype == torch.float32 for view in views)
    assert any(not torch.equal(views[0], view) for view in views[1:]), "the views are random"


def test_policies_differ_and_a_bad_one_names_the_field(tiny_items):
    from torchvision import transforms

    kinds = {policy: type(augmentation(32, policy).transforms[-1]) for policy in AUGMENTS}
    assert kinds == {"crop-flip-jitter": transforms.ColorJitter, "crop-flip-trivial": transforms.TrivialAugmentWide,
                     "crop-flip-rand": transforms.RandAugment}
    with pytest.raises(ConfigError, match="augment: 'mixup' is invalid"):
        augmentation(32, "mixup")
