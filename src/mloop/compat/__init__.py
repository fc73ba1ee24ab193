"""Compatibility layers for code written for ModelArts: the ``moxing.file`` API
(:mod:`mloop.compat.moxing_file`, shipped as the top-level ``moxing`` package; the evaluation
report ``deep_moxing.model_analysis.api.analyse`` is :mod:`mloop.metrics.analysis`).

Layer: foundation (imports only config and artifacts; job scripts import it).
"""
