"""``download SRC DEST``: fetch a filtered subset of a static catalog (a local folder, or an
http(s), ``s3://``, ``az://`` or ``gs://`` URL) into a local folder that is itself a valid,
smaller catalog.

Filters are MLHub-style (the one :class:`~sen12ts_stac.spec.filters.Filter`, which the stream index
shares): collections, asset keys, bbox, datetime interval, AOI, split. DEST
mirrors SRC's layout (paths relative to the root catalog's folder), so the relative hrefs in the
copied items keep working, and the catalogs and collections above the chosen items are written
with only the links that lead to them.

Safety against a hostile catalog: every document and asset must resolve to a location below the
root catalog's folder (no ``..`` escape, no absolute path or other host, no symlink out of a
local SRC); every path component must be a plain name; item ids must be plain names; nothing is
written through a symlink in DEST; a ``file:size`` above ``max_size`` is refused, and so is a
body longer than its declared ``file:size`` (reading stops there); an http redirect to another
origin is refused (a document below the entry may not redirect at all), and every transfer has
an overall deadline (a server that trickles bytes is cut off). Each refusal is a finding
naming the item, asset and reason; the rest goes on, and the command exits 1.

Resumable: files are written as ``.<name>.part`` and renamed once their size and
``file:checksum`` (multihash sha2-256 ``1220...``) check out; a rerun skips files already there
whose size and checksum match.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import posixpath
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import orjson
import requests
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from sen12ts_stac.errors import UserError
from sen12ts_stac.fsio import catalog_entry, write_json
from sen12ts_stac.spec.filters import Filter
from sen12ts_stac.storage import (
    MAX_JSON_BYTES,
    DeadlineExceeded,
    ReadError,
    folder_of,
    is_url,
    origin,
    read_bytes,
    resolve,
)
from sen12ts_stac.storage.checksums import hasher_for
from sen12ts_stac.storage.read import Stream, open_chunks
from sen12ts_stac.storage.walk import walk

DEFAULT_MAX_SIZE = 2 * 1024**3  # per file; the largest SEN12TS COG is ~4 MB
CHUNK = 1 << 20
MIN_RATE = 64 << 10  # bytes/s: a file transfer slower than this on average is cut off (on top of the base deadline)
_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+=,@-]{0,254}$")


class Refused(Exception):
    """One file or document refused (hostile or broken); becomes a finding, the rest goes on."""


# --------------------------------------------------------------------------------------------
# Where things are: a local folder or an http(s) prefix, and the safe relative paths below it
# --------------------------------------------------------------------------------------------


def safe_rel(rel: str) -> str:
    """``rel`` if it is a plain relative POSIX path (no ``..``, ``.``, empty, hidden-absolute or
    odd component), else raise Refused."""
    parts = rel.split("/")
    if (
        not rel
        or rel.startswith("/")
        or any(
            p in ("", ".", "..") or "\\" in p or "\x00" in p or any(ord(c) < 32 for c in p) or len(p) > 255
            for p in parts
        )
    ):
        raise Refused(f"unsafe path {rel!r}")
    return rel


class Location:
    """The source catalog: a local folder or the URL of a static catalog (http(s), s3://, az://,
    gs://); reading documents and files through :mod:`sen12ts_stac.storage`, and where each lies
    below the root."""

    def __init__(self, src: str, timeout: float = 60.0, deadline: float = 120.0):
        self.timeout, self.deadline = timeout, deadline
        self.remote = is_url(src)
        if self.remote:
            self.entry = src if src.endswith(".json") else src.rstrip("/") + "/catalog.json"
            self.base = folder_of(self.entry)
        else:
            entry = catalog_entry(src, also=" or the URL of a catalog (http(s), s3://, az://, gs://)")
            self.entry = str(entry.resolve())
            self.base = str(Path(os.path.realpath(entry)).parent)

    def rebase(self, final_entry: str) -> None:
        """The entry answered from ``final_entry`` (a redirect): the root is its folder."""
        self.entry, self.base = final_entry, folder_of(final_entry)

    def join(self, doc: str, href: str) -> str:
        target = resolve(doc, href)
        if target is None:
            raise Refused(f"href {href!r} is not a path or a supported URL")
        return target

    def rel(self, loc: str) -> str:
        """``loc`` relative to the root folder, checked safe; Refused if it lies outside."""
        if self.remote:
            u, b = urllib.parse.urlsplit(loc), urllib.parse.urlsplit(self.base)
            if origin(loc) != origin(self.base) or u.query or u.fragment:
                raise Refused(f"{loc} is not below the catalog root {self.base}")
            path, base_path = urllib.parse.unquote(u.path), urllib.parse.unquote(b.path)
            norm = posixpath.normpath(path)
            if not norm.startswith(base_path) or ".." in path.split("/"):
                raise Refused(f"{loc} leaves the catalog root {self.base}")
            return safe_rel(norm[len(base_path) :])
        if is_url(loc):
            raise Refused(f"{loc} is a URL in a local catalog")
        real = os.path.realpath(loc)  # a symlink pointing out of the catalog is refused here
        if os.path.commonpath([real, self.base]) != self.base:
            raise Refused(f"{loc} resolves to {real}, outside the catalog root {self.base}")
        return safe_rel(Path(os.path.relpath(real, self.base)).as_posix())

    def read_json(self, loc: str) -> tuple[dict, str]:
        """``(document, final location)``; Refused when it cannot be read or is not an object.
        A document that redirects elsewhere is refused (its relative links would point
        somewhere else than the copy's); only the entry may redirect (see :meth:`rebase`)."""
        try:
            got = read_bytes(loc, MAX_JSON_BYTES, timeout=self.timeout, deadline=self.deadline)
        except ReadError as e:
            raise Refused(f"{loc}: cannot read ({e})") from None
        if got.url != loc and loc != self.entry:
            raise Refused(f"{loc}: redirects to {got.url}; a document below the entry may not move")
        try:
            obj = orjson.loads(got.body)
        except orjson.JSONDecodeError as e:
            raise Refused(f"{loc}: not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise Refused(f"{loc}: not a JSON object")
        return obj, got.url

    def open_chunks(self, loc: str, size: int | None) -> Stream:
        """The file at ``loc`` as a stream. A redirect to another origin is refused (another
        host's bytes never land in DEST), and over http the transfer has an overall deadline
        that allows for its declared size (a server trickling bytes is cut off)."""
        deadline = self.deadline + (size if size is not None else DEFAULT_MAX_SIZE // 64) / MIN_RATE
        try:
            stream = open_chunks(loc, timeout=self.timeout, deadline=deadline)
        except ReadError as e:
            raise Refused(f"{loc}: {e}") from None
        if origin(stream.url) != origin(loc):
            stream.close()
            raise Refused(f"{loc} redirects to another origin ({origin(stream.url).rstrip('/')}); not followed")
        return stream


# --------------------------------------------------------------------------------------------
# Plan: walk the catalog, choose items, list their files
# --------------------------------------------------------------------------------------------


@dataclass
class FileTask:
    rel: str  # destination relative to DEST (= source path relative to the root folder)
    src: str
    size: int | None
    checksum: str | None
    what: str  # "item X asset K", for messages


@dataclass
class Node:
    rel: str
    obj: dict
    kids: list[str] = field(default_factory=list)  # rels of child documents that were kept


@dataclass
class DownloadReport:
    items: int = 0
    files: int = 0
    present: int = 0  # already complete in DEST (resume)
    downloaded: int = 0
    bytes: int = 0
    unverified: int = 0  # no (supported) checksum to check against
    findings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [
            f"items: {self.items}  files: {self.files} ({self.downloaded} downloaded, {self.present} already "
            "complete)  "
            f"bytes downloaded: {self.bytes:,}  [{self.seconds:.1f} s]"
        ]
        if self.unverified:
            out.append(f"{self.unverified} files had no sha2-256 file:checksum to verify (size checked only)")
        if self.findings:
            out.append(f"refused: {len(self.findings)}")
            out += [f"  {f}" for f in self.findings[:50]]
            if len(self.findings) > 50:
                out.append(f"  ... and {len(self.findings) - 50} more")
        return out


def _plan(
    loc: Location,
    filters: Filter,
    max_size: int,
    workers: int,
    report: DownloadReport,
    write_item: Callable[[str, dict], None],
) -> tuple[dict[str, Node], dict[str, FileTask]]:
    """Walk the catalog (the storage walker: documents fetched concurrently), keeping the chosen
    items; every document and link target must lie below the root."""
    nodes: dict[str, Node] = {}
    tasks: dict[str, FileTask] = {}
    parents: dict[str, str | None] = {}
    linked_from: dict[str, str] = {}  # document location -> rel of the document that linked it first
    try:
        root_obj, final = loc.read_json(loc.entry)
        if final != loc.entry:
            loc.rebase(final)
        loc.rel(loc.entry)
    except Refused as e:
        raise UserError(str(e)) from None

    def read(where: str) -> tuple[dict, str]:
        return (root_obj, loc.entry) if where == loc.entry else loc.read_json(where)

    def visit(path: str, obj: dict) -> tuple[tuple, list[str]]:
        """Runs in a walker thread: which links to follow (below the root only)."""
        if obj.get("type") == "Feature" or (
            obj.get("type") == "Collection" and not filters.wants_collection(str(obj.get("id", "")))
        ):
            return (path, obj, []), []
        rel, found, refused = loc.rel(path), [], []
        for link in obj.get("links") or []:
            if not isinstance(link, dict) or link.get("rel") not in ("child", "item") or not link.get("href"):
                continue
            try:
                target = loc.join(path, link["href"])
                loc.rel(target)
            except Refused as e:
                refused.append(f"{rel}: {link['rel']} link {str(link['href'])[:200]!r} refused: {e}")
                continue
            found.append(target)
        return (path, obj, refused), found

    def on_error(where: str, e: Exception) -> tuple:
        if not isinstance(e, Refused):
            raise e
        return where, None, [str(e)]

    for path, obj, refused in walk(loc.entry, visit, read=read, workers=workers, on_error=on_error):
        report.findings += refused
        if obj is None:
            continue
        rel = loc.rel(path)
        parent = linked_from.get(path)
        kind = obj.get("type")
        if kind == "Feature":
            _take_item(loc, path, rel, obj, filters, max_size, report, tasks, parents, parent, write_item)
            continue
        if kind == "Collection" and not filters.wants_collection(str(obj.get("id", ""))):
            continue
        nodes[rel] = Node(rel, obj)
        parents[rel] = parent
        for link in obj.get("links") or []:
            if isinstance(link, dict) and link.get("rel") in ("child", "item") and link.get("href"):
                target = resolve(path, link["href"])
                if target is not None:
                    linked_from.setdefault(target, rel)
    # keep the chain of documents above every chosen item
    kept_docs = set()
    for rel, parent in parents.items():
        if rel in nodes:
            continue
        while parent is not None and (rel, parent) not in kept_docs:
            kept_docs.add((rel, parent))
            nodes[parent].kids.append(rel)
            rel, parent = parent, parents.get(parent)
    return nodes, tasks


def _take_item(loc, path, rel, item, filters, max_size, report, tasks, parents, parent, write_item) -> None:
    iid = str(item.get("id", ""))
    if not _SAFE_ID.match(iid):
        report.findings.append(f"{rel}: item id {iid[:80]!r} is not a plain name; item refused")
        return
    if not filters.wants_item(item):
        return
    item_tasks = []
    for key, asset in (item.get("assets") or {}).items():
        if filters.assets is not None and key not in filters.assets:
            continue
        what = f"item {iid} asset {key}"
        href = asset.get("href") or ""
        size, checksum = asset.get("file:size"), asset.get("file:checksum")
        try:
            if not href:
                raise Refused("no href")
            if href.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", href):
                raise Refused(f"absolute path {href!r}")
            target = loc.join(path, href)
            arel = loc.rel(target)
            if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
                raise Refused(f"file:size {size!r} is not a byte count")
            if size is not None and size > max_size:
                raise Refused(f"file:size {size:,} bytes is over the limit of {max_size:,} (--max-size)")
        except Refused as e:
            report.findings.append(f"{what}: {e}; refused")
            continue
        known = tasks.get(arel)
        if known is not None:  # shared file (a triplet repeats its features' assets): merge what is declared
            if checksum and known.checksum and checksum != known.checksum:
                report.findings.append(
                    f"{what}: file:checksum differs from {known.what} for the same file {arel}; refused"
                )
                continue
            known.size = known.size if known.size is not None else size
            known.checksum = known.checksum or checksum
            continue
        item_tasks.append(FileTask(arel, target, size, checksum, what))
    for t in item_tasks:
        tasks[t.rel] = t
    parents[rel] = parent
    report.items += 1
    write_item(rel, item)


# --------------------------------------------------------------------------------------------
# Writing into DEST
# --------------------------------------------------------------------------------------------


class Dest:
    """The destination folder; every path is checked to stay inside it, never through a symlink."""

    def __init__(self, folder: str | Path):
        self.root = Path(folder)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{folder}: cannot create the destination folder ({e.strerror or e})") from None
        self.real = os.path.realpath(self.root)

    def path(self, rel: str) -> Path:
        safe_rel(rel)
        p = self.root
        for part in rel.split("/"):
            p = p / part
            if p.is_symlink():
                raise Refused(f"{p} is a symlink in the destination; not writing through it")
        parent = os.path.realpath(p.parent) if p.parent.exists() else None
        if parent is not None and os.path.commonpath([parent, self.real]) != self.real:
            raise Refused(f"{p} resolves outside {self.root}")
        return p


def file_matches(path: Path, size: int | None, checksum: str | None) -> bool:
    """Is ``path`` already the file declared (size and, when given, checksum)?"""
    try:
        if not path.is_file() or path.is_symlink() or (size is not None and path.stat().st_size != size):
            return False
    except OSError:
        return False
    h = hasher_for(checksum)
    if h is None or checksum is None:  # (hasher_for gives None for a None checksum)
        return True
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return checksum[:4].lower() + h.hexdigest() == checksum.lower()


def fetch_file(
    loc: Location, dest: Dest, task: FileTask, max_size: int, on_bytes: Callable[[int], None]
) -> tuple[str, int]:
    """Download one file: ``("present", 0)`` if already complete, else ``("downloaded", bytes)``.
    Raises Refused (and leaves nothing behind) on any mismatch."""
    final = dest.path(task.rel)
    if file_matches(final, task.size, task.checksum):
        return "present", 0
    final.parent.mkdir(parents=True, exist_ok=True)
    dest.path(task.rel)  # re-check now the folders exist
    part = final.with_name(f".{final.name}.part")
    if part.is_symlink():
        part.unlink()
    limit = task.size if task.size is not None else max_size
    h = hasher_for(task.checksum)
    n = 0
    try:
        stream = loc.open_chunks(task.src, task.size)
        length, chunks = stream.size, stream.chunks
        if length is not None and length > limit:
            raise Refused(
                f"server announces {length:,} bytes, more than the "
                f"{'declared file:size' if task.size is not None else 'limit'} {limit:,}"
            )
        with open(part, "wb") as f:
            for chunk in chunks:
                n += len(chunk)
                if n > limit:
                    raise Refused(
                        f"body longer than the {'declared file:size' if task.size is not None else 'limit'} {limit:,} "
                        "bytes"
                    )
                if h is not None:
                    h.update(chunk)
                f.write(chunk)
                on_bytes(len(chunk))
        if task.size is not None and n != task.size:
            raise Refused(f"got {n:,} bytes, file:size declares {task.size:,}")
        cs = task.checksum
        if h is not None and cs is not None and cs[:4].lower() + h.hexdigest() != cs.lower():
            raise Refused(f"checksum mismatch: got {cs[:4]}{h.hexdigest()[:16]}..., file:checksum says {cs[:20]}...")
        os.replace(part, final)
        return "downloaded", n
    except (OSError, requests.RequestException, DeadlineExceeded, ReadError) as e:
        raise Refused(f"{task.src}: {type(e).__name__}: {str(e)[:200]}") from None
    finally:
        part.unlink(missing_ok=True)


def _write_tree(nodes: dict[str, Node], dest: Dest, root_rel: str, report: DownloadReport) -> None:
    """Write the catalogs/collections above the chosen items, linking only what was kept."""
    for rel, node in nodes.items():
        if not node.kids and rel != root_rel:
            continue
        doc_dir = posixpath.dirname(rel)
        kids = set(node.kids)
        obj = dict(node.obj)
        links = []
        for lk in obj.get("links", []):
            if lk.get("rel") in ("child", "item"):
                target = posixpath.normpath(posixpath.join(doc_dir, lk.get("href", "")))
                if target not in kids:
                    continue
            links.append(lk)
        obj["links"] = links
        if obj.get("assets"):  # the export snapshots describe the whole collection, not this subset
            obj["assets"] = {k: a for k, a in obj["assets"].items() if "stac-items" not in (a.get("roles") or [])}
            if not obj["assets"]:
                del obj["assets"]
        try:
            write_json(dest.path(rel), obj)
        except Refused as e:
            report.findings.append(f"{rel}: {e}; refused")


def download(
    src: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    collections=None,
    assets=None,
    bbox=None,
    datetime=None,
    aoi=None,
    split=None,
    workers: int = 8,
    max_size: int = DEFAULT_MAX_SIZE,
    dry_run: bool = False,
    progress: bool = True,
    on_file: Callable[[FileTask, str], None] | None = None,
) -> DownloadReport:
    """Download the chosen items and their assets from ``src`` into ``dest``; see the module doc.
    ``on_file(task, status)`` is called in the calling thread after each file."""
    t0 = time.perf_counter()
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if max_size < 1:
        raise UserError(f"--max-size must be at least 1 byte, got {max_size}")
    filters = Filter.make(collections=collections, assets=assets, bbox=bbox, datetime=datetime, aoi=aoi, split=split)
    loc = Location(os.fspath(src))
    _refuse_overlap(loc, dest)
    out = Dest(os.fspath(dest))
    report = DownloadReport()

    def write_item(rel: str, item: dict) -> None:
        if dry_run:
            return
        try:
            write_json(out.path(rel), item)
        except Refused as e:
            report.findings.append(f"item {item.get('id')}: {e}; refused")

    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download") as pool:
        nodes, tasks = _plan(loc, filters, max_size, workers, report, write_item)
        report.files = len(tasks)
        if not dry_run:
            _write_tree(nodes, out, loc.rel(loc.entry), report)
            _download_all(loc, out, list(tasks.values()), max_size, pool, report, progress, on_file)
    report.seconds = time.perf_counter() - t0
    return report


def _refuse_overlap(loc: Location, dest: str | os.PathLike) -> None:
    """A local SRC and DEST must be apart: the same folder, or one inside the other, would have
    the download rewrite (and with filters, shrink) the source catalog. Checked before any write."""
    if loc.remote:
        return
    src_root, dest_real = loc.base, os.path.realpath(dest)
    if os.path.commonpath([src_root, dest_real]) in (src_root, dest_real):
        what = "is" if src_root == dest_real else "overlaps"
        raise UserError(
            f"{dest}: the destination {what} the source catalog folder {src_root}; choose a folder outside it"
        )


def _download_all(loc, out, tasks, max_size, pool, report, progress, on_file) -> None:
    total = sum(t.size or 0 for t in tasks)
    report.unverified = sum(hasher_for(t.checksum) is None for t in tasks)
    columns = [
        TextColumn("[bold]download"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, disable=not progress) as bar:
        task_id = bar.add_task("download", total=total or None)
        files_id = bar.add_task("files", total=len(tasks), visible=False)
        lock = threading.Lock()

        def on_bytes(n: int) -> None:
            with lock:
                bar.update(task_id, advance=n)

        futures = {pool.submit(fetch_file, loc, out, t, max_size, on_bytes): t for t in tasks}
        try:
            for fut in cf.as_completed(futures):
                t = futures[fut]
                try:
                    status, n = fut.result()
                except Refused as e:
                    report.findings.append(f"{t.what} ({t.rel}): {e}; refused")
                    status, n = "refused", 0
                if status == "present":
                    report.present += 1
                    bar.update(task_id, advance=t.size or 0)
                elif status == "downloaded":
                    report.downloaded += 1
                    report.bytes += n
                bar.update(files_id, advance=1)
                if on_file is not None:
                    on_file(t, status)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
