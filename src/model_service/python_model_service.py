"""ModelArts ``model_service.python_model_service`` (scikit-learn, XGBoost)."""

from mloop.serving.service import XgSklServingBaseService

__all__ = ["XgSklServingBaseService"]
