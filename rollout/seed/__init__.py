"""`rollout seed`: realistic synthetic legacy data in empty platform tables.

`rollout.seed.population` and `rollout.seed.rows` generate the rows; this module loads them, each
table with its named bulk load (COPY on PostgreSQL), all in one transaction, so that a failed seed
leaves the tables empty.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine

from rollout.errors import SchemaNotInitialised, UsageError
from rollout.seed.population import SeedData
from rollout.seed.rows import OWNER_TABLES, Row
from rollout.store import dialect, queries
from rollout.store.engine import transaction
from rollout.store.schema import PLATFORM_TABLES, table_names

T = TypeVar("T")

# The owner-id lists of one lookup stay well under SQLite's limit on bound parameters.
_LOOKUP_CHUNK = 500
# Batches generated ahead of the loader: enough to keep both busy, few enough to keep memory flat.
_READ_AHEAD = 2


@dataclass(frozen=True)
class SeedSummary:
    """What `seed` loaded: rows per platform table, and which user ids embody which edge case.

    `edge_cases` maps each case to the user ids that embody it. Owner cases, disjoint, each about 1 % of
    the owners and present whenever `owners >= 50`: `owner-deleted`, `owns-one-organization`,
    `owns-several-organizations`, `billing-conflict` and `partially-migrated` (these two own exactly one
    organization too, but are listed only here), `only-deleted-projects`, `name-collision` (families of
    usernames folding to one slug), `org-name-taken` (someone else's organization holds the slug).
    Sprinkled over all users: `unicode`, `long-username`, `short-username`, `empty-slug`;
    `deleted-collaborator` (deleted users holding a grant on someone else's project) and
    `environment-only-access` (users with an environment grant on a project they have no grant on).
    """

    owners: int
    seed: int
    users: int
    organizations: int
    organization_members: int
    organization_member_permissions: int
    projects: int
    project_access: int
    environments: int
    environment_access: int
    billing_accounts: int
    subscriptions: int
    invoices: int
    vouchers: int
    edge_cases: Mapping[str, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)

    def counts(self) -> dict[str, int]:
        """Rows per table, in the platform's table order."""
        return {name: getattr(self, name) for name in PLATFORM_TABLES}

    def __str__(self) -> str:
        cases = ", ".join(f"{len(ids)} {case}" for case, ids in sorted(self.edge_cases.items()) if ids)
        return (
            f"Seeded {self.owners} legacy project owners (seed {self.seed}): {self.users} users, "
            f"{self.projects} projects with {self.project_access} project grants, "
            f"{self.environments} environments with {self.environment_access} environment grants, "
            f"{self.billing_accounts} billing accounts ({self.subscriptions} subscriptions, "
            f"{self.invoices} invoices, {self.vouchers} vouchers), {self.organizations} existing "
            f"organizations ({self.organization_members} members, {self.organization_member_permissions} "
            f"permissions). Edge cases: {cases or 'none'}."
        )


def seed(engine: Engine, owners: int, seed: int = 0) -> SeedSummary:
    """Fills the empty platform tables with `owners` legacy project owners and everything around them.

    The same `seed` and `owners` give the same rows, byte for byte, on a fresh database. Raises
    `UsageError` when `users` already has rows, `SchemaNotInitialised` without the platform tables.
    """
    if owners < 1:
        raise UsageError(f"--owners must be at least 1, got {owners}")

    def load(conn: Connection) -> SeedSummary:
        _refuse_unless_empty(conn)
        checks_deferred = _defer_foreign_key_checks(conn)
        data = SeedData(owners, seed)
        counts: Counter[str] = Counter()
        counts["users"] = _load(conn, "users", data.users())
        counts["organizations"] = _load(conn, "organizations", data.organizations())
        organization_ids = _organization_ids(conn, data.organization_owners())
        members, permissions = data.memberships(organization_ids)
        counts["organization_members"] = _load(conn, "organization_members", members)
        counts["organization_member_permissions"] = _load(
            conn, "organization_member_permissions", permissions
        )
        for batch in _read_ahead(data.owner_batches(organization_ids)):
            for name in OWNER_TABLES:
                counts[name] += _load(conn, name, batch[name])
        if checks_deferred:
            _check_foreign_keys(conn)
        return SeedSummary(
            owners=owners,
            seed=seed,
            **{name: counts[name] for name in PLATFORM_TABLES},
            edge_cases=MappingProxyType(data.edge_cases()),
        )

    return transaction(engine, load)


def _refuse_unless_empty(conn: Connection) -> None:
    if "users" not in table_names(conn):
        raise SchemaNotInitialised(
            "the platform tables are missing; run `rollout db init --platform-schema` first"
        )
    # Every other platform table hangs off users by foreign key, so an empty users table is an empty platform.
    if queries.one(conn, "users_present") is not None:
        raise UsageError("refusing to seed: the users table already has rows; seed only an empty database")


def _defer_foreign_key_checks(conn: Connection) -> bool:
    """Trades PostgreSQL's per-row foreign-key checks for one set-based check at the end, when allowed.

    PostgreSQL checks each foreign key of each inserted row with a trigger, and for 100 000 owners
    (3 million checks, some 12 µs each) that costs more than everything else in the load. A superuser
    may switch those triggers off for this transaction (`session_replication_role = replica`; CHECK,
    UNIQUE and NOT NULL stay in force), after which `_check_foreign_keys` verifies every foreign key
    with one anti-join. On SQLite, or without the privilege, rows are checked one by one as usual.
    """
    if conn.dialect.name != dialect.POSTGRESQL:
        return False
    if queries.scalar(conn, "is_superuser") != "on":
        return False
    # LOCAL: gone with the transaction, so the pooled connection does not keep it.
    queries.execute(conn, "defer_foreign_key_triggers")
    return True


def _check_foreign_keys(conn: Connection) -> None:
    """Raises if any row of a platform table references a row that does not exist."""
    broken = [f"{r.orphans} {r.reference}" for r in queries.rows(conn, "broken_foreign_keys") if r.orphans]
    if broken:
        raise RuntimeError(f"seed generated rows that break foreign keys: {'; '.join(broken)}")


def _load(conn: Connection, name: str, rows: Iterable[Row]) -> int:
    if isinstance(rows, Sequence) and not rows:
        # executemany with no rows is an error on SQLite; nothing to do anyway.
        return 0
    return queries.load(conn, f"load_{name}", rows)


def _organization_ids(conn: Connection, owner_ids: Sequence[int]) -> dict[str, int]:
    """The ids the identity column gave the organizations just loaded, by name."""
    ids: dict[str, int] = {}
    for start in range(0, len(owner_ids), _LOOKUP_CHUNK):
        chunk = list(owner_ids[start : start + _LOOKUP_CHUNK])
        ids.update(
            (row.name, int(row.id)) for row in queries.rows(conn, "owned_organizations", owner_ids=chunk)
        )
    return ids


def _read_ahead(items: Iterator[T], depth: int = _READ_AHEAD) -> Iterator[T]:
    """Yields what `items` yields, producing the next ones in a thread meanwhile.

    While the database works through a COPY (indexes, constraints) the loader waits with the GIL
    released, and the next batch is generated meanwhile instead of afterwards. Order, and so the data,
    is unchanged: one thread produces, one consumes. Closing the generator stops the producer.
    """
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
            put("done", None)
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            put("error", exc)

    producer = threading.Thread(target=produce, name="rollout-seed-rows", daemon=True)
    producer.start()
    try:
        while True:
            kind, value = buffer.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield cast(T, value)
    finally:
        stop.set()
        producer.join()
