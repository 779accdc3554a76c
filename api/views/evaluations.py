"""Evaluations: versions scored on named datasets, listed per version and compared per dataset."""
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import principal, reads, requires
from api.content import accepts
from api.openapi import by_number, errors
from api.schemas.evaluations import DatasetEvaluationArgs, EvaluationOut, EvaluationRequest
from api.schemas.paging import PageArgs, page_of
from api.views.versions import version_number
from registry.evaluations import scores as evaluations

blp = Blueprint("evaluations", __name__, description="Evaluations of versions on named datasets")
EvaluationPage = page_of(EvaluationOut)


@blp.route("/models/<name>/versions/<ref>/evaluations")
class VersionEvaluations(MethodView):
    @reads
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, EvaluationPage)
    def get(self, args, name, ref):
        """A version's evaluations, newest first."""
        return evaluations.version_evaluations(name, ref, page=args["page"], per_page=args["per_page"])

    @requires("ci")
    @errors(410)
    @by_number()
    @accepts("application/json")
    @blp.arguments(EvaluationRequest)
    @blp.response(201, EvaluationOut)
    @blp.alt_response(200, schema=EvaluationOut, description="The same score as the version's newest on that dataset: that one")
    def post(self, body, name, ref):
        """Record a version's score on a dataset (name, sha256, rows); the same score again records nothing."""
        dataset = body["dataset"]
        evaluation, created = evaluations.record_evaluation(
            name,
            version_number(ref, "evaluate"),
            dataset_name=dataset["name"],
            dataset_sha256=dataset["sha256"],
            rows=dataset["rows"],
            metrics=body["metrics"],
            note=body["note"],
            actor=principal().name,
        )
        return evaluation, 201 if created else 200


@blp.route("/models/<name>/evaluations")
@reads
@blp.arguments(DatasetEvaluationArgs, location="query")
@blp.response(200, EvaluationPage)
def dataset_evaluations(args, name):
    """Every version scored on ``?dataset=<sha256>``, with its newest score there; ``?sort=-metrics.r2``."""
    return evaluations.dataset_evaluations(
        name,
        args["dataset"],
        sort=args["sort"],
        include_archived=args["include_archived"],
        page=args["page"],
        per_page=args["per_page"],
    )
