"""The graph view of the web page end to end in headless Debian Chromium (Playwright driving /usr/bin/chromium):
the user's entities and relations drawn by the vendored Cytoscape.js, a click on an edge on the canvas, closing
and deleting a relation in one click, the history timeline, "as of" a past day, and isolation. Saves a
screenshot (path printed; WEB_SCREENSHOT_DIR copies it)."""

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
MARIA = "acme:maria"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (apt-get install chromium)")


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Running, dict[str, str]]]:
    monkeypatch.setenv("REMEM_GRAPH", "1")
    with running_server(tmp_path / "home") as srv:
        m = srv.memory
        m.add([{"content": "Maria moved from Lisbon to Porto in June", "id": "t2",
                "timestamp": datetime(2024, 6, 9, tzinfo=UTC)}], user_id=MARIA)
        g = m.graph
        person = {"type": "person"}
        ids = {
            "lisbon": g.add({"name": "Maria", **person}, "lives_in", {"name": "Lisbon", "type": "place"}, user_id=MARIA,
                            valid_from=datetime(2015, 1, 1, tzinfo=UTC), source_ids=["t1"]).relation.id,
            "porto": g.add("Maria", "lives_in", {"name": "Porto", "type": "place"}, user_id=MARIA,
                           valid_from=datetime(2024, 6, 1, tzinfo=UTC), source_ids=["t2"]).relation.id,
            "daughter": g.add({"name": "Ines", **person}, "daughter_of", "Maria", user_id=MARIA,
                              source_ids=["t3"]).relation.id,
            "school": g.add("Ines", "studies_at", {"name": "Escola Garrett", "type": "organisation"}, user_id=MARIA,
                            source_ids=["t4"]).relation.id,
            "job": g.add("Maria", "works_at", {"name": "Hospital São João", "type": "organisation"}, user_id=MARIA,
                         source_ids=["t5"]).relation.id,
            "festival": g.add("Maria", "attended", {"name": "São João festival", "type": "event"}, user_id=MARIA,
                              valid_from=datetime(2024, 6, 23, tzinfo=UTC), source_ids=["t6"]).relation.id,
        }
        g.add({"name": "Tomas", **person}, "lives_in", {"name": "Oslo", "type": "place"}, user_id="acme:tomas")
        g.add({"name": "Maria", **person}, "secret_of", {"name": "Zanzibar vault"}, user_id="beta:maria")
        yield srv, ids


def test_graph_view_in_a_real_browser(seeded: tuple[Running, dict[str, str]], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    srv, ids = seeded
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        external: list[str] = []
        page.on("request", lambda req: external.append(req.url) if not req.url.startswith(srv.url) else None)
        page.goto(srv.url + "/ui/")
        page.fill("#api-key", srv.key_a)
        page.click("#connect")
        page.click("#users button[data-user=maria]")
        page.click("#tab-graph")
        expect(page.locator("#graph-canvas canvas").first).to_be_visible()
        rows = page.locator("#relations .card")
        expect(rows).to_have_count(6)
        expect(page.locator("#graph-mode")).to_have_text("7 entities, 6 relations (1 ended)")
        assert page.evaluate("window.remem.cy.nodes().length") == 7
        assert page.evaluate("window.remem.cy.edges('.ended').map(e => e.id())") == [ids["lisbon"]]
        expect(rows.filter(has_text="Maria lives in Lisbon")).to_contain_text("from 2015-01-01 until 2024-06-01")
        expect(page.locator("body")).not_to_contain_text("Oslo")  # another user's graph
        expect(page.locator("body")).not_to_contain_text("Zanzibar")  # another tenant's graph

        # Click the "works at" edge on the canvas: the side panel shows it with its history.
        point = page.evaluate(f"""() => {{
            const pos = window.remem.cy.getElementById({ids['job']!r}).renderedMidpoint();
            const box = document.querySelector('#graph-canvas').getBoundingClientRect();
            return {{x: box.left + pos.x, y: box.top + pos.y}};
        }}""")
        page.mouse.click(point["x"], point["y"])
        panel = page.locator("#history-relation")
        expect(panel.locator("[data-testid=panel-relation]")).to_have_text("Maria works at Hospital São João")
        timeline = page.locator("#timeline li")
        expect(timeline).to_have_count(1)
        expect(timeline.first).to_contain_text("ADD")
        assert page.evaluate("window.remem.cy.$('edge:selected').map(e => e.id())") == [ids["job"]]

        # One click closes it: it stays, dated, drawn dashed; the timeline shows CLOSE.
        panel.locator("[data-action=close]").click()
        expect(timeline).to_have_count(2)
        expect(timeline.first).to_contain_text("CLOSE")
        expect(timeline.first).to_contain_text("closed in the web page")
        job_row = page.locator(f"#relations .card[data-id='{ids['job']}']")
        expect(job_row.locator(".chip")).to_have_text("ended")
        assert sorted(page.evaluate("window.remem.cy.edges('.ended').map(e => e.id())")) == \
            sorted([ids["lisbon"], ids["job"]])

        # One click in the list deletes a wrong relation; it leaves the graph, its history says DELETE.
        page.locator(f"#relations .card[data-id='{ids['school']}'] [data-action=delete]").click()
        expect(rows).to_have_count(5)
        expect(timeline.first).to_contain_text("DELETE")
        assert page.evaluate(f"window.remem.cy.getElementById({ids['school']!r}).length") == 0

        # "as of" a day before the move: Lisbon holds, Porto does not yet.
        page.fill("#graph-asof", "2020-05-01")
        page.click("#graph-btn")
        expect(page.locator("#graph-mode")).to_contain_text("holding on 2020-05-01")
        texts = page.locator("#relations .card [data-testid=relation-text]").all_inner_texts()
        assert "Maria lives in Lisbon" in texts and "Maria lives in Porto" not in texts

        # The neighbourhood of an entity, two hops out.
        page.click("#graph-clear")
        page.fill("#graph-query", "Ines")
        page.select_option("#graph-hops", "2")
        page.click("#graph-btn")
        expect(page.locator("#graph-mode")).to_have_text("Within 2 hops of Ines")
        expect(rows.filter(has_text="Maria lives in Porto")).to_have_count(1)
        page.click("#graph-clear")
        expect(rows).to_have_count(5)
        page.locator(f"#relations .card[data-id='{ids['job']}'] [data-action=history]").click()
        expect(timeline).to_have_count(2)
        page.wait_for_timeout(400)
        shot = tmp_path / "remem-graph.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()

    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
    if os.environ.get(SHOT_ENV):
        shutil.copy(shot, Path(os.environ[SHOT_ENV]) / shot.name)
    assert errors == [] and external == []  # no script error; nothing fetched from outside (vendored library)
    g = srv.memory.graph
    assert [(e.event.value, e.actor.split(":")[0]) for e in g.history(ids["job"], user_id=MARIA)] == [
        ("ADD", "api"), ("CLOSE", "api")]
    assert g.relation(ids["job"], user_id=MARIA).valid_to is not None
    assert [e.event.value for e in g.history(ids["school"], user_id=MARIA)] == ["ADD", "DELETE"]
    assert g.relation(ids["school"], user_id=MARIA).deleted_at is not None
