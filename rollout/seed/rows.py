"""The rows of one legacy owner for `rollout seed`: projects, access grants, environments, billing.

Pure generation: everything is drawn from the `random.Random` it is given, in call order, and no
database is touched. `rollout.seed.population` decides who is who and calls `OwnerRows.add` for each
owner in id order.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Final

from rollout.engine.states import BlockedReason
from rollout.seed.names import words

Row = tuple[object, ...]
Batch = dict[str, list[Row]]

# A fixed origin instead of the clock: the data must not depend on when it was generated.
BASE_DATE: Final = datetime(2019, 1, 1, tzinfo=UTC)

# The tables `OwnerRows.add` fills, in foreign-key order.
OWNER_TABLES: Final = words(
    "organization_members projects project_access environments environment_access billing_accounts "
    "subscriptions invoices vouchers"
)
# Owner categories, disjoint; the first three lead to the blocked reasons of the same name.
OWNER_DELETED: Final = str(BlockedReason.OWNER_DELETED)
OWNS_SEVERAL: Final = str(BlockedReason.SEVERAL_ORGANIZATIONS)
BILLING_CONFLICT: Final = str(BlockedReason.BILLING_CONFLICT)
OWNS_ONE: Final = "owns-one-organization"
PARTIALLY_MIGRATED: Final = "partially-migrated"
ONLY_DELETED_PROJECTS: Final = "only-deleted-projects"
OWNER_CATEGORIES: Final = (
    OWNER_DELETED,
    OWNS_ONE,
    BILLING_CONFLICT,
    OWNS_SEVERAL,
    ONLY_DELETED_PROJECTS,
    PARTIALLY_MIGRATED,
)
WITH_ORGANIZATION: Final = (OWNS_ONE, BILLING_CONFLICT, OWNS_SEVERAL, PARTIALLY_MIGRATED)
# The categories whose first projects must be live for the case to exist.
_NEEDS_LIVE_PROJECTS: Final = (*WITH_ORGANIZATION, OWNER_DELETED)

_REGIONS: Final = ("eu-1", "eu-2", "eu-3", "us-1", "us-2", "ap-1")
# Cumulative weights, in percent.
_REGION_WEIGHTS: Final = (30, 45, 55, 80, 90, 100)
_TEAM_SIZE_WEIGHTS: Final = (25, 45, 65, 80, 90, 96, 100)
_ENVIRONMENT_COUNT_WEIGHTS: Final = (0, 0, 50, 85, 100)
_ROLES: Final = ("admin", "viewer", "viewer", "viewer")
_ENV_ROLES: Final = ("admin", "contributor", "contributor", "viewer")
# (plan, storage_gb, development_environments, user_licenses)
_PLANS: Final = (
    ("development", 5, 1, 1),
    ("standard", 5, 2, 3),
    ("medium", 10, 3, 10),
    ("large", 50, 4, 25),
    ("xlarge", 100, 6, 50),
)
_PLAN_WEIGHTS: Final = (20, 60, 82, 96, 100)
_PAYMENT_METHODS: Final = words(
    "card:visa:4242 card:mastercard:5454 card:amex:0005 card:visa:1881 sepa:DE89 invoice"
)
_STREETS: Final = ("Main St", "Rue de la Paix", "Hauptstraße", "Market St", "Kings Road", "Via Roma")
_CITIES: Final = ("Paris, FR", "Berlin, DE", "London, GB", "Austin, US", "Lisbon, PT", "Sydney, AU")
_ADJECTIVES: Final = ("Quiet", "Bright", "Rapid", "Hidden", "Golden", "Silver", "Northern", "Little")
_NOUNS: Final = ("River", "Store", "Blog", "Shop", "Portal", "Api", "Docs", "Intranet", "Wiki", "Site")

# Identifiers are a bijective scramble of a counter (odd multiplier modulo 2**40, then a seed-drawn
# xor): unique by construction, without a set of every id handed out so far.
ID_BITS: Final = 40
_ID_MASK: Final = (1 << ID_BITS) - 1
_ID_MULTIPLIER: Final = 0xB5AD4ECEDB
# Two base32 characters for each 10 bits, so an id is four look-ups.
_BASE32_PAIRS: Final = tuple(
    a + b for a in "abcdefghijklmnopqrstuvwxyz234567" for b in "abcdefghijklmnopqrstuvwxyz234567"
)


def scrambled_id(counter: int, salt: int) -> str:
    """Eight lower-case base32 characters that look random but are distinct for distinct counters."""
    value = (counter * _ID_MULTIPLIER & _ID_MASK) ^ salt
    pairs = _BASE32_PAIRS
    return pairs[value >> 30] + pairs[value >> 20 & 1023] + pairs[value >> 10 & 1023] + pairs[value & 1023]


def weighted(rng: random.Random, cumulative: Sequence[int]) -> int:
    """An index drawn with the given cumulative weights (cheaper than `Random.choices`)."""
    return bisect(cumulative, rng.random() * cumulative[-1])


@cache
def _month_start(month_index: int) -> datetime:
    """The first day of the `month_index`-th month after `BASE_DATE`'s."""
    return datetime(BASE_DATE.year + month_index // 12, month_index % 12 + 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Organization:
    """An organization that exists before the rollout, created through the new flow."""

    name: str
    label: str
    owner_id: int
    created_at: datetime
    extra_member: int | None
    has_billing: bool


class OwnerRows:
    """Generates owners' rows, numbering environments, billing accounts, invoices and vouchers.

    `collaborators` are the users who own nothing; `deleted` the users whose row is deleted;
    `forced_team` puts given users on an owner's first project whatever the draws. After the last
    owner, `held_access` holds the deleted non-owners that got an access row, `environment_only` the
    users given an environment grant on a project where they have no project grant.
    """

    def __init__(
        self,
        rng: random.Random,
        user_count: int,
        collaborators: Sequence[int],
        deleted: set[int],
        forced_team: Mapping[int, Sequence[int]],
    ) -> None:
        self._rng = rng
        self._user_count = user_count
        self._collaborators = collaborators
        self._deleted = deleted
        self._forced_team = forced_team
        self._project_salt = rng.getrandbits(ID_BITS)
        self._voucher_salt = rng.getrandbits(ID_BITS)
        self._next = {"project": 0, "voucher": 0, "environment": 0, "billing": 0, "invoice": 0}
        self.held_access: set[int] = set()
        self.environment_only: set[int] = set()

    def add(
        self,
        owner_id: int,
        category: str | None,
        signed_up: datetime,
        organizations: Sequence[Organization],
        organization_ids: Mapping[str, int],
        out: Batch,
        *,
        keep_live: bool = False,
    ) -> None:
        """Appends one owner's rows to `out`: 1 to 60 projects (most 1 or 2), their grants and
        environments, and the owner's billing, shaped by the owner's edge-case `category`. With
        `keep_live` the first project is active whatever the draws, so the owner is a legacy owner."""
        rng = self._rng
        projects = self._project_count()
        if category == PARTIALLY_MIGRATED:
            projects = max(projects, 2 + rng.randint(0, 2))
        team = self._team(owner_id, projects)
        forced = self._forced_team.get(owner_id, ())
        organization = organizations[0] if organizations else None

        # A billing account on both sides is the conflict; an organization that has one is otherwise
        # paid for through it, so its owner has none of their own.
        org_billing = any(o.has_billing for o in organizations)
        has_account = category == BILLING_CONFLICT or (not org_billing and rng.random() < 0.7)
        account_id = self._billing_account(owner_id, None, signed_up, out) if has_account else None
        for o in organizations:
            if o.has_billing:
                self._billing_account(None, organization_ids[o.name], o.created_at, out)

        moved_into = None
        if category == PARTIALLY_MIGRATED and organization is not None:
            moved_into = organization_ids[organization.name]
        moved_members: set[int] = set()
        for i in range(projects):
            roll = rng.random()
            status = "deleted" if roll < 0.03 else "suspended" if roll < 0.08 else "active"
            if category == ONLY_DELETED_PROJECTS:
                status = "deleted"
            elif (i < 2 and category in _NEEDS_LIVE_PROJECTS) or (i == 0 and keep_live):
                # The legacy project the case needs (and, partially migrated, the moved one).
                status = "active"
            in_organization = moved_into if i % 2 == 1 else None
            project_id = scrambled_id(self._take("project"), self._project_salt)
            title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
            region = _REGIONS[weighted(rng, _REGION_WEIGHTS)]
            created = signed_up + timedelta(days=rng.randint(0, 600), seconds=rng.randint(0, 86399))
            out["projects"].append((project_id, title, region, owner_id, in_organization, status, created))

            collaborators = rng.sample(team, min(len(team), rng.choice((0, 1, 1, 2, 2, 3, 4))))
            if i == 0:
                collaborators += [u for u in forced if u not in collaborators]
            for user_id in collaborators:
                out["project_access"].append((project_id, user_id, rng.choice(_ROLES)))
            if rng.random() < 0.1:
                out["project_access"].append((project_id, owner_id, "admin"))

            environments = self._environments(project_id, out)
            for environment_id in environments:
                for user_id in collaborators:
                    if rng.random() < 0.35:
                        out["environment_access"].append((environment_id, user_id, rng.choice(_ENV_ROLES)))
            # The first ordinary owner always gets one, so the case exists whatever the draws.
            if rng.random() < 0.08 or (category is None and not self.environment_only):
                outsider = self._outsider(owner_id, team, collaborators)
                if outsider is not None:
                    grant = (rng.choice(environments), outsider, rng.choice(_ENV_ROLES))
                    out["environment_access"].append(grant)
                    self.environment_only.add(outsider)
                    collaborators = [*collaborators, outsider]
            self.held_access.update(u for u in collaborators if u in self._deleted)
            if in_organization is not None:
                moved_members.update(u for u in collaborators if u not in self._deleted)

            if status == "active" and account_id is not None:
                plan = _PLANS[weighted(rng, _PLAN_WEIGHTS)]
                out["subscriptions"].append((project_id, account_id, *plan))

        if moved_into is not None and organization is not None:
            # The new flow made the people of the moved projects members; the legacy ones wait.
            joined = organization.created_at + timedelta(days=1)
            out["organization_members"].extend((moved_into, u, joined) for u in sorted(moved_members))

    def _take(self, counter: str) -> int:
        self._next[counter] += 1
        return self._next[counter]

    def _project_count(self) -> int:
        rng = self._rng
        roll = rng.random()
        if roll < 0.55:
            return 1
        if roll < 0.80:
            return 2
        # A heavy tail: agencies with dozens of client projects.
        return min(60, 2 + int(rng.paretovariate(1.1)))

    def _team(self, owner_id: int, projects: int) -> list[int]:
        """The people an owner works with: mostly collaborator-only users, sometimes other owners."""
        rng = self._rng
        size = weighted(rng, _TEAM_SIZE_WEIGHTS)
        size = min(size + (projects - 1) // 4, self._user_count - 1)
        team = list(self._forced_team.get(owner_id, ()))
        while len(team) < size:
            if rng.random() < 0.65:
                user_id = rng.choice(self._collaborators)
            else:
                user_id = rng.randint(1, self._user_count)
            if user_id != owner_id and user_id not in team:
                team.append(user_id)
        return team

    def _outsider(self, owner_id: int, team: Sequence[int], collaborators: Sequence[int]) -> int | None:
        """Someone without project access who gets an environment grant all the same."""
        rng = self._rng
        candidates = [u for u in team if u not in collaborators]
        if candidates:
            return rng.choice(candidates)
        for _ in range(10):
            user_id = rng.randint(1, self._user_count)
            if user_id != owner_id and user_id not in collaborators:
                return user_id
        return None

    def _billing_account(
        self, user_id: int | None, organization_id: int | None, since: datetime, out: Batch
    ) -> int:
        rng = self._rng
        account_id = self._take("billing")
        method = rng.choice(_PAYMENT_METHODS) if rng.random() < 0.95 else None
        address = None
        if rng.random() < 0.9:
            street = f"{rng.randint(1, 250)} {rng.choice(_STREETS)}"
            address = f"{street}, {rng.randint(10000, 99999)} {rng.choice(_CITIES)}"
        out["billing_accounts"].append((account_id, user_id, organization_id, method, address))
        first = (since.year - BASE_DATE.year) * 12 + since.month + rng.randint(0, 5)
        for month in range(first, first + rng.randint(0, 12)):
            issued = _month_start(month)
            out["invoices"].append((self._take("invoice"), account_id, issued, rng.randint(900, 95000)))
        if rng.random() < 0.15:
            for _ in range(rng.randint(1, 3)):
                code = "VCH-" + scrambled_id(self._take("voucher"), self._voucher_salt).upper()
                out["vouchers"].append((code, account_id, rng.choice((1000, 2500, 5000, 10000))))
        return account_id

    def _environments(self, project_id: str, out: Batch) -> list[int]:
        rng = self._rng
        names = ["production", "staging"] if rng.random() < 0.7 else ["production"]
        # Most projects have two or three; a few more development environments.
        names.extend(f"dev-{n}" for n in range(1, weighted(rng, _ENVIRONMENT_COUNT_WEIGHTS) - len(names) + 1))
        ids = []
        for name in names:
            environment_id = self._take("environment")
            kind = name if name in ("production", "staging") else "development"
            out["environments"].append((environment_id, project_id, name, kind))
            ids.append(environment_id)
        return ids
