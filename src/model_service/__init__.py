"""ModelArts compatibility: ``customize_service.py`` files written for ModelArts import their
base classes from here unchanged (``from model_service.pytorch_model_service import
PTServingBaseService``). The classes live in :mod:`mloop.serving.service`."""

from mloop.serving.service import (BaseService, OnnxServingBaseService, PTServingBaseService, SingleNodeService,
                                   XgSklServingBaseService)

__all__ = ["BaseService", "SingleNodeService", "PTServingBaseService", "XgSklServingBaseService",
           "OnnxServingBaseService"]
