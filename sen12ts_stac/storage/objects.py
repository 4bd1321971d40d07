"""Object stores: ``s3://``, ``az://`` (also ``azure://`` and ``abfs[s]://container@account...``)
and ``gs://`` URLs, read and written through `obstore` (Rust ``object_store``), and the GDAL
settings that make ``/vsis3/``, ``/vsiaz/`` and ``/vsigs/`` read the same URLs with the same
credentials.

Configuration is the ecosystem's own, from the environment:

* S3 and S3-compatible stores: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
  ``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` (e.g. ``http://127.0.0.1:9000``
  for MinIO or moto) and ``AWS_NO_SIGN_REQUEST=YES`` for public buckets. For GDAL the endpoint
  is mapped to ``AWS_S3_ENDPOINT``, ``AWS_HTTPS`` and ``AWS_VIRTUAL_HOSTING=FALSE``, and
  obstore is told to allow plain http for an ``http://`` endpoint.
* Azure Blob: ``AZURE_STORAGE_CONNECTION_STRING`` (Azurite's included), or
  ``AZURE_STORAGE_ACCOUNT_NAME`` with ``AZURE_STORAGE_ACCOUNT_KEY`` or ``AZURE_STORAGE_SAS_TOKEN``.
* Google Cloud Storage: ``GOOGLE_APPLICATION_CREDENTIALS`` / ``GOOGLE_SERVICE_ACCOUNT``.

:func:`set_anonymous` (the ``--anonymous`` option) reads public buckets unsigned. Secrets never
leave this module: every error message is passed through :func:`scrub`.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from obstore.store import AzureConfig, ClientConfig, RetryConfig, S3Config

# scheme -> store kind
SCHEMES = {
    "s3": "s3",
    "s3a": "s3",
    "az": "azure",
    "azure": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "gs": "gcs",
    "gcs": "gcs",
}
_GDAL_PREFIX = {"s3": "/vsis3/", "azure": "/vsiaz/", "gcs": "/vsigs/"}
REQUEST_TIMEOUT = timedelta(seconds=60)  # one request, body included (obstore's own overall timeout)
RETRY_TIMEOUT = timedelta(seconds=120)  # retries of one request stop after this long
MAX_RETRIES = 5

_TRUE = ("1", "true", "yes", "on")
_anonymous = False


class ObjectStoreError(Exception):
    """An object-store request failed; the message is one line with no secrets in it.
    ``missing`` is True when the object (or its bucket) does not exist; ``kind`` says which
    ("object", "bucket"), or "denied" for refused credentials, else ""."""

    def __init__(self, message: str, missing: bool = False, kind: str = "", hint: str = ""):
        super().__init__(message + (f" ({hint})" if hint else ""))
        self.missing, self.kind, self.plain = missing, kind, message


def set_anonymous(on: bool = True) -> None:
    """Read public buckets without credentials (unsigned requests), in obstore and GDAL alike."""
    global _anonymous
    _anonymous = bool(on)


def anonymous() -> bool:
    return _anonymous or any(
        os.environ.get(v, "").lower() in _TRUE for v in ("AWS_NO_SIGN_REQUEST", "AWS_SKIP_SIGNATURE")
    )


def is_object_url(s: str) -> bool:
    """True for ``s3://``, ``az://``, ``azure://``, ``abfs[s]://`` and ``gs://`` URLs."""
    scheme, sep, _ = s.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


@dataclass(frozen=True)
class ObjectURL:
    """``scheme://bucket/key`` taken apart; ``account`` only for ``abfs://container@account...``."""

    scheme: str
    bucket: str
    key: str
    account: str = ""

    @property
    def kind(self) -> str:
        return SCHEMES[self.scheme]

    @classmethod
    def parse(cls, url: str) -> ObjectURL:
        u = urllib.parse.urlsplit(url)
        scheme = u.scheme.lower()
        if scheme not in SCHEMES or not u.netloc:
            raise ObjectStoreError(
                f"{url}: not an object-store URL (s3://bucket/key, az://container/key, gs://bucket/key)"
            )
        bucket, account = u.netloc, ""
        if scheme in ("abfs", "abfss") and "@" in bucket:
            bucket, host = bucket.split("@", 1)
            account = host.split(".", 1)[0]
        return cls(scheme, bucket, urllib.parse.unquote(u.path.lstrip("/")), account)

    def with_key(self, key: str) -> ObjectURL:
        return ObjectURL(self.scheme, self.bucket, key, self.account)

    def __str__(self) -> str:
        netloc = f"{self.bucket}@{self.account}.dfs.core.windows.net" if self.account else self.bucket
        return f"{self.scheme}://{netloc}/{urllib.parse.quote(self.key)}"


