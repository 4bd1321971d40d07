"""``create`` and ``import-legacy`` against bad arguments, damaged run state, secrets, a full disk,
Ctrl-C, a killed run's leftovers and too many workers (issue 11: items 4, 12-17). Every user
error is one line ``sen12ts-stac: error: ...`` naming the file or option, exit 2, nothing left."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rasterio.errors

from sen12ts_stac.cli import main
from sen12ts_stac.collect import run as run_mod
from sen12ts_stac.sources import register
from sen12ts_stac.sources.synthetic import SyntheticSource

SMALL = ["--aoi", "iowa", "--max-tiles", "3", "--seasons", "summer", "--max-per-season", "1", "--quiet"]


def _main(capfd, *args: str) -> tuple[int, list[str]]:
    """The console entry point in-process: (exit code, stderr lines, as printed on fd 2)."""
    capfd.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capfd.readouterr().err.strip().splitlines()


def _one_error(code: int, lines: list[str], *needles: str) -> str:
    assert code == 2 and len(lines) == 1 and lines[0].startswith("sen12ts-stac: error: "), lines
    assert all(n in lines[0] for n in needles), (needles, lines)
    return lines[0]


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sen12ts_stac.cli", *args], capture_output=True, text=True, timeout=300, **kw
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A finished small run (iowa, 3 tiles, one triplet per tile at most): copy before changing."""
    out = tmp_path_factory.mktemp("made")
    main(["create", "--source", "synthetic", *SMALL, "--out", str(out)])
    return out


