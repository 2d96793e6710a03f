"""Data residency, decided purely: URI normalisation, policy selection and intersection, and the
verdict on one job. No I/O: the controller and the webhook fetch the facts and apply the verdict."""

from kubetrain.policy.residency.evaluate import DefaultResidency, ResidencyFacts, evaluate
from kubetrain.policy.residency.verdict import ResidencyVerdict, Violation

__all__ = ["DefaultResidency", "ResidencyFacts", "ResidencyVerdict", "Violation", "evaluate"]
