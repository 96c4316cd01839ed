"""beatdbn serve: the app over HTTP, and the page in a real headless Chromium (Debian's), driven by Playwright.

The browser tests skip, with the command to run, when Playwright or /usr/bin/chromium is missing
(`make test` installs both where it can).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import io
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from beatdbn.cli import app as cli_app
from beatdbn.inference import load_run, shipped_model
from beatdbn.models.convmlp import ConvMLP, MLPConfig

fastapi = pytest.importorskip("fastapi", reason="pip install -e '.[serve,test]' (FastAPI + uvicorn)")
uvicorn = pytest.importorskip("uvicorn", reason="pip install -e '.[serve,test]' (FastAPI + uvicorn)")
httpx = pytest.importorskip("httpx", reason="pip install -e '.[serve,test]'")

from beatdbn.cli.serve import bind, exposure_warning  # noqa: E402
from beatdbn.serve import UploadLimits, create_app  # noqa: E402
from beatdbn.serve.app import allowed_hosts, host_allowed  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_HELP = ("no headless browser: run `make test` as root (it installs Debian's chromium), or "
                "`apt-get update && apt-get install -y chromium` and `pip install -e '.[serve,test]'`")
SHOT = os.environ.get("BEATDBN_SERVE_SCREENSHOT")  # also save the page's screenshot there (README)
runner = CliRunner()


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    """A generated 24-beat-ish piece in D major, as a wav file (a few seconds of audio)."""
    import soundfile as sf

    from beatdbn.synth.audio_keys import render_piece

    piece = render_piece(tonic=2, mode=1, seed=3, n_beats=72, tempo=140.0)
    path = tmp_path_factory.mktemp("song") / "generated-song.wav"
    sf.write(path, piece.audio, piece.sr)
    return path


@pytest.fixture(scope="module")
def msd_model(tmp_path_factory) -> Path:
    """A small conv MLP for Echo Nest features (random weights: the page only needs its answers)."""
    model = ConvMLP(MLPConfig(n_classes=3, classes=("rock", "jazz", "pop"), task="genre", n_maps_1a=8, n_maps_1b=8,
                              n_maps_3=8))
    folder = tmp_path_factory.mktemp("msd-model") / "genre-echonest"
    model.save(folder)
    (folder / "PROVENANCE.json").write_text(json.dumps({"representation": "echonest"}))
    return folder


@contextlib.contextmanager
def serving(runs, limits: UploadLimits, host: str = "127.0.0.1"):
    """The app on a free port of ``host`` in a background thread, with the Host check as `beatdbn serve` sets it;
    yields the port."""
    sock = bind(host, 0)
    port = sock.getsockname()[1]
    app = create_app(runs, limits, host=host, port=port)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=5))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def key_run():
    return shipped_model("key")


@pytest.fixture(scope="module")
def server(key_run, msd_model, tmp_path_factory):
    """The app on a free loopback port in a background thread; yields (base url, upload temp root)."""
    tmp_root = tmp_path_factory.mktemp("uploads")
    runs = [key_run, load_run(msd_model)]
    limits = UploadLimits(max_bytes=3 * 2**20, max_queue=2, tmp_root=str(tmp_root), body_timeout=3.0)
    with serving(runs, limits) as port:
        yield f"http://127.0.0.1:{port}", tmp_root


def _post(url: str, files) -> httpx.Response:
    return httpx.post(url + "/api/analyse", files=files, timeout=120)


def test_bad_uploads_get_one_line_and_leave_nothing(server, tmp_path):
    url, tmp_root = server
    empty = _post(url, {"file": ("empty.mp3", b"", "audio/mpeg")})
    assert empty.status_code == 422 and "empty" in empty.json()["error"]
    noise = _post(url, {"file": ("noise.mp3", np.random.default_rng(0).bytes(20000), "audio/mpeg")})
    assert noise.status_code == 422 and "noise.mp3" in noise.json()["error"]
    assert "beatdbn-serve-" not in noise.json()["error"]  # the user's name, not our temporary copy
    big = _post(url, {"file": ("long.wav", b"\0" * (4 * 2**20), "audio/wav")})
    assert big.status_code == 413 and "MB" in big.json()["error"]
    two = _post(url, [("file", ("a.wav", b"RIFF", "audio/wav")), ("file", ("b.wav", b"RIFF", "audio/wav"))])
    assert two.status_code == 400 and "one file" in two.json()["error"]
    silent = io.BytesIO()
    sf.write(silent, np.zeros(22050 * 3, dtype=np.float32), 22050, format="WAV")
    quiet = _post(url, {"file": ("silence.wav", silent.getvalue(), "audio/wav")})
    assert quiet.status_code == 422 and "silence.wav" in quiet.json()["error"], quiet.text
    text = _post(url, {"file": ("notes.txt", b"hello", "text/plain")})
    assert text.status_code == 422 and "audio file" in text.json()["error"]
    assert httpx.get(url + "/api/models").status_code == 200  # still serving
    assert list(tmp_root.iterdir()) == []


def test_concurrent_uploads_are_bounded(server, song):
    url, tmp_root = server
    data = song.read_bytes()
    with cf.ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda _: _post(url, {"file": ("s.wav", data, "audio/wav")}).status_code, range(6)))
    assert codes.count(200) >= 1 and set(codes) <= {200, 503}, codes
    assert 503 in codes  # at most max_queue=2 wait; the rest are told the server is busy
    assert list(tmp_root.iterdir()) == []


def test_api_answers_a_real_msd_file(server, shared_msd):
    url, _ = server
    res = _post(url, {"file": ("rick.h5", (shared_msd / "TRAXLZU12903D05F94.h5").read_bytes(), "application/x-hdf5")})
    assert res.status_code == 200, res.text
    track = res.json()["tracks"][0]
    key, genre = track["models"]
    assert "Echo Nest" in key["error"] and "audio" in key["error"]  # named, not silently applied
    assert len(genre["top"]) == 3 and genre["over_time"]["posteriors"]
    assert len(track["chroma"]) == track["n_beats"] == len(track["beats"]) and track["tempo"] > 0


def test_port_errors_are_one_line(server):
    url, _ = server
    port = url.rsplit(":", 1)[1]
    res = runner.invoke(cli_app, ["serve", "--port", port])
    assert res.exit_code == 1 and "in use" in res.output and len(res.output.strip().splitlines()) == 1
    res = runner.invoke(cli_app, ["serve", "--port", "eighty"])
    assert res.exit_code == 1 and "--port" in res.output and "Traceback" not in res.output


def test_the_key_answer_and_plain_names(server, song):
    url, tmp_root = server
    res = _post(url, {"file": ("generated-song.wav", song.read_bytes(), "audio/wav")})
    assert res.status_code == 200, res.text
    track = res.json()["tracks"][0]
    assert track["title"] == ""  # untagged: the page titles it by the file's name, not our copy's "upload"
    key, genre = track["models"]
    assert key["model"] == "Key: the shipped audio key model" and genre["model"] == "Genre: model in genre-echonest"
    k = key["key"]
    assert {"key", "key_ascii", "tonic", "mode", "camelot", "confidence", "tonal", "reason",
            "alternatives"} <= set(k)
    if k["tonal"]:
        assert k["key"] == k["alternatives"][0]["key"] and 0 < k["confidence"] <= 1 and k["reason"] is None
    else:
        assert k["key"] is None and k["reason"].startswith("no tonal centre")
    assert len(k["alternatives"]) == 5 and "key" not in genre  # top_k of the page; only key models
    assert list(tmp_root.iterdir()) == []


def test_host_header_must_name_the_bound_address(server):
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", f"localhost.evil.example:{port}",
                 f"127.0.0.2:{port}", "127.0.0.1:80x"):
        res = httpx.get(url + "/api/models", headers={"Host": host})
        assert res.status_code == 400, host
        assert "not served here" in res.json()["error"] and len(res.text) < 300
    res = httpx.post(url + "/api/analyse", headers={"Host": "rebound.example"}, files={"file": ("a.wav", b"RIFF")})
    assert res.status_code == 400  # refused before routing: no upload is read
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"LocalHost:{port}"):
        assert httpx.get(url + "/api/models", headers={"Host": host}).status_code == 200, host
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:  # HTTP/1.0 without a Host header
        raw.sendall(b"GET /api/models HTTP/1.0\r\n\r\n")
        assert raw.recv(4096).split(b"\r\n")[0].endswith(b"400 Bad Request")


def test_allowed_hosts():
    loop = {"localhost", "127.0.0.1", "[::1]"}
    assert allowed_hosts("127.0.0.1") == allowed_hosts("::1") == allowed_hosts("localhost") == loop
    assert allowed_hosts("192.168.1.5") == {"192.168.1.5"}
    assert allowed_hosts("fd00::5") == {"[fd00::5]"} and allowed_hosts("192.168.1.5", ["box.lan"]) >= {"box.lan"}
    assert allowed_hosts("0.0.0.0") >= loop | {socket.gethostname().lower(), "0.0.0.0"}
    names = allowed_hosts("127.0.0.1")
    assert host_allowed("127.0.0.1:8000", names, 8000) and host_allowed("localhost", names, 80)
    assert not host_allowed("localhost", names, 8000)  # no port in the header: port 80
    assert not host_allowed("127.0.0.1:8001", names, 8000) and not host_allowed(None, names, 8000)
    assert not host_allowed("[::1", names, None) and not host_allowed("[::1]x", names, None)


def _stalled_upload(port: int) -> socket.socket:
    """A connection that sends an upload's head and a few bytes of its body, then nothing."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    raw.sendall(b"POST /api/analyse HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                b"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 100000\r\n\r\n"
                b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF" % port)
    return raw


