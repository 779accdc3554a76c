"""The docs test's collector: which fenced blocks run, which are skipped and why, and the script it makes."""
from tests.e2e.doc_blocks import blocks, script, server_settings

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
