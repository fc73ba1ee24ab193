"""REST routers, one module per area (``/api/v1/...``)."""
