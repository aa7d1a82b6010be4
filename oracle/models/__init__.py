"""Online river models built from feed specs through an allowlist."""

from oracle.errors import Rejected
from oracle.models.commitment import CommitmentError, canonical_state, commitment
from oracle.models.quantize import QuantizationError, quantize
from oracle.models.runner import (
    ArmOutput,
    FeedModel,
    ModelError,
    StepOutput,
    build_model,
)

__all__ = [
    "ArmOutput",
    "CommitmentError",
    "FeedModel",
    "ModelError",
    "QuantizationError",
    "Rejected",
    "StepOutput",
    "build_model",
    "canonical_state",
    "commitment",
    "quantize",
]
