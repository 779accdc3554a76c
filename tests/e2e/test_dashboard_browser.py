"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against real gunicorn.

Screenshots of every page at 1280x800 go to ``build/screenshots/`` (``SCREENSHOT_DIR`` overrides).
"""
import hashlib
import re
import time

import numpy as np
import pytest
import requests
from playwright.sync_api import Page, expect
from sklearn.linear_model import LinearRegression

from bench.harness.models import PROBE_ROW, scaled_sum, upload
from bench.harness.traffic import move
from tests.databases import BACKEND
from tests.e2e.browsers import DESKTOP, PHONE, browser, shot  # noqa: F401  (browser: a fixture)

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason=("the pages in a browser are what it tests; tests/ui renders each page on both backends: the "
            "SQLite pass runs it"),
)

MODEL = "ui-demo"


@pytest.fixture
def page(browser, live_registry):
    """A fresh browser context (no cookies) at 1280x800, with the live service as base URL."""
    context = browser.new_context(viewport=DESKTOP, base_url=live_registry.url)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def demo_model(live_registry):
    """Two versions with metrics; production serves v1."""
    for factor, r2 in ((1.0, 0.41), (2.0, 0.57)):
        response = upload(live_registry, MODEL, scaled_sum(factor), metadata={"metrics": {"r2": r2}, "params": {"factor": factor}})
        assert response.status_code == 201, response.text
    move(live_registry, "promote", MODEL, 1)
    return MODEL


def sign_in(page: Page, token: str) -> None:
    page.goto("/ui/")
    page.get_by_role("link", name="Sign in").click()
    shot(page, "sign-in")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".who")).to_contain_text("Signed in as")


def predicted_version(live, deadline_seconds: float) -> int:
    """The version the alias route answers with once every worker has followed (or the last seen)."""
    deadline, version = time.monotonic() + deadline_seconds, None
    while time.monotonic() < deadline:
        answers = {requests.post(f"{live.url}/models/{MODEL}/production/predict", json={"instances": [PROBE_ROW]},
                                 timeout=10).json()["version"] for _ in range(live.workers * 3)}
        if len(answers) == 1 and (version := answers.pop()) == 2:
            return version
    return version


def test_an_admin_signs_in_compares_promotes_and_sees_the_alias_move(page, live_registry, demo_model):
    sign_in(page, live_registry.admin_token)
    shot(page, "models")
    expect(page.locator(f'tr[data-model="{MODEL}"]')).to_contain_text("production → v1")

    page.get_by_role("link", name=MODEL, exact=True).click()
    expect(page.locator('tr[data-version="2"]')).to_contain_text("0.57")
    shot(page, "model")

    page.get_by_label("Compare version 1").check()
    page.get_by_label("Compare version 2").check()
    page.get_by_role("button", name="Compare selected versions").click()
    expect(page.get_by_role("heading", name="Compare v2, v1")).to_be_visible()
    expect(page.get_by_role("img", name="r2 by version")).to_be_visible()
    shot(page, "compare")

    page.goto(f"/ui/models/{MODEL}")
    page.locator('tr[data-version="2"]').get_by_role("link", name="Promote…").click()
    page.get_by_label("Reason", exact=True).fill("higher r2 on the shared hold-out")
    shot(page, "confirm-promote")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Promoted 'production' from version 1 to 2.")).to_be_visible()
    expect(page.locator(".aliases")).to_contain_text("production → v2")

    page.get_by_role("link", name="History").click()
    first = page.locator(".timeline li").first
    expect(first).to_contain_text("promote")
    expect(first).to_contain_text("higher r2 on the shared hold-out")
    shot(page, "history")

    page.goto(f"/ui/models/{MODEL}/aliases/production")
    expect(page.locator("[data-serving]")).to_have_attribute("data-serving", "2")
    shot(page, "alias")
    assert predicted_version(live_registry, live_registry.refresh_seconds + 2) == 2

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


def assert_no_overlap(elements) -> None:
    """No two of ``elements`` (a table's caption and cells) share any area on the page."""
    boxes = [element.bounding_box() for element in elements]
    assert len(boxes) > 2 and all(boxes)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = (a["x"] + a["width"] <= b["x"] + 0.5 or b["x"] + b["width"] <= a["x"] + 0.5
                     or a["y"] + a["height"] <= b["y"] + 0.5 or b["y"] + b["height"] <= a["y"] + 0.5)
            assert apart, (a, b)


def test_an_admin_starts_and_aborts_a_canary(page, live_registry, demo_model):
    sign_in(page, live_registry.admin_token)
    page.goto(f"/ui/models/{MODEL}/aliases/production")
    page.get_by_role("link", name="Start a canary or shadow…").click()
    serving = int(page.get_by_role("heading", level=1).inner_text().split("serving version ")[1].rstrip(")"))
    canary = 2 if serving == 1 else 1
    page.get_by_label("Canary version").select_option(str(canary))
    page.get_by_label("Canary share of traffic (%)").fill("10")
    page.get_by_label("Sticky header (keeps each caller on one version)").fill("X-User-Id")
    page.get_by_label("Reason", exact=True).fill("a tenth of the traffic first")
    shot(page, "confirm-rollout")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator('[data-role="canary"]')).to_contain_text(f"v{canary}")
    shot(page, "alias-rollout")
    assert_no_overlap(page.locator("table caption, table thead th, table tbody tr > *").all())
    page.goto("/ui/")
    expect(page.locator(f'tr[data-model="{MODEL}"] [data-rollout]')).to_contain_text(f"canary v{canary} 10%")

    page.goto(f"/ui/models/{MODEL}/aliases/production")
    page.get_by_role("link", name="Abort…").click()
    page.get_by_label("Reason", exact=True).fill("seen enough")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("[data-rollout-state]")).to_have_attribute("data-rollout-state", "none")
    page.goto(f"/ui/models/{MODEL}/history")
    expect(page.locator(".timeline li").first).to_contain_text("rollout abort")


