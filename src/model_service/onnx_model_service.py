"""``model_service.onnx_model_service``: mloop's ONNX base (ModelArts has none)."""

from mloop.serving.service import OnnxServingBaseService

__all__ = ["OnnxServingBaseService"]
