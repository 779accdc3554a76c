"""Batch runs: scoring jobs run outside the server, recorded against the version that scored them."""
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import principal, reads, requires
from api.content import accepts
from api.openapi import by_number, errors
from api.schemas.batch_runs import BatchRunOut, BatchRunRequest
from api.schemas.paging import PageArgs, page_of
from api.views.versions import version_number
from registry.batch import runs

blp = Blueprint("batch_runs", __name__, description="Batch scoring jobs recorded against versions")
BatchRunPage = page_of(BatchRunOut)


@blp.route("/models/<name>/versions/<ref>/batch-runs")
class VersionBatchRuns(MethodView):
    @reads
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, BatchRunPage)
    def get(self, args, name, ref):
        """A version's batch runs, newest first."""
        return runs.version_batch_runs(name, ref, page=args["page"], per_page=args["per_page"])

    @requires("ci")
    @by_number()
    @errors(410)
    @accepts("application/json")
    @blp.arguments(BatchRunRequest)
    @blp.response(201, BatchRunOut)
    def post(self, body, name, ref):
        """Record a finished batch run of a version: engine, inputs, outputs, rows, times and status."""
        return runs.record_batch_run(name, version_number(ref, "record a batch run"), actor=principal().name, **body)
