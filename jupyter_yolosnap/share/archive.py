"""One file that carries a verified snapshot to another machine: ``export`` writes it, ``import_archive`` adopts it.

Archive format 1 is a gzip-compressed tar whose members come in this order, each a regular file (USTAR headers,
no links, folders or extended headers):

==========================  =====================================================================================
``yolosnap-archive.json``   the format (``"format": "jupyter_yolosnap-archive"``, ``"version": 1``), the snapshot
                            name, its manifest digest and the id of its verified image: read first, so an archive
                            of a newer format is refused before anything else is read
``snapshot.json``           the manifest (at most 32 MiB), with the digest its content hashes to
``Dockerfile``              the readable recipe beside the manifest (optional), then the requirement files it
``requirements/<x>.txt``    copies (optional)
``image/part-000000`` ...   ``docker save`` of the verified image, by id (so it names no tag), cut into parts of
                            16 MiB: a tar header needs the size of its member first, and the stream's size is known
                            only at its end, so each part is held in memory alone, never the image
``SHA256SUMS``              the SHA-256 of every member above, ``sha256sum`` style, last
==========================  =====================================================================================

The gzip stream is a series of members, one per 4 MiB of tar, compressed on a thread per core (zlib releases
the GIL, so this is pigz's speed without pigz); any gzip reader reads it as one stream (``tar xzf`` works).

Import streams the file once: a reader thread decompresses, the members are checked in order, the image parts
go straight into the engine's ``docker load`` through a filter that refuses links out of the image tar,
``..`` paths and devices, and holds the tar's ``manifest.json``/``repositories``/``index.json`` back until the end
to refuse any that would name a tag (an archive cannot move a tag on this engine). Then the checksums, the
manifest's digest, the loaded image's id and labels, and a capture inside the image (as a build's check) must
all agree before the snapshot is saved and the image tagged. Any refusal is one ``ArchiveError`` line; the image
is removed again when this import brought it, and nothing is registered.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import queue
import re
import tarfile
import tempfile
import threading
import time
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .. import __version__
from ..engine import images
from ..engine.client import STREAM_ERRORS, connect, explain
from ..events import Event, Listener, ignore
from ..exceptions import ArchiveError
from ..snapshot import grammar, manifest as manifest_io
from ..snapshot.names import image_tag, is_valid_name
from ..snapshot.store import Store, file_mode, read_text, refuse_link
from . import adopt

FORMAT = "jupyter_yolosnap-archive"
FORMAT_VERSION = 1
INDEX = "yolosnap-archive.json"
MANIFEST = "snapshot.json"
DOCKERFILE = "Dockerfile"
SUMS = "SHA256SUMS"
PART_PREFIX = "image/part-"
_PART = re.compile(r"image/part-([0-9]{6})")
_REQUIREMENTS = re.compile(r"requirements/[a-z0-9][a-z0-9._-]{0,62}\.txt")
_SUM_LINE = re.compile(r"([0-9a-f]{64})  (\S+)")
_ID = re.compile(r"sha256:[0-9a-f]{64}")

#: Bytes of ``docker save`` per image part (held in memory one at a time while exporting).
PART_BYTES = 16 * 1024 * 1024
#: Bytes of tar per gzip member, each compressed on its own thread.
BLOCK_BYTES = 4 * 1024 * 1024
LEVEL = 6  # gzip's default: the size a user's ``docker save | gzip`` gets
#: Size limits of the small members (an untrusted archive must not make import hold GBs).
MAX_INDEX = 64 * 1024
MAX_RECIPE = 4 * 1024 * 1024
MAX_REQUIREMENT_FILES = 32
MAX_PARTS = 65536  # 1 TiB of image at 16 MiB a part; an archive of tiny parts cannot grow the checksum list past it
MAX_SUMS = 8 * 1024 * 1024  # room for MAX_PARTS lines
MAX_IMAGE_MEMBERS = 100_000  # members of the image tar (a few per layer in what docker save writes)
MAX_IMAGE_META = 4 * 1024 * 1024  # manifest.json and friends inside the image tar
MAX_EXTENDED = 1024 * 1024  # one pax or GNU long-name header inside the image tar
#: Seconds an engine call may stay silent: a load registers every layer before it answers.
ENGINE_TIMEOUT_S = 3600
READ_BYTES = 1024 * 1024
_INFLATE_OUT = 4 * 1024 * 1024
_QUEUE_DEPTH = 8
_ZERO = bytes(512)
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Exported:
    path: Path
    name: str
    digest: str
    image_id: str
    bytes: int            # size of the archive
    image_bytes: int      # size of the image tar inside
    seconds: float


@dataclass(frozen=True)
class Imported:
    name: str
    digest: str
    image: str            # the verified tag
    image_id: str
    path: Path            # the manifest in the store
    previous: str | None  # the digest of the snapshot it replaced, if any
    seconds: float
    checked: bool         # a capture inside the image was diffed clean before it was tagged


# ---------------------------------------------------------------------------------------------------- export


def export(store: Store, name: str, path: str | os.PathLike, listener: Listener = ignore) -> Exported:
    """Write snapshot ``name`` and its verified image into one archive at ``path`` (a folder: ``<name>.tar.gz``
    in it), atomically: a temp file beside it is renamed into place when complete, and removed on any failure.

    Raises ``NoVerifiedImage`` when the snapshot has no verified image (build it first), ``ArchiveError`` when the
    file cannot be written, ``EngineError`` when the engine fails; whatever the listener raises stops the export.
    """
    started = time.perf_counter()
    manifest = store.load(name)
    name = manifest["name"]
    recipe = _recipe_files(store.folder(name), manifest["digest"])
    target = _target(Path(path), name)
    client = connect(timeout=ENGINE_TIMEOUT_S)
    try:
        image = images.require_verified(client, manifest)
        estimate = int(image.attrs.get("Size") or 0)
        listener(Event("phase", f"exporting {image_tag(manifest)} ({estimate / 1e6:.0f} MB unpacked) to {target}"))
        index = {"format": FORMAT, "version": FORMAT_VERSION, "snapshot": name, "digest": manifest["digest"],
                 "image": image.id, "tool": f"jupyter_yolosnap {__version__}",
                 "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")}
        small = [(INDEX, _json_bytes(index)), (MANIFEST, manifest_io.dumps(manifest).encode("utf-8")),
                 *((member, text.encode("utf-8")) for member, text in recipe)]
        with _AtomicFile(target) as handle:
            writer = _TarWriter(_GzipWriter(handle))
            try:
                for member, data in small:
                    writer.add(member, data)
                image_bytes = _add_image(client, image.id, writer, estimate, listener)
                writer.add(SUMS, "".join(f"{digest}  {member}\n" for member, digest in writer.sums).encode())
                writer.close()
            except BaseException:
                writer.abort()
                raise
        size = target.stat().st_size
    finally:
        client.close()
    listener(Event("phase", f"exported {name} to {target} ({size / 1e6:.0f} MB)"))
    return Exported(target, name, manifest["digest"], image.id, size, image_bytes, time.perf_counter() - started)


def _target(path: Path, name: str) -> Path:
    path = path.expanduser()
    if path.is_dir():
        path = path / f"{name}.tar.gz"
    if not path.parent.is_dir():
        raise ArchiveError(f"cannot write the archive {path}: folder {path.parent} does not exist")
    return path.absolute()


def _recipe_files(folder: Path, digest: str) -> list[tuple[str, str]]:
    """The Dockerfile beside the manifest and its requirement files, read without following links; none when
    that Dockerfile is the recipe of another revision (its digest label names another manifest)."""
    found = []
    dockerfile = folder / DOCKERFILE
    if not dockerfile.is_file() or dockerfile.is_symlink():
        return found
    text = read_text(dockerfile)
    if digest not in text:
        return found
    found.append((DOCKERFILE, text))
    requirements = folder / "requirements"
    if requirements.is_dir():
        refuse_link(requirements)
        for file in sorted(requirements.iterdir()):
            member = f"requirements/{file.name}"
            if _REQUIREMENTS.fullmatch(member) and file.is_file() and not file.is_symlink():
                found.append((member, read_text(file)))
    return found


def _add_image(client: Any, image_id: str, writer: "_TarWriter", estimate: int, listener: Listener) -> int:
    """``docker save`` of the image by id, streamed into parts; returns its size."""
    total_parts = max(1, -(-estimate // PART_BYTES))
    stream = None
    pieces: list[bytes] = []
    held = done = part = 0
    try:
        stream = client.api.get_image(image_id, chunk_size=READ_BYTES)
        for chunk in stream:
            pieces.append(chunk)
            held += len(chunk)
            if held >= PART_BYTES:
                writer.add_pieces(f"{PART_PREFIX}{part:06d}", pieces, held)
                done, part, pieces, held = done + held, part + 1, [], 0
                listener(Event("step", f"image: {done / 1e6:.0f} MB", part, max(total_parts, part)))
        if held or part == 0:
            writer.add_pieces(f"{PART_PREFIX}{part:06d}", pieces, held)
            done, part = done + held, part + 1
            listener(Event("step", f"image: {done / 1e6:.0f} MB", part, part))
    except STREAM_ERRORS as err:
        raise explain(err, f"saving the image {image_id[:19]}") from None
    finally:
        if stream is not None:
            with contextlib.suppress(*STREAM_ERRORS, AttributeError):
                stream.close()
    return done


def _json_bytes(value: dict) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8")


class _AtomicFile:
    """A temp file beside ``target`` (``.<name>.<random>.tmp``), renamed onto it only when the block succeeds."""

    def __init__(self, target: Path):
        self.target = target
        self.temp: str | None = None
        self.handle: Any = None

    def __enter__(self):
        try:
            fd, self.temp = tempfile.mkstemp(dir=self.target.parent, prefix=f".{self.target.name}.", suffix=".tmp")
            os.fchmod(fd, file_mode())
        except OSError as err:
            raise ArchiveError(f"cannot write the archive {self.target}: {err.strerror}") from None
        self.handle = os.fdopen(fd, "wb", buffering=0)
        return self

    def write(self, data: bytes) -> None:
        try:
            self.handle.write(data)
        except OSError as err:
            raise ArchiveError(f"cannot write the archive {self.target}: {err.strerror}; nothing was "
                               "written") from None

    def __exit__(self, kind, value, tb) -> None:
        try:
            if kind is None:
                try:
                    os.fsync(self.handle.fileno())
                    self.handle.close()
                    os.replace(self.temp, self.target)
                except OSError as err:
                    raise ArchiveError(f"cannot write the archive {self.target}: {err.strerror}; nothing was "
                                       "written") from None
                with contextlib.suppress(OSError):
                    fd = os.open(self.target.parent, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
        finally:
            if not self.handle.closed:
                self.handle.close()
            if self.temp and os.path.lexists(self.temp):
                with contextlib.suppress(OSError):
                    os.unlink(self.temp)


def _gzip_member(block: bytes, level: int) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, 31)
    return packer.compress(block) + packer.flush()


class _GzipWriter:
    """Multi-member gzip: every ``BLOCK_BYTES`` of input becomes one member, compressed on a pool thread
    (``zlib`` releases the GIL), written in order; at most two blocks per thread are in flight."""

    def __init__(self, sink: Any, level: int = LEVEL, threads: int | None = None):
        self.sink = sink
        self.level = level
        workers = threads or max(1, os.cpu_count() or 1)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="yolosnap-gzip")
        self.depth = 2 * workers
        self.pending: deque[Future] = deque()
        self.pieces: list[bytes] = []
        self.held = 0
        self.members = 0

    def write(self, data: bytes) -> None:
        self.pieces.append(data)
        self.held += len(data)
        if self.held >= BLOCK_BYTES:
            self._submit()

    def _submit(self) -> None:
        block = b"".join(self.pieces)
        self.pieces, self.held = [], 0
        self.pending.append(self.pool.submit(_gzip_member, block, self.level))
        self.members += 1
        while len(self.pending) > self.depth:
            self.sink.write(self.pending.popleft().result())

    def close(self) -> None:
        if self.held or not self.members:
            self._submit()
        while self.pending:
            self.sink.write(self.pending.popleft().result())
        self.pool.shutdown()

    def abort(self) -> None:
        for future in self.pending:
            future.cancel()
        self.pending.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _tar_header(member: str, size: int) -> bytes:
    info = tarfile.TarInfo(member)
    info.size, info.mode, info.mtime, info.type = size, 0o644, int(time.time()), tarfile.REGTYPE
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="ascii", errors="strict")


class _TarWriter:
    """Regular-file members into a gzip writer, hashing each (``sums``: member and SHA-256, in order)."""

    def __init__(self, gzip: _GzipWriter):
        self.gzip = gzip
        self.sums: list[tuple[str, str]] = []

    def add(self, member: str, data: bytes) -> None:
        self.add_pieces(member, [data], len(data))

    def add_pieces(self, member: str, pieces: list[bytes], size: int) -> None:
        digest = hashlib.sha256()
        self.gzip.write(_tar_header(member, size))
        for piece in pieces:
            digest.update(piece)
            self.gzip.write(piece)
        if size % 512:
            self.gzip.write(bytes(512 - size % 512))
        self.sums.append((member, digest.hexdigest()))

    def close(self) -> None:
        self.gzip.write(bytes(1024))  # the end-of-archive marker
        self.gzip.close()

    def abort(self) -> None:
        self.gzip.abort()


# ---------------------------------------------------------------------------------------------------- import


def import_archive(store: Store, path: str | os.PathLike, replace: bool = False, listener: Listener = ignore,
                   *, verify: bool = True) -> Imported:
    """Adopt the snapshot archived at ``path`` into ``store``'s project: register its manifest, load its image,
    tag that image as verified. Nothing is registered until every check passed (module docstring).

    ``replace`` lets it replace a snapshot of the same name that holds another environment (kept in history);
    without it that is a ``SnapshotExists``. ``verify=False`` skips the capture inside the image (the id, labels
    and checksums are still checked). Refusals are ``ArchiveError`` lines; ``DriftFound`` when the image does not
    hold the manifest; ``EngineError`` when the engine fails.
    """
    started = time.perf_counter()
    source = Path(path).expanduser()
    where = f"archive {source.name!r}"
    if not source.is_file():
        raise ArchiveError(f"no archive at {source}: give the file yolosnap export wrote")
    client = None
    loaded: list[str] = []  # what the engine said it loaded, and the image the index names: removed on refusal
    before: set[str] = set()
    reader = _Gunzip(source, where)
    try:
        members = _Members(reader, where)
        index = _read_index(members)
        listener(Event("phase", f"importing snapshot {index['snapshot']!r} from {source}"))
        manifest = _read_manifest(members, index)
        adopt.refuse_conflict(store, manifest, replace)
        recipe, header = _read_recipe(members)
        client = connect(timeout=ENGINE_TIMEOUT_S)
        before = adopt.image_ids(client)
        loaded = [index["image"]]  # the load may end with it on the engine even when its answer is lost
        listener(Event("phase", "loading the image into the engine"))
        header, loaded, load_error = _load_image(client, members, header, reader, listener)
        _check_sums(members, header)
        if load_error is not None:
            raise ArchiveError(f"{where} was refused by the engine's docker load ({load_error}); nothing was "
                               "imported")
        if loaded != [index["image"]]:
            raise ArchiveError(f"{where} holds image {', '.join(i[:19] for i in loaded) or 'none'}, not the image "
                               f"its index names ({index['image'][:19]}): refused")
        found = adopt.get_labels(client, index["image"], "reading the loaded image")
        adopt.require_labels(found, manifest, f"the image in {where}", ArchiveError)
        if verify:
            adopt.verify(client, index["image"], manifest, found, listener)
        adopt.refuse_conflict(store, manifest, replace)  # again: the check took a while
        registered = adopt.register(client, store, index["image"], manifest, listener,
                                    also=(lambda folder: _write_recipe(folder, recipe)) if recipe else None)
    except BaseException:
        if client is not None:
            for image_id in {*loaded, index["image"]} if loaded else ():
                adopt.remove_new_image(client, image_id, before)
        raise
    finally:
        reader.close()
        if client is not None:
            client.close()
    return Imported(manifest["name"], manifest["digest"], registered.tag, index["image"], registered.path,
                    registered.previous, time.perf_counter() - started, verify)


def _write_recipe(folder: Path, recipe: dict[str, str]) -> None:
    from ..bake.build import write_dockerfile

    files = {member: text for member, text in recipe.items() if member != DOCKERFILE}
    if DOCKERFILE in recipe:
        write_dockerfile(folder, recipe[DOCKERFILE], files)


class _Gunzip:
    """The archive's tar bytes: a thread reads and decompresses the file (every gzip member in turn, each one's
    CRC checked by zlib) while the caller checks and forwards what came before."""

    def __init__(self, path: Path, where: str):
        self.where = where
        try:
            self.handle = open(path, "rb")
        except OSError as err:
            raise ArchiveError(f"cannot read the archive {path}: {err.strerror}") from None
        self.size = os.fstat(self.handle.fileno()).st_size
        self.compressed = 0
        self.queue: queue.Queue = queue.Queue(maxsize=_QUEUE_DEPTH)
        self.stop = threading.Event()
        self.current = memoryview(b"")
        self.done = False
        self.thread = threading.Thread(target=self._run, name="yolosnap-gunzip", daemon=True)
        self.thread.start()

    # the reader thread
    def _run(self) -> None:
        inflater = None
        members = 0
        try:
            while not self.stop.is_set():
                data = self.handle.read(READ_BYTES)
                if not data:
                    break
                self.compressed += len(data)
                inflater, members = self._inflate(inflater, members, data)
            if self.stop.is_set():
                return
            if inflater is not None or members == 0:
                raise ArchiveError(f"{self.where} is truncated (its gzip stream stops early); copy it again")
            self._put(None)
        except ArchiveError as err:
            self._put(err)
        except zlib.error as err:
            self._put(ArchiveError(f"{self.where} is damaged (gzip: {str(err)[:80]}); copy it again"))
        except OSError as err:
            self._put(ArchiveError(f"cannot read {self.where}: {err.strerror}"))

    def _inflate(self, inflater: Any, members: int, data: bytes) -> tuple[Any, int]:
        while not self.stop.is_set():
            if inflater is None:
                if not data:
                    break
                inflater = zlib.decompressobj(31)
            out = inflater.decompress(data, _INFLATE_OUT)
            if out:
                self._put(out)
            if inflater.eof:
                data, inflater, members = inflater.unused_data, None, members + 1
                continue
            data = inflater.unconsumed_tail
            if not data and len(out) < _INFLATE_OUT:
                break
        return inflater, members

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # the caller's side
    def chunk(self, limit: int) -> memoryview:
        """Up to ``limit`` bytes (fewer at a gzip member's end); empty at the end of the stream."""
        while not self.current:
            if self.done:
                return memoryview(b"")
            item = self.queue.get()
            if item is None:
                self.done = True
                return memoryview(b"")
            if isinstance(item, BaseException):
                self.done = True
                raise item
            self.current = memoryview(item)
        piece, self.current = self.current[:limit], self.current[limit:]
        return piece

    def read_exact(self, size: int) -> bytes:
        parts, left = [], size
        while left:
            piece = self.chunk(left)
            if not piece:
                raise ArchiveError(f"{self.where} is truncated (it ends inside a member); copy it again")
            parts.append(piece)
            left -= len(piece)
        return b"".join(parts)

    def rest_is_zeros(self) -> bool:
        while True:
            piece = self.chunk(READ_BYTES)
            if not piece:
                return True
            if piece.tobytes().strip(b"\0"):
                return False

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self.queue.get_nowait()
        self.thread.join(timeout=10)
        self.handle.close()


_KINDS = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a device",
          tarfile.BLKTYPE: "a device", tarfile.FIFOTYPE: "a FIFO", tarfile.DIRTYPE: "a folder",
          tarfile.XHDTYPE: "a pax header", tarfile.XGLTYPE: "a pax header", tarfile.GNUTYPE_LONGNAME: "a GNU header",
          tarfile.GNUTYPE_LONGLINK: "a GNU header", tarfile.GNUTYPE_SPARSE: "a sparse file",
          tarfile.CONTTYPE: "a contiguous file"}


