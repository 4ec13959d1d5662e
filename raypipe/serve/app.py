"""The HTTP API, versioned under /v1 (FastAPI: its OpenAPI page is /docs):

    POST /v1/renders                {job, overrides, webhook_url, metadata} or {template, row} -> 202 {id, status, ...}
    GET  /v1/renders/{id}           the render's object (the one its webhook carries)
    GET  /v1/renders/{id}/video     the video
    GET  /v1/renders/{id}/events    its changes, as server-sent events, until it ends
    POST /v1/renders/{id}/cancel    idempotent; 409 once it has ended otherwise
    GET  /v1/renders?status=&page=  newest first
    GET  /v1/stats                  renders by status, videos per hour, detector loads, the queue
    GET  /healthz, /readyz          alive; able to take work (no key needed)

Errors are {"error": "<field>: <reason>"}, the CLI's one line.
"""
from __future__ import annotations

import json
import time

from fastapi import FastAPI, Header, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from raypipe.errors import RaypipeError
from raypipe.serve.guard import Refused
from raypipe.serve.service import Caller, RenderService
from raypipe.serve.store import ENDED

PAGE = 50
EVENT_POLL_S = 0.5


class Unauthorized(Exception):
    pass


def caller_of(service: RenderService, authorization: str | None) -> Caller:
    if not service.auth:
        return Caller()
    scheme, _, secret = (authorization or "").partition(" ")
    key = service.store.key_of(secret.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        raise Unauthorized()
    return Caller(key.id, key.prefix)


def _missing(render_id: str) -> JSONResponse:
    return JSONResponse({"error": f"id: no render {render_id!r}"}, status_code=404)


def make_app(service: RenderService) -> FastAPI:
    app = FastAPI(title="raypipe", version="1", description="Subject-aware videos, rendered on request.")

    @app.exception_handler(Refused)
    def refused(request: Request, e: Refused):
        headers = {"Retry-After": "10"} if e.status == 429 else None
        return JSONResponse({"error": str(e)}, status_code=e.status, headers=headers)

    @app.exception_handler(RaypipeError)
    def bad_input(request: Request, e: RaypipeError):
        return JSONResponse({"error": str(e)}, status_code=422)

    @app.exception_handler(Unauthorized)
    def unauthorized(request: Request, e: Unauthorized):
        return JSONResponse({"error": "Authorization: needs `Bearer KEY` with a key from "
                                      "`python -m raypipe keys create NAME`"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    @app.get("/readyz")
    def readyz():
        ready = service.ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.post("/v1/renders", status_code=202, openapi_extra=REQUEST_DOC)
    async def create(request: Request, authorization: str | None = Header(None),
                     idempotency_key: str | None = Header(None)):
        caller = caller_of(service, authorization)
        body = await request.body()
        record, made = await _threaded(service.submit, body, caller, idempotency_key)
        return JSONResponse(record.public(), status_code=202, headers={} if made else {"Idempotent-Replayed": "true"})

    @app.get("/v1/renders")
    def listing(status: str | None = None, page: int = 1, authorization: str | None = Header(None)):
        caller = caller_of(service, authorization)
        records = service.store.listing(caller.key_id, status)
        page = max(1, page)
        items = records[(page - 1) * PAGE: page * PAGE]
        return {"renders": [r.public() for r in items], "page": page, "total": len(records),
                "next": page + 1 if page * PAGE < len(records) else None}

    @app.get("/v1/renders/{render_id}")
    def one(render_id: str, authorization: str | None = Header(None)):
        record = service.store.get(render_id, caller_of(service, authorization).key_id)
        return record.public() if record else _missing(render_id)

    @app.get("/v1/renders/{render_id}/video")
    def video(render_id: str, authorization: str | None = Header(None)):
        record = service.store.get(render_id, caller_of(service, authorization).key_id)
        if record is None:
            return _missing(render_id)
        if record.status != "succeeded":
            return JSONResponse({"error": f"status: the render is {record.status}, it has no video"},
                                status_code=409)
        return FileResponse(record.output["uri"], media_type="video/mp4", filename=f"{render_id}.mp4")

    @app.post("/v1/renders/{render_id}/cancel", status_code=202)
    def cancel(render_id: str, authorization: str | None = Header(None)):
        record = service.cancel(render_id, caller_of(service, authorization))
        return JSONResponse(record.public(), status_code=202) if record else _missing(render_id)

    @app.get("/v1/renders/{render_id}/events")
    def events(render_id: str, authorization: str | None = Header(None)):
        key_id = caller_of(service, authorization).key_id
        if service.store.get(render_id, key_id) is None:
            return _missing(render_id)
        return StreamingResponse(_events(service, render_id, key_id), media_type="text/event-stream")

    @app.get("/v1/stats")
    def stats(authorization: str | None = Header(None)):
        caller_of(service, authorization)
        return service.stats()

    return app


async def _threaded(fn, *args):
    """Composing a config takes tens of ms of CPU: off the event loop, so other requests go on."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def _events(service: RenderService, render_id: str, key_id: str):
    """The render's object each time it changes, then once more at its end."""
    last = None
    while True:
        obj = service.store.get(render_id, key_id).public()
        shown = {k: v for k, v in obj.items() if k not in ("eta_s", "updated_at")}
        if shown != last:
            last = shown
            yield f"event: render\ndata: {json.dumps(obj, sort_keys=True)}\n\n"
        if obj["status"] in ENDED:
            return
        time.sleep(EVENT_POLL_S)


REQUEST_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object",
    "properties": {
        "job": {"type": "object", "description": "a job file's schema: {name, segments: [{source, duration, "
                                                 "effect, caption}], audio}, or {job: ..., render: ...}"},
        "overrides": {"type": "array", "items": {"type": "string"},
                      "description": "render.* and job.* overrides, as on the command line"},
        "template": {"type": "string", "description": "a job in conf/job/, instead of job"},
        "row": {"type": "object", "description": "the template's fields (${row:NAME}), with template"},
        "webhook_url": {"type": "string", "description": "POSTed the render's object when it ends, signed"},
        "metadata": {"type": "object", "description": "passed through to the render's object"}}}}}}}