def test_a_refused_action_shows_the_servers_detail(page, live_registry, demo_model):
    sign_in(page, live_registry.admin_token)
    page.goto(f"/ui/models/{MODEL}/versions/2/archive")
    page.get_by_label("Reason", exact=True).fill("clean up")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator(".problem")).to_contain_text("is the target of alias(es) production")
    shot(page, "refused")


def test_every_control_is_labelled_and_reachable_by_keyboard(page, live_registry, demo_model):
    page.goto(f"/ui/models/{MODEL}")
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
        .map(el => el.outerHTML)""")
    assert unlabelled == []
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('aria-label')") == "Compare version 1":
            break
    else:
        pytest.fail("the compare checkbox of version 1 was not reached with the Tab key")


def test_pages_fit_a_phone_screen_without_sideways_scrolling(browser, live_registry, demo_model):
    context = browser.new_context(viewport=PHONE, base_url=live_registry.url)
    phone = context.new_page()
    for path in ("/ui/", f"/ui/models/{MODEL}", f"/ui/models/{MODEL}/history", f"/ui/models/{MODEL}/versions/1"):
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        for link in phone.locator(".top nav a").all():  # each on one line: a wrapped link is two lines tall
            box = link.bounding_box()
            assert box["height"] < 2 * float(link.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)")), link.inner_text()
    shot(phone, "phone-model-history")
    context.close()


def test_a_versions_card_shows_every_field_and_is_edited_in_place(page, live_registry, demo_model):
    sign_in(page, live_registry.admin_token)
    page.goto(f"/ui/models/{MODEL}")
    page.get_by_role("link", name="v2", exact=True).click()
    expect(page.get_by_role("heading", name=f"{MODEL} v2")).to_be_visible()
    page.get_by_text("Edit the description, intended use, limitations and tags").click()
    page.get_by_label("Description").fill("twice the slope")
    page.get_by_label("Intended use").fill("Comparing against v1 in a canary.")
    page.get_by_label("Limitations").fill("Trained on synthetic rows.")
    page.get_by_label("Tags, one name=value per line").fill("team=demo")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Saved the card of version 2")
    version = requests.get(f"{live_registry.url}/models/{MODEL}/versions/2", timeout=10).json()
    for field in ("description", "intended_use", "limitations", "sha256"):
        expect(page.locator(f'[data-field="{field}"]')).to_contain_text(version[field])
    expect(page.locator('[data-field="tags"]')).to_contain_text("team=demo")
    for section in ("words", "file", "signature", "training", "evaluations", "history"):
        expect(page.locator(f'[data-section="{section}"]')).to_be_visible()
    expect(page.locator("table.signature tbody tr")).to_have_count(len(version["signature"]["features"]))
    shot(page, "version-card", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the file").click()
    assert download.value.suggested_filename == f"{MODEL}-v2.joblib"


def test_the_operations_page_shows_the_workers_model_memory(page, live_registry, demo_model):
    answered = requests.post(f"{live_registry.url}/models/{MODEL}/2/predict", json={"instances": [PROBE_ROW]}, timeout=30)
    assert answered.status_code == 200
    page.goto("/ui/")
    page.get_by_role("link", name="Operations").click()
    expect(page.get_by_role("heading", name="Models in memory")).to_be_visible()
    memory = page.locator("table.memory")

    def asked_by_version() -> float:
        return sum(float(memory.get_by_role("row", name=name).locator("td.num").inner_text())
                   for name in ("Requests by version found it loaded", "Requests by version had to load it"))

    # The request by version above, hit or miss, in whichever worker took it: each worker shares its
    # counts about once a second, so the page shows it within a few reloads.
    deadline = time.monotonic() + 10
    while asked_by_version() < 1 and time.monotonic() < deadline:
        page.reload()
    assert asked_by_version() >= 1
    expect(memory.get_by_role("row", name="Served forms on this machine")).to_contain_text("mapped by every worker")
    shot(page, "operations")


def test_a_versions_monitoring_page_charts_its_live_quality_and_drift(page, live_registry, demo_model):
    headers = live_registry.headers
    url = f"{live_registry.url}/models/{MODEL}"
    assert requests.patch(url, json={"prediction_log": {"sample": 1}}, headers=headers, timeout=30).status_code == 200
    rng = np.random.default_rng(4)
    reference = {"source": "training", "instances": rng.normal(size=(1000, 3)).tolist()}
    assert requests.put(f"{url}/versions/1/reference", json=reference, headers=headers, timeout=30).status_code == 200
    answers = {}

    def logged() -> set[str]:
        items = requests.get(f"{url}/predictions?version=1&limit=1000", headers=headers, timeout=30).json()["items"]
        return {item["request_id"] for item in items} & set(answers)

    # Each worker reads the model's share again within a few seconds: send until 30 requests were logged.
    deadline = time.monotonic() + 60
    while len(logged()) < 30 and time.monotonic() < deadline:
        rows = rng.normal(size=(10, 3))
        rows[:, 1] += 1.5  # x1 moved since training
        request_id = f"browser-{len(answers)}"
        answered = requests.post(f"{url}/1/predict", json={"instances": rows.tolist()},
                                 headers={"X-Request-ID": request_id}, timeout=30)
        answers[request_id] = answered.json()["predictions"]
    items = [{"request_id": rid, "label": [p + rng.normal(0, 0.3) for p in answers[rid]]} for rid in sorted(logged())]
    assert len(items) >= 30
    assert requests.post(f"{url}/feedback", json={"items": items}, headers=headers, timeout=30).json()["applied"] == len(items)

    sign_in(page, live_registry.admin_token)
    page.goto(f"/ui/models/{MODEL}")
    page.locator('tr[data-version="1"]').get_by_role("link", name="Monitoring").click()
    page.get_by_role("link", name="1h").click()
    expect(page.get_by_role("heading", name="Live quality", exact=True)).to_be_visible()
    expect(page.locator('[data-figure="labelled"]')).to_have_text(str(len(items)))
    expect(page.locator('figure[data-column="x1"]')).to_contain_text("drifted")
    expect(page.locator('figure[data-column="x0"]')).not_to_contain_text("drifted")
    expect(page.locator("table.logged tbody tr")).to_have_count(20)
    assert_no_overlap(page.locator("figure.chart").all())
    times = page.get_by_role("img", name="mae over time").locator("text.time").all_text_contents()
    assert len(times) == 4 and all(re.fullmatch(r"\d\d:\d\d", text) for text in times), times  # the MAE chart's times
    shot(page, "version-monitoring", full_page=True)


def test_a_versions_importance_stands_beside_its_canarys_during_a_rollout(page, live_registry):
    """Version 1 answers with x0 alone, its canary with x2 alone: the page shows each arm's importance side by
    side and an attribution drift past its threshold (ATTRIBUTION_MIN_ROWS, 100, explained rows per arm)."""
    name, headers = "ui-explain", live_registry.headers
    url = f"{live_registry.url}/models/{name}"
    rng = np.random.default_rng(8)
    X = rng.normal(size=(200, 3))
    for column in (0, 2):
        model = LinearRegression().fit(X, 3 * X[:, column] + 0.5 * X[:, 1])
        assert upload(live_registry, name, model).status_code == 201
    move(live_registry, "promote", name, 1)
    settings = {"prediction_log": {"sample": 1, "explain": 1}}
    assert requests.patch(url, json=settings, headers=headers, timeout=30).status_code == 200
    rollout = {"canary": {"version": 2, "percent": 50}, "reason": "x2 instead of x0"}
    assert requests.put(f"{url}/aliases/production/rollout", json=rollout, headers=headers, timeout=30).status_code == 200

    def arms() -> list:
        found = requests.get(f"{url}/versions/1/importance?window=1h", headers=headers, timeout=30).json()
        return found["rollouts"]

    # Each worker reads the model's settings again within a few seconds: send until both arms have their rows.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (not arms() or arms()[0]["distance"] is None):
        for _ in range(10):
            rows = rng.normal(size=(10, 3)).tolist()
            assert requests.post(f"{url}/production/predict", json={"instances": rows}, timeout=30).status_code == 200
        time.sleep(0.5)
    (drift,) = arms()
    assert drift["drifted"], drift

    sign_in(page, live_registry.admin_token)
    page.goto(f"/ui/models/{name}/versions/1/monitoring?window=1h")
    section = page.locator('[data-section="importance"]')
    expect(section.get_by_role("heading", name="Global importance")).to_be_visible()
    expect(section.locator('[data-rollout="production"]')).to_contain_text("canary v2 beside primary v1")
    expect(section.locator('[data-figure="attribution-distance"]')).to_contain_text("0.")
    expect(section).to_contain_text("past 0.2")
    expect(section.locator("table.importance").first.locator("tbody tr").first).to_have_attribute("data-column", "x0")
    assert_no_overlap(section.locator("table.importance").last.locator("th, td").all())
    section.scroll_into_view_if_needed()
    shot(page, "version-importance")
    page.set_viewport_size(PHONE)
    section.scroll_into_view_if_needed()
    shot(page, "version-importance-phone")
    assert requests.delete(f"{url}/aliases/production/rollout", headers=headers, timeout=30).status_code == 200


def test_a_rollout_on_autopilot_shows_its_plan_and_gates(page, live_registry, demo_model):
    url = f"{live_registry.url}/models/{MODEL}/aliases/production/rollout"
    current = requests.get(f"{live_registry.url}/models/{MODEL}/aliases", timeout=30).json()["production"]
    plan = {"steps": [{"percent": 10, "min_requests": 200}, {"percent": 40, "min_requests": 400}]}
    started = requests.put(url, json={"canary": {"version": 3 - current}, "plan": plan, "reason": "autopilot"},
                           headers=live_registry.headers, timeout=30)
    assert started.status_code == 200, started.text
    try:
        page.goto(f"/ui/models/{MODEL}/aliases/production")
        plan_box = page.locator("[data-plan-state]")
        expect(plan_box).to_contain_text("step 1 of 2")
        expect(plan_box.locator("tr[data-gate]")).to_have_count(3)
        assert_no_overlap(plan_box.locator("tr").all())
        shot(page, "rollout-plan", full_page=True)
    finally:
        requests.delete(url, json={"reason": "screenshot taken"}, headers=live_registry.headers, timeout=30)


def test_the_api_docs_render_openapi_3_1_and_a_call_authorized_through_them_succeeds(page, live_registry, demo_model):
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto("/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
    assert "Unable to render this definition" not in page.content()
    assert page.locator(".opblock").count() > 30  # every operation of the API

    page.locator("button.authorize").first.click()
    page.locator(".auth-container input").first.fill(live_registry.admin_token)
    page.locator(".auth-btn-wrapper button.authorize").first.click()
    page.locator(".auth-btn-wrapper button.btn-done").first.click()

    operation = page.locator(".opblock-get", has=page.locator('[data-path="/tokens"]')).first
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    expect(operation.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200", timeout=30_000)
    operation.locator(".live-responses-table").scroll_into_view_if_needed()
    shot(page, "api-docs")
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_the_card_form_round_trips_each_field_on_its_own(page, live_registry, demo_model):
    url = f"{live_registry.url}/models/{MODEL}/versions/1"
    assert requests.patch(url, json={"tags": {"team": "pricing"}}, headers=live_registry.headers, timeout=30).status_code == 200
    sign_in(page, live_registry.admin_token)
    edits = [("Description", "description", "the first slope"), ("Intended use", "intended_use", "A baseline for canaries."),
             ("Limitations", "limitations", "Synthetic rows only."), ("Tags, one name=value per line", "tags", "team=pricing\nreviewed=yes")]
    expected = requests.get(url, timeout=30).json()
    for label, name, text in edits:
        page.goto(f"/ui/models/{MODEL}/versions/1")
        page.get_by_text("Edit the description, intended use, limitations and tags").click()
        tags = "\n".join(f"{key}={value}" for key, value in expected["tags"].items())
        expect(page.get_by_label("Tags, one name=value per line")).to_have_value(tags)  # never {'team': 'pricing'}
        page.get_by_label(label).fill(text)  # this field alone: the others are posted back as the page filled them
        if name == "tags":
            shot(page, "card-form-filled")
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".flash")).to_contain_text("Saved the card of version 1")
        expected = {**expected, name: dict(line.split("=") for line in text.splitlines()) if name == "tags" else text}
        saved = requests.get(url, timeout=30).json()
        assert {key: saved[key] for key in ("description", "intended_use", "limitations", "tags")} == \
            {key: expected[key] for key in ("description", "intended_use", "limitations", "tags")}
    page.get_by_text("Edit the description, intended use, limitations and tags").click()
    for label, name, text in edits:
        expect(page.get_by_label(label)).to_have_value(text)
    expect(page.locator('[data-field="tags"]')).to_contain_text("reviewed=yes")
    shot(page, "card-saved", full_page=True)


def test_print_the_card_opens_the_print_dialog_under_the_apps_csp(page, live_registry, demo_model):
    blocked = []
    page.on("console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None)
    # The print dialog, counted on the page's root element (a string evaluated in the page is refused by the CSP).
    page.add_init_script("window.print = () => { const root = document.documentElement; "
                         "root.dataset.printed = Number(root.dataset.printed || 0) + 1; };")
    page.goto(f"/ui/models/{MODEL}/versions/1")
    page.get_by_role("button", name="Print the card").click()
    expect(page.locator("html")).to_have_attribute("data-printed", "1")
    assert blocked == []
    page.emulate_media(media="print")
    expect(page.get_by_role("button", name="Print the card")).to_be_hidden()  # the card prints without its controls
    shot(page, "card-print", full_page=True)


LINEAGE_MODEL = "ui-lineage"


@pytest.fixture(scope="module")
def lineage_model(live_registry):
    """Three versions whose lineage is long unbroken values (sha256 digests, a commit), and no params."""
    for number in range(3):
        lineage = {"dataset_sha256": hashlib.sha256(bytes([number])).hexdigest(),
                   "git_commit": hashlib.sha1(bytes([number])).hexdigest()}
        response = upload(live_registry, LINEAGE_MODEL, scaled_sum(1.0 + number),
                          metadata={"metrics": {"r2": 0.4 + number / 10}, "lineage": lineage})
        assert response.status_code == 201, response.text
    return LINEAGE_MODEL


def table_fit(page: Page) -> list[dict]:
    """Each table of the page: how far it runs past its box to the side, and its tallest body row."""
    return page.evaluate("""() => [...document.querySelectorAll('table')].map(table => {
        const box = table.closest('.table-wrap') || table.parentElement;
        return {table: table.className || table.querySelector('caption')?.textContent.trim().slice(0, 40) || '?',
                hidden_px: box.scrollWidth - box.clientWidth,
                tallest_row_px: Math.max(0, ...[...table.tBodies].flatMap(b => [...b.rows]).map(r => r.getBoundingClientRect().height))};
    })""")


def test_compare_keeps_every_version_in_view_and_says_what_was_not_recorded(page, live_registry, lineage_model):
    page.goto(f"/ui/models/{LINEAGE_MODEL}/compare?v=1&v=2&v=3")
    lineage = page.locator("table.diff").last
    expect(lineage).to_contain_text(hashlib.sha256(bytes([2])).hexdigest())
    assert [fit["hidden_px"] for fit in table_fit(page)] == [0, 0]  # metrics, lineage: v3 not scrolled off
    assert lineage.locator("thead th").last.bounding_box()["x"] + 20 < DESKTOP["width"]
    expect(page.get_by_text("None of these versions recorded params.")).to_be_visible()
    chart = page.get_by_role("img", name="r2 by version")
    assert chart.locator("text.label").all_text_contents() == ["v1", "v2", "v3"]  # the tables' order
    shot(page, "compare-lineage", full_page=True)


def test_the_model_page_offers_no_archive_on_a_running_canary(page, live_registry, demo_model):
    url = f"{live_registry.url}/models/{MODEL}/aliases/production/rollout"
    current = requests.get(f"{live_registry.url}/models/{MODEL}/aliases", timeout=30).json()["production"]
    started = requests.put(url, json={"canary": {"version": 3 - current, "percent": 10}, "reason": "archive check"},
                           headers=live_registry.headers, timeout=30)
    assert started.status_code == 200, started.text
    try:
        sign_in(page, live_registry.admin_token)
        page.goto(f"/ui/models/{MODEL}")
        canary_row = page.locator(f'tr[data-version="{3 - current}"]')
        expect(canary_row.get_by_role("link", name="Promote…")).to_be_visible()
        expect(canary_row.get_by_role("link", name="Archive…")).to_have_count(0)
        shot(page, "model-with-canary")
    finally:
        requests.delete(url, json={"reason": "checked"}, headers=live_registry.headers, timeout=30)


PHONE_PAGES = {
    "models": "/ui/", "model": f"/ui/models/{MODEL}", "card": f"/ui/models/{MODEL}/versions/1",
    "card-lineage": f"/ui/models/{LINEAGE_MODEL}/versions/3",
    "compare": f"/ui/models/{MODEL}/compare?v=2&v=1", "compare-lineage": f"/ui/models/{LINEAGE_MODEL}/compare?v=1&v=2&v=3",
    "monitoring": f"/ui/models/{MODEL}/versions/1/monitoring?window=1h", "history": f"/ui/models/{MODEL}/history",
    "alias": f"/ui/models/{MODEL}/aliases/production", "operations": "/ui/operations",
}
TALLEST_ROW_PX = 90  # three lines of text: a row taller than that was wrapping what a phone can show on one


def test_on_a_phone_every_table_shows_its_columns_that_matter_in_short_rows(browser, live_registry, demo_model, lineage_model):
    """At 390 px, as a phone lays pages out (its viewport tag honoured): nothing runs off to the side,
    not even inside a table's own scroll box, and no row wraps into a tall column of fragments."""
    url = f"{live_registry.url}/models/{MODEL}/aliases/production/rollout"
    current = requests.get(f"{live_registry.url}/models/{MODEL}/aliases", timeout=30).json()["production"]
    plan = {"steps": [{"percent": 10, "min_requests": 200}, {"percent": 40, "min_requests": 400}]}  # its gates too
    assert requests.put(url, json={"canary": {"version": 3 - current}, "plan": plan, "sticky_header": "X-User-Id",
                                   "reason": "phone"}, headers=live_registry.headers, timeout=30).status_code == 200
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, base_url=live_registry.url)
    phone = context.new_page()
    try:
        sign_in(phone, live_registry.admin_token)  # the monitoring page shows the logged requests to a signed-in token
        misfits, heights = {}, {}
        for name, path in PHONE_PAGES.items():
            phone.goto(path)
            assert phone.evaluate("window.innerWidth") == PHONE["width"]
            assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
            misfits[name] = [fit for fit in table_fit(phone) if fit["hidden_px"] > 1 or fit["tallest_row_px"] > TALLEST_ROW_PX]
            heights[name] = phone.evaluate("document.documentElement.scrollHeight")
            shot(phone, f"phone-{name}", full_page=True)
        assert misfits == {name: [] for name in PHONE_PAGES}
        assert heights["monitoring"] < 2_600, heights  # 20 logged requests, 4 drift charts, the quality chart
    finally:
        context.close()
        requests.delete(url, json={"reason": "measured"}, headers=live_registry.headers, timeout=30)


