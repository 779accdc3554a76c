"""The docs test's collector: which fenced blocks run, which are skipped and why, and the script it makes."""
import os
import subprocess
import sys

from tests.e2e.doc_blocks import blocks, output_file, script, server_settings, unmarked_shown_blocks

DOCUMENT = """# A doc

```sh
echo first
```

<!-- doc-test: skip, starts the server -->
```sh
make run
```

```json
{"not": "run"}
```

<!-- doc-test: errors expected -->
```bash
curl -s http://127.0.0.1:8000/models/nope
```

```python
print("from python")
```
"""


def test_runnable_languages_are_collected_in_order_with_their_markers(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(DOCUMENT)
    found = blocks(path)
    assert [(b.language, b.line) for b in found] == [("sh", 3), ("sh", 8), ("bash", 17), ("python", 21)]
    assert found[1].skip == "starts the server" and found[0].skip is None
    assert found[2].errors_expected and not found[0].errors_expected


def test_the_script_skips_what_is_marked_and_points_the_blocks_at_the_registry(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(DOCUMENT)
    text = script(path, "http://127.0.0.1:4321", "/venv/python")
    assert "make run" not in text and "echo first" in text
    assert "http://127.0.0.1:4321/models/nope" in text and "8000" not in text
    assert "export DOC_ERRORS_EXPECTED=1" in text and "/venv/python - <<'DOC_PYTHON_BLOCK'" in text
    assert text.index("echo first") < text.index("models/nope") < text.index("from python")


def test_server_settings_come_from_the_documents_markers(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(DOCUMENT + "\n<!-- doc-test: server WEBHOOK_ALLOW_PRIVATE=1 MONITOR_SECONDS=0 -->\n")
    assert server_settings(path) == {"WEBHOOK_ALLOW_PRIVATE": "1", "MONITOR_SECONDS": "0"}
    assert [b.line for b in blocks(path)] == [3, 8, 17, 21]  # the marker is no block's


SHOWN = """# Outputs

```sh
curl -s http://127.0.0.1:8000/models
```

```json
{"items": [], "…": "…"}
```

```sh
echo not compared
```

This block shows an example, not what the one above prints:

```json
{"example": true}
```

```sh
echo compared across prose
```

The command says:

<!-- doc-test: output -->
```text
compared across prose
```
"""


def test_a_block_right_after_a_run_block_or_marked_as_its_output_is_what_it_shows(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(SHOWN)
    found = blocks(path)
    assert [(b.line, b.shown, b.shown_language, b.shown_line) for b in found] == [
        (3, '{"items": [], "…": "…"}\n', "json", 7),
        (11, None, "", None),
        (21, "compared across prose\n", "text", 28),
    ]


def test_the_script_keeps_what_a_block_with_a_shown_output_prints_and_still_shows_it(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(SHOWN)
    text = script(path, "http://127.0.0.1:4321", "/venv/python")
    assert '{\ncurl -s http://127.0.0.1:4321/models\n} > "$DOC_OUTPUTS"/block-3.out\ncat "$DOC_OUTPUTS"/block-3.out' in text
    assert "echo not compared" in text and "block-11" not in text


def test_a_captured_block_runs_in_the_scripts_own_shell_so_what_it_sets_stays_set(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text("```sh\nTOKEN=abc\necho made $TOKEN\n```\n\n```text\nmade …\n```\n\n```sh\necho still $TOKEN\n```\n")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    ran = subprocess.run(["bash", "-c", script(path, "http://127.0.0.1:4321", sys.executable)], capture_output=True,
                         text=True, env={**os.environ, "DOC_OUTPUTS": str(outputs)})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "made abc\nstill abc\n"
    assert (outputs / output_file(blocks(path)[0])).read_text() == "made abc\n"


def test_a_shown_block_after_prose_must_say_whether_it_is_compared(tmp_path):
    document = tmp_path / "doc.md"
    document.write_text("```sh\ncurl x\n```\n\n```json\n{\"a\": 1}\n```\n\nThe answer:\n\n```json\n{\"a\": 1}\n```\n\n"
                        "<!-- doc-test: illustration -->\n```text\na layout\n```\n\n"
                        "<!-- doc-test: output -->\n```json\n{\"a\": 1}\n```\n")

    assert unmarked_shown_blocks(document) == [11]  # the one after "The answer:"
