"""Reasons are text a person wrote: the rules for every reason the registry keeps (no control character but a
tab or a line break, which would rewrite the lines of a terminal or a log that shows it) and for an action whose
reason is mandatory (break-glass, a rejection: visible characters too), shared by the API's schemas, the dashboard
and the use cases."""
import unicodedata

from registry.errors import InvalidInput

MAX_REASON = 2_000  # characters: a reason is a sentence or a paragraph, not a document
MIN_VISIBLE = 8  # characters that show something: not whitespace, separators, control or format characters
# Unicode general categories that show nothing by themselves: separators (Zs, Zl, Zp), controls (Cc) and
# formats (Cf: the zero-width space and joiners, the byte order mark, bidirectional marks).
INVISIBLE_CATEGORIES = ("Zs", "Zl", "Zp", "Cc", "Cf")


def visible(char: str) -> bool:
    """Whether ``char`` shows something by itself."""
    return unicodedata.category(char) not in INVISIBLE_CATEGORIES


def visible_characters(text: str) -> int:
    """How many characters of ``text`` show something."""
    return sum(1 for char in text if visible(char))


def written_problem(text: str | None) -> str | None:
    """Why ``text`` is not text a person wrote (None: it is), for an optional reason too: a control character
    other than a tab or a line break (an escape sequence, a backspace) is refused, named by its code point."""
    control = next((char for char in text or "" if unicodedata.category(char) == "Cc" and char not in "\t\n\r"), None)
    if control is None:
        return None
    return (f"a reason is plain text: no control characters but tabs and line breaks (U+{ord(control):04X} was "
            f"sent); write it without them")


def reason_problem(text: str | None) -> str | None:
    """Why ``text`` is not a mandatory reason (None: it is one)."""
    shown = visible_characters(text or "")
    if shown >= MIN_VISIBLE:
        return written_problem(text)
    return (f"a reason needs at least {MIN_VISIBLE} visible characters (not spaces, separators, control or "
            f"format characters such as a zero-width space); this one has {shown}: say why in words")


def check_reason(text: str | None, *, action: str) -> str:
    """``text``, if it is a reason a person wrote; else InvalidInput (422) naming ``action`` and the rule."""
    problem = reason_problem(text)
    if problem is not None:
        raise InvalidInput(f"{action} needs a reason: {problem}", errors={"reason": [problem]})
    return text
