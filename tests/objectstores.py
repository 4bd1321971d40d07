"""Real object-store servers on 127.0.0.1 for the tests, and a proxy that injects faults.

* :func:`s3_server` - a moto ``ThreadedMotoServer`` (an S3 API over HTTP) on a free port. IAM
  authentication is off by default (moto then accepts any signature, but still refuses an
  anonymous GET of an object in a bucket without a public policy); inside
  ``with server.auth_required():`` it is on, and only ``server.env``'s key pair is accepted.
* :func:`azurite_server` - Microsoft's Azurite blob emulator (``scripts/azurite.sh install``
  puts it in ``.cache/azurite``; ``make install`` runs that). Shared-key auth is always checked.
* :func:`fault_proxy` - a threaded HTTP proxy in front of either server that answers each
  distinct request (method + path + query + Range) with 503 SlowDown and/or 500 once, can reset
  the connection mid-body (once per object GET) or mid-upload (once per PUT), can add latency, and
  records what it forwarded.

The pytest fixtures ``s3`` and ``azurite`` (session-scoped) are in ``conftest.py``. A test
points the product at a server with ``server.use(monkeypatch)`` (or ``monkeypatch.setenv`` of
``server.env``). boto3 is used here only, never in the product.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import itertools
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from contextlib import contextmanager
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
AZURITE_BIN = (
    Path(os.environ.get("AZURITE_CACHE", REPO / ".cache" / "azurite")) / "node_modules" / ".bin" / "azurite-blob"
)
# Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# Variables that would change which store or credentials the product uses: cleared by use().
_STORE_VARS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_NO_SIGN_REQUEST",
    "AWS_SKIP_SIGNATURE",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
)
_names = itertools.count(1)


def _unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


def _use(env: dict, monkeypatch) -> None:
    for var in _STORE_VARS:
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


# ---------------------------------------------------------------------------------------------
# S3: moto
# ---------------------------------------------------------------------------------------------


class S3Server:
    """A running moto server. ``env`` holds valid credentials (an IAM user with s3:*)."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str):
        import boto3

        self.endpoint = endpoint
        self.env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_REGION": "us-east-1",
        }
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )

    def make_bucket(self, name: str | None = None, public: bool = False) -> str:
        """Create a bucket (a unique name when None); ``public``: anonymous GetObject/ListBucket."""
        name = name or _unique("bkt")
        self.client.create_bucket(Bucket=name)
        if public:
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": ["s3:GetObject", "s3:ListBucket"],
                        "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
                    }
                ],
            }
            self.client.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
        return name

    def url(self, bucket: str, key: str = "") -> str:
        return f"s3://{bucket}/{key}"

    def use(self, monkeypatch) -> None:
        """Point the product at this server (clears other AWS_*/AZURE_* variables)."""
        _use(self.env, monkeypatch)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key in the bucket under ``prefix``, sorted."""
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return sorted(out)

    def headers(self, bucket: str, key: str) -> dict[str, str]:
        """The object's response headers, lower-case names (content-type, x-amz-meta-...)."""
        r = self.client.head_object(Bucket=bucket, Key=key)
        return {k.lower(): v for k, v in r["ResponseMetadata"]["HTTPHeaders"].items()}

    def read(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    @contextmanager
    def auth_required(self) -> Iterator[None]:
        """Inside: moto checks signatures, so only ``env``'s key pair works (wrong keys get
        InvalidAccessKeyId / SignatureDoesNotMatch). Unsigned requests fail here: test
        anonymous reads outside. The switch is moto's own and process-wide."""
        self._reset_auth("0")
        try:
            yield
        finally:
            self._reset_auth("inf")

    def _reset_auth(self, count: str) -> None:
        req = urllib.request.Request(
            self.endpoint + "/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 at a free port, stopped on exit."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        user = _unique("tester")
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user,
            PolicyName="all-s3",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
            ),
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Azure Blob: Azurite
# ---------------------------------------------------------------------------------------------


class AzuriteServer:
    """A running Azurite blob service; ``env`` holds its connection string."""

    def __init__(self, port: int):
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        self.env = {
            "AZURE_STORAGE_CONNECTION_STRING": f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.endpoint};"
        }

    def make_container(self, name: str | None = None, public: bool = False) -> str:
        """Create a container (a unique name when None); ``public``: anonymous read and list."""
        name = name or _unique("cont")
        headers = {"x-ms-blob-public-access": "container"} if public else {}
        self._request("PUT", f"/{name}", {"restype": "container"}, headers)
        return name

    def url(self, container: str, key: str = "") -> str:
        return f"az://{container}/{key}"

    def use(self, monkeypatch) -> None:
        _use(self.env, monkeypatch)

    def keys(self, container: str, prefix: str = "") -> list[str]:
        import xml.etree.ElementTree as ET

        out, marker = [], ""
        while True:
            q = {"restype": "container", "comp": "list"}
            if prefix:
                q["prefix"] = prefix
            if marker:
                q["marker"] = marker
            root = ET.fromstring(self._request("GET", f"/{container}", q)[1])
            out += [b.findtext("Name") for b in root.iter("Blob")]
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return sorted(out)

    def headers(self, container: str, key: str) -> dict[str, str]:
        """The blob's response headers, lower-case names (content-type, x-ms-meta-...)."""
        return self._request("HEAD", f"/{container}/{urllib.parse.quote(key)}", {})[0]

    def read(self, container: str, key: str) -> bytes:
        return self._request("GET", f"/{container}/{urllib.parse.quote(key)}", {})[1]

    def _request(self, method: str, path: str, query: dict, headers: dict | None = None) -> tuple[dict, bytes]:
        """One request signed with the account's shared key (the string-to-sign of API
        version 2015-02-21 and later)."""
        headers = dict(headers or {})
        headers["x-ms-date"] = email.utils.formatdate(usegmt=True)
        headers["x-ms-version"] = "2021-08-06"
        canon_headers = "".join(
            f"{k}:{v}\n" for k, v in sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-ms-"))
        )
        canon_resource = f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}{path}" + "".join(
            f"\n{k}:{v}" for k, v in sorted(query.items())
        )
        to_sign = method + "\n" * 12 + canon_headers + canon_resource
        sig = base64.b64encode(hmac.new(base64.b64decode(AZURITE_KEY), to_sign.encode(), hashlib.sha256).digest())
        headers["Authorization"] = f"SharedKey {AZURITE_ACCOUNT}:{sig.decode()}"
        url = self.endpoint + path + ("?" + urllib.parse.urlencode(query) if query else "")
        req = urllib.request.Request(url, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as r:
            return {k.lower(): v for k, v in r.headers.items()}, r.read()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def azurite_available(install: bool = True) -> str | None:
    """None when Azurite can run here, else the reason it cannot (npm absent). With npm present
    and Azurite not yet installed, installs it (scripts/azurite.sh install, ~40 s once) when
    ``install``; a failed install raises RuntimeError: that is a broken setup, not a skip."""
    if AZURITE_BIN.exists() and shutil.which("node"):
        return None
    if not shutil.which("npm") or not shutil.which("node"):
        return "Azurite not installed and Node.js/npm not found (install them, then scripts/azurite.sh install)"
    if not install:
        return f"Azurite not installed at {AZURITE_BIN}: run scripts/azurite.sh install (make install does)"
    r = subprocess.run(["bash", str(REPO / "scripts" / "azurite.sh"), "install"], capture_output=True, text=True)
    if r.returncode or not AZURITE_BIN.exists():
        raise RuntimeError(f"scripts/azurite.sh install failed: {r.stderr.strip()[-500:]}")
    return None


@contextmanager
def azurite_server() -> Iterator[AzuriteServer]:
    """Azurite's blob service on 127.0.0.1 at a free port with a throwaway workspace
    (telemetry off), stopped on exit. Raises RuntimeError when it is not installed or fails."""
    why = azurite_available(install=False)
    if why:
        raise RuntimeError(why)
    workspace = tempfile.mkdtemp(prefix="azurite-")
    proc = None
    try:
        for _attempt in range(3):  # a free port can be taken between the probe and the bind
            port = _free_port()
            proc = subprocess.Popen(
                [
                    str(AZURITE_BIN),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(port),
                    "--location",
                    workspace,
                    "--skipApiVersionCheck",
                    "--loose",
                    "--silent",
                    "--disableTelemetry",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            if proc.poll() is None and time.monotonic() < deadline:
                break
            err = proc.stderr.read().decode(errors="replace").strip() if proc.poll() is not None else "timed out"
            proc.kill()
            proc.wait()
            proc = None
        if proc is None:
            raise RuntimeError(f"Azurite did not start: {err[-300:]}")
        yield AzuriteServer(port)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(workspace, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Fault proxy
# ---------------------------------------------------------------------------------------------

SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
INTERNAL = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class FaultProxy:
    """What the proxy did. ``counts``: "503", "500", "reset_get", "reset_put", "forwarded".
    ``forwarded``: (method, path with query, status) of each request that reached the
    server, in the order their answers arrived."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.counts: Counter = Counter()
        self.forwarded: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    def puts(self) -> list[str]:
        """Paths (no query) of the objects that became visible, in order: a plain PUT, the
        completion of an S3 multipart upload (POST ?uploadId=) or of Azure blocks (PUT
        ?comp=blocklist); the parts and blocks themselves are left out."""
        out = []
        for method, path, status in self.forwarded:
            u = urllib.parse.urlsplit(path)
            q = urllib.parse.parse_qs(u.query)
            done = (method == "PUT" and (not u.query or q.get("comp") == ["blocklist"])) or (
                method == "POST" and "uploadId" in q
            )
            if done and status < 300:
                out.append(u.path)
        return out


@contextmanager
def fault_proxy(
    upstream: str,
    *,
    fail: tuple[int, ...] = (503, 500),
    reset_get: bool = False,
    reset_put: bool = False,
    delay: float = 0.0,
    min_reset_bytes: int = 2,
) -> Iterator[FaultProxy]:
    """A proxy on 127.0.0.1 in front of ``upstream`` (``http://127.0.0.1:PORT``). Each distinct
    request (method, path + query, Range header) is answered once with each status in ``fail``,
    in order (503 carries an S3 SlowDown body, 500 an InternalError one), then forwarded. With
    ``reset_get``, the first forwarded GET of each object (path + query; a body of at least
    ``min_reset_bytes``) gets half its body, then a TCP reset, once: a GET that resumes it with
    a Range gets through; with ``reset_put``, the first
    forwarded PUT per distinct request with a body of at least ``min_reset_bytes`` is reset
    after half of it is read. ``delay``
    seconds are added before each answer. Point the product at it with AWS_ENDPOINT_URL (or a
    connection string's BlobEndpoint)."""
    up = urllib.parse.urlsplit(upstream)
    seen: dict[tuple, int] = {}
    cut_objects: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            key = (self.command, self.path, self.headers.get("Range", ""))
            with proxy.lock:
                n = seen.get(key, 0)
                seen[key] = n + 1
            if delay:
                time.sleep(delay)
            if n < len(fail):
                self.rfile.read(length)
                status = fail[n]
                body = SLOWDOWN if status == 503 else INTERNAL
                with proxy.lock:
                    proxy.counts[str(status)] += 1
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                return
            first_forward = n == len(fail)
            if reset_put and first_forward and self.command == "PUT" and length >= min_reset_bytes:
                self.rfile.read(length // 2)
                with proxy.lock:
                    proxy.counts["reset_put"] += 1
                return self._reset()
            body = self.rfile.read(length) if length else None
            conn = HTTPConnection(up.hostname, up.port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            with proxy.lock:
                proxy.counts["forwarded"] += 1
                proxy.forwarded.append((self.command, self.path, resp.status))
            is_object = "list-type" not in self.path and "comp=list" not in self.path
            cut = (
                reset_get and self.command == "GET" and resp.status < 300 and is_object and len(data) >= min_reset_bytes
            )
            if cut:  # once per object: the ranged GET that resumes it gets through
                with proxy.lock:
                    cut = self.path not in cut_objects
                    cut_objects.add(self.path)
            self.send_response_only(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in _HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            has_body = self.command != "HEAD" and resp.status not in (204, 304)
            self.send_header("Content-Length", str(len(data)) if has_body else resp.getheader("Content-Length", "0"))
            self.end_headers()
            if not has_body:
                return
            if cut:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                with proxy.lock:
                    proxy.counts["reset_get"] += 1
                return self._reset()
            self.wfile.write(data)

        def _reset(self):
            # linger 0: close() sends a TCP RST; the server skips its usual FIN (shutdown_request)
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with proxy.lock:
                httpd.resets.add(id(self.connection))

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128
        resets: set[int] = set()

        def shutdown_request(self, request):
            with proxy.lock:
                reset = id(request) in self.resets
                self.resets.discard(id(request))
            if reset:
                request.close()
            else:
                super().shutdown_request(request)

    httpd = Server(("127.0.0.1", 0), Handler)
    proxy = FaultProxy(f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
