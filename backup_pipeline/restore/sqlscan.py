"""Reading a plain-format pg_dump the way psql will, before psql sees it.

A plain dump is a psql script, and psql runs any backslash command outside quoted text and
COPY data (`\\! rm -rf ...`). The scanner follows psql's own lexer (src/fe_utils/psqlscan.l and
mainloop.c): psql reads a line at a time, so `--` comments and string continuations end at a
carriage return too; strings, E'' and U&'' strings, quoted identifiers, dollar quotes (`$tag$`
only where no identifier runs into it), nested comments, parentheses and the BEGIN ... END
counting of CREATE FUNCTION, psql's `:variable` tokens, and COPY ... FROM STDIN (in any
spelling the server takes) whose data ends at a `\\.` line. It rejects every backslash outside
them, except pg_dump's own `\\restrict KEY` before the first statement and `\\unrestrict KEY`
after the last, whose byte ranges it records so a loader can drop them. Where psql's reading
depends on something the dump itself can change (standard_conforming_strings, the client
encoding, psql's version), the scanner refuses what would read differently instead of guessing.
It assumes psql stops at the first error (ON_ERROR_STOP): a COPY the server refuses is not
followed into its data. On the way it counts the rows of every COPY block and the large objects.

It is the clear early error, and a filter in front of psql (verify.CheckedSql hands on only
what it has read); untrusted dumps are also loaded with psql in restricted mode (see
database.PsqlLoader).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from backup_pipeline.errors import ArchiveError

MAX_STATEMENT_HEAD = 256 * 1024
MAX_WAIT = 1 << 20  # the longest single token the scanner holds back to see whole
_SHORT_HEAD = 64

_NONSPACE = re.compile(rb"[^ \t\f\r]")
_IDENT = re.compile(rb"[A-Za-z_\x80-\xff][A-Za-z_0-9$\x80-\xff]*")
_NUMBER = re.compile(rb"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PARAM = re.compile(rb"\$[0-9]+")
_DOLQ = re.compile(rb"\$(?:[A-Za-z_\x80-\xff][A-Za-z_0-9\x80-\xff]*)?\$")
_DOLQ_PREFIX = re.compile(rb"\$[A-Za-z_\x80-\xff][A-Za-z_0-9\x80-\xff]*")
_VARIABLE = re.compile(rb":(?:'[A-Za-z_0-9\x80-\xff]+'|\"[A-Za-z_0-9\x80-\xff]+\"|"
                       rb"\{\?[A-Za-z_0-9\x80-\xff]+\}|([A-Za-z_0-9\x80-\xff]+))")
_VARIABLE_PREFIX = re.compile(rb":(?:'|\"|\{\?)?[A-Za-z_0-9\x80-\xff]*")
_PSQL_VARIABLE_NAME = re.compile(rb"[A-Z][A-Z0-9_]*\Z")  # psql's own variables: VERSION, ...
_OTHER_RUN = re.compile(rb"[^A-Za-z0-9_\x80-\xff$'\"\-/();\\:.\n\x00 \t\f\r]+")
_IDENT_START = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
                         + bytes(range(0x80, 0x100)))
_QUOTE_OR_BACKSLASH = re.compile(rb"['\\]")
_COMMENT_TOKEN = re.compile(rb"/\*|\*/")
_LINE_END = re.compile(rb"[\r\n]")
_ALLOWED_META = re.compile(rb"\\(un)?restrict ([A-Za-z0-9]{1,256})\r?\n?\Z")
_LO_CREATE = re.compile(rb"\s*SELECT\s+pg_catalog\.lo_create\(", re.IGNORECASE)
_HEAD_TOKEN = re.compile(rb"\s*(?:([A-Za-z_\x80-\xff][A-Za-z_0-9$\x80-\xff]*)|"
                         rb"((?:[uU]&)?\"(?:[^\"]|\"\")*\")|(\S))")
_FUNCTION_WORDS = {b"create": 99, b"function": 102, b"procedure": 112, b"or": 111,
                   b"replace": 114}

# lexer states; the string kinds are psql's xq (plain: read both with and without
# standard_conforming_strings), xe, xb/xh (no escapes, no doubling), xus (doubling), xd/xui
(INITIAL, LINE_COMMENT, COMMENT, PLAIN, ESCAPED, BITS, UNICODE, IDENT, DOLLAR, QUOTE_STOP,
 COPY_REST, COPY) = range(12)
_STATE_NAMES = {PLAIN: "a string literal", ESCAPED: "a string literal", BITS: "a string literal",
                UNICODE: "a string literal", IDENT: "a quoted identifier",
                DOLLAR: "a dollar-quoted string", COMMENT: "a comment"}


@dataclass
class ScanResult:
    tables: dict[str, int] = field(default_factory=dict)
    large_objects: int = 0
    restrict_lines: list[tuple[int, int]] = field(default_factory=list)
    sql_bytes: int = 0


class DumpScanner:
    """Feed the decompressed SQL in chunks of any size; `finish()` at the end.

    Raises ArchiveError on the first psql meta-command (or anything psql may read as one),
    naming its line. `on_statement` (if any) sees every statement ended by `;` outside
    parentheses: its text with comments left out (at most MAX_STATEMENT_HEAD bytes) and the
    offset just after its `;`."""

    def __init__(self, on_statement: Callable[[bytes, int], None] | None = None,
                 restricted_load: bool = False) -> None:
        self.result = ScanResult()
        self.on_statement = on_statement
        # psql will run restricted whatever the dump says (an untrusted archive's loader)
        self.restricted_load = restricted_load
        self._buf = b""
        self._base = 0  # offset of _buf[0] in the whole SQL stream
        self._line = 1  # line of _buf[0]
        self._before = 0x0A  # the byte before _buf[0]
        self._state = INITIAL
        self._string = PLAIN  # the kind of string a QUOTE_STOP may continue
        self._tag = b""
        self._comment_depth = 0
        self._paren = 0
        self._begin = 0
        self._words = bytearray(4)  # psql's identifiers[]: first letters of CREATE OR ...
        self._word_count = 0
        self._head = bytearray()
        self._head_limit = _SHORT_HEAD
        self._first_word: bytes | None = None
        self._piece_start = True  # the next token starts a statement (for the server)
        self._first_piece = True
        self._open = False  # a statement has begun and not ended
        self._sql_seen = False
        self._restrict_key: bytes | None = None
        self._closed = False  # after \unrestrict: nothing but comments may follow
        self._copy_table = ""
        self._copy_rows = 0
        self._copy_bol = True

    # -- public --------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if not self.result.sql_bytes and data.startswith(b"\xef\xbb\xbf"):
            raise ArchiveError("the database dump starts with a byte-order mark")
        nul = data.find(b"\0")
        if nul != -1:
            line = self._line + self._buf.count(b"\n") + data.count(b"\n", 0, nul)
            raise ArchiveError(f"the database dump contains a NUL byte at line {line}")
        self.result.sql_bytes += len(data)
        self._buf += data
        self._run(final=False)

    @property
    def checked_bytes(self) -> int:
        """How much of the SQL fed so far has been read completely (what follows is still
        being looked at): a loader may hand on that much."""
        return self._base

    def finish(self) -> ScanResult:
        self._run(final=True)
        if self._state == COPY:
            raise ArchiveError(f"the database dump ends inside the COPY data of "
                               f"{self._copy_table} (no \\. line)")
        if self._state == COPY_REST:
            raise ArchiveError(f"the database dump has no COPY data after line {self._line}")
        if self._state in _STATE_NAMES:
            raise ArchiveError(f"the database dump ends inside {_STATE_NAMES[self._state]}")
        if self._open or self._paren or self._begin:
            raise ArchiveError("the database dump ends inside a statement (no closing ';')")
        return self.result

    # -- driving -------------------------------------------------------------------------

    def _run(self, final: bool) -> None:
        handlers = {
            INITIAL: self._initial, LINE_COMMENT: self._line_comment, COMMENT: self._comment,
            PLAIN: self._quoted, ESCAPED: self._quoted, BITS: self._quoted,
            UNICODE: self._quoted, IDENT: self._ident, DOLLAR: self._dollar,
            QUOTE_STOP: self._quote_stop, COPY_REST: self._copy_rest, COPY: self._copy,
        }
        pos = 0
        while pos < len(self._buf) or (final and self._state == QUOTE_STOP):
            state = self._state
            new_pos = handlers[state](pos, final)
            if new_pos is None or (new_pos == pos and self._state == state):
                break
            pos = new_pos
        if len(self._buf) - pos > MAX_WAIT:
            self._fail(pos, "has a token longer than 1 MiB")
        if pos:
            self._line += self._buf.count(b"\n", 0, pos)
            self._before = self._buf[pos - 1]
            self._base += pos
            self._buf = self._buf[pos:]

    def _byte_before(self, i: int) -> int:
        return self._buf[i - 1] if i else self._before

    def _restricted(self) -> bool:
        """Whether the psql this SQL goes to runs restricted, so that no meta-command runs
        even where psql reads a string other than this lexer does (a function the dump calls
        may turn standard_conforming_strings off): with pg_dump's own `\\restrict` at the
        top (the loader then restricts psql too), or a loader that always does. Only then may
        a literal such as 'C:\\' (one reading with the setting on, another with it off) pass."""
        return self.restricted_load or self._restrict_key is not None

    def _line_at(self, i: int) -> int:
        return self._line + self._buf.count(b"\n", 0, i)

    def _fail(self, i: int, what: str) -> None:
        raise ArchiveError(f"the database dump {what} at line {self._line_at(i)}; "
                           f"psql could read it other than this check does")

    def _reject(self, i: int) -> None:
        end = self._buf.find(b"\n", i)
        line = self._buf[i: end if end != -1 else i + 80][:80]
        text = line.decode("utf-8", "replace").strip()
        raise ArchiveError(f"the database dump contains a psql meta-command at line "
                           f"{self._line_at(i)}: {text!r}; a dump may only contain SQL")

    def _add_head(self, text: bytes) -> None:
        if len(self._head) < self._head_limit:
            self._head += text[: self._head_limit - len(self._head)]

    def _token(self, i: int, word: bytes | None = None) -> None:
        """A token that is neither whitespace nor a comment, starting at i."""
        if self._closed:
            self._fail(i, "has SQL after its \\unrestrict line")
        self._sql_seen = self._open = True
        if self._piece_start:
            self._piece_start = False
            if self._first_piece:
                self._first_word = word
                long_head = word == b"copy" or self.on_statement is not None
                self._head_limit = MAX_STATEMENT_HEAD if long_head else _SHORT_HEAD
            elif word == b"copy":
                self._fail(i, "has a COPY that psql sends inside another statement")

    # -- INITIAL -------------------------------------------------------------------------

    def _initial(self, pos: int, final: bool) -> int | None:  # noqa: C901 - one lexer state
        buf = self._buf
        n = len(buf)
        i = pos
        while True:
            m = _NONSPACE.search(buf, i)
            if m is None:
                if n > i:
                    self._add_head(b" ")
                return n
            j = m.start()
            if j > i:
                self._add_head(b" ")
            if not final and n - j < 4:
                return j
            c = buf[j]
            if c == 0x0A:  # \n: psql's line ends
                self._add_head(b"\n")
                i = j + 1
            elif c in _IDENT_START:
                word = _IDENT.match(buf, j)
                end = word.end()
                if not final and end + 3 > n:
                    return j
                i = self._word(j, end, word.group(0))
                if i is None:
                    return None
                if self._state != INITIAL:
                    return i
            elif 0x30 <= c <= 0x39 or (c == 0x2E and buf[j + 1:j + 2].isdigit()):
                i = self._number(j, _NUMBER.match(buf, j).end(), final)
                if i is None:
                    return j
            elif c == 0x24:  # $
                got = self._dollar_start(j, final)
                if got is None:
                    return j
                i = got
                if self._state != INITIAL:
                    return i
            elif c == 0x27:  # '
                self._token(j)
                self._add_head(b"'")
                self._state = PLAIN
                return j + 1
            elif c == 0x22:  # "
                self._token(j)
                self._add_head(b'"')
                self._state = IDENT
                return j + 1
            elif c == 0x2D and buf[j + 1:j + 2] == b"-":  # --
                self._state = LINE_COMMENT
                return j + 2
            elif c == 0x2F and buf[j + 1:j + 2] == b"*":  # /*
                self._state = COMMENT
                self._comment_depth = 1
                self._add_head(b" ")
                return j + 2
            elif c == 0x28:  # (
                self._token(j)
                self._paren += 1
                self._add_head(b"(")
                i = j + 1
            elif c == 0x29:  # )
                self._token(j)
                self._paren = max(0, self._paren - 1)
                self._add_head(b")")
                i = j + 1
            elif c == 0x3B:  # ;
                if self._byte_before(j) >= 0x80:
                    self._fail(j, "has a ';' right after a non-ASCII byte")
                self._token(j)
                if self._paren == 0 and self._begin == 0:
                    return self._statement_end(j)
                if self._paren == 0:
                    self._piece_start, self._first_piece = True, False
                self._add_head(b";")
                i = j + 1
            elif c == 0x3A:  # :
                i = self._colon(j, final)
                if i is None:
                    return j
            elif c == 0x5C:  # backslash
                return self._meta(j, final)
            else:
                self._token(j)
                other = _OTHER_RUN.match(buf, j)
                end = other.end() if other else j + 1
                self._add_head(buf[j:end])
                i = end

    def _word(self, j: int, end: int, word: bytes) -> int | None:
        buf = self._buf
        nxt = buf[end:end + 1]
        if end - j == 1:
            if nxt == b"'":  # e'...', b'...', x'...', n'...'
                kind = {0x65: ESCAPED, 0x45: ESCAPED, 0x62: BITS, 0x42: BITS, 0x78: BITS,
                        0x58: BITS, 0x6E: PLAIN, 0x4E: PLAIN}.get(buf[j])
                if kind is not None:
                    self._token(j)
                    self._add_head(buf[j:end + 1])
                    self._state = kind
                    return end + 1
            elif nxt == b"&" and buf[j] in b"uU":  # u&'...', u&"..." or just u
                self._token(j)
                after = buf[end + 1:end + 2]
                if after in (b"'", b'"'):
                    self._add_head(buf[j:end + 2])
                    self._state = UNICODE if after == b"'" else IDENT
                    return end + 2
                self._add_head(buf[j:end])
                return end
        lower = word.lower()
        self._token(j, lower)
        self._add_head(word)
        self._count_word(lower)
        return end

    def _count_word(self, lower: bytes) -> None:
        """psql's heuristic for CREATE FUNCTION ... BEGIN ATOMIC ... END: inside one, a ';'
        ends the statement only once every BEGIN (and CASE) has met its END."""
        if self._word_count == 0:
            self._words[:] = bytes(4)
        if self._word_count < 4 and lower in _FUNCTION_WORDS:
            self._words[self._word_count] = _FUNCTION_WORDS[lower]
        self._word_count += 1
        w = self._words
        if self._paren or not (w[0] == 99 and (w[1] in (102, 112) or (w[1] == 111 and w[2] == 114
                                                          and w[3] in (102, 112)))):
            return
        if lower == b"begin" or (lower == b"case" and self._begin >= 1):
            self._begin += 1
        elif lower == b"end" and self._begin > 0:
            self._begin -= 1

    def _number(self, j: int, end: int, final: bool) -> int | None:
        buf = self._buf
        if end >= len(buf) and not final:
            return None
        if end < len(buf) and (buf[end] in _IDENT_START or buf[end] in b"'$"):
            self._fail(j, "has a number run into a letter, quote or '$' (psql versions "
                          "split that differently)")
        self._token(j)
        self._add_head(buf[j:end])
        return end

    def _dollar_start(self, j: int, final: bool) -> int | None:
        buf = self._buf
        param = _PARAM.match(buf, j)
        if param is not None:
            return self._number(j, param.end(), final)
        tag = _DOLQ.match(buf, j)
        if tag is None:
            prefix = _DOLQ_PREFIX.match(buf, j)
            if prefix is not None and prefix.end() >= len(buf) and not final:
                return None
            self._token(j)
            self._add_head(b"$")
            return j + 1
        self._token(j)
        self._tag = tag.group(0)
        self._add_head(self._tag)
        self._state = DOLLAR
        return tag.end()

    def _colon(self, j: int, final: bool) -> int | None:
        buf = self._buf
        if self._byte_before(j) >= 0x80:
            self._fail(j, "has a ':' right after a non-ASCII byte")
        if not final and _VARIABLE_PREFIX.match(buf, j).end() >= len(buf):
            return None
        self._token(j)
        if buf[j + 1:j + 2] in (b":", b"="):
            self._add_head(buf[j:j + 2])
            return j + 2
        var = _VARIABLE.match(buf, j)
        if var is None:
            self._add_head(b":")
            return j + 1
        if var.group(1) is not None and _PSQL_VARIABLE_NAME.match(var.group(1)):
            self._fail(j, f"refers to psql's variable {var.group(0).decode()!r}")
        self._add_head(var.group(0))
        return var.end()

    def _meta(self, i: int, final: bool) -> int | None:
        end = self._buf.find(b"\n", i)
        if end == -1 and not final:
            if len(self._buf) - i > 4096:
                self._reject(i)
            return None
        stop = len(self._buf) if end == -1 else end + 1
        allowed = _ALLOWED_META.match(self._buf, i, stop)
        if allowed is None or self._byte_before(i) != 0x0A or self._open or self._closed:
            self._reject(i)
        unrestrict, key = allowed.group(1), allowed.group(2)
        if unrestrict:
            if key != self._restrict_key:
                self._reject(i)
            self._closed = True
        elif self._sql_seen or self._restrict_key is not None:
            self._reject(i)
        else:
            self._restrict_key = key
        self.result.restrict_lines.append((self._base + i, self._base + stop))
        return stop

    def _statement_end(self, j: int) -> int:
        head = bytes(self._head)
        first = self._first_word
        self._head.clear()
        self._head_limit = _SHORT_HEAD
        self._first_word = None
        self._piece_start = self._first_piece = True
        self._open = False
        self._word_count = 0
        if self.on_statement is not None:
            self.on_statement(head, self._base + j + 1)
        if first == b"select" and _LO_CREATE.match(head):
            self.result.large_objects += 1
        if first == b"copy":
            table = _copy_from_client(head)
            if table == "":
                self._fail(j, "has a COPY statement this check cannot read")
            if table is not None:
                self._copy_table = table
                self._state = COPY_REST
        return j + 1

    # -- comments, strings, identifiers -------------------------------------------------

    def _line_comment(self, pos: int, final: bool) -> int | None:
        m = _LINE_END.search(self._buf, pos)
        if m is None:
            return len(self._buf)
        self._state = INITIAL
        return m.start()  # psql ends a comment at \r as well as at the end of the line

    def _comment(self, pos: int, final: bool) -> int | None:
        buf = self._buf
        i = pos
        while True:
            m = _COMMENT_TOKEN.search(buf, i)
            if m is None:
                keep = len(buf) if final else max(i, len(buf) - 1)
                return None if keep == pos else keep
            i = m.end()
            if m.group(0) == b"/*":
                self._comment_depth += 1
            else:
                self._comment_depth -= 1
                if self._comment_depth == 0:
                    self._state = INITIAL
                    return i

    def _quoted(self, pos: int, final: bool) -> int | None:
        """Inside '...': PLAIN is read both ways (standard_conforming_strings on and off) and
        refused where the two differ; ESCAPED has backslash escapes; BITS and UNICODE none."""
        buf = self._buf
        n = len(buf)
        kind = self._state
        # A plain literal is read as pg_dump writes it (standard_conforming_strings on: a
        # backslash is itself) where psql runs restricted; elsewhere both readings are
        # followed, and a literal on which they differ is refused (see _restricted).
        escapes = kind == ESCAPED or (kind == PLAIN and not self._restricted())
        i = pos
        while True:
            if escapes:
                m = _QUOTE_OR_BACKSLASH.search(buf, i)
                j = -1 if m is None else m.start()
            else:
                j = buf.find(b"'", i)
            if j == -1:
                self._add_head(buf[pos:n])
                return n
            if j + 1 >= n and not final:
                self._add_head(buf[pos:j])
                return None if j == pos else j
            if buf[j] == 0x5C:
                if self._byte_before(j) >= 0x80:
                    self._fail(j, "has a backslash right after a non-ASCII byte in a string")
                if kind == PLAIN and buf[j + 1:j + 2] == b"'":
                    self._fail(j, "has a string literal that reads differently with "
                                  "standard_conforming_strings off")
                i = j + 2
            elif buf[j + 1:j + 2] == b"'" and kind != BITS:
                i = j + 2
            else:
                self._add_head(buf[pos:j + 1])
                self._string = kind
                self._state = QUOTE_STOP
                return j + 1

    def _quote_stop(self, pos: int, final: bool) -> int | None:
        """After a closing quote: psql's xqs, where a quote after whitespace holding a newline
        continues the string. psql's lexer sees only \\r as a newline within a line."""
        buf = self._buf
        i = pos
        while i < len(buf) and buf[i] == 0x0A:
            i += 1  # the quote ended its line: psql resumes xqs on the next non-empty one
        if i >= len(buf) and not final:
            return None if i == pos else i
        more = _continuation(buf, i, final)
        if more is None:
            return None if i == pos else i
        if more == -1:
            self._state = INITIAL
            return i
        self._add_head(buf[i:more])
        self._state = self._string
        return more

    def _ident(self, pos: int, final: bool) -> int | None:
        buf = self._buf
        i = pos
        while True:
            j = buf.find(b'"', i)
            if j == -1:
                self._add_head(buf[pos:])
                return len(buf)
            if j + 1 >= len(buf) and not final:
                self._add_head(buf[pos:j])
                return None if j == pos else j
            if buf[j + 1:j + 2] == b'"':
                i = j + 2
                continue
            self._add_head(buf[pos:j + 1])
            self._state = INITIAL
            return j + 1

    def _dollar(self, pos: int, final: bool) -> int | None:
        buf = self._buf
        j = buf.find(self._tag, pos)
        if j == -1:
            keep = len(buf) if final else max(pos, len(buf) - len(self._tag) + 1)
            self._add_head(buf[pos:keep])
            return None if keep == pos else keep
        end = j + len(self._tag)
        self._add_head(buf[pos:end])
        self._state = INITIAL
        return end

    # -- COPY data -----------------------------------------------------------------------

    def _copy_rest(self, pos: int, final: bool) -> int | None:
        """psql reads COPY data from the line after the statement, and the rest of the
        statement's line only after the data: that rest must be empty."""
        end = self._buf.find(b"\n", pos)
        if end == -1:
            if final:
                raise ArchiveError(f"the database dump has no COPY data after line "
                                   f"{self._line_at(pos)}")
            return None
        if self._buf[pos:end].strip(b" \t\r\f"):
            raise ArchiveError(f"the database dump has text after COPY ... FROM stdin on line "
                               f"{self._line_at(pos)}")
        self._copy_rows = 0
        self._copy_bol = True
        self._state = COPY
        return end + 1

    def _copy(self, pos: int, final: bool) -> int | None:
        """COPY data, as psql reads it: lines up to one that is exactly \\. (and its newline)."""
        buf = self._buf
        n = len(buf)
        if self._copy_bol:
            rest = buf[pos:pos + 4]
            if rest.startswith(b"\\.\n"):
                return self._copy_end(pos + 3)
            if rest == b"\\.\r\n":
                return self._copy_end(pos + 4)
            if final and rest == b"\\.":
                return self._copy_end(n)
            if not final and len(rest) < 4 and b"\\.\r\n".startswith(rest):
                return None
        k = buf.find(b"\n\\.", pos)
        while k != -1:
            tail = buf[k + 3:k + 5]
            if tail[:1] == b"\n" or tail == b"\r\n":
                self._copy_rows += buf.count(b"\n", pos, k + 1)
                return self._copy_end(k + 4 + (tail == b"\r\n"))
            if not final and tail in (b"", b"\r"):  # not sure yet: stop at that line
                self._copy_rows += buf.count(b"\n", pos, k + 1)
                self._copy_bol = True
                return k + 1
            k = buf.find(b"\n\\.", k + 1)
        if final and buf.endswith(b"\n\\.") and n - 3 >= pos:
            self._copy_rows += buf.count(b"\n", pos, n - 2)
            return self._copy_end(n)
        last = buf.rfind(b"\n", pos)
        if last == -1 or final:
            self._copy_bol = False
            return n
        self._copy_rows += buf.count(b"\n", pos, last + 1)
        self._copy_bol = True
        return last + 1

    def _copy_end(self, end: int) -> int:
        table = self._copy_table
        self.result.tables[table] = self.result.tables.get(table, 0) + self._copy_rows
        self._state = INITIAL
        return end


