"""CSV exports that a spreadsheet opens as data, never as formulas (OWASP, "CSV Injection").

Every text cell goes through :func:`registry.csv_cells.neutral` (the rule batch scoring's CSV output
follows too) and is quoted (embedded quotes doubled). Numbers the server itself wrote (a version, a
status, a latency, a label that is a number) stay unquoted numbers: ``-1.5`` is a number, not a formula.
"""
import csv
import io
import json
from collections.abc import Iterable, Sequence

from registry.csv_cells import neutral


def csv_table(columns: Sequence[str], items: Iterable[dict], *, json_columns: Sequence[str] = ()) -> str:
    """A header row and one row per item; ``json_columns`` hold JSON text (a number among them stays a number)."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(columns)
    for item in items:
        writer.writerow([neutral(_json_cell(item[column]) if column in json_columns else item[column])
                         for column in columns])
    return out.getvalue()


def _json_cell(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return json.dumps(value)
