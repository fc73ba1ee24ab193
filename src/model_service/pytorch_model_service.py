"""ModelArts ``model_service.pytorch_model_service``."""

from mloop.serving.service import PTServingBaseService

__all__ = ["PTServingBaseService"]
