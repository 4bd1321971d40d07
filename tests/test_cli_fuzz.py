"""A seeded, bounded fuzz of the command line (issue 11): random arguments, options and targets
(missing files, FIFOs, folders, garbage JSON, an unreachable URL, a missing bucket) for the
commands that read catalogs. Every run ends in exit 0, 1, 2 or 130, never a traceback or a hang,
and nothing is written outside the run's own folder."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest

from sen12ts_stac.cli import main

REPO = Path(__file__).resolve().parents[1]
RUNS = 80


def _targets(tmp: Path) -> list[str]:
    (tmp / "empty").mkdir()
    (tmp / "garbage.json").write_bytes(b"\x00{not json")
    (tmp / "list.json").write_text("[1, 2]")
    (tmp / "links.json").write_text(
        json.dumps({"type": "Catalog", "id": "x", "stac_version": "1.1.0", "description": "d", "links": -1})
    )
    os.mkfifo(tmp / "fifo.json")
    shutil.copytree(REPO / "catalogs", tmp / "sample")
    return [
        str(tmp / "sample"),
        str(tmp / "sample" / "catalog.json"),
        str(tmp / "empty"),
        str(tmp / "garbage.json"),
        str(tmp / "list.json"),
        str(tmp / "links.json"),
        str(tmp / "fifo.json"),
        str(tmp / "missing"),
        "http://127.0.0.1:9/catalog.json",
        "s3://no-such-bucket/catalog.json",
        "az://c/catalog.json",
        "ftp://x/y",
        "",
        "-",
        "..",
        "\x1b[2J",
        "a" * 300,
    ]


# per command: (option, values it is tried with; None for a flag)
OPTIONS: dict[str, list[tuple[str, list[str] | None]]] = {
    "validate": [
        ("--format", ["json", "text", "xml"]),
        ("--workers", ["-1", "0", "2", "99999999999"]),
        ("--max-json-mb", ["0", "-5", "nan", "1"]),
        ("--no-network", None),
        ("--offline", None),
        ("--strict", None),
        ("--executor", ["thread", "serial", "bogus"]),
        ("--max-findings", ["-1", "3"]),
        ("--quiet", None),
        ("--anonymous", None),
        ("--remote-checksums", None),
        ("--no-assets", None),
    ],
    "info": [("--anonymous", None), ("--bogus", None)],
    "download": [
        ("--split", ["train", "val", "nope", ""]),
        ("--bbox", ["1,2,3", "10,20,0,0", "a,b,c,d", "-180,-90,180,90"]),
        ("--datetime", ["June", "2020-01-01/2019-01-01", "../..", "2020-06-01/.."]),
        ("--workers", ["0", "-3", "2"]),
        ("--max-size", ["-1", "0", "1", "100000000"]),
        ("--dry-run", None),
        ("--quiet", None),
        ("--collection", ["x", "sen12ts_california_triplets"]),
        ("--assets", [",", "s2"]),
    ],
    "export": [("--formats", ["ndjson", "parquet", "csv", ""]), ("--workers", ["0", "-1", "1"]), ("--quiet", None)],
    "publish": [("--workers", ["0", "-2", "2"]), ("--dry-run", None), ("--delete", None), ("--quiet", None)],
}


def _options(rng: random.Random, cmd: str) -> list[str]:
    out: list[str] = []
    for flag, values in rng.sample(OPTIONS[cmd], k=rng.randint(0, min(4, len(OPTIONS[cmd])))):
        out.append(flag)
        if values is not None and rng.random() < 0.95:  # now and then a value is missing
            out.append(rng.choice(values))
    return out


@pytest.mark.slow
def test_random_command_lines_never_trace_back(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    targets = _targets(work)
    monkeypatch.chdir(work)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: fails at once
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/a",
    )
    monkeypatch.setenv("SEN12TS_CACHE_DIR", str(tmp_path / "cache"))
    before = {p for p in tmp_path.parent.iterdir()}
    rng = random.Random(20261207)
    codes: dict[int, int] = {}
    for i in range(RUNS):
        cmd = rng.choice(sorted(OPTIONS))
        good = rng.random() < 0.5  # half the runs on the intact sample, so real work runs too
        args = [cmd, targets[0] if good else rng.choice(targets)]
        if cmd in ("download", "publish") or rng.random() < 0.1:
            args.append(rng.choice([str(work / f"out{i}"), "s3://no-such-bucket/p", str(work / "sample"), ""]))
        args += _options(rng, cmd)
        if cmd == "validate":
            args.append("--offline")  # the schema cache only: never a fetch from outside
        with pytest.raises(SystemExit) as e:  # anything else escaping main() is a traceback
            main(args)
            raise SystemExit(0)
        code = e.value.code or 0
        codes[code] = codes.get(code, 0) + 1
        out = capsys.readouterr()
        assert code in (0, 1, 2, 130), (args, code, out.err[-500:])
        assert "Traceback" not in out.err + out.out, (args, out.err[-2000:])
        if code == 2:
            lines = [line for line in out.err.splitlines() if line.startswith("sen12ts-stac: error:")]
            assert lines, (args, out.err[-500:])
    assert codes.get(0, 0) + codes.get(1, 0) >= 10, codes  # not only refusals: real work ran too
    assert {p for p in tmp_path.parent.iterdir()} == before  # nothing written beside this test's folder
