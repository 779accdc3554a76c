"""Model versions: upload, list, look at, download and archive."""
import math

from flask import Response, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from api import callers, domain
from api.auth import principal, reads, requires
from api.content import accepts, decode_json
from api.errors import ProblemError, describe_errors
from api.openapi import by_number, errors
from api.schemas.aliases import ReasonArgs
from api.schemas.paging import page_of
from api.schemas.versions import UploadForm, UploadMetadata, VersionListArgs, VersionOut, VersionPatch
from api.settings import settings_of
from registry.aliases import class_names
from registry.aliases.answers import Mover
from registry.artifacts.safe_pickle import artifact_format
from registry.catalog import versions
from registry.errors import listed
from registry.names import parse_ref

blp = Blueprint("versions", __name__, description="Model versions")

_metadata_schema = UploadMetadata()


@blp.before_request
def _allow_large_uploads():
    """Uploads may be far larger than the bodies of every other route."""
    if request.method == "POST":
        request.max_content_length = settings_of().limits.max_upload_bytes
        # Werkzeug holds text parts in memory and refuses one over this (its default is 500 KB).
        request.max_form_memory_size = settings_of().limits.max_metadata_bytes


@blp.route("/models/<name>/versions")
class Versions(MethodView):
    @reads
    @blp.arguments(VersionListArgs, location="query")
    @blp.response(200, page_of(VersionOut))
    def get(self, args, name):
        """List versions, newest first; ``?sort=-metrics.r2``, ``?include_archived=true``."""
        return versions.list_versions(
            name, sort=args["sort"], include_archived=args["include_archived"], page=args["page"], per_page=args["per_page"]
        )

    @requires("ci")
    @errors(409)
    @accepts("multipart/form-data")
    @blp.doc(requestBody={"required": True, "content": {"multipart/form-data": {"schema": UploadForm}}})
    @blp.response(201, VersionOut)
    @blp.alt_response(200, schema=VersionOut, description="These bytes were uploaded before: the existing version")
    def post(self, name):
        """Upload a version (multipart ``artifact`` + optional JSON ``metadata``)."""
        caller_waiting = callers.waiting(request.environ)
        _check_upload_fields()
        artifact = request.files.get("artifact")
        if artifact is None:
            raise ProblemError(
                422, "send the model file in the multipart field 'artifact'", {"artifact": ["missing"]}
            )
        _check_filename(artifact.filename)
        version, created = versions.upload_version(
            domain.store(),
            name,
            artifact=artifact.stream,
            digest=artifact.stream.digest(),
            metadata=_parse_metadata(request.form.get("metadata")),
            actor=principal().name,
            max_rows=settings_of().limits.max_batch_rows,
            max_model_bytes=settings_of().limits.max_model_bytes,
            max_features=settings_of().limits.max_features,
            caller_waiting=caller_waiting,
            explain_bounds=domain.explain_bounds(settings_of()),
        )
        location = url_for("versions.Version", name=name, ref=version.number)
        return version, (201 if created else 200), {"Location": location}


@blp.route("/models/<name>/versions/<ref>")
class Version(MethodView):
    @reads
    @blp.response(200, VersionOut)
    def get(self, name, ref):
        """One version, by number or alias."""
        return versions.get_version(name, ref)

    @requires("ci")
    @errors(409)
    @by_number()
    @accepts("application/json")
    @blp.arguments(VersionPatch)
    @blp.response(200, VersionOut)
    def patch(self, changes, name, ref):
        """Change a version's description, tags or model card, or name a boosted classifier's classes;
        metrics and lineage stay as uploaded."""
        who = principal()
        reason = changes.pop("reason")
        return class_names.edit_version(name, version_number(ref, "change"), changes,
                                        by=Mover(who.name, who.role, who.groups), reason=reason)

    @requires("admin")
    @errors(409)
    @by_number()
    @blp.arguments(ReasonArgs, location="query")
    @blp.response(200, VersionOut)
    def delete(self, args, name, ref):
        """Archive a version (soft delete; ``?reason=`` goes with the webhook event); refused while an alias points at it."""
        return versions.archive_version(
            name, version_number(ref, "archive"), actor=principal().name, reason=args["reason"]
        )


@blp.route("/models/<name>/versions/<ref>/artifact")
@requires("ci")
@blp.response(200, description="The stored artifact; ETag is its sha256")
@blp.alt_response(
    500,
    description="Artifact corrupted: the stored file is missing or no longer matches its sha256, so it is "
    "not served; re-uploading the original file repairs it",
)
def download_artifact(name, ref):
    """Download the stored artifact file."""
    version, data = versions.read_artifact(domain.store(), name, ref)
    return Response(
        data,
        mimetype="application/octet-stream",
        headers={
            "ETag": f'"{version.sha256}"',
            "Content-Disposition": f'attachment; filename="{name}-v{version.number}.{artifact_format(data)}"',
            "X-Model-Version": str(version.number),
        },
    )


def version_number(ref: str, verb: str) -> int:
    """The version number in a path that must name one (writes never go through an alias)."""
    number = parse_ref(ref)
    if not isinstance(number, int):
        raise ProblemError(422, f"{verb} by version number, not by alias")
    return number


def _check_upload_fields() -> None:
    """Refuse parts other than ``artifact`` and ``metadata``, so a typo is not silently ignored."""
    _parse_form()
    parts = {name or "(a part without a name)" for name in (*request.files, *request.form)}
    unknown = sorted(parts - {"artifact", "metadata"})
    if unknown:
        raise ProblemError(
            422,
            f"unknown multipart field(s) {listed(unknown)}: send 'artifact' (the file) and optionally 'metadata'",
            {field: ["unknown field"] for field in unknown},
        )


def _parse_form() -> None:
    """Read the multipart body; a text part over ``MAX_METADATA_KB`` is named as such (413)."""
    try:
        request.form  # parses the multipart body (and caches it for request.files)
    except RequestEntityTooLarge:
        length, limit = request.content_length, request.max_content_length
        if length is None or limit is None or length > limit:
            raise  # the upload as a whole is over MAX_UPLOAD_MB
        kb = settings_of().limits.max_metadata_bytes / 1024
        raise ProblemError(
            413, f"metadata is over the metadata limit of {kb:g} KB (MAX_METADATA_KB); send less metadata"
        ) from None


def _check_filename(filename: str | None) -> None:
    """The name is never used for storage, but a path-like one signals a confused client."""
    if filename and (any(c in filename for c in "/\\\x00") or filename in (".", "..")):
        raise ProblemError(422, f"artifact filename {filename!r} looks like a path; send a plain file name")


def _parse_metadata(raw: str | None) -> dict:
    """The ``metadata`` form field as a checked dict (empty when absent)."""
    if raw is None or not raw.strip():
        return _metadata_schema.load({})
    data = decode_json(raw, "metadata", malformed=422, parse_constant=_refuse_constant, parse_float=_finite_float)
    if not isinstance(data, dict):
        raise ProblemError(422, "metadata must be a JSON object")
    try:
        return _metadata_schema.load(data)
    except ValidationError as exc:
        raise ProblemError(422, "metadata is invalid: " + describe_errors(exc.messages), {"metadata": exc.messages}) from None


def _finite_float(text: str) -> float:
    """A JSON number that fits a float (1e400 would become infinity)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number; send finite numbers")
    return value


def _refuse_constant(name: str):
    """NaN and Infinity are not JSON; Python would accept them and the databases would choke."""
    raise ValueError(f"{name} is not a JSON value; send finite numbers (or null in params/lineage)")
