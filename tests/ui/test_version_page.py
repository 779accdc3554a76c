"""The version page, which is the version's model card: every field shown, its words edited in place."""
import hashlib
import html
import re

from tests.helpers import ADMIN_TOKEN
from tests.ui.conftest import CSRF_FIELD, csrf_of


def page_of(client, number=1) -> str:
    response = client.get(f"/ui/models/housing/versions/{number}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_card_shows_everything_the_registry_knows(client, admin, housing):
    client.patch("/models/housing/versions/1", json={"description": "baseline", "intended_use": "pricing flats",
                                                     "limitations": "not houses", "tags": {"team": "pricing"}},
                 headers=admin)
    client.post("/models/housing/versions/1/evaluations", headers=admin,
                json={"dataset": {"name": "holdout.csv", "sha256": "c" * 64, "rows": 40}, "metrics": {"r2": 0.61}})
    version = client.get("/models/housing/versions/1").get_json()
    page = page_of(client)
    for shown in ("baseline", "pricing flats", "not houses", "team=pricing", version["sha256"], version["estimator"],
                  "holdout.csv", "0.61", "depth", "r2", "production", "Download the file", "Print the card"):
        assert shown in page, shown
    for feature in version["signature"]["features"]:
        assert f"<th scope=\"row\">{feature['name']}</th>" in page
    assert '<strong>promote</strong> production' in page  # its history: the promote that made it production


def test_version_rows_of_the_model_page_link_to_their_cards(client, housing):
    page = client.get("/ui/models/housing").get_data(as_text=True)
    assert 'href="/ui/models/housing/versions/2">v2</a>' in page


def test_a_ci_token_edits_the_card_in_place(client, housing, sign_in, admin):
    token = client.post("/tokens", json={"name": "ci-card", "role": "ci"}, headers=admin).get_json()["token"]
    sign_in(token)
    csrf = csrf_of(client.get("/ui/models/housing/versions/2"))
    response = client.post("/ui/models/housing/versions/2/card", data={
        "csrf_token": csrf, "description": "deeper", "intended_use": "A/B test only", "limitations": "",
        "tags": "team=pricing\nreviewed = yes\n"})
    assert response.status_code == 302
    body = client.get("/models/housing/versions/2").get_json()
    assert (body["description"], body["intended_use"], body["tags"]) == ("deeper", "A/B test only",
                                                                         {"team": "pricing", "reviewed": "yes"})
    entry = client.get("/models/housing/history").get_json()["items"][0]  # the ledger says who changed what
    assert (entry["action"], entry["actor"], entry["to_version"], sorted(entry["details"]["changed"])) == (
        "card_update", "ci-card", 2, ["description", "intended_use", "tags"])
    page = " ".join(client.get("/ui/models/housing/history").get_data(as_text=True).split())
    assert "card update</strong> of v2: description, intended use, tags" in page  # of no alias: no badge, no 500
    assert client.patch("/models/housing", json={"tags": {"team": "pricing"}}, headers=admin).status_code == 200
    page = " ".join(client.get("/ui/models/housing/history").get_data(as_text=True).split())
    assert "model update</strong> — tags" in page


def card_form(page: str) -> dict[str, str]:
    """The card form's fields as the page fills them in (what a browser would post back untouched)."""
    return {name: re.sub(r"^\r?\n", "", html.unescape(text))
            for name, text in re.findall(r'<textarea[^>]* name="([a-z_]+)"[^>]*>(.*?)</textarea>', page, re.DOTALL)}


def test_the_card_form_is_filled_with_what_it_saves_and_saving_only_new_words_keeps_the_tags(client, housing, sign_in, admin):
    client.patch("/models/housing/versions/1", json={"tags": {"team": "pricing", "tier": "gold"}, "description": "old"},
                 headers=admin)
    sign_in(ADMIN_TOKEN)
    page = page_of(client)
    form = card_form(page)
    assert form["tags"] == "team=pricing\ntier=gold"  # never the mapping's repr, {'team': 'pricing'}
    assert form["description"] == "old" and form["intended_use"] == form["limitations"] == ""
    assert card_form(page_of(client, 2))["tags"] == ""  # no tags: an empty box, never {}

    response = client.post("/ui/models/housing/versions/1/card", data={**form, "csrf_token": CSRF_FIELD.search(page).group(1),
                                                                        "limitations": "flats only"})
    assert response.status_code == 302, response.get_data(as_text=True)
    body = client.get("/models/housing/versions/1").get_json()
    assert (body["description"], body["limitations"], body["tags"]) == ("old", "flats only", {"team": "pricing", "tier": "gold"})
    assert card_form(page_of(client))["limitations"] == "flats only"


def test_a_malformed_tag_line_is_shown_and_nothing_changes(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    csrf = csrf_of(client.get("/ui/models/housing/versions/2"))
    response = client.post("/ui/models/housing/versions/2/card", data={"csrf_token": csrf, "description": "x",
                                                                       "tags": "no equals sign"})
    assert response.status_code == 400 and "is not name=value" in response.get_data(as_text=True)
    assert client.get("/models/housing/versions/2").get_json()["description"] == ""


def test_the_card_runs_no_inline_script_which_the_csp_would_block(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    page = page_of(client)
    assert re.findall(r"<[^>]+\son[a-z]+=", page) == []  # script-src 'self': an onclick="…" never runs
    assert '<button type="button" data-print>Print the card</button>' in page
    assert client.get("/ui/static/ui.js").status_code == 200


def test_reading_the_card_needs_no_sign_in_but_editing_and_downloading_do(client, housing):
    page = page_of(client)
    assert "Edit the description" not in page
    assert client.post("/ui/models/housing/versions/1/card", data={}).status_code == 302
    assert client.get("/ui/models/housing/versions/1/artifact").status_code == 302


def test_a_signed_in_ci_token_downloads_the_file(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    response = client.get("/ui/models/housing/versions/1/artifact")
    assert response.status_code == 200 and response.headers["Content-Disposition"].startswith("attachment")
    assert f'"{hashlib.sha256(response.data).hexdigest()}"' == response.headers["ETag"]


def test_an_unknown_version_is_a_404_page(client, housing):
    response = client.get("/ui/models/housing/versions/9")
    assert response.status_code == 404 and "text/html" in response.content_type


def test_the_card_and_the_history_show_the_versions_batch_runs(client, admin, housing):
    run = {"alias": "production", "engine": "dask", "inputs": ["data/*.parquet"], "outputs": ["scores/"],
           "rows": 123456, "status": "failed", "detail": "row 7 of part.0: feature 'rooms' <b>",
           "started_at": "2026-11-25T01:00:00Z", "finished_at": "2099-01-01T00:00:00Z"}
    recorded = client.post("/models/housing/versions/1/batch-runs", json=run, headers=admin)
    assert recorded.status_code == 201, recorded.get_json()
    run_id = recorded.get_json()["id"]

    card = page_of(client)
    section = card[card.index('data-section="batch-runs"'):card.index('data-section="history"')]
    for shown in (f'data-batch-run="{run_id}"', "dask", "123456", "data/*.parquet", "scores/", "production",
                  "failed", "feature &#39;rooms&#39; &lt;b&gt;", "admin"):
        assert shown in section, shown
    assert "No batch run recorded yet." in page_of(client, 2)

    history = client.get("/ui/models/housing/history").get_data(as_text=True)
    assert history.index(f'data-batch-run="{run_id}"') < history.index('class="event promote"')  # newest first
    assert 'href="/ui/models/housing/versions/1#batch-runs">v1</a>' in history
