"""File checksums as the STAC file extension writes them: multihash hex strings
(``1220`` + SHA2-256 digest; ``1340`` + SHA2-512 is understood when verifying)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

# multihash code + digest length (the first two bytes, as hex) -> (hash constructor, hex digits)
MULTIHASHES: dict[str, tuple[Callable[[], "hashlib._Hash"], int]] = {
    "1220": (hashlib.sha256, 64),
    "1340": (hashlib.sha512, 128),
}
CHUNK = 1 << 20


def multihash_of(path: str | os.PathLike, code: str = "1220") -> str:
    """The multihash hex string of the file at ``path`` with the hash named by ``code``."""
    new, _ = MULTIHASHES[code]
    h = new()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return code + h.hexdigest()


def sha256_multihash(path: str | os.PathLike) -> str:
    """The file's SHA2-256 as a multihash hex string (``1220`` + digest), as the STAC file
    extension's ``file:checksum`` expects."""
    return multihash_of(path, "1220")


def hasher_for(checksum: object):
    """A fresh hash object for the multihash ``checksum`` (to verify a download while it
    streams); None when the checksum is not a string of a known code and length."""
    if not isinstance(checksum, str) or not checksum:
        return None
    spec = MULTIHASHES.get(checksum[:4].lower())
    if spec is None or len(checksum) != 4 + spec[1]:
        return None
    return spec[0]()
