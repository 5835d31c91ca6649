"""PCA-whitening of backbone features: the fit, its guards, and the torch layer against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ConfigError
from models.pca import PcaWhitening, WhiteningSpec, apply_whitening, fit_whitening, normalise_features


def _features(n=200, width=32, seed=0) -> np.ndarray:
    """Non-negative (post-ReLU-like) features with a few strong axes, as pooled CNN features have."""
    rng = np.random.default_rng(seed)
    scales = np.geomspace(10, 0.01, width)
    return np.abs(rng.normal(size=(n, width)) * scales).astype(np.float32)


def test_plain_pca_keeps_the_top_axes_orthonormal():
    mean, projection = fit_whitening(_features(), WhiteningSpec(dim=8, whitening=0))
    assert mean.shape == (32,) and projection.shape == (8, 32) and projection.dtype == np.float32
    np.testing.assert_allclose(projection @ projection.T, np.eye(8), atol=1e-5)


def test_full_whitening_gives_unit_variance_on_the_fit_sample():
    x = _features(n=2000)
    mean, projection = fit_whitening(x, WhiteningSpec(dim=4, power=1.0, whitening=1, shrinkage=0))
    y = (normalise_features(x, 1.0) - mean) @ projection.T
    variances = y.var(axis=0)
    np.testing.assert_allclose(variances / variances.max(), np.ones(4), rtol=1e-3)


def test_dim_is_capped_at_what_the_sample_can_give():
    _, projection = fit_whitening(_features(n=5), WhiteningSpec(dim=128))
    assert projection.shape == (4, 32)  # n - 1 axes have variance
    with pytest.raises(ConfigError, match="at least 2"):
        fit_whitening(_features(n=1), WhiteningSpec())


def test_shrinkage_bounds_the_amplification_of_weak_axes():
    x = _features()
    _, guarded = fit_whitening(x, WhiteningSpec(dim=16, whitening=1, shrinkage=0.1))
    _, bare = fit_whitening(x, WhiteningSpec(dim=16, whitening=1, shrinkage=0))
    ratio = lambda p: np.linalg.norm(p, axis=1).max() / np.linalg.norm(p, axis=1).min()  # noqa: E731
    assert ratio(guarded) < ratio(bare)
    # every eigenvalue gets 0.1 x the mean kept one added, and none exceeds 16 x that mean
    assert ratio(guarded) <= ((16 + 0.1) / 0.1) ** 0.5 + 1e-3


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_torch_layer_computes_what_numpy_does(power):
    import torch
    import torch.nn.functional as F

    x = _features()
    spec = WhiteningSpec(dim=8, power=power, whitening=0.5)
    layer = PcaWhitening.fitted(x, spec)
    mean, projection = fit_whitening(x, spec)
    with torch.no_grad():
        got = F.normalize(layer(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(got, apply_whitening(x, mean, projection, power), atol=1e-5)
    restored = PcaWhitening(32, 8)
    restored.load_state_dict(layer.state_dict())
    with torch.no_grad():
        np.testing.assert_array_equal(restored(torch.from_numpy(x)).numpy(), layer(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize("field,value", [("dim", 0), ("power", 0), ("whitening", 1.5), ("shrinkage", -1)])
def test_spec_names_the_bad_field(field, value):
    with pytest.raises(ConfigError, match=field):
        WhiteningSpec(**{field: value})


def test_residual_head_starts_exactly_at_the_pca_whitening():
    import torch

    from models.pca import ResidualWhitening

    x = _features()
    spec = WhiteningSpec(dim=8)
    head = ResidualWhitening.fitted(x, spec, hidden=16)
    assert head.dim == 8 and head.pca.projection.requires_grad
    with torch.no_grad():
        np.testing.assert_allclose(head(torch.from_numpy(x)).numpy(),
                                   PcaWhitening.fitted(x, spec)(torch.from_numpy(x)).numpy(), atol=1e-6)
    restored = ResidualWhitening(32, 8, hidden=16)
    restored.load_state_dict(head.state_dict())  # what a checkpoint holds rebuilds it