def _continuation(buf: bytes, i: int, final: bool) -> int | None:
    """Where psql's {quotecontinue} ends if it starts at i (just after the quote it ends
    with), -1 if it does not match, None if the buffer ends too soon to tell. Within one of
    psql's lines the only newline is \\r."""
    n = len(buf)
    seen_newline = False
    while True:
        if i >= n:
            return -1 if final else None
        c = buf[i]
        if c in b" \t\f" or (c == 0x0D and seen_newline):
            i += 1
        elif c == 0x0D:
            seen_newline = True
            i += 1
        elif c == 0x2D:  # a -- comment, which must end at \r (not at the line's end)
            if i + 1 >= n:
                return -1 if final else None
            if buf[i + 1] != 0x2D:
                return -1
            m = _LINE_END.search(buf, i)
            if m is None:
                return -1 if final else None
            if buf[m.start()] == 0x0A:
                return -1
            i = m.start()
        elif c == 0x27 and seen_newline:
            return i + 1
        else:
            return -1


def _copy_from_client(head: bytes) -> str | None:
    """For a statement that starts with COPY: the table it reads from the client (a COPY
    ... FROM STDIN, or FROM STDOUT, which the server takes alike), None for any other COPY,
    "" where this reading is not sure."""
    tokens = [(m.group(1), m.group(2), m.group(3), m.start(), m.end())
              for m in _HEAD_TOKEN.finditer(head) if m.group(0).strip()]
    words = [(w.lower() if w else None) for w, _, _, _, _ in tokens]
    if len(tokens) < 2 or words[0] != b"copy":
        return ""
    k = 1
    if tokens[1][2] == b"(":
        return None  # COPY (query) TO ...: the grammar has no FROM for it
    if words[k] == b"binary":
        k += 1
    start = k
    while True:
        if k >= len(tokens) or (tokens[k][0] is None and tokens[k][1] is None):
            return ""
        k += 1
        if k < len(tokens) and tokens[k][2] == b".":
            k += 1
            continue
        break
    table = head[tokens[start][3]:tokens[k - 1][4]].strip().decode("utf-8", "replace")
    if k < len(tokens) and tokens[k][2] == b"(":
        k += 1
        while k < len(tokens) and tokens[k][2] != b")":
            if tokens[k][2] not in (None, b","):
                return ""
            k += 1
        k += 1
    if k >= len(tokens):
        return ""
    if words[k] == b"to":
        return None
    if words[k] != b"from" or k + 1 >= len(tokens):
        return ""
    if words[k + 1] in (b"stdin", b"stdout"):
        return table
    if words[k + 1] == b"program" or tokens[k + 1][2] == b"'":
        return None  # a file or program on the server
    return ""
