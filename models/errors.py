"""Errors raised by the models layer (a leaf: it imports nothing of ``indexer``)."""

from __future__ import annotations


class ModelError(Exception):
    """Base class for errors raised by ``models``."""


class ConfigError(ModelError):
    """A configuration value is invalid; the message names the field and the value."""


class WeightsError(ModelError):
    """Pretrained weights are unavailable or unreadable."""


class ImageError(ModelError):
    """An image file cannot be opened or decoded."""


class CheckpointError(ModelError):
    """A checkpoint or exported model file is missing or unreadable."""
