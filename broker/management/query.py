"""RabbitMQ's query options on lists: sort, sort_reverse, columns, and pagination.

As rabbit_mgmt_util:reply_list/augment (3.10), read off the reference node:

- `sort=FIELD` (a dotted path) sorts by that field, then by the list's
  default keys (vhost, name); missing values sort as 0, numbers before
  strings; `sort=` (empty) keeps the list as it is; `sort_reverse=true`
  reverses.
- `columns=a,b.c` keeps only those fields (dotted paths reach into objects).
- Pagination only with `page=N` (1-based): `page_size` (default 100, 1..500),
  `name` (case-insensitive substring, or with `use_regex=true` an unanchored
  caseless regex) filters; the answer becomes {"filtered_count",
  "item_count", "items", "page", "page_count", "page_size", "total_count"}.
  Without `page`, `name` and `use_regex` are ignored, as in RabbitMQ.

Long lists (10,000 queues) are built and encoded a chunk at a time with a
checkpoint between chunks (`build_items`, `reply_list_async`), so an API
poll never stalls deliveries for long.
"""

from __future__ import annotations

import gc
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import trio

from broker.management.messages import (
    JSON_CONTENT_TYPE,
    JSON_HEADERS,
    HttpError,
    Request,
    Response,
    json_body,
)

__all__ = [
    "build_items",
    "columns_of",
    "reply_item",
    "reply_list",
    "reply_list_async",
    "reply_objects",
]

T = TypeVar("T")

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100


def _get(item: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(item, dict) or key not in item:
            return None
        item = item[key]
    return item


def _sort_key(value: Any) -> tuple[int, Any]:
    # Erlang's term order as RabbitMQ sorts: numbers, then atoms, then
    # strings; a missing value is 0.
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, str(value).lower())
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (2, value)
    return (3, repr(value))


def columns_of(item: dict[str, Any], columns: list[list[str]]) -> dict[str, Any]:
    """`item` with only the given (dotted) fields."""
    out: dict[str, Any] = {}
    for path in columns:
        value = _get(item, path)
        if value is None and not _has(item, path):
            continue
        target = out
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return out


def _has(item: Any, path: Sequence[str]) -> bool:
    for key in path:
        if not isinstance(item, dict) or key not in item:
            return False
        item = item[key]
    return True


def _columns(request: Request) -> list[list[str]] | None:
    raw = request.query.get("columns")
    if not raw:
        return None
    return [column.split(".") for column in raw.split(",") if column]


def reply_item(request: Request, item: dict[str, Any]) -> Response:
    """One object, with `columns` applied."""
    columns = _columns(request)
    return Response.json(columns_of(item, columns) if columns else item)


def _reverse(request: Request) -> bool:
    reverse = request.query.get("sort_reverse")
    if reverse in (None, "false"):
        return False
    if reverse == "true":
        return True
    # RabbitMQ crashes into an empty 500 here; a clear 400 is kinder.
    raise HttpError.bad_request("sort_reverse must be true or false")


def _paginate(
    request: Request, objects: list[T], name_of: Callable[[T], str]
) -> tuple[list[T], dict[str, Any] | None]:
    """The page of `objects` the query asks for (all of them without `page`),
    filtered by `name`, and the pagination fields (None without `page`)."""
    query = request.query
    if "page" not in query:
        return objects, None
    try:
        page = int(query["page"])
        page_size = int(query.get("page_size", DEFAULT_PAGE_SIZE))
    except ValueError:
        raise HttpError.bad_request("Pagination parameters are invalid") from None
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        shown = query.get("page_size", "undefined")
        raise HttpError(400, "invalid_pagination_parameters",
                        f"Invalid pagination parameters: page number {page}, page size {shown}")
    total = len(objects)
    name = query.get("name")
    if name:
        if query.get("use_regex") == "true":
            try:
                pattern = re.compile(name, re.IGNORECASE)
            except re.error:
                raise HttpError.bad_request("Pagination parameters are invalid") from None
            objects = [o for o in objects if pattern.search(name_of(o))]
        else:
            needle = name.lower()
            objects = [o for o in objects if needle in name_of(o).lower()]
    filtered = len(objects)
    page_count = math.ceil(filtered / page_size) if filtered else 0
    if page > page_count + 1:
        raise HttpError(400, "page_out_of_range",
                        f"Page out of range, page: {page} page size: {page_size}, len: {filtered}")
    chosen = objects[(page - 1) * page_size : page * page_size]
    return chosen, {
        "filtered_count": filtered,
        "item_count": len(chosen),
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total,
    }


@contextmanager
def _no_collection() -> Iterator[None]:
    """No garbage collection while one chunk of items is built and encoded.

    The chunk's dicts are freed (by reference counting) before the block
    ends, so they never survive into an older generation: a list of 10,000
    queues then adds nothing to what a full collection, which holds the
    event loop for tens of milliseconds with many queues, has to walk.
    Nothing awaits inside, so no other task runs meanwhile.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _item_name(item: dict[str, Any]) -> str:
    return str(item.get("name", ""))


def _select(
    request: Request,
    items: list[dict[str, Any]],
    default_sort: Sequence[str],
    presorted: bool,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(the items to answer, the pagination fields or None), as the query asks."""
    sort = request.query.get("sort")
    if sort != "" and not (presorted and sort is None):
        keys = ([sort.split(".")] if sort else []) + [key.split(".") for key in default_sort]
        items = sorted(items, key=lambda item: [_sort_key(_get(item, k)) for k in keys])
    if _reverse(request):
        items = list(reversed(items))
    chosen, page = _paginate(request, items, _item_name)
    columns = _columns(request)
    return [columns_of(i, columns) if columns else i for i in chosen], page


