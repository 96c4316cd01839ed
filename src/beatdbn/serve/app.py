"""The FastAPI app of ``beatdbn serve``.

Routes: ``GET /`` the page; ``GET /static/...`` its script and style;
``GET /api/models`` the loaded models; ``POST /api/analyse`` one file in a
multipart form field ``file`` -> :func:`beatdbn.inference.analyse_file`'s
JSON, or ``{"error": one line}`` with a 4xx/5xx status.

**Host check** (DNS rebinding): every request whose ``Host`` header is not
an address the server was bound to gets 400 and one line, before routing
(:func:`allowed_hosts`: ``localhost``, ``127.0.0.1`` and ``[::1]`` for a
loopback bind; the given host otherwise; a wildcard bind adds this machine's
name and addresses), and the port must be the bound one.

**Bounds.** The upload is capped (``UploadLimits.max_bytes``; the request's
Content-Length is checked before anything is read, and the copy stops at the
cap). Reading an upload's body has a deadline (``body_timeout``: a client
that stalls gets 408 and costs only its own request) and at most
``max_reading`` bodies are read at once. Only a fully read upload takes a
place in the analysis queue: the analysis runs in one worker thread, so
concurrent requests queue instead of oversubscribing the CPU; past
``max_queue`` waiting requests the server answers "busy", and an analysis
that takes longer than ``analysis_timeout`` answers 504 (its place is freed
when the worker is done with it). Every upload lives in its own temporary
folder, removed whatever happens.
"""

# no `from __future__ import annotations`: FastAPI reads the route annotations (Request) at run time

import asyncio
import concurrent.futures as cf
import contextlib
import ipaddress
import json
import logging
import socket
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from beatdbn.exceptions import BeatdbnError
from beatdbn.inference.analysis import analyse_file
from beatdbn.inference.files import error_text
from beatdbn.inference.runs import REPRESENTATION_NAMES, Run
from beatdbn.serve.uploads import ACCEPTED_SUFFIXES, saved_upload

