"""The dump scanner on the inputs that walked past it, and on what it must keep accepting."""

from __future__ import annotations

import pytest

from backup_pipeline.errors import ArchiveError
from backup_pipeline.restore.sqlscan import DumpScanner
from backup_pipeline_tests.restore.helpers import tiny_dump


def scan(sql: bytes, step: int | None = None):
    scanner = DumpScanner()
    step = step or len(sql) or 1
    for pos in range(0, len(sql), step):
        scanner.feed(sql[pos:pos + step])
    return scanner.finish()


# each runs `\! touch owned` in plain psql (see test_sqlscan_psql for the real psql)
WALKED_PAST = {
    "copy_with_options": b"CREATE TABLE t (a text);\nCOPY t (a) FROM stdin WITH (FORMAT text);\n"
                         b"'\n\\.\n\\! touch owned\n';\n",
    "comment_before_dollar_quote": b"SELECT text/**/$a$ ' $a$;\n\\! touch owned\n';\n",
    "line_comment_ends_at_cr": b"SELECT 1; -- note\r\\! touch owned\n",
    "string_continued_after_cr": b"SELECT E'a'\r'\\'' \\! touch owned ';\n",
    "dollar_quote_after_number": b"SELECT 1$a$ $a$ \\! touch owned $a$;\n",
    "copy_from_stdout": b"COPY t FROM STDOUT;\n'\n\\.\n\\! touch owned\n';\n",
    "copy_in_function_body": b"CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1; "
                             b"COPY t FROM stdin; SELECT 1 AS end;\n'\n\\.\n\\! touch owned\n';\n",
    "standard_strings_off": b"SET standard_conforming_strings = off;\n"
                            b"SELECT 'a\\'' \\! touch owned ';\n",
    "nul_byte": b"SELECT \0'\n\\! touch owned\n';\n",
    "late_restrict": b"SELECT 1;\n\\unrestrict abc\n",
}


@pytest.mark.parametrize("case", sorted(WALKED_PAST))
def test_what_psql_reads_as_a_command_is_refused(case):
    for step in (None, 1, 3):
        with pytest.raises(ArchiveError, match="the database dump"):
            scan(WALKED_PAST[case], step)


def test_the_two_reproductions_of_the_issue_name_the_command_line():
    with pytest.raises(ArchiveError, match=r"meta-command at line 5: '\\\\! touch owned'"):
        scan(WALKED_PAST["copy_with_options"])
    with pytest.raises(ArchiveError, match=r"meta-command at line 2: '\\\\! touch owned'"):
        scan(WALKED_PAST["comment_before_dollar_quote"])


ACCEPTED = [
    b"SELECT text$a$ ' $a$';\n",  # an identifier runs into the $: no dollar quote
    b"COPY t FROM stdin;\n'\n$a$\n\\N\t\\\\\n\\.\nSELECT 1;\n",
    b"copy /* c */ public . \"T x\"\n(a, b) from -- x\n STDIN with csv;\n\"a\",'\n\\.\n",
    b"SELECT 1; COPY t FROM stdin;\n1\n\\.\r\n",
    b"COPY (SELECT 1) TO STDOUT;\nSELECT 'a\\b', E'\\'', $q$ \\ $q$, \"\\\";\n",
    b"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n",
    b"SELECT a[1:n], :'x', :\"y\", 1::text, /* a /* b */ c */ 'x'\r'y';\n",
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_sql_psql_reads_as_sql_is_accepted_in_any_chunking(sql):
    whole = scan(sql)
    for step in (1, 2, 5):
        assert scan(sql, step) == whole


def test_copy_rows_and_restrict_lines_are_counted():
    sql = tiny_dump("COPY public.restored_marker (id) FROM stdin;\n3\n4\n\\.\n")
    result = scan(sql, 7)
    assert result.tables == {"public.restored_marker": 4}
    assert [sql[a:b] for a, b in result.restrict_lines] == [b"\\restrict abc123\n",
                                                           b"\\unrestrict abc123\n"]


@pytest.mark.parametrize("sql", [
    b"SELECT 1;\n\\restrict abc\n",  # only before the first statement
    b"\\restrict abc\n\\restrict abc\n",
    b"\\restrict abc\nSELECT 1;\n\\unrestrict abd\n",  # the same key
    b"\\restrict abc\nSELECT 1;\n\\unrestrict abc\nSELECT 2;\n",  # nothing after it
    b"\\restrict abc\nSELECT 1\n\\unrestrict abc\n",  # not inside a statement
])
def test_restrict_lines_only_where_pg_dump_writes_them(sql):
    with pytest.raises(ArchiveError):
        scan(sql)


def test_a_statement_left_open_at_the_end_is_refused():
    with pytest.raises(ArchiveError, match="ends inside a statement"):
        scan(b"SELECT 1;\nSELECT 2\n")


@pytest.mark.parametrize("restricted_load", [False, True])
def test_a_backslash_ending_a_literal_passes_where_psql_runs_restricted(restricted_load):
    """pg_dump writes 'C:\\' for a comment or default ending in a backslash: a dump with its
    \\restrict line (or an upload, whose loader always restricts psql) must still restore, and
    the scanner reads on as pg_dump wrote it (standard_conforming_strings on)."""
    body = ("COMMENT ON TABLE public.restored_marker IS 'C:\\';\n"
            "COPY public.restored_marker (id, note) FROM stdin;\n3\t'\n\\.\n")
    dump = tiny_dump(body)
    if restricted_load:
        dump = dump.replace(b"\\restrict abc123\n", b"").replace(b"\\unrestrict abc123\n", b"")
    scanner = DumpScanner(restricted_load=restricted_load)
    scanner.feed(dump)
    assert scanner.finish().tables == {"public.restored_marker": 3}
    unrestricted = dump.replace(b"\\restrict abc123\n", b"").replace(
        b"\\unrestrict abc123\n", b"")
    with pytest.raises(ArchiveError, match="reads differently with standard_conforming"):
        scan(unrestricted)
