"""The inference server: model loaders, the ModelArts custom-service contract, dynamic batching
and the FastAPI app that ``mloop serve`` and managed services run.

Modules (each imports its heavy dependencies itself; importing this package imports none):

* :mod:`.loaders`: model folder → :class:`~mloop.serving.loaders.LoadedModel` per model type.
* :mod:`.service`: ModelArts base classes (``PTServingBaseService`` ...), re-exported by the
  top-level ``model_service`` package so ``customize_service.py`` files run unchanged.
* :mod:`.custom`: loading ``customize_service.py``.
* :mod:`.inputs`: JSON tensors and images → model inputs, with 4xx messages for bad ones.
* :mod:`.batching`: dynamic batching on one model thread.
* :mod:`.handlers`: built-in and custom request handlers.
* :mod:`.app`: :func:`~mloop.serving.app.create_app`, the FastAPI app.
* :mod:`.worker`: ``python -m mloop.serving.worker``, one server process for the manager.

Layer: runtime of served models (below the domain operations: :mod:`mloop.services.serving`
deploys through :mod:`.manager`; it imports only errors and the store).
"""
