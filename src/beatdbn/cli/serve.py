"""``beatdbn serve``: a local page to try a song (FastAPI + uvicorn: ``pip install beatdbn[serve]``)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console, err_console
from beatdbn.exceptions import ParameterError

# beatdbn.inference and beatdbn.serve load torch (and FastAPI): imported inside `serve`, so that `--help` is fast

__all__ = ["serve", "parse_port", "bind", "exposure_warning"]


def parse_port(text: str) -> int:
    """``--port`` as a number in 0..65535, or ParameterError (one line)."""
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise ParameterError(f"--port {text!r}: must be a number from 0 to 65535 (e.g. --port 8000)")
    return int(text)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a port in use or a bad host is one ParameterError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ParameterError(f"--host {host}: not an address of this machine") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ParameterError(f"port {port} on {host} is in use; pick another with --port") from None
        raise ParameterError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def exposure_warning(host: str) -> str | None:
    """A warning when ``host`` is not a loopback address (e.g. 0.0.0.0: every network), else None."""
    import ipaddress

    name = host.strip("[]")
    try:
        loopback = ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = name.lower().rstrip(".") == "localhost"
    if loopback:
        return None
    where = "every network this computer is on" if name in ("0.0.0.0", "::") else f"the network of {host}"
    return (f"warning: --host {host} listens on {where}: anyone who can reach it may upload files and use this "
            f"computer's CPU, and nothing is encrypted. Use --host 127.0.0.1 (the default) unless you mean it.")


@command()
def serve(
    runs: Optional[list[Path]] = typer.Argument(None, metavar="[RUN_DIR ...]",
                                                help="Finished runs (or model folders); none: the shipped key model."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on. 127.0.0.1: this computer only; 0.0.0.0: "
                                               "every network this computer is on (anyone who can reach it may "
                                               "upload files)."),
    port: str = typer.Option("8000", help="Port (0: any free port)."),
    max_mb: float = typer.Option(50.0, "--max-mb", help="Largest upload accepted, in MB."),
    max_queue: int = typer.Option(4, "--max-queue", help="Uploads waiting for analysis at most; more get 'busy'. "
                                                         "One file is analysed at a time (torch threads, for a RUN_DIR: "
                                                         "the global `beatdbn --threads N serve`; the shipped key "
                                                         "model runs in numpy)."),
    allow_host: Optional[list[str]] = typer.Option(
        None, "--allow-host", metavar="NAME",
        help="Also answer requests addressed to this host name (e.g. the machine's name on your network, or a "
             "proxy's). Requests naming any other host get 400: a web page cannot reach the server through a "
             "DNS name of its own."),
):
    """A local web page to try a song: top labels, the posterior over time, the beat-aligned features."""
    number = parse_port(port)
    if not max_mb > 0:
        raise ParameterError(f"--max-mb {max_mb}: must be > 0")
    if max_queue < 1:
        raise ParameterError(f"--max-queue {max_queue}: must be >= 1")
    try:
        import fastapi  # noqa: F401  optional dependency (beatdbn[serve]), checked here for a clear message
        import uvicorn  # optional dependency (beatdbn[serve])
    except ImportError:
        raise ParameterError("beatdbn serve needs FastAPI and uvicorn: pip install 'beatdbn[serve]'") from None
    from beatdbn.inference.runs import load_run, shipped_model  # reason: lazy, torch (fast --help)
    from beatdbn.serve.app import UploadLimits, create_app  # reason: lazy, FastAPI, torch (fast --help)

    warning = exposure_warning(host)
    if warning:
        err_console.print(warning, style="yellow", highlight=False, soft_wrap=True)
    loaded = [load_run(r) for r in runs] if runs else [shipped_model("key")]
    sock = bind(host, number)
    actual = sock.getsockname()[1]
    app = create_app(loaded, UploadLimits(max_bytes=int(max_mb * 2**20), max_queue=max_queue), host=host,
                     port=actual, allow_hosts=allow_host or ())
    shown = f"[{host}]" if ":" in host else host
    console.print(f"beatdbn serve: http://{shown}:{actual}/  ({', '.join(r.name for r in loaded)}; Ctrl-C stops)",
                  highlight=False, soft_wrap=True)
    # idle keep-alive connections are closed after 5 s; request heads are capped by h11 (16 KiB); a stalled
    # upload body and a long analysis have their own deadlines in the app (UploadLimits)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=5,
                                           h11_max_incomplete_event_size=16 * 1024))
    server.run(sockets=[sock])
