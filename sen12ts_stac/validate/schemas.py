"""STAC JSON-schema validation offline: a schema cache laid out by URL, validators compiled once.

Where a schema comes from, in order: this process's memory; the package's own copies
(``spec/data/stac-schemas``: classification v2.0.0); pystac's bundled core v1.1.0 and
GeoJSON schemas; the JSON-Schema meta-schemas; the cache folder (``<dir>/<host>/<path>``, the
layout of ``shared/stac-schemas``); the network, only when allowed, and then stored in the cache.
A schema that cannot be had is *not checked*, and said so; it never passes silently.

Each schema URL is compiled once per process, by fastjsonschema (fast, generated Python code).
Valid objects, the common case, never leave that path. When it rejects an object the object is
checked again with ``jsonschema`` against a ``referencing`` registry built from the same cache,
which gives the readable message (and is the arbiter: it is the reference implementation). Schemas
fastjsonschema cannot compile (mlm v1.0-v1.2) are checked by ``jsonschema`` alone.
"""

from __future__ import annotations

import json
import os
import posixpath
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from sen12ts_stac.spec import vocabulary
from sen12ts_stac.validate.report import ERROR, NOT_CHECKED, Finding

ENV_VAR = "SEN12TS_SCHEMAS"
DEFAULT_CACHE = Path.home() / ".cache" / "sen12ts-stac" / "schemas"
FETCH_TIMEOUT_S = 10.0
FETCH_DEADLINE_S = 30.0  # a whole schema download, however slowly the server sends it
MAX_SCHEMA_BYTES = 8 << 20
MAX_FETCH_BYTES = 64 << 20  # all schema downloads of one run (each is stored in the cache)
# A schema referenced but unavailable compiles (in fastjsonschema) to "always fails" with this
# marker, so an object that reaches it falls to the jsonschema path, which names the missing URL.
_UNRESOLVED = "sen12ts-validate: unresolved reference"

CORE_KINDS = {"Feature": "item", "Catalog": "catalog", "Collection": "collection"}
# Deeper than any STAC object (a GeoJSON MultiPolygon in an item is about 8 levels): the schema
# validators recurse, and an object nested 1,000 deep would exhaust Python's stack.
MAX_DEPTH = 64


