"""The web page end to end in headless Debian Chromium (Playwright driving /usr/bin/chromium): connect with a
key, pick a user, search, filter by category and time, edit, delete, restore, read the history timeline.
Saves a screenshot (its path is printed; set REMEM_WEB_SHOT to also copy it somewhere)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from test_server_support import Running, running_server

CHROMIUM = "/usr/bin/chromium"
SHOT_ENV = "WEB_SCREENSHOT_DIR"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (apt-get install chromium)")


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Running]:
    with running_server(tmp_path / "home") as srv:
        m = srv.memory
        m.add([{"content": "Maria drinks her coffee black", "timestamp": datetime(2024, 3, 2, tzinfo=UTC)}],
              user_id="acme:maria", categories=["food"])
        m.add([{"content": "Maria works as a nurse in Porto", "timestamp": datetime(2024, 6, 9, tzinfo=UTC)}],
              user_id="acme:maria", categories=["work"])
        m.add([{"content": "Maria's daughter is called Ines", "timestamp": datetime(2025, 1, 5, tzinfo=UTC)}],
              user_id="acme:maria", categories=["family"])
        m.add("Tomas prefers aisle seats", user_id="acme:tomas", categories=["travel"])
        m.add("Secret of another tenant", user_id="beta:maria")
        yield srv


def test_inspect_and_correct_memories_in_a_real_browser(seeded: Running, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1360, "height": 820})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(seeded.url + "/")  # redirects to /ui/
        expect(page.locator("#welcome")).to_be_visible()

        page.fill("#api-key", "wrong-key")
        page.click("#connect")
        expect(page.locator("#toast")).to_contain_text("invalid or revoked API key")

        page.fill("#api-key", seeded.key_a)
        page.click("#connect")
        expect(page.locator("#tenant-badge")).to_have_text("tenant: acme")
        expect(page.locator("#users button")).to_have_text(["maria", "tomas"])

        page.click("#users button[data-user=maria]")
        cards = page.locator("#memories .card")
        expect(cards).to_have_count(3)
        expect(page.locator("#count")).to_have_text("3 memories")
        expect(page.locator("body")).not_to_contain_text("Secret of another tenant")

        page.fill("#query", "coffee")
        page.click("#search-btn")
        expect(cards.first.locator(".text")).to_have_text("Maria drinks her coffee black")
        expect(cards.first.locator(".chip.score")).to_be_visible()

        page.click("#clear-btn")
        page.fill("#category", "work")
        page.click("#search-btn")
        expect(cards).to_have_count(1)
        expect(cards.first.locator(".text")).to_have_text("Maria works as a nurse in Porto")

        page.click("#clear-btn")
        page.fill("#since", "2024-05-01")
        page.fill("#until", "2024-12-31")
        page.click("#search-btn")
        expect(cards).to_have_count(1)
        expect(cards.first).to_contain_text("nurse")
        page.click("#clear-btn")
        expect(cards).to_have_count(3)

        # Edit in place: same id, version 2, old text in the history timeline.
        nurse = cards.filter(has_text="nurse")
        nurse_id = nurse.get_attribute("data-id")
        nurse.locator("[data-action=edit]").click()
        page.locator(f".card[data-id='{nurse_id}'] textarea").fill("Maria works as a doctor in Porto")
        page.locator(f".card[data-id='{nurse_id}'] [data-action=save]").click()
        edited = page.locator(f".card[data-id='{nurse_id}']")
        expect(edited.locator(".text")).to_have_text("Maria works as a doctor in Porto")
        expect(edited).to_contain_text("v2")
        edited.locator("[data-action=history]").click()
        timeline = page.locator("#timeline li")
        expect(timeline).to_have_count(2)
        expect(timeline.first).to_contain_text("UPDATE")
        expect(timeline.first.locator(".old")).to_have_text("Maria works as a nurse in Porto")
        expect(timeline.nth(1)).to_contain_text("ADD")

        # Delete, find it in the trash, restore it.
        coffee = cards.filter(has_text="coffee")
        coffee_id = coffee.get_attribute("data-id")
        coffee.locator("[data-action=delete]").click()
        expect(cards).to_have_count(2)
        page.select_option("#state", "deleted")
        expect(cards).to_have_count(1)
        expect(cards.first).to_have_class("card deleted")
        cards.first.locator("[data-action=restore]").click()
        expect(cards).to_have_count(0)
        page.select_option("#state", "live")
        expect(cards).to_have_count(3)

        page.fill("#new-text", "Maria is allergic to penicillin")
        page.fill("#new-cats", "health")
        page.click("#add-btn")
        expect(cards).to_have_count(4)
        expect(cards.first.locator(".text")).to_have_text("Maria is allergic to penicillin")

        page.locator(f".card[data-id='{coffee_id}'] [data-action=history]").click()
        expect(timeline).to_have_count(3)
        expect(timeline.first).to_contain_text("RESTORE")
        page.wait_for_timeout(300)
        shot = tmp_path / "remem-web.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()

    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    if os.environ.get(SHOT_ENV):
        shutil.copy(shot, Path(os.environ[SHOT_ENV]) / shot.name)
    assert errors == []
    # What the browser did is what the store holds.
    m = seeded.memory
    assert m.get(nurse_id, user_id="acme:maria").text == "Maria works as a doctor in Porto"
    assert [e.event.value for e in m.history(coffee_id, user_id="acme:maria")] == ["ADD", "DELETE", "RESTORE"]
    assert m.list(user_id="acme:maria").total == 4