def test_the_api_docs_fit_a_phone(browser, live_registry):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, base_url=live_registry.url)
    phone = context.new_page()
    phone.goto("/docs")
    expect(phone.locator(".opblock").first).to_be_visible(timeout=30_000)
    assert phone.evaluate("window.innerWidth") == PHONE["width"]  # without a viewport tag a phone lays out 980 px
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert "``" not in phone.locator(".opblock-summary-description").first.inner_text()
    shot(phone, "phone-api-docs")
    context.close()


def test_a_monitoring_page_with_a_reference_never_asks_for_one(page, live_registry, lineage_model):
    reference = {"source": "training", "instances": np.random.default_rng(5).normal(size=(200, 3)).tolist()}
    assert requests.put(f"{live_registry.url}/models/{LINEAGE_MODEL}/versions/1/reference", json=reference,
                        headers=live_registry.headers, timeout=30).status_code == 200
    page.goto(f"/ui/models/{LINEAGE_MODEL}/versions/1/monitoring")
    detail = page.locator("[data-drift-detail]")
    expect(detail).to_contain_text("the window holds 0 answered rows")
    expect(detail).not_to_contain_text("reference")
    shot(page, "monitoring-with-reference")


def test_a_monitoring_page_says_a_reference_is_too_small_and_what_to_send(page, live_registry, lineage_model):
    """Issue 47, item 4: three evaluation rows are no reference to judge drift against."""
    reference = {"source": "evaluation", "instances": np.random.default_rng(6).normal(size=(3, 3)).tolist()}
    assert requests.put(f"{live_registry.url}/models/{LINEAGE_MODEL}/versions/2/reference", json=reference,
                        headers=live_registry.headers, timeout=30).status_code == 200
    page.goto(f"/ui/models/{LINEAGE_MODEL}/versions/2/monitoring")
    detail = page.locator("[data-drift-detail]")
    expect(detail).to_contain_text("has 3 rows, too few to judge drift against")
    expect(detail).to_contain_text("DRIFT_MIN_REFERENCE_ROWS is 100")
    expect(detail).to_contain_text(f"/models/{LINEAGE_MODEL}/versions/2/reference")
    expect(page.get_by_text("drifted", exact=True)).to_have_count(0)  # no column judged against three rows
    shot(page, "monitoring-small-reference")