def depth_over(node: Any, limit: int = MAX_DEPTH) -> bool:
    """True when ``node`` nests lists/objects more than ``limit`` levels deep (iterative)."""
    todo = [(node, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, dict):
            v = list(v.values())
        elif not isinstance(v, list):
            continue
        if d > limit:
            return True
        todo.extend((x, d + 1) for x in v if isinstance(x, (dict, list)))
    return False


def default_cache_dir() -> Path:
    """``$SEN12TS_SCHEMAS`` if set, else ``~/.cache/sen12ts-stac/schemas``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else DEFAULT_CACHE


def core_schema_url(obj: dict) -> str | None:
    """The core schema of a STAC object (by ``type`` and ``stac_version``), or None."""
    t, version = obj.get("type"), obj.get("stac_version")
    kind = CORE_KINDS.get(t) if isinstance(t, str) else None
    if kind is None or not isinstance(version, str) or not version:
        return None
    return f"https://schemas.stacspec.org/v{version.lstrip('v')}/{kind}-spec/json-schema/{kind}.json"


def cache_relpath(url: str) -> str | None:
    """``https://host/a/b.json#x`` -> ``host/a/b.json``; None for anything that could escape
    the cache folder or is not http(s)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    path = posixpath.normpath(parts.path or "/")
    rel = f"{parts.netloc}{path}"
    if ".." in rel.split("/") or rel.startswith("/") or "\\" in rel:
        return None
    return rel


class SchemaUnavailable(Exception):
    """A schema URL could not be had from memory, the bundles, the cache or the network."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: {reason}")
        self.url, self.reason = url, reason


BUNDLED_DIR = Path(__file__).resolve().parents[1] / "spec" / "data" / "stac-schemas"  # laid out by URL


def _bundled() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in BUNDLED_DIR.rglob("*.json"):  # schemas the catalog uses that the cache may lack
        out[f"https://{p.relative_to(BUNDLED_DIR).as_posix()}"] = json.loads(p.read_bytes())
    try:
        from pystac.validation.local_validator import get_local_schema_cache

        out.update(get_local_schema_cache())
    except Exception:  # an older or newer pystac without the bundle: use the cache folder only
        pass
    try:
        from jsonschema_specifications import REGISTRY as META

        for uri in META:
            out.setdefault(uri.rstrip("#"), META[uri].contents)
    except Exception:
        pass
    return out


class SchemaStore:
    """Schemas by URL: memory -> bundled -> cache folder -> network (then stored). Thread-safe."""

    def __init__(
        self, cache_dir: str | os.PathLike | None = None, fetch: bool = True, timeout: float = FETCH_TIMEOUT_S
    ):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.fetch = fetch
        self.timeout = timeout
        self._mem: dict[str, Any] = _bundled()
        self._missing: dict[str, str] = {}
        self._lock = threading.Lock()
        self.fetched: list[str] = []  # URLs fetched over the network this run
        self.fetched_bytes = 0

    @staticmethod
    def _key(url: str) -> str:
        return url.split("#", 1)[0].rstrip("#")

    def get(self, url: str) -> Any:
        key = self._key(url)
        with self._lock:
            if key in self._mem:
                return self._mem[key]
            if key in self._missing:
                raise SchemaUnavailable(key, self._missing[key])
        try:
            schema = self._load(key)
        except SchemaUnavailable as e:
            with self._lock:
                self._missing[key] = e.reason
            raise
        with self._lock:
            self._mem[key] = schema
        return schema

    def _load(self, key: str) -> Any:
        rel = cache_relpath(key)
        if rel is None:
            raise SchemaUnavailable(key, "not an http(s) schema URL")
        path = self.cache_dir / rel
        if path.is_file():
            try:
                if path.stat().st_size > MAX_SCHEMA_BYTES:
                    raise SchemaUnavailable(key, f"cached copy {path} is larger than {MAX_SCHEMA_BYTES >> 20} MiB")
                return json.loads(path.read_bytes())
            except (OSError, ValueError) as e:
                raise SchemaUnavailable(key, f"cached copy {path} is not readable JSON ({e})") from None
        if not self.fetch:
            raise SchemaUnavailable(key, f"schema unavailable: not in the cache {self.cache_dir} (offline)")
        schema = self._download(key)
        try:
            from sen12ts_stac.fsio import write_bytes

            write_bytes(path, json.dumps(schema, indent=2).encode())
        except OSError:
            pass  # a read-only cache still validates; the next run fetches again
        self.fetched.append(key)
        return schema

    def _download(self, key: str) -> Any:
        """One capped GET with an overall deadline; all downloads of a run share a byte budget
        (a catalog naming 10,000 schema URLs must not fill the disk through the cache)."""
        import requests

        from sen12ts_stac.storage.http import BodyTooLarge, DeadlineExceeded, capped_get

        with self._lock:
            if self.fetched_bytes >= MAX_FETCH_BYTES:
                raise SchemaUnavailable(
                    key,
                    f"schema unavailable: not in the cache {self.cache_dir}, and this run has "
                    f"already downloaded {MAX_FETCH_BYTES >> 20} MiB of schemas",
                )
        try:
            got = capped_get(key, MAX_SCHEMA_BYTES, timeout=self.timeout, deadline=FETCH_DEADLINE_S)
        except BodyTooLarge:
            raise SchemaUnavailable(key, f"schema larger than {MAX_SCHEMA_BYTES >> 20} MiB") from None
        except (DeadlineExceeded, requests.RequestException) as e:
            raise SchemaUnavailable(
                key, f"schema unavailable: not in the cache {self.cache_dir}, and unreachable ({type(e).__name__})"
            ) from None
        if got.status != 200:
            raise SchemaUnavailable(
                key, f"schema unavailable: not in the cache {self.cache_dir}, and HTTP {got.status} fetching it"
            )
        body = got.body
        with self._lock:
            self.fetched_bytes += len(body)
        try:
            return json.loads(body)
        except ValueError as e:
            raise SchemaUnavailable(key, f"fetched schema is not JSON ({e})") from None

    def get_or_placeholder(self, url: str) -> Any:
        """For fastjsonschema's ref handlers: the schema, or an always-failing marked placeholder."""
        try:
            return self.get(url)
        except SchemaUnavailable:
            return {"$comment": _UNRESOLVED, "not": {}}


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for v in node.values():
            yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


@dataclass
class Compiled:
    url: str
    schema: Any
    fast: Callable[[Any], Any] | None  # fastjsonschema function; None -> jsonschema only
    slow: Any = None  # jsonschema validator, built on first need (failures are rare)


class SchemaChecker:
    """Validates STAC objects against their core schema and every extension schema they name.
    One compiled validator per schema URL per process; safe to share between threads."""

    def __init__(self, store: SchemaStore, use_fast: bool = True):
        self.store = store
        self.use_fast = use_fast
        self._compiled: dict[str, Compiled | SchemaUnavailable] = {}
        self._lock = threading.RLock()
        self._registry = None

    # -- compiling -------------------------------------------------------------------------
    def _closure(self, url: str) -> dict[str, Any]:
        """The schema and every schema it references (transitively) that can be had."""
        out: dict[str, Any] = {}
        todo = [url]
        while todo:
            u = SchemaStore._key(todo.pop())
            if u in out:
                continue
            try:
                schema = self.store.get(u)
            except SchemaUnavailable:
                continue
            out[u] = schema
            bases = {u}
            if isinstance(schema, dict) and isinstance(schema.get("$id"), str):
                bases.add(schema["$id"])
            for ref in _refs(schema):
                if ref.startswith("#"):
                    continue
                for b in bases:
                    todo.append(urllib.parse.urljoin(b, ref))
        return out

    def _slow_validator(self, url: str, schema: Any):
        from jsonschema.validators import validator_for
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT7

        def retrieve(uri: str):
            try:
                return Resource.from_contents(self.store.get(uri), default_specification=DRAFT7)
            except SchemaUnavailable as e:
                raise LookupError(e.reason) from None

        resources = [
            (u, Resource.from_contents(s, default_specification=DRAFT7)) for u, s in self._closure(url).items()
        ]
        # referencing's own stub (_attrs.pyi) hides its attrs fields from mypy:
        # retrieve= is the documented alias of _retrieve
        registry = Registry(retrieve=retrieve).with_resources(resources).crawl()  # type: ignore[call-arg]
        cls = validator_for(schema, default=validator_for({"$schema": "http://json-schema.org/draft-07/schema#"}))
        return cls(schema, registry=registry)

    def compiled(self, url: str) -> Compiled:
        key = SchemaStore._key(url)
        with self._lock:
            c = self._compiled.get(key)
            if c is None:
                try:
                    schema = self.store.get(key)
                    fast = None
                    if self.use_fast:
                        try:
                            import fastjsonschema

                            handler = self.store.get_or_placeholder
                            fast = fastjsonschema.compile(
                                schema,
                                handlers={"http": handler, "https": handler},
                                use_default=False,
                                use_formats=False,
                            )
                        except Exception:  # fastjsonschema cannot compile it (e.g. mlm v1.0-1.2)
                            fast = None
                    c = Compiled(key, schema, fast, None if fast else self._slow_validator(key, schema))
                except SchemaUnavailable as e:
                    c = e
                self._compiled[key] = c
        if isinstance(c, SchemaUnavailable):
            raise c
        return c

    # -- validating ------------------------------------------------------------------------
    def schema_urls(self, obj: dict) -> tuple[str | None, list[Any]]:
        exts = obj.get("stac_extensions", [])
        return core_schema_url(obj), exts if isinstance(exts, list) else [exts]

    def check(self, obj: Any, where: str) -> list[Finding]:
        """Findings for one object: errors for schema violations, not-checked for unavailable
        schemas (one per schema URL, the caller aggregates)."""
        if not isinstance(obj, dict):
            return [Finding(ERROR, "schema", where, "not a JSON object")]
        if depth_over(obj):
            return [
                Finding(
                    ERROR,
                    "schema",
                    where,
                    f"nested more than {MAX_DEPTH} levels deep: no STAC object is; not checked against the schemas",
                )
            ]
        core, exts = self.schema_urls(obj)
        out: list[Finding] = []
        if core is None:
            out.append(
                Finding(
                    ERROR,
                    "schema",
                    where,
                    f"not a STAC object: type {obj.get('type')!r}, stac_version {obj.get('stac_version')!r} "
                    "(need type Feature, Catalog or Collection and a stac_version)",
                )
            )
        if not isinstance(obj.get("stac_extensions", []), list):
            out.append(Finding(ERROR, "schema", where, "stac_extensions is not a list"))
        for url in ([core] if core else []) + exts:
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):  # STAC 1.x: a schema URL
                out.append(
                    Finding(
                        ERROR, "schema", where, f"extension {str(url)[:80]!r} is not an http(s) schema URL: not checked"
                    )
                )
                continue
            out.extend(self._one(url, obj, where))
        if vocabulary.has_fields(obj):  # the sen12ts: fields, by their own schema (bundled)
            out.extend(self._one(vocabulary.SCHEMA_URL, obj, where))
        return out

    def _one(self, url: str, obj: dict, where: str) -> list[Finding]:
        try:
            c = self.compiled(url)
        except SchemaUnavailable as e:
            return [Finding(NOT_CHECKED, "schema", where, f"{e.url}: {e.reason}", key=f"schema:{e.url}")]
        if c.fast is not None:
            try:
                c.fast(obj)
                return []
            except Exception:  # rejected (or crashed): ask the reference implementation
                pass
        return self._slow(c, obj, where)

    def _slow(self, c: Compiled, obj: dict, where: str) -> list[Finding]:
        from jsonschema.exceptions import best_match

        if c.slow is None:
            with self._lock:
                if c.slow is None:
                    c.slow = self._slow_validator(c.url, c.schema)
        try:
            err = best_match(c.slow.iter_errors(obj))
        except RecursionError:  # malformed (too deep for the validator): an error, never a pass
            return [Finding(ERROR, "schema", where, f"too deeply nested to check against {short_schema_name(c.url)}")]
        except Exception as e:  # referencing.exceptions.Unresolvable and friends
            ref = getattr(e, "ref", None) or getattr(getattr(e, "__cause__", None), "ref", None) or str(e)[:200]
            return [
                Finding(
                    NOT_CHECKED, "schema", where, f"{c.url}: references {ref}, which is unavailable", key=f"ref:{ref}"
                )
            ]
        if err is None:
            return []
        path = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        msg = err.message if len(err.message) <= 300 else err.message[:300] + "..."
        return [Finding(ERROR, "schema", where, f"{path}: {msg} [{short_schema_name(c.url)}]")]


def short_schema_name(url: str) -> str:
    """``https://stac-extensions.github.io/label/v1.0.1/schema.json`` -> ``label v1.0.1``."""
    p = urllib.parse.urlsplit(url)
    parts = [x for x in p.path.split("/") if x]
    if p.netloc == "schemas.stacspec.org" and len(parts) >= 2:
        return f"core {parts[-1].removesuffix('.json')} {parts[0]}"
    if p.netloc.endswith("stac-extensions.github.io") and len(parts) >= 2:
        return f"{parts[0]} {parts[1]}"
    return url
