"""The object-store test servers (tests/objectstores.py) and sen12ts_stac.storage.objects on
each: moto's S3 API and Azurite's blob service, both on 127.0.0.1, and the fault proxy."""

from __future__ import annotations

import os

import pytest
from objectstores import AZURITE_KEY, fault_proxy

from sen12ts_stac.storage import objects

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _signed():
    objects.set_anonymous(False)
    yield
    objects.set_anonymous(False)


@pytest.fixture(params=["s3", "azurite"])
def store(request, monkeypatch):
    """(server, url(bucket, key), make_bucket) for each kind."""
    server = request.getfixturevalue(request.param)
    server.use(monkeypatch)
    make = server.make_bucket if request.param == "s3" else server.make_container
    return server, make


def test_put_get_head_list(store):
    server, make = store
    bucket = make()
    url = server.url(bucket, "cat/a/item.json")
    objects.put(url, b'{"id": "a"}', content_type="application/json")
    objects.put(server.url(bucket, "cat/b.tif"), b"II*\x00" + bytes(2000))
    assert objects.get(url, max_bytes=1000) == b'{"id": "a"}'
    assert objects.head(url)["size"] == 11
    assert sorted(objects.list_prefix(server.url(bucket, "cat"))) == [("a/item.json", 11), ("b.tif", 2004)]
    assert server.keys(bucket) == ["cat/a/item.json", "cat/b.tif"]
    assert server.headers(bucket, "cat/a/item.json")["content-type"] == "application/json"
    assert server.read(bucket, "cat/b.tif")[:4] == b"II*\x00"
    objects.delete(url)
    assert server.keys(bucket) == ["cat/b.tif"]


def test_missing_object_and_bucket(store):
    server, make = store
    bucket = make()
    assert objects.head(server.url(bucket, "nope.json")) is None
    with pytest.raises(objects.ObjectStoreError, match="no such object") as e:
        objects.get(server.url(bucket, "nope.json"), 100)
    assert e.value.missing
    with pytest.raises(objects.ObjectStoreError, match="no such bucket") as e:
        list(objects.list_prefix(server.url("absent-bkt", "x/")))
    assert e.value.missing and "\n" not in str(e.value)


def _assert_denied(call, secret: str):
    with pytest.raises(objects.ObjectStoreError) as e:
        call()
    msg = str(e.value)
    assert "access denied" in msg and "\n" not in msg and secret not in msg, msg


def test_wrong_credentials_s3(s3, monkeypatch):
    s3.use(monkeypatch)
    bucket = s3.make_bucket()
    url = s3.url(bucket, "k.json")
    objects.put(url, b"{}")
    with s3.auth_required():
        assert objects.get(url, 10) == b"{}"  # the fixture's own key pair is valid
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-9f8e7d")
        _assert_denied(lambda: objects.get(url, 10), "wrong-secret-9f8e7d")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY")
        _assert_denied(lambda: objects.put(s3.url(bucket, "new.json"), b"1"), "wrong-secret-9f8e7d")
    assert s3.keys(bucket) == ["k.json"]


def test_wrong_credentials_azurite(azurite, monkeypatch):
    azurite.use(monkeypatch)
    cont = azurite.make_container()
    url = azurite.url(cont, "k.json")
    objects.put(url, b"{}")
    wrong = "d3JvbmctYWNjb3VudC1rZXktZm9yLXRlc3Rz"
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", azurite.env["AZURE_STORAGE_CONNECTION_STRING"].replace(AZURITE_KEY, wrong)
    )
    _assert_denied(lambda: objects.get(url, 10), wrong)
    _assert_denied(lambda: objects.put(azurite.url(cont, "new.json"), b"1"), wrong)
    assert azurite.keys(cont) == ["k.json"]


def test_anonymous_reads_public_bucket_only(store):
    server, make = store
    public, private = make(public=True), make()
    for b in (public, private):
        objects.put(server.url(b, "p/x.json"), b"[1]")
    objects.set_anonymous(True)
    assert objects.get(server.url(public, "p/x.json"), 10) == b"[1]"
    assert list(objects.list_prefix(server.url(public, "p/"))) == [("x.json", 3)]
    with pytest.raises(objects.ObjectStoreError, match="access denied"):
        objects.get(server.url(private, "p/x.json"), 10)


def _through_proxy(kind, server, proxy, monkeypatch):
    if kind == "s3":
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    else:
        monkeypatch.setenv(
            "AZURE_STORAGE_CONNECTION_STRING",
            server.env["AZURE_STORAGE_CONNECTION_STRING"].replace(_upstream(kind, server), proxy.endpoint),
        )


def _upstream(kind, server) -> str:
    return server.endpoint if kind == "s3" else server.endpoint.rsplit("/", 1)[0]


