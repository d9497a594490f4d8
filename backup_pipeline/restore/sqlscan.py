"""Reading a plain-format pg_dump the way psql will, before psql sees it.

A plain dump is a psql script, and psql runs any backslash command outside quoted text and
COPY data (`\\! rm -rf ...`). The scanner follows psql's lexer (quotes, E'' strings, dollar
quotes, comments, parentheses, COPY ... FROM stdin blocks ended by `\\.`) and rejects every
backslash outside them, except pg_dump's own whole-line `\\restrict KEY` / `\\unrestrict KEY`,
whose byte ranges it records so a loader can drop them. On the way it counts the rows of every
COPY block and the large objects, for the restore preview.

It is the clear early error, and a filter in front of psql (verify.CheckedSql hands on only
what it has read), but not the only guard: untrusted dumps are also loaded with psql in
restricted mode (see database.PsqlLoader), which holds even where this lexer and psql's differ
(for instance after a dump turns standard_conforming_strings off).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from backup_pipeline.errors import ArchiveError

MAX_STATEMENT_HEAD = 256 * 1024
MAX_ALLOWED_META_LINES = 8
_LOOKAHEAD = 80

_NORMAL_SPECIAL = re.compile(rb"[-/'\"$\\;()\n]")
_DOLLAR_TAG = re.compile(rb"\$(?:[A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9]*)?\$")
_ALLOWED_META = re.compile(rb"\\(?:un)?restrict [A-Za-z0-9]{1,256}\r?\n?\Z")
_IDENT = rb'(?:"(?:[^"]|"")*"|[^\s."(]+)'
_COPY_FROM_STDIN = re.compile(
    rb"\s*COPY\s+(" + _IDENT + rb"(?:\." + _IDENT + rb")*)\s*(?:\(.*\))?\s+FROM\s+stdin\s*\Z",
    re.IGNORECASE | re.DOTALL,
)
_COPY_END = re.compile(rb"\n\\\.\r?\n")
_LO_CREATE = re.compile(rb"\s*SELECT\s+pg_catalog\.lo_create\(", re.IGNORECASE)
_ESTRING_SPECIAL = re.compile(rb"[\\'\n]")
_STRING_SPECIAL = re.compile(rb"['\n]")
_COMMENT_TOKEN = re.compile(rb"/\*|\*/|\n")
_IDENT_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$"
                         + bytes(range(0x80, 0x100)))

NORMAL, STRING, ESTRING, IDENT, DOLLAR, LINE_COMMENT, BLOCK_COMMENT, COPY = range(8)
_STATE_NAMES = {STRING: "a string literal", ESTRING: "a string literal",
                IDENT: "a quoted identifier", DOLLAR: "a dollar-quoted string",
                BLOCK_COMMENT: "a comment", COPY: "COPY data"}


@dataclass
class ScanResult:
    tables: dict[str, int] = field(default_factory=dict)
    large_objects: int = 0
    restrict_lines: list[tuple[int, int]] = field(default_factory=list)
    sql_bytes: int = 0


class DumpScanner:
    """Feed the decompressed SQL in chunks of any size; `finish()` at the end.

    Raises ArchiveError on the first psql meta-command, naming its line. `on_statement` (if
    any) sees every statement ended by `;` outside parentheses: its text with comments left
    out (at most MAX_STATEMENT_HEAD bytes) and the offset just after its `;`."""

    def __init__(self, on_statement: Callable[[bytes, int], None] | None = None) -> None:
        self.result = ScanResult()
        self.on_statement = on_statement
        self._buf = b""
        self._base = 0  # offset of _buf[0] in the whole SQL stream
        self._line = 1
        self._state = NORMAL
        self._at_line_start = True
        self._prev = b"\n"  # the last byte consumed in NORMAL state
        self._head = bytearray()  # the current statement so far (comments left out)
        self._depth = 0
        self._comment_depth = 0
        self._tag = b""
        self._escape_next = False
        self._copy_table = ""
        self._copy_rows = 0

    # -- public --------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
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
        if self._state in _STATE_NAMES:
            raise ArchiveError(f"the database dump ends inside {_STATE_NAMES[self._state]}")
        return self.result

    # -- the lexer -----------------------------------------------------------------------

    def _run(self, final: bool) -> None:
        pos = 0
        handlers = {
            NORMAL: self._normal, STRING: self._string, ESTRING: self._string,
            IDENT: self._ident, DOLLAR: self._dollar, LINE_COMMENT: self._line_comment,
            BLOCK_COMMENT: self._block_comment, COPY: self._copy,
        }
        while True:
            new_pos = handlers[self._state](pos, final)
            if new_pos is None:
                break
            pos = new_pos
        self._base += pos
        self._buf = self._buf[pos:]

    def _append_head(self, text: bytes) -> None:
        if len(self._head) < MAX_STATEMENT_HEAD:
            self._head += text[: MAX_STATEMENT_HEAD - len(self._head)]

    def _consume_normal(self, start: int, end: int) -> None:
        if end > start:
            chunk = self._buf[start:end]
            self._append_head(chunk)
            self._prev = chunk[-1:]
            self._at_line_start = False

    def _reject(self, pos: int) -> None:
        end = self._buf.find(b"\n", pos)
        line = self._buf[pos: end if end != -1 else pos + 80][:80]
        text = line.decode("utf-8", "replace").strip()
        raise ArchiveError(f"the database dump contains a psql meta-command at line "
                           f"{self._line}: {text!r}; a dump may only contain SQL")

    def _normal(self, pos: int, final: bool) -> int | None:
        buf = self._buf
        match = _NORMAL_SPECIAL.search(buf, pos)
        if match is None:
            if final:
                self._consume_normal(pos, len(buf))
                return None
            keep = max(pos, len(buf) - 1)  # a '-' or '/' may start a comment in the next chunk
            self._consume_normal(pos, keep)
            return None if keep == pos else keep
        i = match.start()
        if not final and len(buf) - i < _LOOKAHEAD:
            self._consume_normal(pos, i)
            return None if i == pos else i
        at_line_start = self._at_line_start and i == pos
        self._consume_normal(pos, i)
        c = buf[i:i + 1]
        nxt = buf[i + 1:i + 2]
        if c == b"\n":
            self._line += 1
            self._append_head(b"\n")
            self._prev = c
            self._at_line_start = True
            return i + 1
        if c == b"\\":
            return self._meta_line(i, final) if at_line_start else self._reject(i)
        if c == b"-" and nxt == b"-":
            self._state = LINE_COMMENT
            return i + 2
        if c == b"/" and nxt == b"*":
            self._state = BLOCK_COMMENT
            self._comment_depth = 1
            self._at_line_start = False
            return i + 2
        if c == b"'":
            escaped = self._prev in (b"E", b"e") and (
                len(self._head) < 2 or self._head[-2] not in _IDENT_BYTES)
            self._state = ESTRING if escaped else STRING
            self._consume_normal(i, i + 1)
            return i + 1
        if c == b'"':
            self._state = IDENT
            self._consume_normal(i, i + 1)
            return i + 1
        if c == b"$" and self._prev[0] not in _IDENT_BYTES:
            tag = _DOLLAR_TAG.match(buf, i)
            if tag is not None:
                self._tag = tag.group(0)
                self._state = DOLLAR
                self._consume_normal(i, tag.end())
                return tag.end()
        if c == b"(":
            self._depth += 1
        elif c == b")":
            self._depth = max(0, self._depth - 1)
        elif c == b";" and self._depth == 0:
            return self._statement_end(i, final)
        self._consume_normal(i, i + 1)
        return i + 1

    def _meta_line(self, i: int, final: bool) -> int | None:
        end = self._buf.find(b"\n", i)
        if end == -1 and not final:
            if len(self._buf) - i > 4096:
                self._reject(i)
            return None if i == 0 else i
        stop = len(self._buf) if end == -1 else end + 1
        if not _ALLOWED_META.match(self._buf, i, stop):
            self._reject(i)
        self.result.restrict_lines.append((self._base + i, self._base + stop))
        if len(self.result.restrict_lines) > MAX_ALLOWED_META_LINES:
            raise ArchiveError("the database dump has more \\restrict/\\unrestrict lines "
                               "than pg_dump writes")
        if end != -1:
            self._line += 1
        self._prev = b"\n"
        self._at_line_start = True
        return stop

    def _statement_end(self, i: int, final: bool) -> int | None:
        head = bytes(self._head)
        self._head.clear()
        self._prev = b";"
        if self.on_statement is not None:
            self.on_statement(head, self._base + i + 1)
        copy = _COPY_FROM_STDIN.match(head)
        if _LO_CREATE.match(head):
            self.result.large_objects += 1
        if copy is None:
            self._at_line_start = False
            return i + 1
        end = self._buf.find(b"\n", i)
        if end == -1:
            if not final and len(self._buf) - i < 4096:
                self._head[:] = head  # wait for the end of the line
                return None if i == 0 else i
            raise ArchiveError(f"the database dump has no COPY data after line {self._line}")
        if self._buf[i + 1:end].strip():
            raise ArchiveError(f"the database dump has text after COPY ... FROM stdin on line "
                               f"{self._line}")
        self._copy_table = copy.group(1).decode("utf-8", "replace")
        self._copy_rows = 0
        self._state = COPY
        self._line += 1
        self._at_line_start = True
        self._prev = b"\n"
        return end + 1

    def _string(self, pos: int, final: bool) -> int | None:
        buf = self._buf
        escaping = self._state == ESTRING
        i = pos
        n = len(buf)
        while True:
            if self._escape_next:
                if i >= n:
                    break
                if buf[i:i + 1] == b"\n":
                    self._line += 1
                self._escape_next = False
                i += 1
                continue
            match = (_ESTRING_SPECIAL if escaping else _STRING_SPECIAL).search(buf, i)
            if match is None:
                i = n
                break
            j = match.start()
            c = buf[j:j + 1]
            if c == b"\n":
                self._line += 1
                i = j + 1
            elif c == b"\\":
                self._escape_next = True
                i = j + 1
            elif j + 1 >= n and not final:
                self._append_head(buf[pos:j])
                return None if j == pos else j  # is it '' or the end? wait for more
            elif buf[j + 1:j + 2] == b"'":
                i = j + 2
            else:
                self._append_head(buf[pos:j + 1])
                self._prev = b"'"
                self._state = NORMAL
                return j + 1
        self._append_head(buf[pos:i])
        return None if i == pos else i

    def _ident(self, pos: int, final: bool) -> int | None:
        buf = self._buf
        i = pos
        while True:
            j = buf.find(b'"', i)
            if j == -1:
                self._line += buf.count(b"\n", i)
                self._append_head(buf[pos:])
                return None if len(buf) == pos else len(buf)
            if j + 1 >= len(buf) and not final:
                self._line += buf.count(b"\n", i, j)
                self._append_head(buf[pos:j])
                return None if j == pos else j
            if buf[j + 1:j + 2] == b'"':
                self._line += buf.count(b"\n", i, j)
                i = j + 2
                continue
            self._line += buf.count(b"\n", i, j)
            self._append_head(buf[pos:j + 1])
            self._prev = b'"'
            self._state = NORMAL
            return j + 1

    def _dollar(self, pos: int, final: bool) -> int | None:
        buf = self._buf
        j = buf.find(self._tag, pos)
        if j == -1:
            keep = len(buf) if final else max(pos, len(buf) - len(self._tag) + 1)
            self._line += buf.count(b"\n", pos, keep)
            self._append_head(buf[pos:keep])
            return None if keep == pos else keep
        end = j + len(self._tag)
        self._line += buf.count(b"\n", pos, end)
        self._append_head(buf[pos:end])
        self._prev = b"$"
        self._state = NORMAL
        return end

    def _line_comment(self, pos: int, final: bool) -> int | None:
        j = self._buf.find(b"\n", pos)
        if j == -1:
            return None if len(self._buf) == pos else len(self._buf)
        self._state = NORMAL
        return j  # the newline itself is handled in NORMAL state

    def _block_comment(self, pos: int, final: bool) -> int | None:
        buf = self._buf
        i = pos
        while True:
            match = _COMMENT_TOKEN.search(buf, i)
            if match is None or (not final and len(buf) - match.start() < 2):
                keep = len(buf) if final else max(i, len(buf) - 1)
                return None if keep == pos else keep
            token = match.group(0)
            i = match.end()
            if token == b"\n":
                self._line += 1
            elif token == b"/*":
                self._comment_depth += 1
            else:
                self._comment_depth -= 1
                if self._comment_depth == 0:
                    self._state = NORMAL
                    self._append_head(b" ")
                    return i

    def _copy(self, pos: int, final: bool) -> int | None:
        buf = self._buf
        if self._at_line_start:
            if buf.startswith((b"\\.\n", b"\\.\r\n"), pos) or (final and buf[pos:] == b"\\."):
                return self._copy_end(pos, buf.index(b".", pos) + 1, final)
            if not final and len(buf) - pos < 4:
                return None if pos == 0 else pos
        match = _COPY_END.search(buf, pos)
        if match is None and final and buf.endswith(b"\n\\.") and len(buf) - 3 >= pos:
            rows = buf.count(b"\n", pos, len(buf) - 2)
            self._copy_rows += rows
            self._line += rows
            return self._copy_end(len(buf) - 2, len(buf), final)
        if match is None:
            keep = len(buf) if final else max(pos, len(buf) - 4)
            if keep > pos:
                rows = buf.count(b"\n", pos, keep)
                self._copy_rows += rows
                self._line += rows
                self._at_line_start = buf[keep - 1:keep] == b"\n"
            return None if keep == pos else keep
        rows = buf.count(b"\n", pos, match.start() + 1)
        self._copy_rows += rows
        self._line += rows
        return self._copy_end(match.start() + 1, match.end(), final)

    def _copy_end(self, start: int, end: int, final: bool) -> int:
        table = self._copy_table
        self.result.tables[table] = self.result.tables.get(table, 0) + self._copy_rows
        self._state = NORMAL
        self._prev = b"\n"
        self._at_line_start = True
        if self._buf[end - 1:end] == b"\n":
            self._line += 1
        return end
