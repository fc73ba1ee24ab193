"""ModelArts compatibility: ``from deep_moxing.model_analysis.api import analyse`` runs unchanged
(see :func:`mloop.metrics.analysis.analyse`)."""
