"""ModelArts ``model_service.model_service``: the generic bases."""

from mloop.serving.service import BaseService, SingleNodeService

__all__ = ["BaseService", "SingleNodeService"]