__all__ = ["create_app", "UploadLimits", "allowed_hosts", "host_allowed", "LOOPBACK_NAMES"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadLimits:
    """``max_bytes`` per upload; ``max_queue`` requests waiting for the analysis worker at most;
    ``max_reading`` upload bodies read at once; ``body_timeout`` seconds to receive one upload's body;
    ``analysis_timeout`` seconds for one analysis (queueing included)."""

    max_bytes: int = 50 * 2**20
    max_queue: int = 4
    tmp_root: str | None = None
    max_reading: int = 16
    body_timeout: float = 120.0
    analysis_timeout: float = 300.0


#: Names a loopback-bound server answers to.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    """An IPv6 address as a Host header writes it (``[::1]``); other hosts in lower case."""
    host = host.lower().rstrip(".")
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names (without port) a server bound to ``host`` answers to.

    Loopback (``127.0.0.1``, ``::1``, ``localhost``): :data:`LOOPBACK_NAMES`. A wildcard (``0.0.0.0``,
    ``::``): those, this machine's name and the addresses it resolves to. Any other address or name: itself.
    ``extra`` names are added (``beatdbn serve --allow-host``).
    """
    names = {_bracketed(host)}
    if _is_loopback(host) or _is_wildcard(host):
        names |= set(LOOPBACK_NAMES)
    if _is_wildcard(host):
        for name in {socket.gethostname(), socket.getfqdn()}:
            names.add(name.lower())
            try:
                names |= {_bracketed(str(info[4][0])) for info in socket.getaddrinfo(name, None)}
            except OSError:
                pass
    return frozenset(names | {_bracketed(h) for h in extra})


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` header -> (host in lower case, port or None); None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[:end + 1], value[end + 1:]
    else:
        host, sep, port_text = value.partition(":")
        rest = sep + port_text
    if rest and (not rest.startswith(":") or not rest[1:].isdigit()):
        return None
    return host.rstrip("."), (int(rest[1:]) if rest else None)


def host_allowed(header: str | None, names: frozenset[str], port: int | None) -> bool:
    """True when a request's ``Host`` header names one of ``names`` and (when given) ``port``.

    A header without a port means port 80. ``port`` None: any port.
    """
    parsed = _split_host(header) if header else None
    if parsed is None or parsed[0] not in names:
        return False
    return port is None or (parsed[1] if parsed[1] is not None else 80) == port


class _HostCheck:
    """ASGI middleware: 400 and one line for a request whose Host header is not one the server was bound to."""

    def __init__(self, app, names: frozenset[str], port: int | None):
        self.app, self.names, self.port = app, names, port

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), None)
        if host_allowed(header, self.names, self.port):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        body = json.dumps({"error": f"host {header!r} not served here: this server answers to "
                                    f"{', '.join(sorted(self.names))}"
                                    + (f" on port {self.port}" if self.port is not None else "")}).encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _static(name: str) -> bytes:
    return (resources.files("beatdbn.serve") / "static" / name).read_bytes()


def display_name(run: Run) -> str:
    """How the page names a model: plain words, not the folder (``"Key: the shipped audio key model"``)."""
    what = {"key": "Key", "genre": "Genre", "artist": "Artist", "decade": "Decade"}.get(run.task or "",
                                                                                      run.task or "Model")
    if run.provenance.get("shipped"):
        return f"{what}: the shipped {'audio ' if run.representation == 'audio' else ''}{run.task or ''} model"
    return f"{what}: model in {run.path.name}"


def create_app(runs: Sequence[Run], limits: UploadLimits = UploadLimits(), *, host: str | None = None,
               port: int | None = None, allow_hosts: Iterable[str] = ()):
    """The app serving ``runs`` (FastAPI is imported here: it is the optional ``serve`` extra).

    With ``host`` (the address the server is bound to) requests whose Host header is not one of
    :func:`allowed_hosts` (and, with ``port``, not that port) get 400; None: no Host check (tests of the app
    alone).
    """
    from fastapi import FastAPI, Request  # optional dependency (beatdbn[serve])
    from fastapi.responses import JSONResponse, Response

    worker = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="beatdbn-analyse")

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        worker.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="beatdbn", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    if host is not None:
        app.add_middleware(_HostCheck, names=allowed_hosts(host, allow_hosts), port=port)
    counts = {"waiting": 0, "reading": 0}
    lock = threading.Lock()
    models = [{"name": display_name(r), "task": r.task, "kind": r.kind, "classes": len(r.labels),
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
                result = analyse_file(runs, path, name=filename)
            except BeatdbnError as exc:  # name the user's file, not our temporary copy
                raise type(exc)(str(exc).replace(str(path), filename)) from None
        for track in result["tracks"]:
            if track.get("title") == path.stem:  # an untagged file: the page shows its name, not our copy's
                track["title"] = ""
            for r, m in zip(runs, track["models"]):
                m["model"] = display_name(r)
        return result

    def take(kind: str, most: int) -> bool:
        with lock:
            if counts[kind] >= most:
                return False
            counts[kind] += 1
            return True

    def give(kind: str) -> None:
        with lock:
            counts[kind] -= 1

    async def read_form(request: Request):
        """The request's form, read within ``body_timeout``; an error response otherwise."""
        if not take("reading", limits.max_reading):
            return error(503, "the server is busy receiving other files; try again in a moment")
        try:
            return await asyncio.wait_for(request.form(max_files=2, max_fields=4), timeout=limits.body_timeout)
        except asyncio.TimeoutError:
            return error(408, f"the upload did not arrive within {limits.body_timeout:g} s; try again")
        except Exception as exc:  # noqa: BLE001 - a malformed form is the client's error: one line
            return error(400, f"not a file upload ({error_text(exc)})")
        finally:
            give("reading")

    @app.post("/api/analyse")
    async def analyse_upload(request: Request):
        length = request.headers.get("content-length")
        if length is None:
            return error(411, "the upload has no Content-Length; send it as a form upload")
        if not length.isdigit() or int(length) > limits.max_bytes + 64 * 1024:
            return error(413, f"the file is larger than the {limits.max_bytes / 2**20:.0f} MB this server accepts "
                              f"(beatdbn serve --max-mb)")
        form = await read_form(request)
        if isinstance(form, Response):
            return form
        try:
            files = [v for v in form.getlist("file") if hasattr(v, "filename")]
            if len(files) != 1 or len([v for _, v in form.multi_items() if hasattr(v, "filename")]) != 1:
                return error(400, "one file at a time, please")
            if not take("waiting", limits.max_queue):
                return error(503, "the server is busy with other files; try again in a moment")
            up = files[0]
            name = Path(up.filename or "upload").name
            job = worker.submit(analyse, up.file, name)
            job.add_done_callback(lambda _: give("waiting"))  # the place is free when the worker is
            try:
                result = await asyncio.wait_for(asyncio.wrap_future(job), timeout=limits.analysis_timeout)
            except asyncio.TimeoutError:
                return error(504, f"{name}: the analysis took longer than {limits.analysis_timeout:g} s; "
                                  f"try a shorter file")
            return JSONResponse(result)
        except BeatdbnError as exc:
            return error(422, str(exc))
        except Exception as exc:  # noqa: BLE001 - the server keeps serving; the page shows one line
            log.exception("analysis failed")
            return error(500, f"could not analyse the file: {error_text(exc)}")
        finally:
            await form.close()

    return app
