"""``deep_moxing.model_analysis``: the evaluation report (``api.analyse``)."""
