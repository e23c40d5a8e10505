"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright): the leaderboard's rows
in order, sorting by a click, charts drawn, live updates without a reload, names rendered as text. Screenshots
land in test-artifacts/screenshots/ (or $TUNELAB_TEST_ARTIFACTS)."""

from __future__ import annotations

import pytest

from tests.dashboards.conftest import (
    ARTIFACTS,
    NOT_PLOTLY_SVG,
    XSS,
    LiveServer,
    add_trial,
    fill,
)


@pytest.fixture
def site(store, browser):
    fill(store)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with LiveServer(store) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        dialogs: list[str] = []
        errors: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield server, page, store, dialogs, errors
        page.close()


def _trial_order(page) -> list[str]:
    return page.locator("#board tbody tr").evaluate_all("rows => rows.map(r => r.dataset.trial)")


def test_leaderboard_rows_in_order_sorting_and_names_as_text(site):
    server, page, store, dialogs, errors = site
    page.goto(server.url + "/")
    page.wait_for_selector("#board tbody tr")
    assert _trial_order(page) == ["sw-00001", "tr-t0", "sw-00005", "sw-00000", "sw-00002", "sw-00003", "sw-00004"]
    first = page.locator("#board tbody tr").first.locator("td")
    assert first.nth(0).inner_text() == "1" and first.nth(1).inner_text() == XSS  # the name, as text
    assert first.nth(7).inner_text() == "95.00" and first.nth(8).inner_text() == "96.00"
    page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)

    page.click("th >> text=model")  # sort by model name, ascending
    page.wait_for_url("**sort=model**")
    assert _trial_order(page)[:3] == ["sw-00001", "sw-00005", "sw-00003"]  # cnn first
    page.select_option("select[name=family]", "resnet_cifar")  # filters submit on change
    page.wait_for_url("**family=resnet_cifar**")
    assert _trial_order(page) == ["sw-00000", "sw-00002", "sw-00004"]
    assert dialogs == [] and errors == []  # no script ran from the store's strings


def test_sweep_page_draws_its_charts(site):
    server, page, store, dialogs, errors = site
    page.goto(server.url + "/runs/sw")
    for chart in ("best", "curves", "parallel", "params"):
        page.wait_for_selector(f"#chart-{chart}[data-drawn]", timeout=30_000)
    # learning curves: one SVG path per trial; parallel coordinates: a WebGL canvas with pixels on it
    assert page.locator("#chart-curves .scatterlayer .trace").count() == 6
    assert page.locator("#chart-parallel .parcoords .axis-title").count() == 4
    assert page.locator("#chart-parallel canvas").count() >= 1
    drawn = page.locator("#chart-best .scatterlayer path.js-line").first.get_attribute("d")
    assert drawn and len(drawn) > 20
    assert page.locator("h1 .name").inner_text() == XSS
    page.screenshot(path=str(ARTIFACTS / "sweep.png"), full_page=True)
    assert dialogs == [] and errors == []


def test_pages_update_live_without_a_reload(site):
    server, page, store, dialogs, errors = site
    page.goto(server.url + "/runs/sw")
    page.wait_for_selector("#live-status.on", timeout=15_000)  # the event stream is connected
    page.evaluate("window.__sameDocument = true")
    add_trial(store, "sw", "sw-00006", model="cnn", family="cnn", params={"lr": 0.004, "augment": "none", "batch_size": 64},
              accs=(0.70, 0.99))
    page.wait_for_selector('#trials tr[data-trial="sw-00006"]', timeout=15_000)
    assert page.locator("#trials tbody tr").first.get_attribute("data-trial") == "sw-00006"  # best now
    page.wait_for_function("document.querySelectorAll('#chart-curves .scatterlayer .trace').length === 7",
                           timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True  # updated in place, not reloaded

    page.goto(server.url + "/leaderboard?dataset=mnist")
    page.wait_for_selector("#live-status.on", timeout=15_000)
    add_trial(store, "sw", "sw-00007", params={"lr": 0.005}, accs=(0.995,))
    page.wait_for_function("document.querySelector('#board tbody tr').dataset.trial === 'sw-00007'", timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "leaderboard-live.png"), full_page=True)
    assert dialogs == [] and errors == []


def test_trial_page_shows_curves_config_and_checkpoint(site):
    server, page, store, dialogs, errors = site
    store.set_checkpoint("tr-t0", "/ckpt/tr/checkpoint_000001")
    page.goto(server.url + "/trials/tr-t0")
    page.wait_for_selector("#chart-accuracy[data-drawn]", timeout=30_000)
    assert page.locator("#chart-accuracy .scatterlayer .trace").count() == 2  # val curve + test marker
    assert "/ckpt/tr/checkpoint_000001" in page.locator("#summary").inner_text()
    assert page.locator("#epochs tbody tr").count() == 2
    page.screenshot(path=str(ARTIFACTS / "trial.png"), full_page=True)
    assert dialogs == [] and errors == []


def test_odd_names_and_ids_stay_text_and_their_links_work(site):
    """Names that break out of an attribute, a javascript: value, ids with / ? # % & and quotes: shown as text,
    every link same-origin, and the links (ids sent as one encoded path segment) lead to the right pages."""
    server, page, store, dialogs, errors = site
    run_id, name = 'a/b?c=1&d#e%41 "x\'', '"><img src=x onerror=alert(1)>'
    tid, augment = f"{run_id}-00000", "'><svg onload=alert(1)>"
    store.start_run(run_id, kind="sweep", name=name, dataset="mnist", labels="fine", config={})
    add_trial(store, run_id, tid, model="javascript:alert(1)", augment=augment,
              params={"lr": 0.5, "note": "javascript:alert(1)"}, accs=(0.5, 0.999))
    store.finish_run(run_id, "completed")
    page.goto(server.url + "/leaderboard?dataset=mnist")
    row = page.locator("#board tbody tr").first
    assert row.get_attribute("data-trial") == tid
    cells = row.locator("td")
    assert [cells.nth(i).inner_text() for i in (1, 3, 5)] == [name, "javascript:alert(1)", augment]
    # nothing the names could have made: no images, no handlers, no SVG but plotly's own (charts, text measuring)
    assert page.locator(f"img, {NOT_PLOTLY_SVG}, [onerror], [onload]").count() == 0

    def links() -> list[str]:
        return page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")

    assert all(h.startswith(server.url + "/") for h in links()), links()  # no javascript: anywhere
    page.select_option("select[name=augment]", augment)  # a filter value with quotes and brackets round-trips
    page.wait_for_url("**augment=**")
    assert page.locator("#board tbody tr").evaluate_all("rows => rows.map(r => r.dataset.trial)") == [tid]

    cells.nth(1).locator("a").click()
    page.wait_for_selector("#chart-curves[data-drawn]", timeout=30_000)  # charts fetched by the encoded id
    assert page.locator("h1 .name").inner_text() == name
    assert page.locator("#summary code").first.inner_text() == run_id
    assert all(h.startswith(server.url + "/") for h in links()), links()
    page.locator(f'#trials tr[data-trial="{tid.replace(chr(34), chr(92) + chr(34))}"] a').click()
    page.wait_for_selector("#chart-loss[data-drawn]", timeout=30_000)
    assert page.locator("#summary code").first.inner_text() == tid
    assert '"note": "javascript:alert(1)"' in page.locator("details pre").text_content()  # collapsed: not rendered
    page.screenshot(path=str(ARTIFACTS / "odd-names.png"), full_page=True)
    assert dialogs == [] and errors == []
