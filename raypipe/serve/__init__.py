"""raypipe as a service: an HTTP API (FastAPI, on Ray Serve) in front of one long-lived engine.

    store       renders, API keys and idempotency keys, as JSON files under serve.root
    guard       what a request may name: keys, addresses, sources, limits; webhook signatures
    service     RenderService: requests -> the engine's videos -> records, webhooks
    app         the FastAPI routes (/v1/renders, /v1/stats, /healthz, /readyz)
    deploy      the Ray Serve deployment and `python -m raypipe serve`
"""
