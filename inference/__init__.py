"""Shared inference drivers, the result record, the ArviZ bridge and diagnostics."""

from inference.result import InferenceResult

__all__ = ["InferenceResult"]