def _safe_path(name: str, what: str, where: str) -> str:
    """A relative tar path without ``..``; refused (one line) otherwise."""
    if not name or "\0" in name or _TEXT_CONTROL.search(name) or "\\" in name:
        raise ArchiveError(f"{where} is refused: {what} {grammar.shorten(name)} is not a plain path")
    if name.startswith("/"):
        raise ArchiveError(f"{where} is refused: {what} {grammar.shorten(name)} is an absolute path")
    if ".." in name.split("/"):
        raise ArchiveError(f"{where} is refused: {what} {grammar.shorten(name)} leaves the archive's folder ('..')")
    return name


class _Members:
    """The archive's members in order: headers checked (regular files with safe names only), data hashed."""

    def __init__(self, reader: _Gunzip, where: str):
        self.reader = reader
        self.where = where
        self.sums: dict[str, str] = {}

    def next(self) -> tuple[str, int] | None:
        """The next member's name and size, or None at the end-of-archive marker."""
        block = self.reader.read_exact(512)
        if block == _ZERO:
            return None
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
        except (tarfile.HeaderError, UnicodeDecodeError, ValueError):
            raise ArchiveError(f"{self.where} is damaged (a member's header is not a tar header); copy it "
                               "again") from None
        name = _safe_path(info.name, "member", self.where)
        if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            kind = _KINDS.get(info.type, f"of tar type {info.type!r}")
            raise ArchiveError(f"{self.where} is refused: member {grammar.shorten(name)} is {kind}; a snapshot "
                               "archive holds regular files only")
        if name in self.sums:
            raise ArchiveError(f"{self.where} is refused: member {grammar.shorten(name)} appears twice")
        return name, info.size

    def read(self, name: str, size: int, limit: int) -> bytes:
        if size > limit:
            raise ArchiveError(f"{self.where} is refused: {name} is {size} bytes, more than the {limit} bytes it "
                               "may have")
        data = self.reader.read_exact(size)
        self.skip_padding(size)
        self.sums[name] = hashlib.sha256(data).hexdigest()
        return data

    def skip_padding(self, size: int) -> None:
        if size % 512:
            self.reader.read_exact(512 - size % 512)

    def unexpected(self, header: tuple[str, int] | None, wanted: str) -> ArchiveError:
        found = f"member {grammar.shorten(header[0])}" if header else "the end of the archive"
        return ArchiveError(f"{self.where} is refused: expected {wanted}, found {found} (a snapshot archive holds "
                            f"{INDEX}, {MANIFEST}, the recipe, the image parts and {SUMS}, in that order)")