def test_idle_uploads_do_not_block_the_server(server, song):
    """Before: four uploads that stopped sending held every place of the queue, and everyone got 'busy'."""
    url, tmp_root = server
    port = int(url.rsplit(":", 1)[1])
    idle = [_stalled_upload(port) for _ in range(4)]
    try:
        time.sleep(0.3)  # their heads are read and they wait for their bodies
        t0 = time.monotonic()
        res = _post(url, {"file": ("s.wav", song.read_bytes(), "audio/wav")})
        assert res.status_code == 200, res.text
        assert httpx.get(url + "/api/models").status_code == 200
        for raw in idle:  # each stalled upload is answered at its deadline (3 s here), and costs no one else
            status = raw.recv(4096).split(b"\r\n")[0]
            assert b" 408 " in status, status
        assert time.monotonic() - t0 < 30
    finally:
        for raw in idle:
            raw.close()
    assert list(tmp_root.iterdir()) == []


def test_an_analysis_past_its_deadline_answers_504_and_frees_its_place(key_run, song, tmp_path, monkeypatch):
    import beatdbn.serve.app as serve_app
    data = song.read_bytes()
    release = threading.Event()  # the analysis is held until the test lets it go: no race with the clock
    real = serve_app.analyse_file

    def held(*args, **kwargs):
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(serve_app, "analyse_file", held)
    limits = UploadLimits(max_queue=1, tmp_root=str(tmp_path), analysis_timeout=0.05)
    with serving([key_run], limits) as port:
        url = f"http://127.0.0.1:{port}"
        slow = _post(url, {"file": ("s.wav", data, "audio/wav")})
        assert slow.status_code == 504 and "longer than 0.05 s" in slow.json()["error"]
        busy = _post(url, {"file": ("s.wav", data, "audio/wav")})
        assert busy.status_code == 503  # the worker still holds the one place
        release.set()
        deadline = time.monotonic() + 60
        while list(tmp_path.iterdir()) and time.monotonic() < deadline:  # the worker finishes the file
            time.sleep(0.1)
        time.sleep(0.2)
        release.clear()
        again = _post(url, {"file": ("s.wav", data, "audio/wav")})
        assert again.status_code == 504  # its place was given back: not "busy" forever
        release.set()
        while list(tmp_path.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.1)