def join(base: str, href: str) -> str:
    """``href`` (relative) resolved against the object ``base`` (a file URL, or a prefix ending in /)."""
    u = ObjectURL.parse(base)
    folder = u.key if u.key.endswith("/") or not u.key else posixpath.dirname(u.key) + "/"
    if folder == "/":
        folder = ""
    key = posixpath.normpath(posixpath.join("/" + folder, urllib.parse.unquote(href.split("#", 1)[0]))).lstrip("/")
    if href.endswith("/") and key:
        key += "/"
    return str(u.with_key(key))


# ---------------------------------------------------------------------------------------------
# Configuration: obstore stores and GDAL options from the same environment
# ---------------------------------------------------------------------------------------------


def _s3_endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""


def _azure_connection() -> dict[str, str]:
    """``AZURE_STORAGE_CONNECTION_STRING`` taken apart (``Key=value;...``)."""
    text = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
    parts = {}
    for piece in text.split(";"):
        k, sep, v = piece.partition("=")
        if sep:
            parts[k.strip()] = v.strip()
    return parts


def _fingerprint() -> tuple:
    names = (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_SESSION_TOKEN",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "GOOGLE_APPLICATION_CREDENTIALS",
    )
    return tuple(os.environ.get(n) for n in names) + (anonymous(),)


_stores: dict[tuple, object] = {}
_stores_lock = threading.Lock()


def store_for(u: ObjectURL):
    """The obstore store for ``u``'s bucket (cached per bucket and configuration)."""
    key = (u.kind, u.bucket, u.account, _fingerprint())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = _make_store(u)
        return store


def _make_store(u: ObjectURL):
    from obstore.store import AzureStore, GCSStore, S3Store

    retry: RetryConfig = {
        "max_retries": MAX_RETRIES,
        "retry_timeout": RETRY_TIMEOUT,
        "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=5), "base": 2},
    }
    client: ClientConfig = {"timeout": REQUEST_TIMEOUT, "connect_timeout": timedelta(seconds=10)}
    anon = anonymous()
    try:
        if u.kind == "s3":
            config: S3Config = {}
            endpoint = _s3_endpoint()
            if endpoint:
                config["endpoint"] = endpoint
                config["virtual_hosted_style_request"] = False
                client["allow_http"] = endpoint.startswith("http://")
            if not os.environ.get("AWS_REGION") and not os.environ.get("AWS_DEFAULT_REGION"):
                config["region"] = "us-east-1"
            if anon:
                config["skip_signature"] = True
            return S3Store(u.bucket, config=config, client_options=client, retry_config=retry)
        if u.kind == "azure":
            cs = _azure_connection()
            az_config: AzureConfig = {}
            if cs.get("UseDevelopmentStorage", "").lower() == "true":
                az_config["use_emulator"] = True
            if cs.get("AccountName"):
                az_config["account_name"] = cs["AccountName"]
            if cs.get("AccountKey"):
                az_config["account_key"] = cs["AccountKey"]
            if cs.get("SharedAccessSignature"):
                az_config["sas_key"] = cs["SharedAccessSignature"]
            if cs.get("BlobEndpoint"):
                az_config["endpoint"] = cs["BlobEndpoint"]
                client["allow_http"] = cs["BlobEndpoint"].startswith("http://")
            elif cs.get("DefaultEndpointsProtocol", "").lower() == "http":
                client["allow_http"] = True
            if u.account:
                az_config["account_name"] = u.account
            if anon:
                az_config.pop("account_key", None)
                az_config.pop("sas_key", None)
                az_config["skip_signature"] = True
            return AzureStore(u.bucket, config=az_config, client_options=client, retry_config=retry)
        return GCSStore(
            u.bucket, config={"skip_signature": True} if anon else {}, client_options=client, retry_config=retry
        )
    except Exception as e:  # noqa: BLE001 - obstore raises its own configuration errors
        raise ObjectStoreError(f"{u.scheme}://{u.bucket}: cannot configure the store ({_first_line(e)})") from None


