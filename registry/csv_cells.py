"""CSV cells that a spreadsheet opens as data, never as formulas (OWASP, "CSV Injection").

The one rule for every CSV this project writes: the HTTP exports (api/csv_export.py) and batch scoring's
CSV output (trainers/scoring.py). A text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is prefixed with a single quote, so Excel, LibreOffice and Google Sheets show it as text
instead of evaluating it. A text cell that is a plain decimal number (``-1.5``, ``+2e-3``: what a CSV
file read as text holds) is a number to a spreadsheet, not a formula, and stays as it is.
"""
import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def neutral(cell: object) -> object:
    """``cell`` as written to CSV: a number as it is, text prefixed with ``'`` when it could start a formula."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell
