"""Synthetic usernames and display names for `rollout seed`.

Most are the ordinary ASCII handles a platform accumulates (`alice.smith42`); a sprinkling are the
awkward cases organization naming (docs/migrating-an-owner.md) has to survive: Unicode that transliterates, names past
the 39-character cut, one- and two-character names, names with nothing to slug, and families of
names that differ only by case and punctuation and so fold to the same slug.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Final, NamedTuple

REGULAR: Final = "regular"
UNICODE: Final = "unicode"
LONG: Final = "long-username"
SHORT: Final = "short-username"
EMPTY_SLUG: Final = "empty-slug"
STYLES: Final = (UNICODE, LONG, SHORT, EMPTY_SLUG)


def words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of `text`: long vocabularies stay readable as prose."""
    return tuple(text.split())


FIRST_NAMES: Final = words(
    "alice bob carol dave erin frank grace heidi ivan judy karl lena mallory nina oscar peggy quentin "
    "rupert sybil trent ursula victor wendy xavier yara zane amir bea chen dana elif farid gita hugo "
    "ines jonas kemal lucia marta nils olga priya rosa sven tariq uma vera wei yusuf zofia ana ben "
    "clara diego emma felix hana igor jin kofi leo maya noah omar paul rhea sara tom vlad ada"
)
LAST_NAMES: Final = words(
    "smith jones garcia miller davis lopez wilson anderson thomas moore martin lee perez white harris "
    "clark lewis young walker hall allen king wright scott green baker adams nelson hill campbell "
    "mitchell roberts carter phillips evans turner torres parker collins edwards stewart morris "
    "murphy cook rogers morgan peterson cooper reed bailey bell kelly howard ward cox diaz richardson "
    "wood watson brooks bennett gray james reyes cruz hughes price myers long foster sanders ross "
    "morales powell sullivan russell ortiz jenkins gutierrez perry butler barnes fisher henderson "
    "coleman simmons patterson jordan reynolds hamilton nakamura kowalski novak schmidt rossi dubois "
    "jansen nielsen popescu"
)
_WORDS: Final = words(
    "cloud platform engineering department digital agency studio solutions labs systems consulting "
    "international production marketing development operations"
)
# Transliterated by Unidecode to something usable: é -> e, ß -> ss, Дмитрий -> Dmitrii, 用户 -> Yong Hu.
_UNICODE_TOKENS: Final = words(
    "José Zoë straße Дмитрий Ольга Наталья 用户 李伟 王芳 Müller Søren Łukasz François İlker Ærø Ñandú "
    "Ελένη さくら 김민준 Renée Jürgen Çelik"
)
# Unidecode has no transliteration for these, so they vanish from slugs.
_EMOJI: Final = ("😀", "🚀", "🎉", "🔥", "✨", "🦄", "👍", "☕", "⚡", "🙂")
# Every character here slugs to nothing: ASCII punctuation becomes separators, emoji are dropped.
_NO_SLUG_CHARS: Final = (*_EMOJI, "!", "#", "$", "%", "&", "*", "+", "-", ".", "_", "~")
# Longer than 39 characters on its own, so every username built on it slugs to the same cut prefix.
_LONG_PREFIX: Final = "engineering.department.of.example.corporation."
_SHORT_CHARS: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
# How the members of a collision family dress the same base: each slugs to the base itself.
_COLLISION_VARIANTS: Final = ("{b}", "{B}", "{U}_", "{b}!", "_{b}", "{b}.", "-{b}-", "{B}!!", "{b}~")


class Profile(NamedTuple):
    """A user's names, and the style the username actually got (a style can fall back to regular)."""

    username: str
    display_name: str | None
    style: str


