"""Text-to-SQL verifier: run the model's query in a read-only SQLite sandbox and compare it with a reference query.

In:  a prompt record (optionally with "reference_sql"), the model's response text, and the path of a SQLite database.
Out: a score in [0, 1] (see the SCORE_* constants); `run_readonly` alone gives the rows of one read-only statement.

The query comes from a policy being trained, so it is treated as hostile: a reward that lets it write to the database
would corrupt every later score, and one that lets it run forever would stall the rollout. `run_readonly` therefore
stacks independent defences, each enough on its own for most attacks: a statement gate (one SELECT/WITH/VALUES
statement), a read-only URI open, PRAGMA query_only, an authorizer that allows reads only, no extension loading,
size limits and a deadline enforced by a progress handler.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

# Scores. Partial credit keeps a learning signal before the policy writes correct queries: a query that runs beats
# one that does not, and (without a reference) one that returns rows beats one that returns nothing.
SCORE_FAILED = 0.0  # nothing that looks like SQL, or the query was rejected / errored / timed out
SCORE_RAN_NO_ROWS = 0.25  # no reference: the query ran but returned no rows
SCORE_RAN_WITH_ROWS = 0.5  # no reference: the query ran and returned at least one row
SCORE_MISMATCH = 0.25  # with a reference: the query ran but its result differs from the reference's
SCORE_MATCH = 1.0  # with a reference: same result as the reference

# Floats are rounded to this many decimals before comparing, so 0.1 + 0.2 matches 0.3.
FLOAT_DECIMALS = 6

# Progress handler granularity (VM instructions between deadline checks): small enough to stop within milliseconds,
# large enough that the Python callback costs nothing measurable.
_PROGRESS_STEPS = 1000
# Largest string/blob a query may build (zeroblob(1e9), printf padding, group_concat bombs fail instead of allocating).
_MAX_VALUE_BYTES = 1_000_000
# Budget for everything fetched, so max_rows rows of wide values cannot exhaust memory either.
_MAX_RESULT_BYTES = 16_000_000

# What a read-only query legitimately needs. Everything else (writes, DDL, PRAGMA, ATTACH, transactions, ...) is denied.
_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
)
# Functions that reach outside the database or leak memory addresses when they are compiled in.
_DENIED_FUNCTIONS = frozenset(
    {
        "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "fsdir", "zipfile", "lsmode",
        "sqlar_compress", "sqlar_uncompress", "shell_add_schema", "shell_escape_crnl", "shell_module_schema",
    }
)
# Virtual tables with the same reach (the shell's file-system tables, raw page access).
_DENIED_TABLES = frozenset({"fsdir", "zipfile", "sqlite_dbpage", "sqlite_dbdata", "sqlite_dbptr"})

_LEADING_NOISE = r"(?:\s+|--[^\n]*|/\*.*?\*/)*"  # whitespace and comments before the first keyword
_FIRST_WORD_RE = re.compile(_LEADING_NOISE + r"([A-Za-z]+)", re.DOTALL)
_ONLY_NOISE_RE = re.compile(_LEADING_NOISE + r"(?:/\*.*)?", re.DOTALL)  # an unclosed /* at the end is a comment too
_READ_KEYWORDS = frozenset({"SELECT", "WITH", "VALUES"})

_FENCE_RE = re.compile(r"```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)```", re.DOTALL)
_SQL_LABELS = frozenset({"sql", "sqlite", "sqlite3", "mysql", "postgres", "postgresql", "psql"})
_SQL_STATEMENT_RE = re.compile(
    _LEADING_NOISE + r"(?:SELECT|WITH|VALUES|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|ATTACH|DETACH"
    r"|VACUUM|BEGIN|COMMIT|EXPLAIN)\b",
    re.IGNORECASE | re.DOTALL,
)
# Where a query starts in prose. WITH must look like a CTE ("WITH name AS (") so "a query with a join" is not taken.
_QUERY_START = (
    r"\b(?:SELECT\b|WITH\s+(?:RECURSIVE\s+)?[\w\"`\[\]]+\s*(?:\([^)]*\))?\s*AS\s*(?:NOT\s+)?(?:MATERIALIZED\s+)?\()"
)
_QUERY_START_UPPER_RE = re.compile(_QUERY_START)
_QUERY_START_LINE_RE = re.compile(r"^[ \t]*" + _QUERY_START, re.IGNORECASE | re.MULTILINE)
_QUERY_START_ANY_RE = re.compile(_QUERY_START, re.IGNORECASE)
_PLAIN_END_RE = re.compile(r"\n[ \t]*\n|```")

# Tokens for finding a top-level ORDER BY: literals, quoted names and comments are skipped whole.
_TOKEN_RE = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|--[^\n]*|/\*.*?(?:\*/|$)|[()]|\w+|.", re.DOTALL
)


class SqlError(Exception):
    """A query was rejected or failed; the message is a short reason."""


# --- extraction ---------------------------------------------------------------------------------------------------


def _clean(sql: str) -> str | None:
    sql = sql.strip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    return sql or None


def _first_statement_end(text: str) -> int | None:
    """Index just past the semicolon ending the first complete statement (semicolons in literals do not count)."""
    for match in re.finditer(";", text):
        if sqlite3.complete_statement(text[: match.end()]):
            return match.end()
    return None


def _from_fences(response: str) -> str | None:
    labelled, unlabelled = [], []
    for match in _FENCE_RE.finditer(response):
        lang, body = match.group("lang").lower(), match.group("body")
        if lang in _SQL_LABELS:
            labelled.append(body)
        elif not lang and _SQL_STATEMENT_RE.match(body):
            unlabelled.append(body)
    # The last block wins: models often show a draft first and the corrected query last.
    for body in [*reversed(labelled), *reversed(unlabelled)]:
        query = _clean(body)
        if query:
            return query
    return None


def _from_prose(response: str) -> str | None:
    # Prefer an upper-case SELECT, then one at a line start, so "I'll select the rows: SELECT ..." picks the query.
    for pattern in (_QUERY_START_UPPER_RE, _QUERY_START_LINE_RE, _QUERY_START_ANY_RE):
        start = pattern.search(response)
        if start:
            break
    else:
        return None
    text = response[start.start() :].lstrip()
    end = _PLAIN_END_RE.search(text)
    text = text[: end.start()] if end else text
    # Prose often continues on the same line after the query ("...; This returns ..."): keep the first statement only.
    stop = _first_statement_end(text)
    return _clean(text[:stop] if stop else text)


def extract_query(response: str) -> str | None:
    """The SQL in a model response: the last ```sql block, else the last unlabelled ``` block that starts like SQL,
    else plain text from the first SELECT / WITH up to a blank line, a fence or the end of the first statement.
    A trailing semicolon is removed. None when nothing looks like SQL."""
    return _from_fences(response) or _from_prose(response)


# --- sandboxed execution ------------------------------------------------------------------------------------------


def _check_statement(query: str) -> None:
    """Reject anything but exactly one SELECT / WITH / VALUES statement, before SQLite even parses it."""
    end = _first_statement_end(query)
    if end is not None and not _ONLY_NOISE_RE.fullmatch(query[end:]):
        raise SqlError("only one statement is allowed")
    first = _FIRST_WORD_RE.match(query)
    if first is None:
        raise SqlError("empty query")
    if first.group(1).upper() not in _READ_KEYWORDS:
        raise SqlError(f"only SELECT queries are allowed, got {first.group(1).upper()}")


def _authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    # Called by SQLite while compiling the statement, for every table, column, function, etc. it touches.
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_READ and (arg1 or "").lower() in _DENIED_TABLES:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    # mode=ro never creates a file; quoting keeps '?', '#' or '%' in the path from being read as URI parameters.
    uri = f"file:{quote(str(path))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout_s)
    try:
        conn.execute("PRAGMA query_only = ON")  # before the authorizer, which denies every PRAGMA
        if hasattr(conn, "enable_load_extension"):
            conn.enable_load_extension(False)
        if hasattr(conn, "setlimit"):  # Python >= 3.11
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _MAX_VALUE_BYTES)
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.set_authorizer(_authorize)
    except BaseException:
        conn.close()
        raise
    return conn


def _size(row: tuple) -> int:
    return sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in row)


def run_readonly(
    database: str | os.PathLike, query: str, *, timeout_s: float = 2.0, max_rows: int = 1000
) -> list[tuple]:
    """Execute one read-only statement and return at most `max_rows` rows (a cap, not an error).

    Raises SqlError for a missing database, a rejected or failing statement, or when `timeout_s` runs out.
    """
    _check_statement(query)
    path = Path(os.fspath(database)).resolve()
    if not path.is_file():
        raise SqlError(f"database not found: {path}")
    deadline = time.monotonic() + timeout_s
    timed_out = False

    def past_deadline() -> bool:
        nonlocal timed_out
        timed_out = time.monotonic() > deadline
        return timed_out  # a true value makes SQLite interrupt the statement

    try:
        conn = _connect(path, timeout_s)
    except sqlite3.Error as err:
        raise SqlError(f"cannot open database: {err}") from err
    try:
        # Installed before execute: WITH RECURSIVE bombs and cross joins burn their time while stepping.
        conn.set_progress_handler(past_deadline, _PROGRESS_STEPS)
        cursor = conn.execute(query)
        rows: list[tuple] = []
        fetched = 0
        while len(rows) < max_rows:
            batch = cursor.fetchmany(min(max_rows - len(rows), 100))
            if not batch:
                break
            fetched += sum(_size(row) for row in batch)
            if fetched > _MAX_RESULT_BYTES:
                raise SqlError(f"result larger than {_MAX_RESULT_BYTES} bytes")
            rows.extend(batch)
        return rows
    # sqlite3.Warning: Python 3.10 reports a second statement with it rather than with ProgrammingError.
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as err:
        if timed_out:
            raise SqlError(f"time limit of {timeout_s}s exceeded") from err
        raise SqlError(f"{type(err).__name__}: {err}") from err
    finally:
        conn.close()


# --- scoring ------------------------------------------------------------------------------------------------------


def _has_top_level_order_by(query: str) -> bool:
    """True when ORDER BY applies to the whole result, not to a subquery, CTE, window or aggregate."""
    depth, previous = 0, ""
    for token in _TOKEN_RE.findall(query):
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif token.isspace() or token.startswith(("--", "/*")):
            continue
        elif depth == 0 and previous == "ORDER" and token.upper() == "BY":
            return True
        previous = token.upper() if depth == 0 else ""
    return False


def _normalize(value: Any) -> Any:
    # Floats are rounded so arithmetic noise does not matter; 1 == 1.0 and hash(1) == hash(1.0) in Python, so an
    # integer and an equal float count as the same value in both list and multiset comparisons. Text is not coerced:
    # '1' and 1 differ, as they do in SQL.
    return round(value, FLOAT_DECIMALS) if isinstance(value, float) else value


def _normalize_rows(rows: list[tuple]) -> list[tuple]:
    return [tuple(_normalize(v) for v in row) for row in rows]


def results_match(reference_rows: list[tuple], rows: list[tuple], *, ordered: bool) -> bool:
    """Compare as multisets of rows (duplicates count), or as sequences when `ordered`. Column order always counts."""
    expected, actual = _normalize_rows(reference_rows), _normalize_rows(rows)
    return expected == actual if ordered else Counter(expected) == Counter(actual)


def sql_reward(
    record: dict[str, Any], response: str, *, database: str | os.PathLike, timeout_s: float = 2.0, max_rows: int = 1000
) -> float:
    """Score one response: SCORE_MATCH / SCORE_MISMATCH against record["reference_sql"] when it has one, else
    SCORE_RAN_WITH_ROWS / SCORE_RAN_NO_ROWS; SCORE_FAILED when no query is found or it fails.

    A failing reference raises ValueError: the prompt is broken, not the response. Both queries are capped at
    `max_rows`, so results longer than that are compared on their first `max_rows` rows only.
    """
    reference = (record.get("reference_sql") or "").strip()
    reference_rows = None
    if reference:
        # Run first, so a broken prompt is reported whatever the response is.
        try:
            reference_rows = run_readonly(database, reference, timeout_s=timeout_s, max_rows=max_rows)
        except SqlError as err:
            raise ValueError(f"reference query failed: {err}") from err
    query = extract_query(response)
    if query is None:
        return SCORE_FAILED
    try:
        rows = run_readonly(database, query, timeout_s=timeout_s, max_rows=max_rows)
    except SqlError:
        return SCORE_FAILED
    if reference_rows is None:
        return SCORE_RAN_WITH_ROWS if rows else SCORE_RAN_NO_ROWS
    ordered = _has_top_level_order_by(reference)
    return SCORE_MATCH if results_match(reference_rows, rows, ordered=ordered) else SCORE_MISMATCH
