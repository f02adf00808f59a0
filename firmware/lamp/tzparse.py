# POSIX TZ string parser (POSIX.1-2017 sec. 8.3, with the RFC 8536 sec. 3.3.1 extension
# of rule times beyond 24 h). Loaded only while a zone is being parsed; lamp.tz unloads it.
from lamp.tz import _DEFAULT_RULE_TIME, _HOUR, _J, _M, _N


def _fail(text, what, i):
    raise ValueError("TZ %r: %s at %r" % (text, what, text[i:] or "end"))


def _name(text, i, what):
    # std/dst name: 3+ letters, or <...> of letters, digits, '+' and '-' (XBD 8.3).
    n = len(text)
    if i < n and text[i] == "<":
        j = text.find(">", i)
        if j < 0:
            _fail(text, what + " name: no closing '>'", i)
        name = text[i + 1 : j]
        ok = len(name) >= 3
        for ch in name:
            ok = ok and (ch.isalpha() or ch.isdigit() or ch in "+-")
        if not ok:
            _fail(text, what + " name: needs 3+ letters, digits, + or -", i)
        return name, j + 1
    j = i
    while j < n and text[j].isalpha():
        j += 1
    if j - i < 3:
        _fail(text, what + " name: needs 3+ letters", i)
    return text[i:j], j


def _hms(text, i, what, max_h, signed):
    # [+|-]hh[:mm[:ss]] -> (seconds, next index)
    n = len(text)
    sign = 1
    if i < n and text[i] in "+-":
        if not signed:
            _fail(text, what + ": no sign allowed", i)
        sign = -1 if text[i] == "-" else 1
        i += 1
    secs = 0
    for part in range(3):
        j = i
        while j < n and text[j].isdigit():
            j += 1
        if j == i or j - i > (3 if part == 0 else 2):
            _fail(text, what + ": expected hh[:mm[:ss]]", i)
        v = int(text[i:j])
        if v > (max_h if part == 0 else 59):
            _fail(text, what + ": out of range", i)
        secs = secs * 60 + v
        i = j
        if part == 2 or i >= n or text[i] != ":":
            secs *= 60 ** (2 - part)
            break
        i += 1
    return sign * secs, i


def _int(text, i, lo, hi, what):
    j = i
    while j < len(text) and text[j].isdigit():
        j += 1
    if j == i or not lo <= int(text[i:j]) <= hi:
        _fail(text, "%s: expected %d..%d" % (what, lo, hi), i)
    return int(text[i:j]), j


def _rule(text, i, what):
    # Mm.w.d | Jn | n, then optional /time -> ((kind, a, b, c, secs), next index)
    if i >= len(text):
        _fail(text, what + " rule missing", i)
    b = c = 0
    if text[i] == "M":
        a, i = _int(text, i + 1, 1, 12, what + " rule month")
        for lo, hi, part in ((1, 5, " week"), (0, 6, " weekday")):
            if i >= len(text) or text[i] != ".":
                _fail(text, what + " rule: expected Mm.w.d", i)
            v, i = _int(text, i + 1, lo, hi, what + " rule" + part)
            if part == " week":
                b = v
            else:
                c = v
        kind = _M
    elif text[i] == "J":
        kind = _J
        a, i = _int(text, i + 1, 1, 365, what + " rule Julian day")
    else:
        kind = _N
        a, i = _int(text, i, 0, 365, what + " rule day")
    t = _DEFAULT_RULE_TIME
    if i < len(text) and text[i] == "/":
        t, i = _hms(text, i + 1, what + " rule time", 167, True)
    return (kind, a, b, c, t), i


def fields(text):
    # "CET-1CEST,M3.5.0,M10.5.0/3" -> the Zone fields after the text (std, std offset, dst,
    # dst offset, start rule, end rule). POSIX offsets count west of UTC ("CET-1" is
    # UTC+1); Zone works in seconds east. Errors quote the string and name the part.
    if not isinstance(text, str) or not text:
        raise ValueError("TZ %r: empty" % (text,))
    std, i = _name(text, 0, "std")
    if i >= len(text):
        _fail(text, "std offset missing", i)
    west, i = _hms(text, i, "std offset", 24, True)
    soff = -west
    if i == len(text):
        return std, soff, None, soff, None, None
    dst, i = _name(text, i, "dst")
    doff = soff + _HOUR  # POSIX: "one hour ahead of standard time" by default
    if i < len(text) and text[i] != ",":
        west, i = _hms(text, i, "dst offset", 24, True)
        doff = -west
    if i >= len(text) or text[i] != ",":
        # POSIX leaves the rules implementation-defined; guessing (glibc uses US rules)
        # would light a European street an hour off for weeks, so refuse.
        _fail(text, "dst rules missing (expected ,start[/time],end[/time])", i)
    start, i = _rule(text, i + 1, "dst start")
    if i >= len(text) or text[i] != ",":
        _fail(text, "dst end rule missing", i)
    end, i = _rule(text, i + 1, "dst end")
    if i != len(text):
        _fail(text, "unexpected text", i)
    return std, soff, dst, doff, start, end
