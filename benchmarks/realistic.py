"""The realistic benchmark dataset: records and documents like an application's, not hex strings.

The database is filled by FILL (seeded SQL, fast; dataset.py runs it); the documents here: per
user folder photos, receipts and contracts (random bytes: already compressed, as JPEG and PDF
are), and text an owner keeps (fuel exports as CSV, notes, mail with the garage, service
histories as JSON) written from the word lists of benchmarks/vocabulary.py, combined freely so
no two sentences need be alike.
"""

from __future__ import annotations

import json
import os
import random
import re
from datetime import datetime, timedelta
from pathlib import Path

from benchmarks import vocabulary as v

FILL = Path(__file__).resolve().parent / "fill_real.sql"
VERSION = 1  # of the dataset: a change to what it holds rebuilds the cached ones
MTIME = 1_704_067_200  # 2024-01-01: fixed, so tar headers are the same in every build
EPOCH = datetime(2016, 1, 1)

# run after the documents' rows are copied in (their user, name, path and size): when each was
# uploaded, and for which vehicle, seeded like the fill (now() would differ between builds)
DOCUMENTS_SQL = """
SELECT setseed(0.5772);
UPDATE documents
SET uploaded_at = timestamptz '2016-01-01' + random() * 283996800 * interval '1 second',  -- 9 years
    vehicle_id = CASE WHEN random() < 0.6
                      THEN 1 + floor(random() * (SELECT max(id) FROM vehicles))::bigint END;
"""

SUBJECTS = ["I", "we", "the mechanic", "the garage", "my partner", "the dealer", "the tyre shop"]
TEMPLATES = [
    "{subject} {past_verb} the {adjective} {part} {time_phrase}.",
    "On the way to {city} there was a {sound} from {place} when {situation}.",
    "{city} to {city}: {km} km in {hours} hours, {condition}.",
    "Spent {price} EUR on the {part} at {garage}; {remark}.",
    "Need to {task} before {event}.",
    "The {warning_light} light came on {time_phrase} and {outcome}.",
    "Filled up {litres} litres of {fuel_type} at {fuel_brand} in {city} for {price} EUR.",
    "{first_name} from {garage} called: the {part} {verdict}.",
    "Average consumption {consumption} l/100km over the last {km} km, {condition}.",
    "The odometer read {odometer} km when the {part} was {past_verb}.",
    "Asked {garage} for a quote on the {part}: {price} EUR plus {hours} hours of labour.",
    "{time_phrase}, {subject} {past_verb} the {part} because it was {adjective}.",
    "Still not sure whether the {part} or the {part} makes the {sound}; {outcome}.",
    "{first_name} {last_name} recommended {garage} for the {service}.",
]
VERDICTS = ["is fine for now", "needs replacing before winter", "was replaced under warranty",
            "is on back order", "will cost more than quoted", "was not the problem after all"]
_SLOT = re.compile(r"\{(\w+)\}")


