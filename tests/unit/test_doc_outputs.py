"""The docs test's comparison of a shown output with what its block printed, placeholders and all."""
import json

import pytest

from tests.e2e.doc_outputs import mismatches

FEEDBACK_SHOWN = """{"applied": 1, "replaced": 0,
 "errors": [{"index": 1, "request_id": "order-0000", "status": 404, "detail": "no prediction …"}]}"""


def printed_feedback(applied: int) -> str:
    return json.dumps({"applied": applied, "replaced": 0, "errors": [
        {"index": 1, "request_id": "order-0000", "status": 404, "detail": "no prediction of this model was logged"}]})


def test_a_walkthrough_that_prints_applied_0_where_the_doc_shows_1_fails():
    assert mismatches(FEEDBACK_SHOWN, printed_feedback(1), "json") == []
    assert mismatches(FEEDBACK_SHOWN, printed_feedback(0), "json") == ["$.applied: shown 1, printed 0"]


@pytest.mark.parametrize("shown, printed", [
    ('{"id": "<request id>", "at": "…"}', '{"id": "5b0c-77", "at": "2026-11-25T06:00:00Z"}'),
    ('{"id": "<id>"}', '{"id": 17}'),  # a named placeholder stands for any value
    ('{"latency_ms": …, "note": "a \\"…\\" here"}', '{"latency_ms": 16.9, "note": "a \\"quoted\\" here"}'),
    ('{"sha256": "3f2a…"}', '{"sha256": "3f2a9d00"}'),
    ('{"model": "m", "…": "…"}', '{"model": "m", "version": 2}'),
    ('{"items": [1, 2, "…"]}', '{"items": [1, 2, 3, 4]}'),
    ('{"p": 180.61, "q": 2.1e-09, "r": 0.50}', '{"p": 180.6142, "q": 2.0512e-09, "r": 0.4951}'),
    ('{"n": 3}', '{"n": 3.0}'),
    ('{"a": 1}\n{"b": 2}', '{"a": 1}{"b": 2}'),  # two commands, two answers
])
def test_placeholders_and_rounding_let_what_varies_vary(shown, printed):
    assert mismatches(shown, printed, "json") == []


@pytest.mark.parametrize("shown, printed, problem", [
    ('{"model": "m"}', '{"model": "m", "version": 2}', '$.version: printed, not shown'),
    ('{"model": "m", "version": 2}', '{"model": "m"}', '$.version: shown, not printed'),
    ('{"sha256": "3f2a…"}', '{"sha256": "9d00"}', '$.sha256: shown "3f2a…", printed "9d00"'),
    ('{"items": [1, 2]}', '{"items": [1, 2, 3]}', '$.items: shown 2 item(s), printed 3'),
    ('{"p": 180.61}', '{"p": 180.7}', '$.p: shown 180.61, printed 180.7'),
    ('{"n": 3}', '{"n": 3.4}', '$.n: shown 3, printed 3.4'),
    ('{"ok": true}', '{"ok": 1}', '$.ok: shown true, printed 1'),
    ('{"n": 1}', '{"n": true}', '$.n: shown 1, printed true'),
])
def test_what_differs_is_named_by_its_path(shown, printed, problem):
    assert problem in mismatches(shown, printed, "json")[0]


def test_a_command_that_prints_no_json_or_a_shown_block_that_is_none_fails():
    assert "printed no JSON" in mismatches('{"a": 1}', "curl: (7) Failed to connect\n", "json")[0]
    assert "shown block is not JSON" in mismatches('"drift": {"psi": 0.4}', '{"psi": 0.4}', "json")[0]


def test_text_is_compared_line_by_line_with_ellipses_inside_lines_and_for_whole_lines():
    shown = "promoted diabetes v2 to production: r2 0.… vs champion v1 0.…\n…\nexit code 0\n"
    assert mismatches(shown, "promoted diabetes v2 to production: r2 0.3322 vs champion v1 0.2982\nexit code 0\n", "text") == []
    assert mismatches(shown, "promoted diabetes v2 to production: r2 0.33 vs champion v1 0.29\nmore\nlines\nexit code 0\n\n", "") == []
    wrong = mismatches(shown, "kept diabetes v1 on production: r2 0.2 vs champion v1 0.3\nexit code 3\n", "text")
    assert wrong and "-exit code 0" in wrong[0] and "+exit code 3" in wrong[0]
