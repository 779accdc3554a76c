"""V2 model metadata lists every ready version of a model, however many there are."""
from sqlalchemy import insert, select

from registry.db import db, write_transaction
from registry.tables import ModelVersion
from tests.helpers import scaled_sum, upload_ok

MORE_THAN_A_PAGE = 620  # a list page holds at most 500


def test_metadata_lists_every_ready_version_past_one_page(app, client, ci):
    upload_ok(client, ci, "many", scaled_sum(1))
    with app.app_context(), write_transaction():
        first = db.session.execute(select(ModelVersion).where(ModelVersion.number == 1)).scalar_one()
        columns = {c.key: getattr(first, c.key) for c in ModelVersion.__table__.columns if c.key != "id"}
        db.session.execute(insert(ModelVersion), [
            {**columns, "number": number, "sha256": f"{number:064x}"} for number in range(2, MORE_THAN_A_PAGE + 1)
        ])
        db.session.execute(
            ModelVersion.__table__.update().where(ModelVersion.number == 7).values(status="archived")
        )
    assert client.post("/models/many/versions/1/promote", json={}, headers=ci).status_code == 200

    metadata = client.get("/v2/models/many").get_json()

    assert metadata["versions"] == [str(n) for n in range(1, MORE_THAN_A_PAGE + 1) if n != 7]