def test_listening_beyond_this_computer_prints_a_warning(server):
    assert exposure_warning("127.0.0.1") is None and exposure_warning("localhost") is None
    assert exposure_warning("::1") is None
    assert "every network" in exposure_warning("0.0.0.0") and "every network" in exposure_warning("::")
    assert "192.168.1.5" in exposure_warning("192.168.1.5")
    port = server[0].rsplit(":", 1)[1]
    res = runner.invoke(cli_app, ["serve", "--host", "0.0.0.0", "--port", port])  # the port is taken: stops there
    assert res.exit_code == 1 and "warning: --host 0.0.0.0" in res.output and "in use" in res.output


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright  # optional: the browser test's driver
    except ImportError:
        pytest.skip(BROWSER_HELP)
    if not Path(CHROMIUM).is_file():
        pytest.skip(BROWSER_HELP)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def test_page_in_chromium(server, browser, song, shared_msd, tmp_path):
    url, tmp_root = server
    page = browser.new_page(viewport={"width": 1100, "height": 1200})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    page.wait_for_function("document.getElementById('models').textContent.startsWith('Models:')")
    assert "trained on audio" in page.text_content("#models")
    # a generated song: labels, the posterior over time and the features
    page.set_input_files("#file", str(song))
    page.wait_for_selector("canvas.posterior", timeout=120_000)
    assert page.is_hidden("#error")
    labels = page.locator(".model").first.locator(".labels li")
    assert labels.count() == 5
    first = labels.first.text_content()
    assert any(first.startswith(k) for k in ("C", "D", "E", "F", "G", "A", "B")) and "%" in first
    answer = page.locator(".model").first.locator(".key-answer").text_content()  # the key card
    assert ("confidence" in answer and "%" in answer) or ("no key" in answer and "no tonal centre" in answer)
    assert page.locator(".model h3").first.text_content() == "Key: the shipped audio key model"
    assert page.text_content("h2").startswith("generated-song.wav")  # the file's name, not "upload"
    assert "Not applied" in page.locator(".model").nth(1).text_content()  # the Echo Nest model is named
    assert page.locator("canvas.heatmap").count() == 3  # posterior, chroma, timbre
    assert "tempo" in page.text_content(".facts") and "BPM" in page.text_content(".facts")
    box = page.locator("canvas.posterior").bounding_box()
    assert box["width"] > 300 and box["height"] > 50
    # a canvas that was really drawn on: not one colour
    colours = page.evaluate("""() => { const c = document.querySelector('canvas.posterior');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const s = new Set();
        for (let i = 0; i < d.length; i += 4 * 97) s.add(d[i] + ',' + d[i+1] + ',' + d[i+2]); return s.size; }""")
    assert colours > 10
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    if SHOT:
        page.screenshot(path=SHOT, full_page=True)
    # a real MSD file: the key model is named as not applicable, the Echo Nest model answers
    page.set_input_files("#file", str(shared_msd / "TRAXLZU12903D05F94.h5"))
    page.wait_for_function("document.getElementById('status').textContent.includes('TRAXLZU12903D05F94.h5: done')",
                           timeout=60_000)
    assert "Echo Nest" in page.locator(".model.mismatch").text_content()
    assert page.locator("canvas.posterior").count() == 1
    # bad uploads: a message in the page, the page keeps working
    bad = tmp_path / "random.mp3"
    bad.write_bytes(np.random.default_rng(1).bytes(5000))
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#error:not([hidden])", timeout=60_000)
    assert "random.mp3" in page.text_content("#error")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    page.set_input_files("#file", str(empty))
    page.wait_for_function("document.getElementById('error').textContent.includes('empty')", timeout=30_000)
    big = tmp_path / "two-hours.wav"
    big.write_bytes(b"\0" * (4 * 2**20))  # over this server's 3 MB cap
    page.set_input_files("#file", str(big))
    page.wait_for_function("document.getElementById('error').textContent.includes('MB')", timeout=30_000)
    page.evaluate("""() => { const dt = new DataTransfer();
        dt.items.add(new File(['a'], 'a.wav')); dt.items.add(new File(['b'], 'b.wav'));
        document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt})); }""")
    page.wait_for_function("document.getElementById('error').textContent.includes('one file')", timeout=10_000)
    assert all(r.startswith(url) for r in requests), [r for r in requests if not r.startswith(url)]  # no CDN
    assert list(tmp_root.iterdir()) == []
    page.close()