@pytest.mark.parametrize("kind", ["s3", "azurite"])
def test_fault_proxy_503_500_and_reset_mid_upload(kind, request, monkeypatch):
    """Every distinct request is answered 503 then 500 before it reaches the server, and an
    upload is cut by a TCP reset half-way once; obstore's retries ride it all out."""
    server = request.getfixturevalue(kind)
    server.use(monkeypatch)
    bucket = server.make_bucket() if kind == "s3" else server.make_container()
    data = os.urandom(300_000)
    with fault_proxy(_upstream(kind, server), reset_put=True, min_reset_bytes=1000) as proxy:
        _through_proxy(kind, server, proxy, monkeypatch)
        url = server.url(bucket, "faults/blob.bin")
        objects.put(url, data)
        assert objects.head(url)["size"] == len(data)
        assert objects.get(url, len(data)) == data
    assert proxy.counts["503"] == 3 and proxy.counts["500"] == 3, proxy.counts  # PUT, HEAD, GET
    assert proxy.counts["reset_put"] == 1, proxy.counts
    assert server.read(bucket, "faults/blob.bin") == data
    assert [m for m, _, _ in proxy.forwarded] == ["PUT", "HEAD", "GET"]
    assert proxy.puts() == [
        f"/{bucket}/faults/blob.bin" if kind == "s3" else f"/devstoreaccount1/{bucket}/faults/blob.bin"
    ]


@pytest.mark.parametrize("kind", ["s3", "azurite"])
def test_multipart_upload_of_a_file_through_faults(kind, request, monkeypatch, tmp_path):
    """A 7 MB file goes up in parts (S3 multipart, Azure blocks), each part answered 503, 500
    and a reset first; the object is whole, with its Content-Type, and appears once."""
    server = request.getfixturevalue(kind)
    server.use(monkeypatch)
    bucket = server.make_bucket() if kind == "s3" else server.make_container()
    data = os.urandom(7 << 20)  # obstore writes a file over 5 MB in parts
    (tmp_path / "big.tif").write_bytes(data)
    with fault_proxy(_upstream(kind, server), reset_put=True, min_reset_bytes=1000) as proxy:
        _through_proxy(kind, server, proxy, monkeypatch)
        objects.put(server.url(bucket, "big/big.tif"), tmp_path / "big.tif", content_type="image/tiff")
    assert proxy.counts["reset_put"] >= 2, proxy.counts  # more than one part, each cut once
    assert server.read(bucket, "big/big.tif") == data
    assert server.headers(bucket, "big/big.tif")["content-type"] == "image/tiff"
    assert len(proxy.puts()) == 1 and proxy.puts()[0].endswith(f"{bucket}/big/big.tif")


def test_fault_proxy_resets_a_get_mid_body(s3, monkeypatch):
    """The proxy's reset_get: the first GET of an object gets half its body and a TCP reset."""
    import http.client

    s3.use(monkeypatch)
    bucket = s3.make_bucket(public=True)  # the plain client below does not sign
    s3.client.put_object(Bucket=bucket, Key="o.bin", Body=bytes(10_000))
    with fault_proxy(s3.endpoint, fail=(), reset_get=True) as proxy:
        port = int(proxy.endpoint.rsplit(":", 1)[1])
        answers = []
        for _ in range(2):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", f"/{bucket}/o.bin")
            resp = conn.getresponse()
            try:
                answers.append(len(resp.read()))
            except (http.client.IncompleteRead, ConnectionResetError) as e:
                answers.append(type(e).__name__)
            conn.close()
    assert answers[0] in ("IncompleteRead", "ConnectionResetError") and answers[1] == 10_000, answers
    assert proxy.counts["reset_get"] == 1


def test_storage_get_survives_reset_mid_body(s3, monkeypatch):
    """storage.objects.get resumes a body cut mid-way with a range request."""
    s3.use(monkeypatch)
    bucket = s3.make_bucket()
    data = os.urandom(300_000)
    s3.client.put_object(Bucket=bucket, Key="o.bin", Body=data)
    with fault_proxy(s3.endpoint, fail=(), reset_get=True) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        assert objects.get(s3.url(bucket, "o.bin"), len(data)) == data
    assert proxy.counts["reset_get"] == 1


def test_fault_proxy_adds_latency(s3, monkeypatch):
    """``delay``: every request waits that long (the benchmark's added latency)."""
    import time

    s3.use(monkeypatch)
    bucket = s3.make_bucket()
    s3.client.put_object(Bucket=bucket, Key="k", Body=b"x")
    with fault_proxy(s3.endpoint, fail=(), delay=0.2) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        t = time.perf_counter()
        assert objects.head(s3.url(bucket, "k"))["size"] == 1
        assert time.perf_counter() - t >= 0.2
    assert proxy.forwarded == [("HEAD", f"/{bucket}/k", 200)]