def _text(data: bytes, name: str, where: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError(f"{where} is refused: {name} is not UTF-8 text") from None
    if _TEXT_CONTROL.search(text):
        raise ArchiveError(f"{where} is refused: {name} holds control characters")
    return text


_INDEX_KEYS = {"format", "version", "snapshot", "digest", "image", "tool", "created"}


def _read_index(members: _Members) -> dict:
    where = members.where
    header = members.next()
    if header is None or header[0] != INDEX:
        raise ArchiveError(f"{where} is not a snapshot archive (its first member is "
                           f"{grammar.shorten(header[0]) if header else 'missing'}, not {INDEX}); make one with "
                           "yolosnap export")
    try:
        index = json.loads(_text(members.read(INDEX, header[1], MAX_INDEX), INDEX, where))
    except (ValueError, RecursionError):
        raise ArchiveError(f"{where} is refused: {INDEX} is not JSON") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ArchiveError(f"{where} is not a snapshot archive ({INDEX} does not say format {FORMAT!r})")
    version = index.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ArchiveError(f"{where} is refused: {INDEX} has no valid format version ({grammar.shorten(version)})")
    if version > FORMAT_VERSION:
        raise ArchiveError(f"{where} is archive format {version}, newer than this jupyter_yolosnap reads "
                           f"({FORMAT_VERSION}); upgrade with: pip install -U jupyter_yolosnap")
    if set(index) != _INDEX_KEYS:
        odd = sorted(set(index) ^ _INDEX_KEYS)
        raise ArchiveError(f"{where} is refused: {INDEX} has unexpected or missing fields "
                           f"({grammar.shorten(', '.join(map(str, odd)))})")
    for key, ok in (("snapshot", is_valid_name(index["snapshot"])),
                    ("digest", isinstance(index["digest"], str) and _ID.fullmatch(index["digest"])),
                    ("image", isinstance(index["image"], str) and _ID.fullmatch(index["image"])),
                    ("tool", isinstance(index["tool"], str) and len(index["tool"]) <= 200
                     and not _TEXT_CONTROL.search(index["tool"])),
                    ("created", isinstance(index["created"], str) and len(index["created"]) <= 64
                     and not _TEXT_CONTROL.search(index["created"]))):
        if not ok:
            raise ArchiveError(f"{where} is refused: {INDEX} field {key} = {grammar.shorten(index[key])} is not "
                               "valid")
    return index


def _read_manifest(members: _Members, index: dict) -> dict:
    where = members.where
    header = members.next()
    if header is None or header[0] != MANIFEST:
        raise members.unexpected(header, MANIFEST)
    if header[1] > grammar.MAX_BYTES:
        raise ArchiveError(f"{where} is refused: {MANIFEST} is {header[1] // 1048576} MiB, more than a manifest can "
                           f"be ({grammar.MAX_BYTES // 1048576} MiB)")
    data = members.read(MANIFEST, header[1], grammar.MAX_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError(f"{where} is refused: {MANIFEST} is not UTF-8 text") from None
    manifest = adopt.load_untrusted(text, f"{MANIFEST} in {where}", ArchiveError)
    if manifest["name"] != index["snapshot"] or manifest["digest"] != index["digest"]:
        raise ArchiveError(f"{where} is refused: its {MANIFEST} ({manifest['name']!r}, {manifest['digest']}) is not "
                           f"the snapshot its index names ({index['snapshot']!r}, {index['digest']})")
    return manifest


def _read_recipe(members: _Members) -> tuple[dict[str, str], tuple[str, int] | None]:
    """The optional Dockerfile and requirement files; returns them and the header after them."""
    recipe: dict[str, str] = {}
    while True:
        header = members.next()
        if header is None:
            raise members.unexpected(header, "the image parts")
        name, size = header
        if name.startswith(PART_PREFIX):
            return recipe, header
        if name == DOCKERFILE and not recipe or _REQUIREMENTS.fullmatch(name) and DOCKERFILE in recipe:
            if len(recipe) > MAX_REQUIREMENT_FILES:
                raise ArchiveError(f"{members.where} is refused: more than {MAX_REQUIREMENT_FILES} requirement files")
            recipe[name] = _text(members.read(name, size, MAX_RECIPE), name, members.where)
            continue
        raise members.unexpected(header, "the recipe (Dockerfile, requirements/*.txt) or the image parts")


def _load_image(client: Any, members: _Members, header: tuple[str, int], reader: _Gunzip,
                listener: Listener) -> tuple[tuple[str, int] | None, list[str], str | None]:
    """Stream the image parts into ``docker load``; returns the header after them, the ids the engine loaded and
    its error line (None when it loaded). The archive's own faults raise ``ArchiveError`` while streaming, which
    aborts the upload: the engine then loads nothing (it reads the whole tar before it registers anything)."""
    body = _ImageBody(members, header, reader, listener)
    loaded: list[str] = []
    error = None
    try:
        for chunk in client.api.load_image(body.chunks(), quiet=True):
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error") or chunk.get("errorDetail"):
                detail = (chunk.get("errorDetail") or {}).get("message") if isinstance(
                    chunk.get("errorDetail"), dict) else None
                error = grammar.shorten(str(detail or chunk.get("error")), 200).strip("'\"")
            text = chunk.get("stream")
            if isinstance(text, str):
                for line in text.splitlines():
                    match = re.fullmatch(r"Loaded image ID: (sha256:[0-9a-f]{64})", line.strip())
                    if match:
                        loaded.append(match.group(1))
                    elif line.startswith("Loaded image"):  # a tag: the filter lets none through
                        error = f"it named an image {grammar.shorten(line, 80)}"
    except ArchiveError:
        raise
    except STREAM_ERRORS as err:
        if body.failure is not None:  # the engine stopped reading because our body failed
            raise body.failure from None
        raise explain(err, "loading the image") from None
    if body.failure is not None:
        raise body.failure
    if not body.finished:
        raise ArchiveError(f"{members.where}: the engine answered before it had read the whole image; nothing was "
                           "imported")
    return body.after, loaded, error


class _ImageBody:
    """The request body of ``docker load``: the image parts' bytes, hashed per member and filtered (see
    :class:`_ImageTar`), then the tar's held-back metadata and end marker."""

    def __init__(self, members: _Members, header: tuple[str, int], reader: _Gunzip, listener: Listener):
        self.members = members
        self.first = header
        self.reader = reader
        self.listener = listener
        self.after: tuple[str, int] | None = None
        self.finished = False
        self.failure: BaseException | None = None

    def chunks(self) -> Iterator[bytes]:
        try:
            yield from self._chunks()
        except BaseException as err:  # requests may wrap what the body raises: keep the real reason
            self.failure = err
            raise

    def _chunks(self) -> Iterator[bytes]:
        where = self.members.where
        tar = _ImageTar(where)
        header: tuple[str, int] | None = self.first
        number = 0
        last_event = 0.0
        while header is not None and header[0].startswith(PART_PREFIX):
            name, size = header
            match = _PART.fullmatch(name)
            if number >= MAX_PARTS:
                raise ArchiveError(f"{where} is refused: more than {MAX_PARTS} image parts")
            if not match or int(match.group(1)) != number:
                raise ArchiveError(f"{where} is refused: expected {PART_PREFIX}{number:06d}, found member "
                                   f"{grammar.shorten(name)}")
            digest, left = hashlib.sha256(), size
            while left:
                piece = self.reader.chunk(min(left, READ_BYTES * 4))
                if not piece:
                    raise ArchiveError(f"{where} is truncated (it ends inside {name}); copy it again")
                left -= len(piece)
                digest.update(piece)
                for out in tar.feed(piece):
                    yield out
            self.members.skip_padding(size)
            self.members.sums[name] = digest.hexdigest()
            number += 1
            now = time.monotonic()
            if now - last_event > 0.5:
                last_event = now
                done, total = self.reader.compressed, max(self.reader.size, 1)
                self.listener(Event("step", f"image: {done / 1e6:.0f} of {total / 1e6:.0f} MB read",
                                    int(100 * done / total), 100))
            header = self.members.next()
        self.after = header
        for out in tar.finish():
            yield out
        self.finished = True


_HELD = ("manifest.json", "repositories", "index.json", "oci-layout")
_NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


class _ImageTar:
    """Checks the ``docker save`` tar as it streams past, forwarding it unchanged except for its metadata files.

    Members must be regular files, folders or symbolic links that stay inside the tar (Docker 25+ writes
    ``<layer>/layer.tar`` as links into ``blobs/``), with relative paths and no ``..``. ``manifest.json``,
    ``repositories``, ``index.json`` and ``oci-layout`` are held back and sent last, after checking that they
    describe one image and name no tag (``RepoTags``, a ``repositories`` entry or a name annotation would make the
    engine move that tag, before anything here could look at the image).
    """

    def __init__(self, where: str):
        self.where = where
        self.head = bytearray()
        self.left = 0                  # data + padding of the current member still to come
        self.mode = ""                 # forward | hold | ext
        self.current = bytearray()     # what a held or extended member collected so far
        self.size = 0
        self.kind = ""
        self.name = ""
        self.ext_raw = bytearray()     # extended headers waiting for their member
        self.ext: dict[str, str] = {}
        self.held: dict[str, tuple[bytes, bytes]] = {}
        self.names: set[str] = set()
        self.ended = False

    def _refuse(self, problem: str) -> ArchiveError:
        return ArchiveError(f"{self.where} is refused: its image {problem}")

    def feed(self, data: memoryview) -> list:
        out: list = []
        view = memoryview(data)
        while view:
            if self.ended:
                if view.tobytes().strip(b"\0"):
                    raise self._refuse("has data after its end")
                break
            if self.left:
                take = min(self.left, len(view))
                if self.mode == "forward":
                    out.append(view[:take])
                else:
                    self.current += view[:take]
                self.left -= take
                view = view[take:]
                if not self.left:
                    self._member_done()
                continue
            need = 512 - len(self.head)
            self.head += view[:need]
            view = view[need:]
            if len(self.head) == 512:
                block = bytes(self.head)
                self.head.clear()
                out.extend(self._header(block))
        return out

    def _header(self, block: bytes) -> list:
        if block == _ZERO:
            if self.ext_raw:
                raise self._refuse("ends after an extended header")
            self.ended = True
            return []
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except (tarfile.HeaderError, ValueError):
            raise self._refuse("is damaged (a header is not a tar header)") from None
        size = int(self.ext.get("size", info.size)) if info.type not in (
            tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) else info.size
        padded = -(-size // 512) * 512
        if info.type in (tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            if size > MAX_EXTENDED:
                raise self._refuse("has an extended header larger than 1 MiB")
            self.mode, self.kind, self.size, self.current = "ext", info.type, size, bytearray(block)
            return self._start(padded, [])
        if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE):
            raise self._refuse(f"holds {_KINDS.get(info.type, 'a member of tar type ' + repr(info.type))}")
        if info.type in (tarfile.DIRTYPE, tarfile.SYMTYPE) and size:
            raise self._refuse("has a folder or link with data (readers disagree on those)")
        name = self.ext.get("path") or info.name
        if name.startswith("./"):
            name = name[2:]
        name = _safe_path(name.rstrip("/") if info.type == tarfile.DIRTYPE else name, "image member", self.where)
        if name in self.names and info.type != tarfile.DIRTYPE:
            raise self._refuse(f"holds {grammar.shorten(name)} twice")
        if len(self.names) >= MAX_IMAGE_MEMBERS:
            raise self._refuse(f"tar has more than {MAX_IMAGE_MEMBERS} members")
        self.names.add(name)
        if info.type == tarfile.SYMTYPE:
            target = self.ext.get("linkpath") or info.linkname
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if not target or target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise self._refuse(f"links {grammar.shorten(name)} to {grammar.shorten(target)}, outside the image "
                                   "tar")
        raw = bytes(self.ext_raw) + block
        self.ext_raw, self.ext = bytearray(), {}
        if name in _HELD:
            if info.type != tarfile.REGTYPE and info.type != tarfile.AREGTYPE:
                raise self._refuse(f"holds {name} as something other than a file")
            if size > MAX_IMAGE_META:
                raise self._refuse(f"holds a {name} of {size} bytes")
            self.mode, self.name, self.size, self.current = "hold", name, size, bytearray(raw)
            return self._start(padded, [])
        self.mode = "forward"
        return self._start(padded if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0, [raw])

    def _start(self, padded: int, out: list) -> list:
        self.left = padded
        if not padded:
            self._member_done()
        return out

    def _member_done(self) -> None:
        if self.mode == "ext":
            data = bytes(self.current[512:512 + self.size])
            if self.kind == tarfile.XHDTYPE:
                self.ext.update(self._pax(data))
            else:
                key = "path" if self.kind == tarfile.GNUTYPE_LONGNAME else "linkpath"
                self.ext[key] = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            self.ext_raw += self.current
        elif self.mode == "hold":
            start = len(self.current) - -(-self.size // 512) * 512  # after the extended headers and the header
            self.held[self.name] = (bytes(self.current), bytes(self.current[start:start + self.size]))
        self.mode, self.current = "", bytearray()

    def _pax(self, data: bytes) -> dict[str, str]:
        fields, pos = {}, 0
        while pos < len(data):
            space = data.find(b" ", pos)
            try:
                length = int(data[pos:space])
            except ValueError:
                raise self._refuse("has a damaged pax header") from None
            record = data[pos:pos + length]
            if space < 0 or length <= 0 or not record.endswith(b"\n") or b"=" not in record:
                raise self._refuse("has a damaged pax header")
            key, _, value = record[space - pos + 1:-1].partition(b"=")
            fields[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
            pos += length
        if "size" in fields and not fields["size"].isdigit():
            raise self._refuse("has a damaged pax header")
        return {k: v for k, v in fields.items() if k in ("path", "linkpath", "size")}

    def finish(self) -> list:
        if not self.ended or self.left or self.head:
            raise self._refuse("tar is incomplete")
        if "manifest.json" not in self.held:
            raise self._refuse("has no manifest.json (it is not what docker save writes)")
        entries = self._json("manifest.json")
        if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
            raise self._refuse("manifest.json does not describe exactly one image")
        if entries[0].get("RepoTags") not in (None, []):
            raise self._refuse(f"would tag {grammar.shorten(entries[0].get('RepoTags'), 80)} on this engine "
                               "(an archive names no tags)")
        if "repositories" in self.held and self._json("repositories") not in ({}, None):
            raise self._refuse("has a 'repositories' file that would tag images on this engine")
        if "index.json" in self.held:
            index = self._json("index.json")
            manifests = index.get("manifests") if isinstance(index, dict) else None
            for entry in manifests if isinstance(manifests, list) else []:
                notes = entry.get("annotations") if isinstance(entry, dict) else None
                if isinstance(notes, dict) and any(key in notes for key in _NAME_ANNOTATIONS):
                    raise self._refuse("index.json names an image, which would tag it on this engine")
        return [raw for raw, _ in self.held.values()] + [bytes(1024)]

    def _json(self, name: str) -> Any:
        try:
            return json.loads(self.held[name][1].decode("utf-8"))
        except (ValueError, RecursionError):
            raise self._refuse(f"{name} is not JSON") from None


def _check_sums(members: _Members, header: tuple[str, int] | None) -> None:
    """``SHA256SUMS`` must come next, list exactly the members read, each with its hash; then the end."""
    where = members.where
    if header is None or header[0] != SUMS:
        raise members.unexpected(header, SUMS)
    data = members.reader.read_exact(header[1]) if header[1] <= MAX_SUMS else None
    if data is None:
        raise ArchiveError(f"{where} is refused: {SUMS} is larger than {MAX_SUMS} bytes")
    members.skip_padding(header[1])
    listed: dict[str, str] = {}
    for line in _text(data, SUMS, where).splitlines():
        match = _SUM_LINE.fullmatch(line)
        if not match or match.group(2) in listed:
            raise ArchiveError(f"{where} is refused: {SUMS} has a line that is not '<sha256>  <member>' once per "
                               f"member ({grammar.shorten(line)})")
        listed[match.group(2)] = match.group(1)
    for name, digest in members.sums.items():
        if name not in listed:
            raise ArchiveError(f"{where} is refused: member {grammar.shorten(name)} is not in {SUMS} (an extra "
                               "member)")
        if listed[name] != digest:
            raise ArchiveError(f"{where} is damaged or was changed: the checksum of {grammar.shorten(name)} does "
                               f"not match {SUMS}; copy it again, or ask for an untouched one")
    missing = sorted(set(listed) - set(members.sums))
    if missing:
        raise ArchiveError(f"{where} is refused: {SUMS} lists {grammar.shorten(missing[0])}, which the archive does "
                           "not hold (a member was removed)")
    tail = members.next()
    if tail is not None:
        raise ArchiveError(f"{where} is refused: member {grammar.shorten(tail[0])} comes after {SUMS} (an extra "
                           "member)")
    if not members.reader.rest_is_zeros():
        raise ArchiveError(f"{where} is refused: it has data after the end of its tar")


__all__ = ["Exported", "Imported", "export", "import_archive", "FORMAT", "FORMAT_VERSION"]
