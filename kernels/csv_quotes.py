"""Where a CSV file ends inside a quoted value, by the reader's own rules."""

from __future__ import annotations

from numba import njit

_FIELD_START, _UNQUOTED, _QUOTED, _QUOTE_IN_QUOTED = 0, 1, 2, 3


@njit(nogil=True, cache=True)
def open_quote_at_end(data, delimiter, quote):  # pragma: no cover - compiled
    """The offset of the quote that opens a field still open at the end of ``data`` (the
    bytes of a CSV file), or -1 when every quoted field is closed.

    Arrow's rules: a quote opens a quoted field only at the start of a field; in one,
    ``""`` is a quote and a lone quote closes it, after which anything up to the next
    delimiter or line break is more of the value; a quote in an unquoted field is a
    plain character (``5" screen``). Counting quotes would take that one for an opening.
    """
    state = _FIELD_START
    opened = -1
    for i in range(data.shape[0]):
        c = data[i]
        if state == _QUOTED:
            if c == quote:
                state = _QUOTE_IN_QUOTED
        elif state == _QUOTE_IN_QUOTED:
            if c == quote:
                state = _QUOTED
            elif c == delimiter or c == 10 or c == 13:
                state = _FIELD_START
            else:
                state = _UNQUOTED
        elif state == _FIELD_START:
            if c == quote:
                state = _QUOTED
                opened = i
            elif c != delimiter and c != 10 and c != 13:
                state = _UNQUOTED
        elif c == delimiter or c == 10 or c == 13:
            state = _FIELD_START
    return opened if state == _QUOTED else -1
