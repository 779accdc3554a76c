"""Tracing is off unless the standard variables name an exporter or an OTLP endpoint, and then only exporters and
a protocol this service ships are accepted."""
from dataclasses import replace

import pytest

from api.traces import refusal
from config import load, traces_exporters

TRACING = load({}).tracing


@pytest.mark.parametrize("environ, exporters", [
    ({}, ()),
    ({"OTEL_SERVICE_NAME": "scoring", "OTEL_TRACES_SAMPLER": "always_on"}, ()),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp",)),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ("otlp",)),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),
    ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ("otlp", "console")),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ()),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ()),
])
def test_tracing_is_on_only_where_an_exporter_or_an_endpoint_is_named(environ, exporters):
    assert traces_exporters(environ) == exporters


@pytest.mark.parametrize("exporters, protocol, named", [
    (("zipkin",), "http/protobuf", "zipkin is not available here"),
    (("otlp",), "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
])
def test_a_setting_this_service_cannot_send_to_is_refused_naming_it(exporters, protocol, named):
    assert named in refusal(replace(TRACING, exporters=exporters, otlp_protocol=protocol))


def test_otlp_over_http_and_the_console_are_accepted():
    assert refusal(replace(TRACING, exporters=("otlp", "console"))) is None