class Writer:
    """Sentences, names and numbers from one seeded random generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.slots = {
            "first_name": lambda: self.pick(v.FIRST_NAMES),
            "last_name": lambda: self.pick(v.LAST_NAMES),
            "subject": lambda: self.pick(SUBJECTS + v.FIRST_NAMES[:40]),
            "city": self.city,
            "garage": self.garage,
            "service": lambda: self.pick(v.SERVICES).split("|")[1].lower(),
            "verdict": lambda: self.pick(VERDICTS),
            "km": lambda: str(self.rng.randint(12, 1400)),
            "hours": lambda: f"{self.rng.uniform(0.5, 14):.1f}",
            "price": lambda: f"{self.rng.uniform(8, 1600):.2f}",
            "litres": lambda: f"{self.rng.uniform(10, 70):.2f}",
            "consumption": lambda: f"{self.rng.uniform(3.9, 11.5):.1f}",
            "odometer": lambda: f"{self.rng.randint(900, 340000):,}",
        }

    def pick(self, words: list[str]) -> str:
        return words[int(self.rng.random() * len(words))]

    def city(self) -> str:
        return self.pick(v.CITIES).split("|")[0]

    def garage(self) -> str:
        first = self.city() if self.rng.random() < 0.5 else self.pick(v.LAST_NAMES)
        return f"{first} {self.pick(v.GARAGE_KINDS)}"

    def person(self) -> str:
        return f"{self.pick(v.FIRST_NAMES)} {self.pick(v.LAST_NAMES)}"

    def slot(self, name: str) -> str:
        make = self.slots.get(name)
        return make() if make else self.pick(getattr(v, name.upper() + "S", None)
                                             or getattr(v, name.upper()))

    def sentence(self) -> str:
        text = _SLOT.sub(lambda m: self.slot(m.group(1)), self.pick(TEMPLATES))
        return text[0].upper() + text[1:]

    def paragraph(self, lo: int, hi: int) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(lo, hi)))

    def moment(self, years: float = 8.0) -> datetime:
        return EPOCH + timedelta(seconds=self.rng.random() * years * 365 * 86400)


def _fuel_csv(w: Writer, rows: int) -> str:
    lines = ["date,time,station,city,fuel,litres,price_per_litre,total,odometer_km,payment,notes"]
    odometer = w.rng.randint(1_000, 120_000)
    day = w.moment(6)
    for _ in range(rows):
        day += timedelta(hours=w.rng.uniform(20, 400))
        odometer += w.rng.randint(120, 950)
        litres, price = w.rng.uniform(9, 70), w.rng.uniform(1.35, 2.15)
        note = (w.pick(v.REMARKS) if w.rng.random() < 0.25 else
                w.sentence().replace(",", ";") if w.rng.random() < 0.05 else "")
        lines.append(f"{day:%Y-%m-%d,%H:%M},{w.pick(v.FUEL_BRANDS)},{w.city()},"
                     f"{w.pick(v.FUEL_TYPES)},{litres:.2f},{price:.3f},{litres * price:.2f},"
                     f"{odometer},{w.pick(v.PAYMENT)},{note}")
    return "\n".join(lines) + "\n"


def _notes(w: Writer, size: int) -> str:
    parts = [f"{w.pick(v.NOTE_TITLES)}\n{'=' * 20}\n"]
    n = 0
    while n < size:
        stamp = w.moment()
        part = f"\n{stamp:%d.%m.%Y}\n{w.paragraph(2, 9)}\n"
        parts.append(part)
        n += len(part)
    return "".join(parts)


def _mail(w: Writer, owner: str) -> str:
    garage, sent = w.garage(), w.moment()
    mechanic = w.person()
    domain = re.sub(r"[^a-z]", "", garage.lower())[:18] + ".example"
    body = "\n\n".join(w.paragraph(2, 6) for _ in range(w.rng.randint(1, 4)))
    return (f"From: {mechanic} <{mechanic.split()[0].lower()}@{domain}>\n"
            f"To: {owner} <{owner.replace(' ', '.').lower()}@{w.pick(v.EMAIL_DOMAINS)}>\n"
            f"Date: {sent:%a, %d %b %Y %H:%M:%S} +0100\n"
            f"Subject: {w.pick(v.NOTE_TITLES)}: your {w.slot('service')}\n"
            f"Content-Type: text/plain; charset=utf-8\n\n"
            f"Dear {owner.split()[0]},\n\n{body}\n\nKind regards,\n{mechanic}\n{garage}\n"
            f"{w.rng.randint(1, 200)} {w.pick(v.STREETS)} {w.pick(v.STREET_TYPES)}, "
            f"{w.city()}\n")


def _service_history(w: Writer, records: int) -> str:
    items = []
    for _ in range(records):
        services = [w.pick(v.SERVICES).split("|") for _ in range(w.rng.randint(1, 4))]
        items.append({
            "date": f"{w.moment():%Y-%m-%d}", "odometer_km": w.rng.randint(900, 340000),
            "garage": {"name": w.garage(), "city": w.city(),
                       "phone": f"+{w.rng.randint(30, 49)} {w.rng.randint(20, 999)} "
                                f"{w.rng.randint(100000, 9999999)}"},
            "items": [{"code": s[0], "label": s[1], "price": float(s[2]), "hours": float(s[3])}
                      for s in services],
            "total": round(sum(float(s[2]) for s in services) * w.rng.uniform(0.9, 1.3), 2),
            "mechanic": w.person(),
            "notes": w.paragraph(1, 3) if w.rng.random() < 0.6 else None})
    return json.dumps(items, indent=2, ensure_ascii=False)


def user_files(user: int, folder: Path) -> list[tuple[Path, bool]]:
    """Write one user's documents; return (path, compressible) for each."""
    rng = random.Random(f"bench-real-user-{user}")
    w = Writer(rng)
    owner = w.person()
    made: list[tuple[Path, bool]] = []

    def write(rel: str, data: str | bytes, compressible: bool) -> None:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        made.append((path, compressible))

    for k in range(rng.randint(1, 3)):
        write(f"photos/IMG_{user:05d}_{k}.jpg",
              b"\xff\xd8\xff\xe0" + rng.randbytes(rng.randint(150_000, 1_000_000)), False)
    for k in range(rng.randint(1, 3)):
        write(f"receipts/receipt-{k}.pdf",
              b"%PDF-1.7\n" + rng.randbytes(rng.randint(30_000, 400_000)), False)
    if rng.random() < 0.3:
        write("contracts/lease.docx", b"PK\x03\x04" + rng.randbytes(rng.randint(20_000, 200_000)),
              False)
    for k in range(rng.randint(1, 3)):
        write(f"exports/fuel-{2021 + k}.csv", _fuel_csv(w, rng.randint(2_500, 11_000)), True)
    for k in range(rng.randint(1, 6)):
        write(f"notes/note-{k}.txt", _notes(w, rng.randint(2_000, 60_000)), True)
    for k in range(rng.randint(0, 4)):
        write(f"mail/garage-{k}.eml", _mail(w, owner), True)
    for k in range(rng.randint(0, 2)):
        write(f"service/history-{k}.json", _service_history(w, rng.randint(30, 500)), True)
    if rng.random() < 0.1:
        write("notes/empty.txt", b"", True)
    for path, _ in made:
        os.utime(path, (MTIME, MTIME))
    return made

