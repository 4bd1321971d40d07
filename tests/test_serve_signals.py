"""`serve --api` stopped by SIGTERM (systemd, Docker, CI) or SIGHUP cleans up as Ctrl-C does: its
`rustac serve` child stops (the API port no longer answers) and its temporary folder is gone
(issue 11 item 5)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

CLI = Path(sys.executable).with_name("sen12ts-stac")

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_the_api_child_and_removes_its_temporary_folder(small_catalog, tmp_path, sig):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port, api_port = free_port(), free_port()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [str(CLI), "serve", str(small_catalog), "--port", str(port), "--api", "--api-port", str(api_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(line.startswith("Ctrl-C") for line in lines):
            line = proc.stdout.readline()
            assert line, f"serve ended early: {proc.stderr.read()}"
            lines.append(line)
        api = f"http://127.0.0.1:{api_port}"
        assert answers(api) and answers(f"http://127.0.0.1:{port}/catalog.json")
        assert [p.name for p in tmp.iterdir() if p.name.startswith("sen12ts-api-")]
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err
    assert not answers(api), "the rustac child still answers"
    assert not answers(f"http://127.0.0.1:{port}/catalog.json")
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("sen12ts-api-")], (
        "the temporary folder was left behind"
    )


def test_an_interrupted_browser_build_stops_its_whole_process_tree(tmp_path, monkeypatch):
    from sen12ts_stac.distribute import serve

    pidfile = tmp_path / "grandchild.pid"
    script = tmp_path / "build.sh"
    script.write_text(f"sleep 300 &\necho $! > {pidfile}\nwait\n")  # bash -> a long child, as npm -> node
    monkeypatch.setattr(serve, "SCRIPT", script)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            serve.build_browser("http://127.0.0.1:1/catalog.json")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return  # a zombie waiting for init: it has stopped
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the build's child process outlived the interrupted build")