def test_a_protected_alias_shows_its_policy_a_requests_evidence_and_a_broken_glass(browser, page, live_registry,
                                                                                    demo_model):
    alias = f"{live_registry.url}/models/{MODEL}/aliases/staging"
    headers = live_registry.headers
    staged = requests.post(f"{live_registry.url}/models/{MODEL}/versions/1/promote", json={"alias": "staging"},
                           headers=headers, timeout=30)
    assert staged.status_code == 200, staged.text
    policy = {"approvals": 2, "require": {"card": ["intended_use"]}}
    assert requests.put(f"{alias}/policy", json=policy, headers=headers, timeout=30).status_code == 200
    try:
        opened = requests.post(f"{alias}/requests", json={"version": 2, "reason": "better r2"}, headers=headers,
                               timeout=30)
        assert opened.status_code == 201, opened.text
        page.goto(f"/ui/models/{MODEL}/aliases/staging")
        expect(page.locator("#policy")).to_contain_text("2 from distinct people")
        row = page.locator(f'tr[data-request="{opened.json()["id"]}"]')
        expect(row.locator('[data-missing="approvals"]')).to_contain_text("0 of 2 approvals")
        expect(row.locator('[data-evidence="card"]')).to_contain_text("intended use")
        shot(page, "protected-alias", full_page=True)

        moved = requests.post(f"{alias}/break-glass", json={"version": 2, "reason": "hotfix for the outage"},
                              headers=headers, timeout=30)
        assert moved.status_code == 200, moved.text
        page.goto(f"/ui/models/{MODEL}")
        expect(page.get_by_role("alert")).to_contain_text("hotfix for the outage")
        shot(page, "broken-glass")
        phone = browser.new_context(viewport=PHONE, base_url=live_registry.url).new_page()
        phone.goto(f"/ui/models/{MODEL}/aliases/staging")
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        phone.context.close()
    finally:
        requests.delete(f"{alias}/policy", headers=headers, timeout=30)
        requests.delete(alias, headers=headers, timeout=30)


