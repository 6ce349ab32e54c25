"""The errors a model's loading raises, each with what to do in its message (raised by
:mod:`mfutils.models.loading` and by the pretrained organism's own checks)."""

from __future__ import annotations


class ModelNotAvailableError(FileNotFoundError):
    """The model is neither a local folder nor in the local Hugging Face cache."""


class CorruptCheckpointError(RuntimeError):
    """The model folder exists but its files cannot be read."""
