"""Metric families, one module each; every metric returns a ``MetricResult`` (aggregate + per case).

``retrieval`` ranks documents against graded judgments (trec_eval semantics), ``answer`` compares
answers with expected ones, ``judge`` asks an LLM judge through an injected ``complete`` callable.
"""
from evaluations.metrics.base import MetricResult

__all__ = ["MetricResult"]