def test_an_admin_protects_an_alias_a_request_is_opened_and_a_second_person_approves_it(page, live_registry):
    """The policy form, a request for approval, and its approval by another person move the alias (issue 44)."""
    model = "gov-demo"
    for factor in (1.0, 2.0):
        assert upload(live_registry, model, scaled_sum(factor), metadata={"metrics": {"r2": factor / 4}}).status_code == 201
    move(live_registry, "promote", model, 1)
    created = requests.post(f"{live_registry.url}/tokens", json={"name": "reviewer", "role": "ci"},
                            headers=live_registry.headers, timeout=10)
    assert created.status_code == 201, created.text
    alias_page = f"/ui/models/{model}/aliases/production"

    sign_in(page, live_registry.admin_token)
    page.goto(alias_page)
    page.get_by_role("link", name="Protect it with a policy…").click()
    page.get_by_label("Approvals needed, from distinct people (0: none)").fill("1")
    page.get_by_label("intended use").check()
    page.get_by_label("Freeze windows", exact=False).fill("2099-12-24T00:00:00Z 2099-12-27T00:00:00Z holidays")
    page.get_by_label("Reason", exact=True).fill("a second pair of eyes on production")
    shot(page, "policy-edit", full_page=True)
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator(".flash.ok")).to_contain_text("The policy of 'production' is set.")
    expect(page.locator('#policy [data-approvals="1"]')).to_be_visible()
    expect(page.locator("#live")).to_contain_text("policy set")

    page.get_by_role("link", name="Promote another version…").click()  # a promote meets the policy: 409
    page.get_by_label("Version").select_option("2")
    page.get_by_label("Reason", exact=True).fill("v2 has the better r2")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator('[data-missing="approvals"]')).to_be_visible()
    shot(page, "promote-needs-approval")
    page.get_by_role("link", name="Request approval…").click()  # which offers to ask, the version chosen
    expect(page.get_by_label("Version")).to_have_value("2")
    page.get_by_label("Reason", exact=True).fill("v2 has the better r2")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator(".flash.ok")).to_contain_text("needs 1 approval from other people")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)  # the requester (and uploader) may not
    expect(page.locator("[data-no-approve]")).to_contain_text("yours: others approve it")
    page.get_by_role("button", name="Sign out").click()

    card = requests.patch(f"{live_registry.url}/models/{model}/versions/2", json={"intended_use": "house prices"},
                          headers=live_registry.headers, timeout=10)
    assert card.status_code == 200, card.text
    sign_in(page, created.json()["token"])
    page.goto(alias_page)
    expect(page.locator('#policy tr[data-request] [data-missing="approvals"]')).to_be_visible()
    expect(page.locator('#policy tr[data-request] [data-evidence="card"]')).to_contain_text("house prices")
    shot(page, "request-approve", full_page=True)
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "request-approve-phone", full_page=True)
    page.set_viewport_size(DESKTOP)

    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".flash.ok")).to_contain_text("moved to version 2")
    expect(page.locator("[data-serving]")).to_have_attribute("data-serving", "2")
    assert requests.get(f"{live_registry.url}/models/{model}/aliases", timeout=10).json() == {"production": 2}


