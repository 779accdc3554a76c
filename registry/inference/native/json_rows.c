/* A JSON predict body's rows of plain numbers, read into a matrix of doubles without Python.

   Called through ctypes.CDLL, so the worker's GIL is let go while it runs: a 2,000-row body parsed by orjson and
   then checked and copied into an array held the GIL for milliseconds, while the worker's other requests waited
   for it. Only the plainest body is read here, a top-level object whose "instances" member is an array of rows,
   each an array of `width` JSON numbers; for anything else each function says so (returns 0 or -1) and the
   caller parses the body as before, which also words every refusal. So nothing here needs to be complete, only
   exact where it answers: the numbers are those that orjson and NumPy make of the same text (strtod rounds
   correctly, as they do; an integer -0 is +0.0, as a JSON integer is; a number out of a double's range, or
   under its normal range, is left to the caller). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LONGEST_NUMBER 64 /* longer numbers (digits past a double's precision) are left to the caller */

static const char *spaces(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static int digit(const char *p, const char *end) { return p < end && *p >= '0' && *p <= '9'; }

/* The end of the JSON number at p, or NULL; *integer: whether it has neither fraction nor exponent. */
static const char *number_end(const char *p, const char *end, int *integer) {
    *integer = 1;
    if (p < end && *p == '-') p++;
    if (!digit(p, end)) return NULL;
    if (*p == '0') {
        p++;
    } else {
        while (digit(p, end)) p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (!digit(p, end)) return NULL;
        while (digit(p, end)) p++;
        *integer = 0;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (!digit(p, end)) return NULL;
        while (digit(p, end)) p++;
        *integer = 0;
    }
    return p;
}

/* The number at p read into *value; the text after it, or NULL where it is not one read here. */
static const char *number(const char *p, const char *end, double *value) {
    int integer;
    const char *after = number_end(p, end, &integer);
    if (after == NULL || after - p >= LONGEST_NUMBER) return NULL;
    char text[LONGEST_NUMBER];
    memcpy(text, p, (size_t)(after - p));
    text[after - p] = '\0';
    char *read_to;
    errno = 0;
    double found = strtod(text, &read_to);
    if (read_to != text + (after - p) || errno == ERANGE) return NULL;
    *value = (integer && found == 0.0) ? 0.0 : found;
    return after;
}

/* The end of the string whose opening quote is at p (past its closing quote), or NULL; *escaped: whether it
   holds a backslash. */
static const char *string_end(const char *p, const char *end, int *escaped) {
    *escaped = 0;
    for (p++; p < end; p++) {
        if (*p == '\\') {
            *escaped = 1;
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* The end of the JSON value at p, skipped without being checked (the caller's parser checks it), or NULL. */
static const char *skipped(const char *p, const char *end) {
    int escaped;
    if (p >= end) return NULL;
    if (*p == '"') return string_end(p, end, &escaped);
    if (*p != '[' && *p != '{') {
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' &&
               *p != '\r')
            p++;
        return p;
    }
    int64_t depth = 0;
    for (; p < end; p++) {
        if (*p == '"') {
            p = string_end(p, end, &escaped);
            if (p == NULL) return NULL;
            p--;
        } else if (*p == '[' || *p == '{') {
            depth++;
        } else if (*p == ']' || *p == '}') {
            if (--depth == 0) return p + 1;
        }
    }
    return NULL;
}

/* Where the value of the top-level member "instances" of the JSON object text[0:size) starts and ends:
   1 and span[0], span[1] (offsets) when the object has exactly one member so named and no member whose name
   holds an escape (which could name it too); 0 otherwise. */
int64_t json_rows_span(const char *text, size_t size, size_t *span) {
    const char *p = spaces(text, text + size), *end = text + size;
    int found = 0, escaped;
    if (p >= end || *p != '{') return 0;
    p = spaces(p + 1, end);
    if (p < end && *p == '}') return 0;
    for (;;) {
        if (p >= end || *p != '"') return 0;
        const char *name = p + 1, *after = string_end(p, end, &escaped);
        if (after == NULL || escaped) return 0;
        int instances = (after - name - 1 == 9 && memcmp(name, "instances", 9) == 0);
        p = spaces(after, end);
        if (p >= end || *p != ':') return 0;
        p = spaces(p + 1, end);
        const char *value = p;
        p = skipped(p, end);
        if (p == NULL) return 0;
        if (instances) {
            if (found++) return 0;
            span[0] = (size_t)(value - text);
            span[1] = (size_t)(p - text);
        }
        p = spaces(p, end);
        if (p < end && *p == ',') {
            p = spaces(p + 1, end);
            continue;
        }
        if (p < end && *p == '}' && spaces(p + 1, end) == end) return found;
        return 0;
    }
}

/* The rows of the JSON array text[0:size), each an array of as many numbers as the first, into out (at most
   max_cells doubles, row by row): how many rows, from 1 to max_rows, and *width; -1 for anything else (no rows,
   more than max_rows or max_cells, an empty row, rows of different lengths, a value that is not a number read
   here, text that is not such an array). */
int64_t json_rows_read(const char *text, size_t size, size_t max_rows, size_t max_cells, double *out,
                       size_t *width) {
    const char *p = spaces(text, text + size), *end = text + size;
    size_t rows = 0, cells = 0, wide = 0;
    if (p >= end || *p != '[') return -1;
    p = spaces(p + 1, end);
    for (;;) {
        if (p >= end || *p != '[' || rows == max_rows) return -1;
        p = spaces(p + 1, end);
        size_t column = 0;
        for (;;) {
            if (cells == max_cells) return -1;
            p = number(p, end, out + cells);
            if (p == NULL) return -1;
            cells++;
            column++;
            p = spaces(p, end);
            if (p < end && *p == ',') {
                p = spaces(p + 1, end);
            } else if (p < end && *p == ']') {
                p = spaces(p + 1, end);
                break;
            } else {
                return -1;
            }
        }
        if (rows++ == 0) {
            wide = column;
        } else if (column != wide) {
            return -1;
        }
        if (p < end && *p == ',') {
            p = spaces(p + 1, end);
            continue;
        }
        if (p < end && *p == ']' && spaces(p + 1, end) == end) {
            *width = wide;
            return (int64_t)rows;
        }
        return -1;
    }
}
