"""The model registry: model types, content-addressed model files, and their local cache.

The records and tables live in :mod:`mloop.store.registry`; the functions everyone calls
(``register_model``, ``get_model_version``, ``model_local_path``, ...) in
:mod:`mloop.services.models`.

Layer: foundation (model types and files; the operations are in :mod:`mloop.services.models`).
"""

from mloop.registry.types import MODEL_TYPES, ModelLayout, canonical_type, detect_model_type, inspect_model_folder

__all__ = ["MODEL_TYPES", "ModelLayout", "canonical_type", "detect_model_type", "inspect_model_folder"]
