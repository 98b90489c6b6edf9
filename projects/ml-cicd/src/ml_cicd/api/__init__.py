"""The HTTP service's parts, by concern: the request and response schema (schema.py), its
Prometheus metrics (metrics.py), the ASGI middleware (middleware.py), the bounded prediction
queue (queue.py) and the routes (routes.py). ``ml_cicd.service`` puts them together."""
