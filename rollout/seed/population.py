"""Who is who in `rollout seed`'s data: users, edge-case owners, the organizations that already exist.

`SeedData` draws everything from one `random.Random(seed)` in a fixed order (this plan, then users,
organizations, owners in id order), so the same seed and owner count give the same rows; a loader
calls its methods in that order. Owners' rows are streamed in batches: nothing the size of the
project tables is held, only per-user flags, usernames and the edge-case owners.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Final

from rollout.engine.naming import base_name, suffixed
from rollout.engine.states import PERMISSIONS
from rollout.seed.names import REGULAR, STYLES, Profile, UsernameFactory
from rollout.seed.rows import (
    BASE_DATE,
    BILLING_CONFLICT,
    OWNER_CATEGORIES,
    OWNER_DELETED,
    OWNER_TABLES,
    OWNS_ONE,
    OWNS_SEVERAL,
    PARTIALLY_MIGRATED,
    WITH_ORGANIZATION,
    Batch,
    Organization,
    OwnerRows,
    Row,
)

NAME_COLLISION: Final = "name-collision"
ORG_NAME_TAKEN: Final = "org-name-taken"
DELETED_COLLABORATOR: Final = "deleted-collaborator"
ENVIRONMENT_ONLY: Final = "environment-only-access"

_SIGNUP_SPAN_SECONDS: Final = 730 * 86400
_EMAIL_DOMAINS: Final = ("example.com", "example.org", "mail.example.net")


class SeedData:
    """Synthetic legacy platform data for `owners` project owners, plus ~30 % collaborator-only users.

    Owners and collaborators are interleaved over ids 1..`user_count`; every owner holds at least one
    project. With `owners >= 50`, about 1 % of owners fall in each owner category (disjoint), a few
    per thousand in families of usernames folding to one slug, and about 1 % have their slug taken by
    someone else's organization; username styles (~2 % of users each) are sprinkled over everyone.
    """

    def __init__(self, owners: int, seed: int) -> None:
        if owners < 1:
            raise ValueError(f"owners must be at least 1, got {owners}")
        rng = self._rng = random.Random(seed)
        self.owners = owners
        self.user_count = owners + max(1, round(owners * 0.3))
        population = range(1, self.user_count + 1)
        owner_ids = sorted(rng.sample(population, owners))
        is_owner = bytearray(self.user_count + 1)
        for owner_id in owner_ids:
            is_owner[owner_id] = 1
        self._owner_ids = array("q", owner_ids)
        collaborators = array("q", (u for u in population if not is_owner[u]))

        per_case = max(1, owners // 100) if owners >= 50 else 0
        families = [rng.randint(2, 4) for _ in range(max(1, round(owners * 0.004)) if per_case else 0)]
        forced_styles = STYLES if per_case else ()
        wanted = (len(OWNER_CATEGORIES) + 1) * per_case + sum(families) + len(forced_styles)
        special = rng.sample(owner_ids, wanted)
        del owner_ids
        self._category: dict[int, str] = {}
        self._cases: dict[str, list[int]] = {key: [] for key in (*OWNER_CATEGORIES, *STYLES)}
        for i, category in enumerate(OWNER_CATEGORIES):
            for owner_id in special[i * per_case : (i + 1) * per_case]:
                self._category[owner_id] = category
                self._cases[category].append(owner_id)
        rest = special[len(OWNER_CATEGORIES) * per_case :]
        victims, rest = rest[:per_case], rest[per_case:]
        self._forced_style = dict(zip(rest[: len(forced_styles)], forced_styles, strict=True))
        rest = rest[len(forced_styles) :]
        # Naming cases only matter for owners the rollout will name an organization for.
        self._keep_live = {*victims, *self._forced_style, *rest}

        self._names = UsernameFactory(rng)
        self._preassigned: dict[int, Profile] = {}
        self._cases[NAME_COLLISION] = []
        for size in families:
            family, rest = rest[:size], rest[size:]
            for owner_id, profile in zip(family, self._names.collision_family(size), strict=True):
                self._preassigned[owner_id] = profile
                self._cases[NAME_COLLISION].append(owner_id)
        for victim in victims:
            self._preassigned[victim] = self._names.regular(victim)
        self._cases[ORG_NAME_TAKEN] = list(victims)

        deleted = {u for u in collaborators if rng.random() < 0.02}
        if per_case and not deleted:
            deleted.add(rng.choice(collaborators))
        # Holders of organizations named after a victim's slug: live users who own no project.
        self._holders: list[int] = []
        while len(self._holders) < len(victims):
            holder = rng.choice(collaborators)
            if holder not in deleted and holder not in self._holders:
                self._holders.append(holder)
        # A few deleted collaborators go on an ordinary owner's first project, so the case exists
        # whatever the draws; the others turn up in teams by chance.
        forced_team: dict[int, list[int]] = {}
        for collaborator in sorted(deleted)[:per_case]:
            while (owner_id := rng.choice(self._owner_ids)) in self._category:
                pass
            forced_team.setdefault(owner_id, []).append(collaborator)
        deleted.update(self._cases[OWNER_DELETED])
        self._deleted = deleted
        self._live_collaborators = [u for u in collaborators if u not in deleted]
        self._rows = OwnerRows(rng, self.user_count, collaborators, deleted, forced_team)

        self._profiles: dict[int, Profile] = {}
        self._remember = {*self._holders, *(o for o, c in self._category.items() if c in WITH_ORGANIZATION)}
        self._organizations: list[Organization] = []
        self._organizations_of: dict[int, list[Organization]] = {}

    def user_created(self, user_id: int) -> datetime:
        """Sign-up time: grows with the id, as on a real platform, over two years from `BASE_DATE`."""
        offset = user_id * _SIGNUP_SPAN_SECONDS // self.user_count + (user_id * 7919) % 86400
        return BASE_DATE + timedelta(seconds=offset)

    def users(self) -> Iterator[Row]:
        """Every user, in id order."""
        rng = self._rng
        for user_id in range(1, self.user_count + 1):
            profile = self._preassigned.get(user_id)
            if profile is None:
                style = self._forced_style.get(user_id) or self._roll_style()
                profile = self._names.make(user_id, style)
            if profile.style != REGULAR:
                self._cases[profile.style].append(user_id)
            if user_id in self._remember:
                self._profiles[user_id] = profile
            created = self.user_created(user_id)
            deleted = created + timedelta(days=rng.randint(30, 500)) if user_id in self._deleted else None
            local = profile.username.lower() if profile.style == REGULAR else f"user{user_id}"
            email = f"{local}@{rng.choice(_EMAIL_DOMAINS)}"
            yield (user_id, profile.username, email, profile.display_name, created, deleted)

    def _roll_style(self) -> str:
        roll = self._rng.random()
        # ~2 % each of the awkward styles, the rest regular.
        return STYLES[int(roll / 0.02)] if roll < 0.02 * len(STYLES) else REGULAR

    def organizations(self) -> list[Row]:
        """The organizations that exist before the rollout; call after `users` was drained."""
        rng = self._rng
        taken: set[str] = set()

        def claim(base: str) -> str:
            n = 1
            while suffixed(base, n) in taken:
                n += 1
            taken.add(suffixed(base, n))
            return suffixed(base, n)

        plans: list[tuple[int, str]] = []
        for holder, victim in zip(self._holders, self._cases[ORG_NAME_TAKEN], strict=True):
            # Exactly the victim's slug, so the rollout must suffix the victim's organization.
            name = base_name(self._preassigned[victim].username, victim)
            if name not in taken:
                taken.add(name)
                plans.append((holder, name))
        for owner_id in sorted(o for o, c in self._category.items() if c in WITH_ORGANIZATION):
            username = self._profiles[owner_id].username
            plans.append((owner_id, claim(base_name(username, owner_id))))
            if self._category[owner_id] == OWNS_SEVERAL:
                for suffix in ("team", "labs")[: rng.randint(1, 2)]:
                    plans.append((owner_id, claim(base_name(f"{username} {suffix}", owner_id))))

        for owner_id, name in sorted(plans):
            category = self._category.get(owner_id)
            profile = self._profiles[owner_id]
            label = profile.username
            if profile.display_name and profile.display_name.strip():
                label = profile.display_name
            extra: int | None = None
            # Partially migrated organizations get their members from the moved projects instead.
            if category != PARTIALLY_MIGRATED and rng.random() < 0.5:
                extra = rng.choice(self._live_collaborators)
                extra = None if extra == owner_id else extra
            has_billing = category == BILLING_CONFLICT or (category == OWNS_ONE and rng.random() < 0.5)
            created = self.user_created(owner_id) + timedelta(days=rng.randint(400, 700))
            organization = Organization(name, label, owner_id, created, extra, has_billing)
            self._organizations.append(organization)
            self._organizations_of.setdefault(owner_id, []).append(organization)
        return [(o.name, o.label, o.owner_id, o.created_at) for o in self._organizations]

    def organization_owners(self) -> list[int]:
        """Who owns the organizations of `organizations()`, to read their ids back."""
        return sorted(self._organizations_of)

    def memberships(self, organization_ids: Mapping[str, int]) -> tuple[list[Row], list[Row]]:
        """Members and permissions of the existing organizations: the owner with all four permissions,
        sometimes one more member with none."""
        members: list[Row] = []
        permissions: list[Row] = []
        for o in self._organizations:
            org_id = organization_ids[o.name]
            members.append((org_id, o.owner_id, o.created_at))
            permissions.extend((org_id, o.owner_id, p) for p in PERMISSIONS)
            if o.extra_member is not None:
                members.append((org_id, o.extra_member, o.created_at + timedelta(days=3)))
        return members, permissions

    def owner_batches(self, organization_ids: Mapping[str, int], batch_owners: int = 2000) -> Iterator[Batch]:
        """The rows of `OWNER_TABLES`, `batch_owners` owners at a time, in owner id order."""
        batch: Batch = {table: [] for table in OWNER_TABLES}
        pending = 0
        for owner_id in self._owner_ids:
            organizations = self._organizations_of.get(owner_id, [])
            self._rows.add(
                owner_id,
                self._category.get(owner_id),
                self.user_created(owner_id),
                organizations,
                organization_ids,
                batch,
                keep_live=owner_id in self._keep_live,
            )
            pending += 1
            if pending == batch_owners:
                yield batch
                batch = {table: [] for table in OWNER_TABLES}
                pending = 0
        if pending:
            yield batch

    def edge_cases(self) -> dict[str, tuple[int, ...]]:
        """User ids per edge case; complete once every batch was drawn."""
        cases = {key: tuple(sorted(ids)) for key, ids in self._cases.items()}
        cases[DELETED_COLLABORATOR] = tuple(sorted(self._rows.held_access))
        cases[ENVIRONMENT_ONLY] = tuple(sorted(self._rows.environment_only))
        return cases
