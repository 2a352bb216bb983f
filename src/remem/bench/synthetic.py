"""Synthetic but realistic memory texts for store benchmarks.

Templated first-person sentences about people, preferences, places, dates, health, work and hobbies, filled
from word lists with a seeded generator. The corpus is *prefix-stable*: the first ``n`` texts are the same
whatever the total size, so vectors embedded once for 100k can be reused for 10k (see the vector cache in
:mod:`remem.bench.store`). Users are assigned round-robin (``i % users``), independent of the texts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

GENERATOR_VERSION = 1

NAMES = ["Maya", "Liam", "Sofia", "Noah", "Amara", "Jonas", "Priya", "Mateo", "Yuki", "Elena", "Omar", "Chloe",
         "Tariq", "Ingrid", "Kofi", "Lucia", "Ravi", "Hannah", "Diego", "Mei", "Felix", "Aisha", "Bruno", "Nora",
         "Sven", "Leila", "Marco", "Zoe", "Ahmed", "Clara", "Hugo", "Ines", "Kenji", "Lena", "Pablo", "Sara"]
RELATIONS = ["sister", "brother", "colleague", "neighbour", "best friend", "manager", "cousin", "daughter", "son",
             "partner", "grandmother", "flatmate", "dentist", "coach", "teacher"]
CITIES = ["Lisbon", "Porto", "Berlin", "Kyoto", "Nairobi", "Montreal", "Lyon", "Austin", "Seoul", "Oslo",
          "Cape Town", "Lima", "Edinburgh", "Hanoi", "Valencia", "Melbourne", "Krakow", "Reykjavik", "Accra",
          "Bologna", "Denver", "Tbilisi", "Bergen", "Osaka", "Marrakesh", "Dublin", "Vancouver", "Seville"]
FOODS = ["ramen", "sourdough bread", "dark chocolate", "lentil soup", "sushi", "pad thai", "falafel", "risotto",
         "dumplings", "tacos al pastor", "shakshuka", "pho", "paella", "mango sticky rice", "pierogi", "curry",
         "halloumi", "kimchi", "gnocchi", "baklava", "ceviche", "jollof rice", "croissants", "miso soup"]
DRINKS = ["black coffee", "green tea", "oat milk lattes", "sparkling water", "chamomile tea", "espresso",
          "mint tea", "orange juice", "kombucha", "hot chocolate", "matcha", "red wine", "craft beer"]
HOBBIES = ["the cello", "rock climbing", "pottery", "Spanish", "chess", "sourdough baking", "trail running",
           "watercolour painting", "the guitar", "birdwatching", "salsa dancing", "photography", "Japanese",
           "woodworking", "sailing", "knitting", "bouldering", "jazz piano"]
PETS = [("cat", "Miso"), ("dog", "Biscuit"), ("parrot", "Kiwi"), ("rabbit", "Clover"), ("dog", "Pepper"),
        ("cat", "Luna"), ("tortoise", "Sheldon"), ("cat", "Tofu"), ("dog", "Rocket"), ("hamster", "Nugget")]
JOBS = ["nurse", "software engineer", "teacher", "architect", "baker", "data analyst", "pharmacist", "carpenter",
        "translator", "product designer", "electrician", "lawyer", "chef", "journalist", "physiotherapist"]
ALLERGENS = ["peanuts", "shellfish", "cats", "pollen", "penicillin", "gluten", "dust mites", "lactose"]
BOOKS = ["The Overstory", "Project Hail Mary", "Pachinko", "Dune", "Circe", "The Remains of the Day",
         "Klara and the Sun", "A Little Life", "Sapiens", "Educated", "Station Eleven", "Middlemarch"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
PARTS_OF_DAY = ["morning", "afternoon", "evening", "late evening"]

# (template, categories). Placeholders are filled by :func:`_fill`.
TEMPLATES: list[tuple[str, list[str]]] = [
    ("{name} moved to {city} in {month} {year}.", ["places", "people"]),
    ("My {relation} {name} loves {food}.", ["food", "people"]),
    ("I prefer {drink} over {drink2} in the {part}.", ["preferences", "food"]),
    ("{name}'s birthday is on {month} {day}.", ["dates", "people"]),
    ("I have a dentist appointment on {weekday} at {hour} {ampm}.", ["health", "dates"]),
    ("We are planning a trip to {city} on {month} {day} with my {relation}.", ["travel", "dates"]),
    ("I started learning {hobby} with {name} last {month}.", ["hobbies", "people"]),
    ("I'm allergic to {allergen}, please keep that in mind.", ["health"]),
    ("My favourite restaurant in {city} serves amazing {food}.", ["food", "places"]),
    ("I adopted a {pet} named {petname} in {month}.", ["pets"]),
    ("I work as a {job} in {city}, mostly on {weekday}s.", ["work", "places"]),
    ("{name} recommended the book '{book}' to me.", ["books", "people"]),
    ("I stopped drinking {drink} because it keeps me awake.", ["preferences", "health"]),
    ("My {relation} lives in {city} and visits every {month}.", ["people", "places"]),
    ("The {hobby} class meets on {weekday} evenings at {hour} {ampm}.", ["hobbies", "dates"]),
    ("I ran {km} km along the river on {weekday} morning.", ["fitness"]),
    ("I can't stand {food}, it reminds me of school lunches.", ["food", "preferences"]),
    ("{name} and I are meeting for {drink} in {city} next {weekday}.", ["people", "plans"]),
    ("My passport expires in {month} {year}, I need to renew it.", ["travel", "documents"]),
    ("I switched jobs: I'm now a {job} after {years} years as a {job2}.", ["work"]),
    ("I'm saving up to visit {city} for {name}'s wedding in {month}.", ["travel", "people", "dates"]),
    ("On weekends I usually cook {food} for my {relation}.", ["food", "people"]),
    ("I finished reading '{book}' on {month} {day}; loved the ending.", ["books", "dates"]),
    ("My {pet} {petname} needs a vet check-up on {weekday}.", ["pets", "dates"]),
]

QUERY_TEMPLATES = [
    "where does {name} live now?", "what food does my {relation} like?", "what do I drink in the {part}?",
    "when is {name}'s birthday?", "do I have any appointments on {weekday}?", "any trips planned to {city}?",
    "what hobbies am I learning?", "what am I allergic to?", "favourite restaurant in {city}", "do I have pets?",
    "what is my job?", "which book did {name} recommend?", "why did I stop drinking {drink}?",
    "when does my {relation} visit?", "how far did I run?", "what food do I dislike?",
]


@dataclass(frozen=True)
class SyntheticMemory:
    user_id: str
    text: str
    categories: list[str]
    observed_at: datetime


def _fill(template: str, rng: random.Random) -> str:
    pet, petname = rng.choice(PETS)
    values = {
        "name": rng.choice(NAMES), "relation": rng.choice(RELATIONS), "city": rng.choice(CITIES),
        "food": rng.choice(FOODS), "drink": rng.choice(DRINKS), "drink2": rng.choice(DRINKS),
        "hobby": rng.choice(HOBBIES), "pet": pet, "petname": petname, "job": rng.choice(JOBS),
        "job2": rng.choice(JOBS), "allergen": rng.choice(ALLERGENS), "book": rng.choice(BOOKS),
        "weekday": rng.choice(WEEKDAYS), "month": rng.choice(MONTHS), "part": rng.choice(PARTS_OF_DAY),
        "day": str(rng.randint(1, 28)), "year": str(rng.randint(2019, 2026)), "hour": str(rng.randint(1, 12)),
        "ampm": rng.choice(["am", "pm"]), "km": str(rng.randint(3, 21)), "years": str(rng.randint(2, 15)),
    }
    return template.format(**values)


def corpus_texts(n: int, seed: int = 0) -> list[tuple[str, list[str], datetime]]:
    """``n`` (text, categories, observed_at) triples; the first k are identical for any n ≥ k."""
    rng = random.Random(seed)
    start = datetime(2022, 1, 1, tzinfo=UTC)
    out: list[tuple[str, list[str], datetime]] = []
    for _ in range(n):
        template, categories = rng.choice(TEMPLATES)
        text = _fill(template, rng)
        observed = start + timedelta(minutes=rng.randint(0, 4 * 365 * 24 * 60))
        out.append((text, list(categories), observed))
    return out


def corpus(n: int, users: int, seed: int = 0) -> list[SyntheticMemory]:
    """``n`` memories spread round-robin over ``users`` users (``bench-user-0000`` …)."""
    width = max(4, len(str(users - 1)))
    return [SyntheticMemory(user_id=f"bench-user-{i % users:0{width}d}", text=text, categories=cats,
                            observed_at=at)
            for i, (text, cats, at) in enumerate(corpus_texts(n, seed))]


def queries(n: int, users: int, seed: int = 1) -> list[tuple[str, str]]:
    """``n`` (user_id, query) pairs: a random user and a question in the corpus's domain."""
    rng = random.Random(seed)
    width = max(4, len(str(users - 1)))
    return [(f"bench-user-{rng.randrange(users):0{width}d}", _fill(rng.choice(QUERY_TEMPLATES), rng))
            for _ in range(n)]