def gdal_options() -> dict[str, str]:
    """GDAL config options for ``/vsis3/``, ``/vsiaz/`` and ``/vsigs/`` from the same
    environment (the credentials themselves GDAL reads from the environment on its own)."""
    opts: dict[str, str] = {}
    endpoint = _s3_endpoint()
    if endpoint:
        u = urllib.parse.urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        opts["AWS_S3_ENDPOINT"] = u.netloc + u.path.rstrip("/")
        opts["AWS_HTTPS"] = "NO" if u.scheme == "http" else "YES"
        opts["AWS_VIRTUAL_HOSTING"] = "FALSE"
    if not os.environ.get("AWS_REGION") and not os.environ.get("AWS_DEFAULT_REGION"):
        opts["AWS_REGION"] = "us-east-1"
    # Azure: obstore's variable names -> GDAL's (GDAL reads AZURE_STORAGE_ACCOUNT and
    # AZURE_STORAGE_ACCESS_KEY; a connection string or SAS token it reads under the same name)
    for ours, gdal in (
        ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"),
        ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY"),
    ):
        if os.environ.get(ours) and not os.environ.get(gdal):
            opts[gdal] = os.environ[ours]
    if anonymous():
        opts.update(AWS_NO_SIGN_REQUEST="YES", AZURE_NO_SIGN_REQUEST="YES", GS_NO_SIGN_REQUEST="YES")
    return opts


def gdal_path(url: str) -> str:
    """``/vsis3/bucket/key`` (or ``/vsiaz/``, ``/vsigs/``) for an object URL."""
    u = ObjectURL.parse(url)
    return f"{_GDAL_PREFIX[u.kind]}{u.bucket}/{u.key}"


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


def get(url: str, max_bytes: int) -> bytes:
    """The object's bytes; refused (unread) when it is larger than ``max_bytes``. A connection
    lost mid-body is resumed from where it broke (obstore retries requests, not bodies)."""
    size, chunks = get_chunks(url)
    if size > max_bytes:
        raise ObjectStoreError(f"{url}: {size:,} bytes, over the {max_bytes:,}-byte limit (not read)")
    parts, n = [], 0
    for c in chunks:
        n += len(c)
        if n > max_bytes:
            raise ObjectStoreError(f"{url}: over the {max_bytes:,}-byte limit (not read)")
        parts.append(c)
    return b"".join(parts)


def get_chunks(url: str) -> tuple[int, Iterator[bytes]]:
    """(size, iterator of byte chunks) of the object, streamed; a body cut off mid-way (a reset
    connection) is resumed with a range request from the byte it stopped at, up to
    :data:`MAX_RETRIES` times."""
    import obstore

    u = ObjectURL.parse(url)
    store = store_for(u)
    try:
        result = obstore.get(store, u.key)
        size = result.meta["size"]
    except Exception as e:  # noqa: BLE001
        raise _error(url, e) from None

    def chunks() -> Iterator[bytes]:
        nonlocal result
        offset, failures = 0, 0
        while True:
            try:
                for c in result.stream(min_chunk_size=1 << 20):
                    offset += len(c)
                    yield bytes(c)
                return
            except Exception as e:  # noqa: BLE001
                failures += 1
                if failures > MAX_RETRIES or offset >= size:
                    raise _error(url, e) from None
            time.sleep(min(5.0, 0.1 * 2**failures))
            try:
                result = obstore.get(store, u.key, options={"range": {"offset": offset}})
            except Exception as e:  # noqa: BLE001
                raise _error(url, e) from None

    return size, chunks()


def head(url: str) -> dict | None:
    """``{"size", "e_tag"}`` of the object, or None when there is none."""
    import obstore

    u = ObjectURL.parse(url)
    try:
        meta = obstore.head(store_for(u), u.key)
        return {"size": meta["size"], "e_tag": meta.get("e_tag")}
    except Exception as e:  # noqa: BLE001
        err = _error(url, e)
        if err.kind == "object":  # (S3 answers a HEAD in a missing bucket with a bare 404: also None)
            return None
        raise err from None


