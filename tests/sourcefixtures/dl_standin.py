"""A loopback stand-in for the two Descartes Labs platform endpoints the descartes source uses,
speaking the wire format of the real ``descarteslabs==3.2.2`` client:

* catalog v2 image search, ``PUT {platform}/metadata/v1/catalog/v2/images`` with JSON:API
  ``filter`` (product_id eq, acquired gte/lt) and ``intersects``;
* raster, ``POST {platform}/raster/v2/npz``: two JSON lines (metadata, array metadata), then per
  chunk a JSON line and two blosc buffers (data, mask), the mosaic of the ids in order (later on top).

It checks the bearer token is the one it handed out. Pixel values are simple, known functions so a
test can check what the source makes of them (the real products are gone).
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from shapely.geometry import mapping, shape

from sen12ts_stac.spec.grid import Tile

PixelFn = Callable[
    [str, str, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]
]  # (image, band, x, y) -> (values, valid)


def fake_token() -> str:
    """An unsigned JWT the client accepts (it only decodes the expiry)."""

    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    claims = {
        "sub": "standin|1",
        "email": "standin@example.org",
        "exp": int(time.time()) + 3600,
        "aud": "standin",
        "groups": [],
    }
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.standin"


@dataclass
class Platform:
    images: dict[str, dict] = field(
        default_factory=dict
    )  # id -> attributes (product_id, acquired, geometry, cloud_fraction)
    pixels: PixelFn | None = None
    token: str = field(default_factory=fake_token)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def add(self, product: str, name: str, acquired: dt.datetime, tile: Tile, cloud_fraction: float = 0.0) -> str:
        image_id = f"{product}:{name}"
        geom = tile.polygon_lonlat.buffer(0.05)
        self.images[image_id] = {
            "product_id": product,
            "name": name,
            "acquired": acquired.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "geometry": mapping(geom),
            "cloud_fraction": cloud_fraction,
        }
        return image_id

    # ---------------------------------------------------------------- endpoints
    def search(self, params: dict) -> dict:
        filters = json.loads(params.get("filter", "[]"))
        area = shape(json.loads(params["intersects"])) if params.get("intersects") else None
        out = []
        for image_id, attrs in sorted(self.images.items()):
            if area is not None and not shape(attrs["geometry"]).intersects(area):
                continue
            if all(_match(attrs, f) for f in filters):
                out.append({"type": "image", "id": image_id, "attributes": attrs})
        return {"data": out, "links": {}, "meta": {"count": len(out)}}

    def raster(self, params: dict) -> bytes:
        import blosc

        xmin, ymin, xmax, ymax = params["outputBounds"]
        res = float(params["resolution"])
        w, h = int(round((xmax - xmin) / res)), int(round((ymax - ymin) / res))
        x, y = np.meshgrid(xmin + (np.arange(w) + 0.5) * res, ymax - (np.arange(h) + 0.5) * res)
        data = np.zeros((len(params["bands"]), h, w), np.float64)
        valid = np.zeros(data.shape, bool)
        for image_id in params["ids"]:
            for b, band in enumerate(params["bands"]):
                values, ok = self.pixels(image_id, band, x, y)
                data[b][ok], valid[b][ok] = values[ok], True
        mask = ~valid
        lines = [
            json.dumps({"bands": params["bands"], "ids": params["ids"]}),
            json.dumps({"shape": list(data.shape), "dtype": "float64", "chunks": 1}),
            json.dumps({"shape": list(data.shape), "offset": [0, 0, 0]}),
        ]
        return (
            ("\n".join(lines) + "\n").encode()
            + blosc.compress(np.where(mask, 0, data).tobytes(), typesize=8)
            + blosc.compress(mask.tobytes(), typesize=1)
        )


def _match(attrs: dict, f: dict) -> bool:
    if "or" in f:
        return any(_match(attrs, g) for g in f["or"])
    value, want, op = attrs.get(f["name"]), f["val"], f["op"]
    if f["name"] == "acquired":
        value, want = value[:19], str(want)[:19]
    return {"eq": value == want, "gte": value >= want, "gt": value > want, "lte": value <= want, "lt": value < want}[op]


def start(platform: Platform) -> tuple[str, http.server.ThreadingHTTPServer]:
    """Serve ``platform`` on 127.0.0.1; returns (platform URL, server)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            platform.requests.append((self.command, self.path))
            if self.headers.get("Authorization") != f"Bearer {platform.token}":
                return self._reply(401, json.dumps({"errors": [{"detail": "bad token"}]}).encode())
            params = json.loads(body or b"{}")
            if self.command == "PUT" and self.path.split("?")[0].endswith("/catalog/v2/images"):
                return self._reply(200, json.dumps(platform.search(params)).encode())
            if self.command == "POST" and self.path.endswith("/raster/v2/npz"):
                return self._reply(200, platform.raster(params), "application/octet-stream")
            self._reply(
                404, json.dumps({"errors": [{"detail": f"no {self.command} {self.path} in the stand-in"}]}).encode()
            )

        do_GET = do_PUT = do_POST = _handle

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True, name="descartes stand-in").start()
    return f"http://127.0.0.1:{httpd.server_address[1]}", httpd
