"""The roles a dump's statements name, read from the statements the scanner hands over.

Roles are not in a pg_dump: a dump names them in `ALTER ... OWNER TO`, `GRANT ... TO`,
`REVOKE ... FROM`, `ALTER DEFAULT PRIVILEGES FOR ROLE` and `CREATE POLICY ... TO`. A restore
needs them to exist (it creates the missing ones) and, when a restricted role loads the dump,
needs to know which statements act as another role (`OWNER TO`, `FOR ROLE`): the loader must be
a member of that role, or the statement is left out. This reads the forms pg_dump writes; what
it misses only makes a load fail (the server checks every statement), never run with more
rights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r'"(?P<quoted>(?:[^"]|"")*)"'
    r"|(?P<string>[Ee]?'(?:[^']|'')*')"
    r"|(?P<word>[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*)"
    r"|(?P<punct>[(),;])"
    r"|(?P<other>\S)"
)
# Not role names where a role is expected (unquoted only).
_ROLE_KEYWORDS = {"public", "current_user", "session_user", "current_role", "group"}


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool
    depth: int

    def is_word(self, *words: str) -> bool:
        return not self.quoted and self.text in words


@dataclass
class StatementRoles:
    """The roles one statement names; `acting` are those it acts as (owner, FOR ROLE)."""

    kind: str
    acting: list[str] = field(default_factory=list)
    named: list[str] = field(default_factory=list)


def _tokens(head: bytes) -> list[Token] | None:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    out: list[Token] = []
    depth = 0
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "quoted":
            out.append(Token(match.group("quoted").replace('""', '"'), True, depth))
        elif kind == "word":
            # PostgreSQL folds unquoted identifiers to lower case (ASCII letters only)
            word = match.group("word")
            out.append(Token(word.translate(_ASCII_LOWER), False, depth))
        elif kind == "punct":
            p = match.group("punct")
            if p == ")":
                depth = max(0, depth - 1)
            out.append(Token(p, False, depth))
            if p == "(":
                depth += 1
        elif kind == "string":
            out.append(Token("'", True, depth))
        else:
            out.append(Token(match.group(0), False, depth))
    return out


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _find(tokens: list[Token], start: int, *words: str) -> int:
    for i in range(start, len(tokens)):
        if tokens[i].depth == 0 and tokens[i].is_word(*words):
            return i
    return -1


def _role_list(tokens: list[Token], start: int, stop_words: tuple[str, ...]) -> list[str]:
    """Role names from `start` up to a stop word at depth 0 (or the end)."""
    roles: list[str] = []
    for tok in tokens[start:]:
        if tok.depth == 0 and tok.is_word(*stop_words):
            break
        if tok.text == "," and not tok.quoted:
            continue
        if tok.quoted and tok.text == "'":
            break  # a string literal
        if tok.quoted or tok.text[:1].isalpha() or tok.text[:1] == "_" or tok.text[0] > "\x7f":
            if not tok.quoted and tok.text in _ROLE_KEYWORDS:
                continue
            roles.append(tok.text)
            continue
        break  # anything else ends the list
    return roles


def _grant_or_revoke(tokens: list[Token], start: int) -> list[str]:
    """Grantees of `GRANT ... TO` / `REVOKE ... FROM` starting at tokens[start]."""
    if tokens[start].is_word("grant"):
        at = _find(tokens, start + 1, "to")
        roles = [] if at < 0 else _role_list(tokens, at + 1, ("with", "granted"))
    else:
        at = _find(tokens, start + 1, "from")
        roles = [] if at < 0 else _role_list(tokens, at + 1, ("cascade", "restrict", "granted"))
    by = _find(tokens, start + 1, "granted")
    if by >= 0 and by + 1 < len(tokens) and tokens[by + 1].is_word("by"):
        roles += _role_list(tokens, by + 2, ("cascade", "restrict"))[:1]
    return roles


def statement_roles(head: bytes) -> StatementRoles | None:
    """The roles a statement names, for the statement forms that name roles; None otherwise."""
    lead = head.lstrip()[:8].lower()
    if not lead.startswith((b"alter", b"grant", b"revoke", b"create")):
        return None
    tokens = _tokens(head)
    if not tokens:
        return None
    first = tokens[0]
    if first.is_word("grant", "revoke"):
        roles = _grant_or_revoke(tokens, 0)
        return StatementRoles(first.text, named=roles)
    if first.is_word("alter") and len(tokens) > 3 and tokens[1].is_word("default") \
            and tokens[2].is_word("privileges"):
        acting: list[str] = []
        if tokens[3].is_word("for") and len(tokens) > 4 and tokens[4].is_word("role", "user"):
            acting = _role_list(tokens, 5, ("in", "grant", "revoke"))
        action = _find(tokens, 3, "grant", "revoke")
        granted = _grant_or_revoke(tokens, action) if action >= 0 else []
        return StatementRoles("default privileges", acting=acting, named=acting + granted)
    if first.is_word("alter") and len(tokens) >= 4 and tokens[-3].is_word("owner") \
            and tokens[-2].is_word("to") and tokens[-3].depth == 0:
        role = _role_list(tokens, len(tokens) - 1, ())
        return StatementRoles("owner", acting=role, named=role) if role else None
    if first.is_word("create") and len(tokens) > 1 and tokens[1].is_word("policy"):
        at = _find(tokens, 2, "to")
        roles = [] if at < 0 else _role_list(tokens, at + 1, ("using", "with"))
        return StatementRoles("policy", named=roles)
    return None


@dataclass
class RoleCollector:
    """Every role a dump names (and those it gives objects to), fed statement by statement."""

    named: set[str] = field(default_factory=set)
    owners: set[str] = field(default_factory=set)

    def feed(self, head: bytes, end: int = 0) -> None:
        found = statement_roles(head)
        if found is None:
            return
        self.named.update(r for r in found.named if not r.startswith("pg_"))
        if found.kind == "owner":
            self.owners.update(found.acting)
