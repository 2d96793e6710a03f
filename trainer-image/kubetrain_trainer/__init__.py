"""The kubetrain trainer: what runs inside a TrainingJob's worker pods (see docs/contracts.md)."""

__version__ = "0.1.0"
