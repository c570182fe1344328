"""How work is cut up: chunks of a stream, keyset pages read in short transactions, and the
isolation of a failing item by splitting its batch until it is alone. Written once, used by the
migration, the selection, rollback and verify."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from sqlalchemy import Connection, Engine

from rollout.store.engine import transaction

T = TypeVar("T")
K = TypeVar("K")

PAGE_SIZE = 5000


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Batches of `size` items from a stream, the last one shorter."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def keyset_pages(
    engine: Engine,
    read_page: Callable[[Connection, K, int], Sequence[T]],
    key: Callable[[T], K],
    start: K,
    page_size: int = PAGE_SIZE,
) -> Iterator[T]:
    """Every row of a keyset-paged read, in key order.

    `read_page(conn, after, page_size)` returns up to `page_size` rows whose key is after `after`.
    Each page is read in a short transaction of its own: a long stream never holds a snapshot or a
    lock, and memory stays flat. Rows that appear behind the cursor meanwhile are not seen.
    """
    after = start
    while True:
        page = _read(engine, read_page, after, page_size)
        yield from page
        if len(page) < page_size:
            return
        after = key(page[-1])


def _read(
    engine: Engine, read_page: Callable[[Connection, K, int], Sequence[T]], after: K, page_size: int
) -> Sequence[T]:
    return transaction(engine, lambda conn: read_page(conn, after, page_size))


def isolate(
    items: Sequence[T],
    attempt: Callable[[Sequence[T]], None],
    failed: Callable[[T, Exception], None],
    *,
    passthrough: tuple[type[BaseException], ...] = (),
    split: Callable[[int, Exception], None] | None = None,
) -> None:
    """Runs `attempt` on the whole batch; when it raises, splits the batch in halves and tries each,
    until the item at fault is alone, which is handed to `failed`. The other items go through in
    as few attempts as the failures allow. Exceptions in `passthrough` are never split on.
    """
    try:
        attempt(items)
    except passthrough:
        raise
    except Exception as exc:
        if len(items) == 1:
            failed(items[0], exc)
            return
        if split is not None:
            split(len(items), exc)
        middle = len(items) // 2
        isolate(items[:middle], attempt, failed, passthrough=passthrough, split=split)
        isolate(items[middle:], attempt, failed, passthrough=passthrough, split=split)