NARROW_PHONE = {"width": 375, "height": 812}  # the narrowest phone the dashboard promises (issue 68, item 6)
WIDE_MODEL = "ui-wide"


@pytest.fixture(scope="module")
def wide_model(live_registry):
    """Three versions with six metrics each, scored on one dataset with a long note: more columns than a
    phone has room for."""
    metrics = ("r2", "rmse", "mae", "mape", "explained_variance", "max_error")
    for number in range(1, 4):
        response = upload(live_registry, WIDE_MODEL, scaled_sum(float(number)),
                          metadata={"metrics": {m: 0.1 * number + i for i, m in enumerate(metrics)}})
        assert response.status_code == 201, response.text
        scored = requests.post(
            f"{live_registry.url}/models/{WIDE_MODEL}/versions/{number}/evaluations", headers=live_registry.headers,
            json={"dataset": {"name": "holdout-of-the-quarter.csv", "sha256": "ab" * 32, "rows": 1200},
                  "metrics": {m: 0.2 * number + i for i, m in enumerate(metrics)},
                  "note": "nightly comparison on the quarter's hold-out, champion against challenger"}, timeout=30)
        assert scored.status_code == 201, scored.text
    move(live_registry, "promote", WIDE_MODEL, 1)
    return WIDE_MODEL