def _copy(made: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(made, out)
    return out


# ------------------------------------------------------------------------- item 12: bad arguments
@pytest.mark.parametrize(
    "args, needles",
    [
        (["--seed", "18446744073709551616"], ("--seed", "18446744073709551616")),
        (["--seed", "-1"], ("--seed",)),
        (["--max-per-season", "18446744073709551616"], ("--max-per-season",)),
        (["--source-option", "zzz=1"], ("zzz", "synthetic", "known: none")),
        (["--dask-local", "0"], ("--dask-local must be at least 1",)),
        (["--scheduler", "tcp://"], ("--scheduler 'tcp://'",)),
    ],
)
def test_bad_create_arguments_are_one_line_and_write_nothing(tmp_path, capfd, args, needles):
    out = tmp_path / "new" / "out"
    _one_error(*_main(capfd, "create", "--source", "synthetic", *SMALL, *args, "--out", str(out)), *needles)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", [["create", "--aoi", "iowa"], ["import-legacy", "nowhere"]])
def test_an_empty_out_is_refused_not_the_current_folder(tmp_path, capfd, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    _one_error(
        *_main(
            capfd,
            *command,
            "--source" if command[0] == "create" else "--seed",
            "synthetic" if command[0] == "create" else "0",
            "--out",
            "",
        ),
        "--out",
        "empty path",
    )
    assert not list(tmp_path.iterdir())


def test_unknown_option_of_a_source_with_options_names_the_known_ones(tmp_path, capfd):
    _one_error(
        *_main(
            capfd, "create", "--source", "legacy", "--source-option", "dri=/x", *SMALL, "--out", str(tmp_path / "o")
        ),
        "dri",
        "known: dir, s2_layout",
    )
    assert not (tmp_path / "o").exists()


def test_import_legacy_seed_is_bounded(tmp_path, capfd):
    _one_error(
        *_main(capfd, "import-legacy", str(tmp_path), "--seed", "18446744073709551616", "--out", str(tmp_path / "o")),
        "--seed",
    )


@pytest.mark.parametrize(
    "content",
    [
        b"[1,2]",
        b'{"identity": {"aoi": "iowa"',
        b"{}",
        b'{"identity": [1]}',
        b'{"identity": {"aoi": "iowa", "source": "synthetic"}}',
    ],
)
@pytest.mark.parametrize("source", [["--source", "synthetic"], []])
def test_damaged_run_json_is_one_line_naming_it(made, tmp_path, capfd, content, source):
    out = _copy(made, tmp_path)
    run_json = out / "iowa" / ".sen12ts" / "run.json"
    run_json.write_bytes(content)
    line = _one_error(*_main(capfd, "create", *source, *SMALL, "--out", str(out)), str(run_json), "--overwrite")
    assert "damaged run state" in line
    assert run_json.read_bytes() == content  # nothing rewritten
    # --overwrite starts the AOI again
    code, lines = _main(capfd, "create", "--source", "synthetic", *SMALL, "--overwrite", "--out", str(out))
    assert code == 0, lines
    assert json.loads(run_json.read_text())["identity"]["source"] == "synthetic"


@pytest.mark.parametrize("damage", ["truncated", "not an object", "missing keys", "bad record", "bad stats"])
def test_damaged_tile_state_is_one_line_naming_it(made, tmp_path, capfd, damage):
    out = _copy(made, tmp_path)
    state = next(
        p for p in sorted((out / "iowa" / ".sen12ts" / "tiles").glob("*.json")) if json.loads(p.read_text())["records"]
    )
    doc = json.loads(state.read_text())
    if damage == "truncated":
        state.write_bytes(state.read_bytes()[:50])
    elif damage == "not an object":
        state.write_text("[1, 2]")
    elif damage == "missing keys":
        state.write_text(json.dumps({k: v for k, v in doc.items() if k != "records"}))
    elif damage == "bad record":
        doc["records"][0].pop("href")
        state.write_text(json.dumps(doc))
    else:
        doc["stats"]["s1"]["n"] = [1.0]
        state.write_text(json.dumps(doc))
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    _one_error(*_main(capfd, "create", "--source", "synthetic", *SMALL, "--out", str(out)), str(state), "delete it")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.json")} == before  # stopped before writing anything
    state.unlink()  # as the message says: the tile is collected again
    code, lines = _main(capfd, "create", "--source", "synthetic", *SMALL, "--out", str(out))
    assert code == 0, lines


# --------------------------------------------------------------------- item 4: secrets in run.json
class TokenSource(SyntheticSource):
    """The synthetic source with the options a live one has: a token and a URL."""

    name = "tokened"

    def __init__(self, aoi, seed=0, rules=None, token=None, stac_url=None, timeout="60"):
        assert token, "a resumed run must be given the token again"
        super().__init__(aoi, seed=seed, rules=rules)


def test_secret_source_options_are_not_stored_and_resume_asks_for_them(tmp_path, capfd):
    register("tokened", TokenSource)
    out = tmp_path / "out"
    url = "https://user:hunter2@stac.example.org/v1?sig=SIGVALUE"
    args = ["create", *SMALL, "--out", str(out), "--source-option", "token=TOKVALUE", "--source-option", "timeout=30"]
    code, lines = _main(capfd, *args, "--source", "tokened", "--source-option", f"stac_url={url}")
    assert code == 0, lines
    state = b"".join(p.read_bytes() for p in (out / "iowa" / ".sen12ts").rglob("*") if p.is_file())
    for secret in (b"TOKVALUE", b"hunter2", b"SIGVALUE"):
        assert secret not in state
    assert (
        json.loads((out / "iowa" / ".sen12ts" / "run.json").read_text())["identity"]["source_options"]["timeout"]
        == "30"
    )
    # Resumed without --source: the recorded source and plain options, but the secrets must be given again.
    _one_error(
        *_main(capfd, "create", *SMALL, "--out", str(out)), "run.json", "token", "stac_url", "--source-option token=..."
    )
    code, lines = _main(
        capfd,
        "create",
        *SMALL,
        "--out",
        str(out),
        "--source-option",
        "token=NEWTOKEN",
        "--source-option",
        f"stac_url={url}",
    )
    assert code == 0, lines  # the token is compared by key only: a new one resumes
    # With --source but without the secret: the hint names it.
    _one_error(
        *_main(
            capfd,
            "create",
            "--source",
            "tokened",
            *SMALL,
            "--out",
            str(out),
            "--source-option",
            "timeout=30",
            "--source-option",
            f"stac_url={url}",
        ),
        "different source_options",
        "token",
        "not stored",
    )


def test_a_run_json_from_before_redaction_is_resumed_and_rewritten_without_the_secret(made, tmp_path, capfd):
    register("tokened", TokenSource)
    out = tmp_path / "out"
    code, lines = _main(
        capfd, "create", "--source", "tokened", *SMALL, "--out", str(out), "--source-option", "token=T0K"
    )
    assert code == 0, lines
    run_json = out / "iowa" / ".sen12ts" / "run.json"
    doc = json.loads(run_json.read_text())
    doc["identity"]["source_options"]["token"] = "T0K"  # as older versions wrote it
    run_json.write_text(json.dumps(doc))
    code, lines = _main(
        capfd, "create", "--source", "tokened", *SMALL, "--out", str(out), "--source-option", "token=T0K"
    )
    assert code == 0, lines
    assert b"T0K" not in run_json.read_bytes()


# ------------------------------------------------------------------------------ item 13: disk full
def _gdal_disk_full(calls: list, fail_from: int):
    """write_cog as GDAL behaves on a full disk (from call ``fail_from`` on): libtiff prints its
    lines on fd 2, then rasterio raises a CPLE error that does not say ENOSPC."""
    real = run_mod.write_cog

    def fake(path, *a, **kw):
        calls.append(path)
        if len(calls) < fail_from:
            return real(path, *a, **kw)
        for _ in range(3):
            os.write(2, b"_tiffWriteProc: No space left on device.\n_tiffSeekProc: No space left on device.\n")
        raise rasterio.errors.CPLE_AppDefinedError(1, 1, "TIFFRewriteDirectory:Error fetching directory count")

    return fake


def test_disk_full_is_one_line_naming_the_file_stops_at_once_and_resumes(tmp_path, capfd, monkeypatch):
    out = tmp_path / "out"
    args = [
        "create",
        "--source",
        "synthetic",
        "--aoi",
        "iowa",
        "--max-tiles",
        "6",
        "--seasons",
        "summer",
        "--max-per-season",
        "1",
        "--quiet",
        "--out",
        str(out),
    ]
    calls: list = []
    monkeypatch.setattr(run_mod, "write_cog", _gdal_disk_full(calls, fail_from=4))  # the first tile with a triplet fits
    code, lines = _main(capfd, *args)
    line = _one_error(code, lines, "no space left on device", str(calls[-1]), "run the same command again")
    assert "_tiff" not in line and "source failed" not in line
    assert len(calls) == 4  # stopped at once: no further tile tried
    assert not (out / "iowa" / ".sen12ts" / "failed").exists()  # not recorded as a source failure
    done = len(list((out / "iowa" / ".sen12ts" / "tiles").glob("*.json")))
    assert done >= 1
    monkeypatch.undo()
    code, lines = _main(capfd, *args)
    assert code == 0, lines


def _tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")


@pytest.fixture
def small_disk(tmp_path):
    """A 7 MB tmpfs (needs root: CI containers and this sandbox run as root; skipped elsewhere)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    _tmpfs(disk, "7M")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_a_real_full_disk(small_disk, made, tmp_path):
    out = small_disk / "out"
    r = _cli("create", "--source", "synthetic", *SMALL, "--out", str(out))
    line = _one_error(r.returncode, r.stderr.strip().splitlines(), "no space left on device", str(out / "iowa"))
    assert "_tiff" not in r.stderr and "Traceback" not in r.stderr
    assert subprocess.run(["mount", "-o", "remount,size=40M", str(small_disk)]).returncode == 0
    again = _cli("create", "--source", "synthetic", *SMALL, "--out", str(out))
    assert again.returncode == 0 and "resumed" in again.stdout, (line, again.stderr)
    # validate -o and export into a full disk name the file they could not write
    with contextlib.suppress(OSError), open(small_disk / "filler", "wb", buffering=0) as f:
        while True:
            f.write(b"\0" * (1 << 16))
    report = small_disk / "report.json"
    r = _cli("validate", str(made), "--no-schemas", "--no-checksums", "-o", str(report), "--quiet")
    _one_error(r.returncode, r.stderr.strip().splitlines(), f"{report}: no space left on device")
    r = _cli("export", str(out), "--quiet")
    _one_error(r.returncode, r.stderr.strip().splitlines(), str(out / "iowa"), "no space left on device")


# ------------------------------------------------------------------------------- item 14: Ctrl-C
@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_says_run_again_to_resume_and_the_next_run_does(tmp_path, workers):
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "sen12ts_stac.cli",
        "create",
        "--source",
        "synthetic",
        "--aoi",
        "iowa",
        "--max-tiles",
        "6",
        "--seasons",
        "summer",
        "--max-per-season",
        "2",
        "--quiet",
        "--workers",
        workers,
        "--out",
        str(out),
    ]
    # A terminal's Ctrl-C signals the whole foreground process group: the pool's workers too.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    tiles = out / "iowa" / ".sen12ts" / "tiles"
    deadline = time.time() + 120
    while time.time() < deadline and not (tiles.is_dir() and any(tiles.glob("*.json"))):
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["sen12ts-stac: interrupted; run the same command again to resume"], err
    n = len(list(tiles.glob("*.json")))
    assert 1 <= n < 6
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"{n} resumed" in again.stdout, again.stderr
    assert not list(out.rglob("*.tmp"))


# ------------------------------------------------------------------ item 15: a killed run's leftovers
def test_root_catalog_temporaries_and_probes_of_a_killed_run_are_swept(made, tmp_path, capfd):
    out = _copy(made, tmp_path)
    old = time.time() - 3600
    stale = [out / ".catalog.json.0a1b2c3d.tmp", out / ".write-test-0a1b2c3d"]
    keep = [
        out / ".catalog.json.tmp",
        out / ".write-test-notmine",
        out / "notes.tmp",
        out / ".items.json.0a1b2c3d.tmp",
        out / ".catalog.json.99999999.tmp",
    ]  # the last one is fresh: a concurrent run may be writing it
    for p in stale + keep:
        p.write_bytes(b"x")
        if p.name != ".catalog.json.99999999.tmp":
            os.utime(p, (old, old))
    code, lines = _main(capfd, "create", "--source", "synthetic", *SMALL, "--out", str(out))
    assert code == 0, lines
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)


# ------------------------------------------------------------ item 16: nothing left by a failed run
def test_import_legacy_of_garbage_tiffs_leaves_nothing_in_out(tmp_path, capfd):
    folder = tmp_path / "originals"
    name = "lat_38.4100_lon_-121.4200_s1date_2020-06-10_s2date_2020-06-11_s1track_137_s1lookpass_DESCENDING.tif"
    for kind in ("s1", "s2"):
        (folder / kind).mkdir(parents=True)
        (folder / kind / name).write_bytes(b"II*\0 not really a TIFF")
    out = tmp_path / "new" / "cat"
    _one_error(*_main(capfd, "import-legacy", str(folder), "--out", str(out), "--quiet"), name, "cannot read it")
    assert not (tmp_path / "new").exists()


class FailingSource(SyntheticSource):
    name = "failing"

    def inventory(self, tile, season):
        raise ValueError("a bug in the source")


def test_create_whose_first_tile_fails_leaves_nothing_but_a_resumable_run_keeps_its_state(made, tmp_path, capfd):
    register("failing", FailingSource)
    out = tmp_path / "cat"
    code, lines = _main(capfd, "create", "--source", "failing", *SMALL, "--out", str(out))
    assert code == 2 and len(lines) == 1 and "a bug in the source" in lines[0], lines
    assert not out.exists()
    # An existing folder with finished tiles is a resumable run: a failure keeps it.
    out = _copy(made, tmp_path)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    _one_error(
        *_main(capfd, "create", "--source", "synthetic", *SMALL, "--source-option", "x=1", "--out", str(out)),
        "different source_options",
    )
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


# ---------------------------------------------------------------------------- item 17: workers
def test_workers_are_capped_at_the_tiles_to_do_and_the_cpus(tmp_path, capfd, monkeypatch):
    started = []

    class Pool(run_mod.cf.ProcessPoolExecutor):
        def __init__(self, max_workers=None, **kw):
            started.append(max_workers)
            super().__init__(max_workers=max_workers, **kw)

    from sen12ts_stac.collect.run import worker_count

    monkeypatch.setattr(run_mod.cf, "ProcessPoolExecutor", Pool)
    cpus = len(os.sched_getaffinity(0))
    code, lines = _main(
        capfd, "create", "--source", "synthetic", *SMALL, "--workers", "64", "--out", str(tmp_path / "o")
    )
    assert code == 0, lines
    assert started == ([min(3, cpus)] if min(3, cpus) > 1 else [])
    assert worker_count(64, 3) == min(3, cpus) and worker_count(64, 0) == 1 and worker_count(1, 100) == 1
    from sen12ts_stac.cli import cli

    assert all(
        "one per CPU" in next(p.help for p in cli.commands[c].params if p.name == "workers")
        for c in ("create", "import-legacy")
    )


# ------------------------------------------------------------------------------------ siblings
class LeakySource(SyntheticSource):
    """A source whose errors quote its token and URL, as HTTP clients do."""

    name = "leaky"

    def __init__(self, aoi, seed=0, rules=None, token=None, stac_url=None):
        super().__init__(aoi, seed=seed, rules=rules)
        self.token, self.url = token, stac_url

    def inventory(self, tile, season):
        raise ConnectionError(f"GET {self.url}/search?token={self.token} failed (password hunter2 rejected)")


def test_secrets_are_scrubbed_from_error_lines_and_failure_records(tmp_path, capfd):
    register("leaky", LeakySource)
    out = tmp_path / "out"
    code, lines = _main(
        capfd,
        "create",
        "--source",
        "leaky",
        "--aoi",
        "iowa",
        "--max-tiles",
        "2",
        "--seasons",
        "summer",
        "--quiet",
        "--source-option",
        "token=TOKVALUE",
        "--source-option",
        "stac_url=https://u:hunter2@h.example/v1?sig=SIGVALUE",
        "--out",
        str(out),
    )
    assert code == 2 and len(lines) == 1 and "2 tiles failed" in lines[0], lines
    records = b"".join(p.read_bytes() for p in (out / "iowa" / ".sen12ts").rglob("*") if p.is_file())
    for secret in ("TOKVALUE", "hunter2", "SIGVALUE"):
        assert secret not in lines[0] and secret.encode() not in records
    assert "***" in lines[0]


def test_overwrite_with_a_bad_option_keeps_the_folder(made, tmp_path, capfd):
    out = _copy(made, tmp_path)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    _one_error(
        *_main(
            capfd,
            "create",
            "--source",
            "synthetic",
            *SMALL,
            "--overwrite",
            "--source-option",
            "zzz=1",
            "--out",
            str(out),
        ),
        "zzz",
    )
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_a_full_disk_while_writing_the_tree_says_so_and_how_to_resume(made, tmp_path, capfd, monkeypatch):
    out = _copy(made, tmp_path)
    target = out / "iowa" / "s1" / "collection.json"

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(run_mod, "write_tree", full)
    _one_error(
        *_main(capfd, "create", "--source", "synthetic", *SMALL, "--out", str(out)),
        f"{target}: no space left on device",
        "run the same command again to resume",
    )


def test_ctrl_c_in_any_command_is_one_line_not_aborted(tmp_path, capfd, monkeypatch):
    import sen12ts_stac.distribute.inspect

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(sen12ts_stac.distribute.inspect, "summarise", interrupted)
    code, lines = _main(capfd, "info", str(tmp_path))
    assert code == 130 and lines == ["sen12ts-stac: interrupted"], lines


def test_any_writability_probe_left_by_a_killed_run_is_swept(tmp_path):
    from sen12ts_stac.fsio import check_writable

    old = time.time() - 3600
    probe, fresh, root_tmp = (
        tmp_path / ".write-test-0a1b2c3d",
        tmp_path / ".write-test-99999999",
        tmp_path / ".catalog.json.0a1b2c3d.tmp",
    )
    for p in (probe, fresh, root_tmp):
        p.write_bytes(b"")
    for p in (probe, root_tmp):
        os.utime(p, (old, old))
    check_writable(tmp_path)  # as train and create call it
    assert not probe.exists() and fresh.exists() and root_tmp.exists()


def test_dask_local_is_capped_at_the_cpus(monkeypatch):
    from sen12ts_stac.collect import executors

    asked = []

    class Stop(Exception):
        pass

    class FakeDistributed:
        class LocalCluster:
            def __init__(self, n_workers, **kw):
                asked.append(n_workers)
                raise Stop

    monkeypatch.setattr(executors, "_distributed", lambda: FakeDistributed)
    with pytest.raises(Stop), executors.dask_executor(local_workers=64):
        pass
    assert asked == [min(64, executors.usable_cpus())]


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] not in "ZX"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_kill_or_sigterm_of_the_parent_leaves_no_worker_running(tmp_path, sig):
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "sen12ts_stac.cli",
        "create",
        "--source",
        "synthetic",
        "--aoi",
        "iowa",
        "--max-tiles",
        "8",
        "--seasons",
        "summer",
        "--max-per-season",
        "2",
        "--quiet",
        "--workers",
        "2",
        "--out",
        str(out),
    ]
    err_file = tmp_path / "stderr"
    with open(err_file, "w") as err_out:  # a file, not a pipe: orphans holding a pipe would block communicate()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err_out)
    tiles = out / "iowa" / ".sen12ts" / "tiles"
    deadline = time.time() + 120
    while time.time() < deadline and not (tiles.is_dir() and any(tiles.glob("*.json"))):
        time.sleep(0.05)
    workers = _children(proc.pid)
    try:
        assert workers, "the pool should be running"
        proc.send_signal(sig)  # the parent only, as kill, systemd or docker stop do
        proc.wait(timeout=120)
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "orphaned workers still running"
    finally:
        for w in workers:
            with contextlib.suppress(OSError):
                os.kill(w, signal.SIGKILL)
    err = err_file.read_text()
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and err.strip().splitlines() == [
            "sen12ts-stac: interrupted; run the same command again to resume"
        ], err
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "resumed" in again.stdout, again.stderr


def test_validate_report_into_a_full_disk_names_the_file(made, tmp_path, capfd, monkeypatch):
    """f.write() on a full disk raises OSError(ENOSPC) with no file name: it said 'error: : No space left on device'."""
    from sen12ts_stac import fsio

    class FullFile:
        def __init__(self, *a, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fsio, "open", FullFile, raising=False)
    report = tmp_path / "report.json"
    code, lines = _main(
        capfd, "validate", str(made), "--no-schemas", "--no-checksums", "--no-assets", "-o", str(report), "--quiet"
    )
    _one_error(code, lines, f"{report}: no space left on device")
    assert not list(tmp_path.iterdir())  # no temporary left either


class DyingSource(SyntheticSource):
    """Dies in a pool worker (as the kernel's OOM killer does), never in the parent."""

    name = "dying"
    parent = os.getpid()

    def read_s2(self, tile, scene):
        if os.getpid() != DyingSource.parent:
            os._exit(9)
        return super().read_s2(tile, scene)


def test_a_worker_that_dies_is_one_line_not_a_broken_pool_traceback(tmp_path, capfd):
    register("dying", DyingSource)
    DyingSource.parent = os.getpid()
    code, lines = _main(capfd, "create", "--source", "dying", *SMALL, "--workers", "2", "--out", str(tmp_path / "o"))
    _one_error(code, lines, "a worker process died", "run the same command again")
