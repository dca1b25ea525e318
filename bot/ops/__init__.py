"""Operations: request context, Prometheus metrics, health and readiness, and their HTTP endpoint.

No platform library and no storage backend: adapters and the composition root report into it.
"""