def test_the_model_page_fits_a_375_px_phone_with_six_metrics_and_its_actions_in_view(browser, live_registry, wide_model):
    context = browser.new_context(viewport=NARROW_PHONE, is_mobile=True, has_touch=True, base_url=live_registry.url)
    phone = context.new_page()
    try:
        sign_in(phone, live_registry.admin_token)
        phone.goto(f"/ui/models/{WIDE_MODEL}")
        assert phone.evaluate("window.innerWidth") == NARROW_PHONE["width"]
        assert phone.evaluate("document.documentElement.scrollWidth") <= NARROW_PHONE["width"]
        assert [fit for fit in table_fit(phone) if fit["hidden_px"] > 0 or fit["tallest_row_px"] > 110] == []
        for link in phone.locator("td.row-actions a").all():  # every row's Monitoring, Promote…, Archive… on screen
            box = link.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= NARROW_PHONE["width"], box
        expect(phone.locator('tr[data-version="3"] td[data-label="max_error"]')).to_be_visible()
        expect(phone.locator('tr[data-evaluated="3"] td.note')).to_be_visible()
        phone.get_by_role("link", name="rmse", exact=True).first.click()  # the headers still sort
        expect(phone).to_have_url(re.compile(r"sort=-metrics\.rmse"))
        shot(phone, "phone-375-model", full_page=True)
    finally:
        context.close()