class UsernameFactory:
    """Hands out unique usernames (the column is UNIQUE), drawing only on the given generator."""

    def __init__(self, rng: random.Random, reserved: Iterable[str] = ()) -> None:
        self._rng = rng
        self._taken: set[str] = set(reserved)

    def _claim(self, name: str) -> bool:
        if name in self._taken:
            return False
        self._taken.add(name)
        return True

    def make(self, user_id: int, style: str) -> Profile:
        """A fresh `(username, display_name)` in `style`; falls back to a regular name when a style
        runs out of unique candidates (there are only so many two-character names)."""
        rng = self._rng
        for _ in range(8):
            if style == UNICODE:
                candidate = self._unicode()
            elif style == LONG:
                candidate = self._long()
            elif style == SHORT:
                candidate = "".join(rng.choice(_SHORT_CHARS) for _ in range(rng.randint(1, 2)))
            elif style == EMPTY_SLUG:
                candidate = "".join(rng.choice(_NO_SLUG_CHARS) for _ in range(rng.randint(1, 5)))
            else:
                break
            if self._claim(candidate):
                return Profile(candidate, self._display_name(None, candidate), style)
        return self.regular(user_id)

    def regular(self, user_id: int) -> Profile:
        """An ordinary ASCII handle and the person's name."""
        rng = self._rng
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        for _ in range(8):
            pattern = rng.random()
            if pattern < 0.30:
                candidate = f"{first}.{last}{rng.randint(1, 99)}"
            elif pattern < 0.45:
                candidate = f"{first}{last}"
            elif pattern < 0.55:
                candidate = f"{first}_{last}"
            elif pattern < 0.70:
                candidate = f"{first[0]}{last}{rng.randint(1, 999)}"
            elif pattern < 0.85:
                candidate = f"{first}{rng.randint(1, 9999)}"
            elif pattern < 0.90:
                candidate = f"{last}-{first}"
            elif pattern < 0.95:
                candidate = f"{first.title()}{last.title()}"
            else:
                candidate = f"{first}.{last}"
            if self._claim(candidate):
                return Profile(
                    candidate, self._display_name(f"{first.title()} {last.title()}", candidate), REGULAR
                )
        # The id makes it unique among regular names; the loop only guards against other styles.
        candidate = f"{first}.{last}.{user_id}"
        while not self._claim(candidate):
            candidate += "0"
        return Profile(candidate, self._display_name(f"{first.title()} {last.title()}", candidate), REGULAR)

    def collision_family(self, size: int) -> list[Profile]:
        """`size` usernames that differ only by case and punctuation, so all fold to one slug."""
        rng = self._rng
        while True:
            base = f"{rng.choice(FIRST_NAMES)}{rng.randint(10, 99999)}"
            variants = [
                v.format(b=base, B=base.title(), U=base.upper())
                for v in rng.sample(_COLLISION_VARIANTS, size)
            ]
            if not any(v in self._taken for v in variants):
                break
        self._taken.update(variants)
        person = base.rstrip("0123456789").title()
        return [Profile(v, self._display_name(person, v), REGULAR) for v in variants]

    def _unicode(self) -> str:
        rng = self._rng
        shape = rng.random()
        token = rng.choice(_UNICODE_TOKENS)
        if shape < 0.4:
            return f"{token}{rng.choice(('.', '_', '', '-'))}{rng.choice(LAST_NAMES)}"
        if shape < 0.7:
            return f"{token}{rng.randint(1, 9999)}"
        if shape < 0.85:
            return f"{token}{rng.choice(_UNICODE_TOKENS)}"
        return f"{rng.choice(FIRST_NAMES)}{rng.choice(_EMOJI)}{rng.randint(1, 999)}"

    def _long(self) -> str:
        rng = self._rng
        if rng.random() < 0.3:
            return f"{_LONG_PREFIX}{rng.choice(FIRST_NAMES)}{rng.randint(1, 9999)}"
        separator = rng.choice((".", "_", "-"))
        words = [rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)]
        while len(separator.join(words)) <= 40:
            words.append(rng.choice(_WORDS))
        return f"{separator.join(words)}{rng.randint(1, 999)}"

    def _display_name(self, person: str | None, username: str) -> str | None:
        """Mostly the person's name; sometimes NULL or blank, which makes the username the label."""
        roll = self._rng.random()
        if roll < 0.08:
            return None
        if roll < 0.12:
            return self._rng.choice(("  ", "", " \t"))
        if person is None or roll < 0.15:
            return username
        return person