def put(url: str, data: bytes | Path, content_type: str | None = None) -> None:
    """Write the object (bytes, or a local file streamed in parts)."""
    import obstore

    u = ObjectURL.parse(url)
    attrs = {"Content-Type": content_type} if content_type else None
    try:
        obstore.put(store_for(u), u.key, data, attributes=attrs)
    except Exception as e:  # noqa: BLE001
        raise _error(url, e) from None


def delete(url: str) -> None:
    import obstore

    u = ObjectURL.parse(url)
    try:
        obstore.delete(store_for(u), u.key)
    except Exception as e:  # noqa: BLE001
        raise _error(url, e) from None


def list_prefix(url: str) -> Iterator[tuple[str, int]]:
    """(key relative to the prefix ``url``, size) of every object below it."""
    import obstore

    u = ObjectURL.parse(url)
    prefix = u.key if not u.key or u.key.endswith("/") else u.key + "/"
    try:
        for batch in obstore.list(store_for(u), prefix or None):
            for meta in batch:
                yield meta["path"][len(prefix) :], meta["size"]
    except Exception as e:  # noqa: BLE001
        raise _error(url, e) from None


def open_reader(url: str) -> io.BufferedReader:
    """A seekable, buffered binary file over the object (ranged reads; for pyarrow's parquet
    reader, which jumps to the footer first)."""
    import obstore

    u = ObjectURL.parse(url)
    try:
        reader = obstore.open_reader(store_for(u), u.key, buffer_size=1 << 20)
    except Exception as e:  # noqa: BLE001
        raise _error(url, e) from None
    return io.BufferedReader(_RawReader(reader, url), buffer_size=1 << 20)


class _RawReader(io.RawIOBase):
    """obstore's ReadableFile as a standard raw file (it lacks ``closed``/``readinto``, which
    pyarrow and io.BufferedReader expect)."""

    def __init__(self, reader, url: str):
        super().__init__()
        self._r, self._url = reader, url

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = bytes(self._r.read(len(buffer)))
        except Exception as e:  # noqa: BLE001
            raise OSError(str(_error(self._url, e))) from None
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._r.seek(offset, whence)

    def tell(self) -> int:
        return self._r.tell()

    def close(self) -> None:
        if not self.closed:
            self._r.close()
        super().close()


# ---------------------------------------------------------------------------------------------
# Errors: one line, no secrets
# ---------------------------------------------------------------------------------------------

_SECRET_PARAMS = re.compile(
    r"(?i)\b(sig|se|sv|sp|AccountKey|SharedAccessSignature|X-Amz-Signature|X-Amz-Credential|"
    r"X-Amz-Security-Token|Signature|Credential)=[^&;\s\"'<]+"
)
_SECRET_VARS = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_CONNECTION_STRING",
)


def scrub(text: str) -> str:
    """``text`` with credential values (from the environment, signed-URL parameters and
    connection-string keys) replaced by ``***``."""
    secrets = [os.environ.get(v, "") for v in _SECRET_VARS]
    secrets += [v for k, v in _azure_connection().items() if k in ("AccountKey", "SharedAccessSignature")]
    for s in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(s, "***")
    return _SECRET_PARAMS.sub(lambda m: m.group(1) + "=***", text)


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return scrub(lines[0] if lines else type(e).__name__)[:300]


def _error(url: str, e: BaseException) -> ObjectStoreError:
    text = str(e)
    m = re.search(r"<Code>([A-Za-z]+)</Code>", text)
    code = m.group(1) if m else ""
    if code == "NoSuchBucket" or "ContainerNotFound" in text:
        return ObjectStoreError(f"{url}: no such bucket or container", missing=True, kind="bucket")
    if isinstance(e, FileNotFoundError) or code == "NoSuchKey" or "BlobNotFound" in text:
        return ObjectStoreError(f"{url}: no such object", missing=True, kind="object")
    if (
        code
        in (
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "AuthenticationFailed",
            "AuthorizationFailure",
        )
        or "status code: 403" in text
        or "403 Forbidden" in text
        or type(e).__name__ in ("PermissionDeniedError", "UnauthenticatedError")
    ):
        why = f" ({code})" if code else ""
        return ObjectStoreError(
            f"{url}: access denied{why}: check the credentials",
            kind="denied",
            hint="a public bucket is read without them: --anonymous or AWS_NO_SIGN_REQUEST=YES",
        )
    return ObjectStoreError(f"{url}: {_first_line(e)}")
