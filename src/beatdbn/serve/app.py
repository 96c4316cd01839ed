"""The FastAPI app of ``beatdbn serve``.

Routes: ``GET /`` the page; ``GET /static/...`` its script and style;
``GET /api/models`` the loaded models; ``POST /api/analyse`` one file in a
multipart form field ``file`` -> :func:`beatdbn.inference.analyse_file`'s
JSON, or ``{"error": one line}`` with a 4xx/5xx status.

Bounds: the upload is capped (``UploadLimits.max_bytes``; the request's
Content-Length is checked before anything is read, and the copy stops at the
cap); the analysis runs in one worker thread, so concurrent requests queue
instead of oversubscribing the CPU, and past ``max_queue`` waiting requests the
server answers "busy". Every upload lives in its own temporary folder, removed
whatever happens.
"""

# no `from __future__ import annotations`: FastAPI reads the route annotations (Request) at run time

import asyncio
import concurrent.futures as cf
import contextlib
import logging
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

from beatdbn.exceptions import BeatdbnError
from beatdbn.inference.analysis import analyse_file
from beatdbn.inference.files import error_text
from beatdbn.inference.runs import REPRESENTATION_NAMES, Run
from beatdbn.serve.uploads import ACCEPTED_SUFFIXES, saved_upload

__all__ = ["create_app", "UploadLimits"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadLimits:
    """``max_bytes`` per upload; ``max_queue`` requests waiting for the analysis worker at most."""

    max_bytes: int = 50 * 2**20
    max_queue: int = 4
    tmp_root: str | None = None


def _static(name: str) -> bytes:
    return (resources.files("beatdbn.serve") / "static" / name).read_bytes()


def create_app(runs: Sequence[Run], limits: UploadLimits = UploadLimits()):
    """The app serving ``runs`` (FastAPI is imported here: it is the optional ``serve`` extra)."""
    from fastapi import FastAPI, Request  # optional dependency (beatdbn[serve])
    from fastapi.responses import JSONResponse, Response

    worker = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="beatdbn-analyse")

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        worker.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="beatdbn", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    waiting = {"n": 0}
    lock = threading.Lock()
    models = [{"name": r.name, "task": r.task, "kind": r.kind, "classes": len(r.labels),
               "representation": r.representation,
               "representation_text": REPRESENTATION_NAMES.get(r.representation or "", "not recorded")}
              for r in runs]
    types = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
             "css": "text/css; charset=utf-8", "png": "image/png"}

    def error(status: int, text: str):
        return JSONResponse({"error": text}, status_code=status)

    @app.get("/")
    def index():
        return Response(_static("index.html"), media_type=types["html"])

    @app.get("/static/{name}")
    def static(name: str):
        if "/" in name or name.startswith(".") or name.rsplit(".", 1)[-1] not in types:
            return error(404, "not found")
        try:
            return Response(_static(name), media_type=types[name.rsplit(".", 1)[-1]])
        except (FileNotFoundError, IsADirectoryError):
            return error(404, "not found")

    @app.get("/api/models")
    def list_models():
        return {"models": models, "max_mb": limits.max_bytes / 2**20, "accepted": list(ACCEPTED_SUFFIXES)}

    def analyse(upload, filename: str) -> dict:
        with saved_upload(upload, filename, limits.max_bytes, tmp_root=limits.tmp_root) as path:
            try:
                return analyse_file(runs, path, name=filename)
            except BeatdbnError as exc:  # name the user's file, not our temporary copy
                raise type(exc)(str(exc).replace(str(path), filename)) from None

    @app.post("/api/analyse")
    async def analyse_upload(request: Request):
        length = request.headers.get("content-length")
        if length is None:
            return error(411, "the upload has no Content-Length; send it as a form upload")
        if not length.isdigit() or int(length) > limits.max_bytes + 64 * 1024:
            return error(413, f"the file is larger than the {limits.max_bytes / 2**20:.0f} MB this server accepts "
                              f"(beatdbn serve --max-mb)")
        with lock:
            if waiting["n"] >= limits.max_queue:
                return error(503, "the server is busy with other files; try again in a moment")
            waiting["n"] += 1
        try:
            try:
                form = await request.form(max_files=2, max_fields=4)
            except Exception as exc:  # noqa: BLE001 - a malformed form is the client's error: one line
                return error(400, f"not a file upload ({error_text(exc)})")
            try:
                files = [v for v in form.getlist("file") if hasattr(v, "filename")]
                if len(files) != 1 or len([v for _, v in form.multi_items() if hasattr(v, "filename")]) != 1:
                    return error(400, "one file at a time, please")
                up = files[0]
                name = Path(up.filename or "upload").name
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(worker, analyse, up.file, name)
                return JSONResponse(result)
            except BeatdbnError as exc:
                return error(422, str(exc))
            except Exception as exc:  # noqa: BLE001 - the server keeps serving; the page shows one line
                log.exception("analysis failed")
                return error(500, f"could not analyse the file: {error_text(exc)}")
            finally:
                await form.close()
        finally:
            with lock:
                waiting["n"] -= 1

    return app