def test_no_page_asks_for_what_the_server_does_not_have(page, live_registry, demo_model):
    """Issue 68: a favicon 404 on every page; now each page names the registry's icon."""
    missing = []
    page.on("response", lambda answer: missing.append(answer.url) if answer.status >= 400 else None)
    for path in ("/ui/", f"/ui/models/{MODEL}", f"/ui/models/{MODEL}/history", "/docs"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    assert missing == []  # /docs names no icon: the browser asks /favicon.ico, which leads to the registry's
    page.goto("/ui/")
    icon = requests.get(f"{live_registry.url}{page.locator('link[rel=icon]').get_attribute('href')}", timeout=10)
    assert icon.status_code == 200 and icon.headers["Content-Type"].startswith("image/svg+xml")
    assert requests.get(f"{live_registry.url}/favicon.ico", timeout=10).url.endswith("/favicon.svg")


def test_governance_shows_waiting_requests_and_offers_each_role_only_what_can_succeed(browser, page, live_registry):
    """Issue 68, item 5: the model page says a request waits; a reader, the requester and a frozen alias are
    offered no action that the server would refuse; an admin breaks the glass from the dashboard, with a reason."""
    model, url, headers = "gov-feasible", live_registry.url, live_registry.headers
    for factor in (1.0, 2.0, 3.0):
        assert upload(live_registry, model, scaled_sum(factor), metadata={"metrics": {"r2": factor / 4}}).status_code == 201
    move(live_registry, "promote", model, 1)
    tokens = {}
    for name, role in (("gov-reviewer", "ci"), ("gov-reader", "reader")):
        created = requests.post(f"{url}/tokens", json={"name": name, "role": role}, headers=headers, timeout=10)
        assert created.status_code == 201, created.text
        tokens[role] = created.json()["token"]
    alias = f"{url}/models/{model}/aliases/production"
    assert requests.put(f"{alias}/policy", json={"approvals": 1, "reason": "four eyes"}, headers=headers,
                        timeout=10).status_code == 200
    opened = requests.post(f"{alias}/requests", json={"version": 2, "reason": "v2 is better"}, headers=headers, timeout=10)
    assert opened.status_code == 201, opened.text
    request_id = opened.json()["id"]

    page.goto(f"/ui/models/{model}")  # anyone: the model page says the alias is protected and a request waits
    expect(page.locator('[data-waiting="production"]')).to_have_text("1 approval request waiting")
    shot(page, "governance-model-waiting")
    page.locator('[data-waiting="production"]').click()
    expect(page).to_have_url(re.compile(rf"/ui/models/{model}/aliases/production#policy$"))
    expect(page.locator(f'tr[data-request="{request_id}"]')).to_be_visible()

    sign_in(page, tokens["reader"])  # a reader: may read the request, may act on nothing
    page.goto(f"/ui/models/{model}/aliases/production")
    expect(page.locator(f'tr[data-request="{request_id}"]')).to_be_visible()
    for control in ("Approve", "Request approval…", "Break the glass…", "Reject…", "Edit policy…",
                    "Promote another version…", "Roll back…", "Start a canary or shadow…"):
        expect(page.get_by_role("button", name=control)).to_have_count(0)
        expect(page.get_by_role("link", name=control)).to_have_count(0)
    shot(page, "governance-reader", full_page=True)
    page.goto(f"/ui/models/{model}")
    expect(page.get_by_role("link", name="Promote…")).to_have_count(0)
    expect(page.get_by_role("link", name="Archive…")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_registry.admin_token)  # the requester (and uploader): no Approve on their own request
    page.goto(f"/ui/models/{model}/aliases/production")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.locator(f'[data-no-approve="{request_id}"]')).to_contain_text("yours")
    expect(page.get_by_role("link", name="Withdraw…")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, tokens["ci"])  # another person: may approve
    page.goto(f"/ui/models/{model}/aliases/production")
    expect(page.locator(f'[data-approve="{request_id}"]')).to_be_visible()
    shot(page, "governance-reviewer", full_page=True)
    page.set_viewport_size(NARROW_PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW_PHONE["width"]
    shot(page, "phone-375-governance-reviewer", full_page=True)
    page.set_viewport_size(DESKTOP)

    freeze = {"approvals": 1, "freeze": [{"from": "2000-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z",
                                          "reason": "year-end"}], "reason": "freeze"}
    assert requests.put(f"{alias}/policy", json=freeze, headers=headers, timeout=10).status_code == 200
    page.goto(f"/ui/models/{model}/aliases/production")  # frozen: its last approval would be refused
    expect(page.locator("[data-frozen]")).to_contain_text("Frozen until 2099-01-01 00:00 UTC")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("link", name="Request approval…")).to_have_count(0)
    page.goto(f"/ui/models/{model}/versions/3/promote?alias=production")  # a ci promote in the freeze: refused,
    page.get_by_label("Reason", exact=True).fill("v3 now")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator('[data-missing="freeze"]')).to_be_visible()
    expect(page.locator("[data-ask-approval]")).to_have_count(0)  # with no approval to ask for in vain
    expect(page.locator("[data-break-glass]")).to_have_count(0)  # and no glass for a ci token to break
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_registry.admin_token)
    page.goto(f"/ui/models/{model}")
    expect(page.locator('[data-protected="production"]')).to_contain_text("frozen")
    page.goto(f"/ui/models/{model}/versions/3/promote?alias=production")
    page.get_by_label("Reason", exact=True).fill("v3 now")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("[data-ask-approval]")).to_have_count(0)
    shot(page, "governance-refused-in-freeze")
    page.locator("[data-break-glass]").click()  # an admin is offered the glass, the version chosen
    expect(page.locator("[data-glass-warning]")).to_be_visible()
    expect(page.get_by_label("Version")).to_have_value("3")
    page.get_by_role("button", name="Confirm").click()  # no reason: refused, nothing moved
    expect(page.locator(".error")).to_contain_text("say why")
    assert requests.get(f"{url}/models/{model}/aliases", timeout=10).json() == {"production": 1}
    page.get_by_label("Reason", exact=False).fill("outage: v1 answers 500s")
    shot(page, "governance-break-glass", full_page=True)
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator(".flash.ok")).to_contain_text("Broke the glass: 'production' moved to version 3")
    assert requests.get(f"{url}/models/{model}/aliases", timeout=10).json() == {"production": 3}
    page.goto(f"/ui/models/{model}")
    expect(page.locator('[data-broken-glass="production"]')).to_contain_text("outage: v1 answers 500s")
    shot(page, "governance-model-broken-glass")
    page.set_viewport_size(NARROW_PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW_PHONE["width"]
    shot(page, "phone-375-governance-model", full_page=True)