def reply_list(
    request: Request,
    items: list[dict[str, Any]],
    default_sort: Sequence[str] = ("vhost", "name"),
    *,
    presorted: bool = False,
) -> Response:
    """A list, sorted, paginated and trimmed to `columns` as the request asks.

    `presorted`: the items already come in the default order (no `sort`
    given means no sorting to do).
    """
    chosen, page = _select(request, items, default_sort, presorted)
    if page is None:
        return Response.json(chosen)
    return Response.json(_paged(page, chosen))


def _paged(page: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    # RabbitMQ's key order: alphabetical, items between item_count and page.
    return {
        "filtered_count": page["filtered_count"],
        "item_count": page["item_count"],
        "items": items,
        "page": page["page"],
        "page_count": page["page_count"],
        "page_size": page["page_size"],
        "total_count": page["total_count"],
    }


async def _encoded(
    chosen: Sequence[T],
    page: dict[str, Any] | None,
    chunk: int,
    make: Callable[[T], dict[str, Any]] | None = None,
    columns: list[list[str]] | None = None,
    encode: Callable[[T], bytes] | None = None,
) -> Response:
    """The JSON answer in parts, `chunk` items each, a checkpoint after each
    part; never joined: the server sends the parts in turn.

    With `make`, `chosen` are model objects whose items are built a chunk at
    a time and dropped once encoded: a list of 10,000 queues never holds
    10,000 dicts at once (which the garbage collector would then have to
    walk, holding the event loop for tens of milliseconds).
    """
    parts: list[bytes] = [b"["]
    if encode is not None and not columns:
        # Each object's JSON on its own (it may come from a cache).
        for start in range(0, len(chosen), chunk):
            with _no_collection():
                encoded = b",".join([encode(obj) for obj in chosen[start : start + chunk]])
            if start:
                parts.append(b",")
            parts.append(encoded)
            await trio.sleep(0)
        parts.append(b"]")
        return _response(parts, page)
    for start in range(0, len(chosen), chunk):
        with _no_collection():
            items: list[Any] = list(chosen[start : start + chunk])
            if make is not None:
                items = [make(obj) for obj in items]
            if columns:
                items = [columns_of(item, columns) for item in items]
            encoded = json_body(items)
            del items
        if start:
            parts.append(b",")
        parts.append(encoded[1:-1])  # without its brackets
        await trio.sleep(0)
    parts.append(b"]")
    return _response(parts, page)


def _response(parts: list[bytes], page: dict[str, Any] | None) -> Response:
    if page is not None:
        head, _marker, tail = json_body(_paged(page, [])).partition(b'"items":[]')
        parts = [head, b'"items":', *parts, tail]
    return Response(200, [("content-type", JSON_CONTENT_TYPE), *JSON_HEADERS],
                    compress=True, chunks=parts)


async def reply_list_async(
    request: Request,
    items: list[dict[str, Any]],
    default_sort: Sequence[str] = ("vhost", "name"),
    *,
    presorted: bool = False,
    chunk: int = 25,
) -> Response:
    """`reply_list` for long lists: the JSON is encoded `chunk` items at a
    time with a checkpoint between, so other tasks (deliveries) run meanwhile."""
    chosen, page = _select(request, items, default_sort, presorted)
    return await _encoded(chosen, page, chunk)


async def reply_objects(
    request: Request,
    objects: list[T],
    make: Callable[[T], dict[str, Any]],
    name_of: Callable[[T], str],
    default_sort: Sequence[str] = ("vhost", "name"),
    *,
    chunk: int = 25,
    encode: Callable[[T], bytes] | None = None,
) -> Response:
    """A list of model objects (in the default order) as the query asks,
    building the JSON of only the objects answered (with `encode`, each
    object's whole JSON when no `columns` are asked for).

    Without `sort`, the page and the `name` filter are chosen among the
    objects themselves, so `?page=1&page_size=100` of 10,000 queues builds
    100 items, not 10,000. With `sort`, every item is built and sorted.
    """
    if request.query.get("sort"):
        items = await build_items(objects, make, chunk)
        return await reply_list_async(request, items, default_sort, chunk=chunk)
    if _reverse(request):
        objects = objects[::-1]
    chosen, page = _paginate(request, objects, name_of)
    return await _encoded(chosen, page, chunk, make, _columns(request), encode)


async def build_items(
    objects: Iterable[T], make: Callable[[T], dict[str, Any]], chunk: int = 25
) -> list[dict[str, Any]]:
    """`[make(o) for o in objects]`, with a checkpoint every `chunk` objects."""
    out: list[dict[str, Any]] = []
    for index, obj in enumerate(objects, 1):
        out.append(make(obj))
        if index % chunk == 0:
            await trio.sleep(0)
    return out
