"""Static files for the dashboard, served as RabbitMQ's cowboy_static serves its own.

    files = StaticFiles(Path("dashboard"))
    router.add("/{path*}", files, auth=False, produces=None)

What the reference node answers for its dashboard files (observed):

- `200` with `content-type` by extension (`text/html`, `text/css`,
  `application/javascript`, `image/svg+xml`, `image/x-icon`, anything unknown
  `application/octet-stream`), `content-length`, a strong `etag` and
  `last-modified`; no `cache-control`, and not gzipped.
- `304 Not Modified` (etag, no body) when `If-None-Match` names the etag.
- `/` is `index.html`; a directory (`/js`) is `403` with an empty body; a
  missing file is the usual 404 `{"error":"Object Not Found",...}`.

The file is read in a worker thread, so a slow disk never stalls the trio
loop. A path segment that is empty, `.`, `..`, hidden (leading dot) or holds
a separator or NUL once decoded is a 404: nothing outside `root` is served.
"""

from __future__ import annotations

import email.utils
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

from broker.management.messages import HttpError, Request, Response

__all__ = ["CONTENT_TYPES", "StaticFiles", "content_type_for"]

#: Content types by extension. cowboy_static's (cow_mimetypes:web/1) for the
#: ones the reference dashboard has; a fixed table rather than `mimetypes`,
#: whose answers depend on the host's /etc/mime.types.
CONTENT_TYPES: Final = {
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".js": "application/javascript",
    ".mjs": "application/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".ico": "image/x-icon",
    ".txt": "text/plain",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"


def content_type_for(name: str) -> str:
    """The content type for a file name, by its extension."""
    return CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), DEFAULT_CONTENT_TYPE)


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    size: int
    mtime_ns: int


def _read(path: Path) -> _File | None | bool:
    """The file, None when missing, False when it is a directory (runs in a thread)."""
    try:
        if path.is_dir():
            return False
        with path.open("rb") as file:
            stat = os.fstat(file.fileno())
            return _File(file.read(), stat.st_size, stat.st_mtime_ns)
    except (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError):
        return None


def _etag(size: int, mtime_ns: int) -> str:
    # cowboy_static's is a hash of {size, mtime}: it changes when the file does,
    # and needs no read of the content.
    return f'"{zlib.crc32(f"{size}:{mtime_ns}".encode())}"'


def _matches_etag(if_none_match: str, etag: str) -> bool:
    """RFC 9110 section 13.1.2: weak comparison, "*" matches any current file."""
    if if_none_match.strip() == "*":
        return True
    tags = [t.strip() for t in if_none_match.split(",")]
    return any(t.removeprefix("W/") == etag for t in tags)


class StaticFiles:
    """A handler serving the files under `root` (route it with a `{path*}` tail)."""

    def __init__(self, root: str | os.PathLike[str], *, index: str = "index.html") -> None:
        self.root = Path(root).resolve()
        self.index = index

    def _path(self, tail: tuple[str, ...]) -> Path | None:
        parts = list(tail) or [self.index]
        for part in parts:
            if (
                part in ("", ".", "..")
                or part.startswith(".")
                or "/" in part
                or "\\" in part
                or "\x00" in part
            ):
                return None
        return self.root.joinpath(*parts)

    async def __call__(self, request: Request) -> Response:
        path = self._path(request.tail)
        if path is None:
            raise HttpError.not_found()
        found = await trio.to_thread.run_sync(_read, path)
        if found is False:
            raise HttpError(403)
        if not isinstance(found, _File):
            raise HttpError.not_found()
        etag = _etag(found.size, found.mtime_ns)
        last_modified = email.utils.formatdate(found.mtime_ns / 1e9, usegmt=True)
        validators = [("etag", etag), ("last-modified", last_modified)]
        if_none_match = request.header("if-none-match")
        if if_none_match is not None:
            if _matches_etag(if_none_match, etag):
                return Response(304, [("etag", etag)])
        elif (since := request.header("if-modified-since")) is not None:
            try:
                since_time = email.utils.parsedate_to_datetime(since).timestamp()
            except (TypeError, ValueError, IndexError):
                since_time = None
            if since_time is not None and found.mtime_ns // 1_000_000_000 <= since_time:
                return Response(304, [("etag", etag)])
        return Response(
            200,
            [("content-type", content_type_for(path.name)), *validators],
            found.body,
        )
