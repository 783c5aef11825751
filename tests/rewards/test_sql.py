"""The text-to-SQL verifier: query extraction, scoring against a reference, and the read-only sandbox under attack."""

import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from tao_ray.rewards import sql
from tao_ray.rewards.sql import (
    SCORE_FAILED,
    SCORE_MATCH,
    SCORE_MISMATCH,
    SCORE_RAN_NO_ROWS,
    SCORE_RAN_WITH_ROWS,
    SqlError,
    extract_query,
    run_readonly,
    sql_reward,
)

EMPLOYEES = [
    (1, "Ada", "eng", 120000),
    (2, "Grace", "eng", 130000),
    (3, "Linus", "ops", 90000),
    (4, "Barbara", "research", 150000),
    (5, "Ken", "ops", 95000),
]
DEPARTMENTS = [(1, "eng"), (2, "ops"), (3, "research"), (4, "legal")]


def make_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT, dept TEXT, salary INTEGER)")
        conn.execute("CREATE TABLE departments (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE INDEX employees_dept ON employees (dept)")  # something for REINDEX to rewrite
        conn.executemany("INSERT INTO employees VALUES (?, ?, ?, ?)", EMPLOYEES)
        conn.executemany("INSERT INTO departments VALUES (?, ?)", DEPARTMENTS)
        conn.commit()
    finally:
        conn.close()
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "company.db")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def fenced(query: str) -> str:
    return f"Here is my answer.\n```sql\n{query}\n```\n"


# --- extract_query ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("```sql\nSELECT name FROM employees\n```", "SELECT name FROM employees"),
        ("```SQL\nSELECT 1;\n```", "SELECT 1"),
        ("Draft:\n```sql\nSELECT 1\n```\nFixed:\n```sql\nSELECT 2\n```\nDone.", "SELECT 2"),
        ("```python\nprint('SELECT 1')\n```\n```sql\nSELECT 3\n```", "SELECT 3"),
        ("```\nSELECT id\nFROM employees;\n```", "SELECT id\nFROM employees"),
        ("```\n-- names\nWITH e AS (SELECT name FROM employees) SELECT * FROM e\n```",
         "-- names\nWITH e AS (SELECT name FROM employees) SELECT * FROM e"),
        ("Here is the query: SELECT name FROM employees WHERE dept = 'eng'",
         "SELECT name FROM employees WHERE dept = 'eng'"),
        ("Here is the query:\nSELECT name\nFROM employees;\n\nIt lists every name.", "SELECT name\nFROM employees"),
        ("I'll select the names: SELECT name FROM employees;", "SELECT name FROM employees"),
        ("Query with a join:\nselect e.name from employees e join departments d on e.dept = d.name",
         "select e.name from employees e join departments d on e.dept = d.name"),
        ("SELECT 1; This returns one row.", "SELECT 1"),
        ("SELECT ';' AS semi;  ", "SELECT ';' AS semi"),
        (
            "Use a CTE: WITH RECURSIVE c(x) AS (SELECT 1) SELECT x FROM c;",
            "WITH RECURSIVE c(x) AS (SELECT 1) SELECT x FROM c",
        ),
        ("```sql\nSELECT 1\n", "SELECT 1"),  # truncated generation: unclosed fence
        ("SELECT name FROM employees  ;  \n", "SELECT name FROM employees"),
    ],
)
def test_extract_query(response, expected):
    assert extract_query(response) == expected


@pytest.mark.parametrize(
    "response",
    [
        "",
        "I do not know the answer.",
        "You could do this with a join, as in the last answer.",
        "```python\nprint(1)\n```",
        "```\nsome text\n```",
        "```sql\n;\n```",
    ],
)
def test_extract_query_finds_nothing(response):
    assert extract_query(response) is None


def test_fenced_block_is_taken_verbatim_so_a_second_statement_is_kept_and_rejected(db):
    response = fenced("SELECT 1; DROP TABLE employees")
    assert extract_query(response) == "SELECT 1; DROP TABLE employees"
    assert sql_reward({}, response, database=str(db)) == SCORE_FAILED


# --- run_readonly -------------------------------------------------------------------------------------------------


def test_run_readonly_returns_rows(db):
    assert run_readonly(db, "SELECT name FROM employees WHERE dept = 'ops' ORDER BY id") == [("Linus",), ("Ken",)]
    assert run_readonly(str(db), "SELECT 1;") == [(1,)]
    assert run_readonly(db, "VALUES (1, 'a')") == [(1, "a")]


def test_max_rows_is_a_cap(db):
    assert run_readonly(db, "SELECT id FROM employees ORDER BY id", max_rows=2) == [(1,), (2,)]
    # An endless generator is cut at max_rows without being run to the end.
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    assert run_readonly(db, endless, max_rows=10) == [(i,) for i in range(1, 11)]
    assert len(run_readonly(db, endless, max_rows=1000)) == 1000


def test_missing_database_is_an_error_and_creates_nothing(tmp_path):
    before = files_under(tmp_path)
    for name in ["missing.db", "missing.db?mode=rwc", "sub/missing.db"]:
        with pytest.raises(SqlError, match="not found"):
            run_readonly(tmp_path / name, "SELECT 1")
    assert files_under(tmp_path) == before


def test_odd_characters_in_the_path_cannot_inject_uri_parameters(tmp_path):
    folder = tmp_path / "we?ird#dir%20&mode=rwc&x=1"
    folder.mkdir()
    path = make_db(folder / "company?mode=rw#x.db")
    before_hash, before_files = digest(path), files_under(tmp_path)
    assert run_readonly(path, "SELECT count(*) FROM employees") == [(5,)]
    with pytest.raises(SqlError):
        run_readonly(path, "WITH x AS (SELECT 1) DELETE FROM employees")
    with pytest.raises(SqlError):
        run_readonly(folder / "absent.db", "SELECT 1")
    assert digest(path) == before_hash
    assert files_under(tmp_path) == before_files


def test_empty_query_is_an_error(db):
    for query in ["", "   ", "-- just a comment", "/* nothing */"]:
        with pytest.raises(SqlError):
            run_readonly(db, query)


# --- scores -------------------------------------------------------------------------------------------------------


def test_match_ignores_row_order_without_top_level_order_by(db):
    record = {"reference_sql": "SELECT name FROM employees WHERE dept = 'eng'"}
    response = fenced("SELECT name FROM employees WHERE dept = 'eng' ORDER BY name DESC")
    assert sql_reward(record, response, database=str(db)) == SCORE_MATCH


def test_reference_with_order_by_requires_the_same_order(db):
    record = {"reference_sql": "SELECT name FROM employees ORDER BY salary DESC"}
    wrong_order = fenced("SELECT name FROM employees ORDER BY salary ASC")
    right_order = "SELECT name FROM employees ORDER BY salary DESC, id;"
    assert sql_reward(record, wrong_order, database=str(db)) == SCORE_MISMATCH
    assert sql_reward(record, right_order, database=str(db)) == SCORE_MATCH


@pytest.mark.parametrize(
    "reference",
    [
        "SELECT name FROM (SELECT name FROM employees ORDER BY salary)",
        "WITH s AS (SELECT name, salary FROM employees ORDER BY salary) SELECT name FROM s",
        "SELECT name FROM employees WHERE name <> 'ORDER BY'",
        "SELECT name FROM employees -- ORDER BY salary",
        "SELECT name FROM employees WHERE salary > (SELECT min(salary) - 1 FROM employees ORDER BY 1)",
    ],
)
def test_order_by_that_is_not_top_level_does_not_impose_order(db, reference):
    response = fenced("SELECT name FROM employees ORDER BY name DESC")
    assert sql_reward({"reference_sql": reference}, response, database=str(db)) == SCORE_MATCH


def test_wrong_result_and_duplicates_count(db):
    record = {"reference_sql": "SELECT dept FROM employees"}
    assert sql_reward(record, fenced("SELECT DISTINCT dept FROM employees"), database=str(db)) == SCORE_MISMATCH
    assert sql_reward(record, fenced("SELECT name FROM employees"), database=str(db)) == SCORE_MISMATCH
    # Column order is part of the result.
    record = {"reference_sql": "SELECT id, name FROM employees"}
    assert sql_reward(record, fenced("SELECT name, id FROM employees"), database=str(db)) == SCORE_MISMATCH


def test_failing_candidate_scores_zero(db):
    record = {"reference_sql": "SELECT name FROM employees"}
    assert sql_reward(record, fenced("SELEC name FRM employees"), database=str(db)) == SCORE_FAILED
    assert sql_reward(record, fenced("SELECT name FROM no_such_table"), database=str(db)) == SCORE_FAILED
    assert sql_reward(record, "I cannot answer that.", database=str(db)) == SCORE_FAILED


def test_without_reference_rows_earn_more_than_an_empty_result(db):
    assert sql_reward({}, fenced("SELECT name FROM employees"), database=str(db)) == SCORE_RAN_WITH_ROWS
    empty = fenced("SELECT name FROM employees WHERE salary < 0")
    assert sql_reward({"reference_sql": None}, empty, database=str(db)) == SCORE_RAN_NO_ROWS
    assert sql_reward({"reference_sql": ""}, empty, database=str(db)) == SCORE_RAN_NO_ROWS
    assert sql_reward({}, fenced("SELEC 1"), database=str(db)) == SCORE_FAILED


@pytest.mark.parametrize(
    ("reference", "candidate", "score"),
    [
        ("SELECT 1", "SELECT 1.0", SCORE_MATCH),
        ("SELECT sum(salary) FROM employees", "SELECT sum(CAST(salary AS REAL)) FROM employees", SCORE_MATCH),
        ("SELECT 0.3", "SELECT 0.1 + 0.2", SCORE_MATCH),
        ("SELECT avg(salary) FROM employees WHERE dept = 'ops'", "SELECT 92500", SCORE_MATCH),
        ("SELECT 1", "SELECT '1'", SCORE_MISMATCH),  # text is not coerced
        ("SELECT 1", "SELECT 1.001", SCORE_MISMATCH),
    ],
)
def test_numbers_compare_by_value(db, reference, candidate, score):
    assert sql_reward({"reference_sql": reference}, fenced(candidate), database=str(db)) == score


def test_failing_reference_is_a_broken_prompt(db):
    with pytest.raises(ValueError, match="reference query failed"):
        sql_reward({"reference_sql": "SELECT nope FROM nowhere"}, fenced("SELECT 1"), database=str(db))
    with pytest.raises(ValueError, match="reference query failed"):
        sql_reward({"reference_sql": "DELETE FROM employees"}, "no query here", database=str(db))


def test_no_matching_result_for_an_empty_reference_and_any_rows(db):
    record = {"reference_sql": "SELECT name FROM departments WHERE id > 100"}
    assert sql_reward(record, fenced("SELECT name FROM departments WHERE 0"), database=str(db)) == SCORE_MATCH
    assert sql_reward(record, fenced("SELECT name FROM departments"), database=str(db)) == SCORE_MISMATCH


# --- hostile queries ----------------------------------------------------------------------------------------------

# {tmp} is the test's directory and {db} the database: nothing may appear in the one or change in the other.
HOSTILE = [
    "DROP TABLE employees",
    "DELETE FROM employees",
    "UPDATE employees SET salary = 0",
    "INSERT INTO employees VALUES (99, 'Eve', 'eng', 1)",
    "REPLACE INTO employees VALUES (1, 'Eve', 'eng', 1)",
    "CREATE TABLE evil (x)",
    "CREATE TEMP TABLE evil AS SELECT 1",
    "CREATE VIEW evil AS SELECT 1",
    "ALTER TABLE employees ADD COLUMN evil INTEGER",
    "ALTER TABLE employees RENAME TO staff",
    "ATTACH DATABASE '{tmp}/attached.db' AS x",
    "ATTACH DATABASE 'file:{tmp}/attached_uri.db?mode=rwc' AS x",
    "DETACH DATABASE main",
    "SELECT load_extension('{tmp}/evil.so')",
    "PRAGMA writable_schema=1",
    "PRAGMA query_only=0",
    "PRAGMA journal_mode=WAL",
    "SELECT 1; DROP TABLE employees",
    "SELECT 1; PRAGMA query_only=0",
    "VACUUM",
    "VACUUM INTO '{tmp}/copy.db'",
    "SELECT writefile('{tmp}/written.txt', 'x')",
    "SELECT readfile('{db}')",
    "SELECT edit('x', 'vi')",
    "SELECT fts3_tokenizer('simple')",  # leaks a pointer; with a second argument it would install one
    "BEGIN",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s",
    "BEGIN; DELETE FROM employees; COMMIT",
    "ANALYZE",
    "REINDEX",
    # WITH passes the leading-keyword gate, so these reach SQLite's authorizer.
    "WITH x AS (SELECT 1) DELETE FROM employees",
    "WITH x AS (SELECT 1) INSERT INTO employees SELECT 99, 'Eve', 'eng', 1 FROM x",
    "WITH x AS (SELECT 1) UPDATE employees SET salary = 0",
    "SELECT * FROM pragma_table_info('employees')",
    # Values past the length limit fail instead of allocating (even when only measured).
    "SELECT zeroblob(100000000)",
    "SELECT length(zeroblob(100000000))",
    "SELECT length(replace(hex(zeroblob(400000)), '0', '00'))",
]
# Expensive queries: they must be stopped by the deadline.
BOMBS = [
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    "SELECT count(*) FROM " + ", ".join(f"employees e{i}" for i in range(16)),
]
@pytest.fixture
def guard(db, tmp_path):
    """Snapshots the database bytes and the directory listing, and checks both after the test body."""
    before_hash, before_files = digest(db), files_under(tmp_path)
    yield
    assert digest(db) == before_hash, "the database file changed"
    assert files_under(tmp_path) == before_files, "a file appeared next to the database"


def _format(query: str, db: Path, tmp_path: Path) -> str:
    return query.format(tmp=tmp_path, db=db)


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_query_is_rejected(db, tmp_path, guard, query):
    query = _format(query, db, tmp_path)
    with pytest.raises(SqlError):
        run_readonly(db, query)
    assert sql_reward({}, fenced(query), database=str(db)) == SCORE_FAILED
    assert sql_reward({"reference_sql": "SELECT 1"}, fenced(query), database=str(db)) == SCORE_FAILED


@pytest.mark.parametrize("query", HOSTILE)
def test_connection_defences_hold_without_the_statement_gate(db, tmp_path, guard, monkeypatch, query):
    # Defence in depth: with the keyword / single-statement pre-check disabled, SQLite itself must still refuse.
    monkeypatch.setattr(sql, "_check_statement", lambda query: None)
    with pytest.raises(SqlError):
        run_readonly(db, _format(query, db, tmp_path))


def test_printf_past_the_length_limit_gives_null_not_a_huge_string(db, guard):
    assert run_readonly(db, "SELECT printf('%.*c', 100000000, 'x')") == [(None,)]


@pytest.mark.parametrize("query", BOMBS)
def test_bombs_stop_at_the_time_limit(db, guard, monkeypatch, query):
    start = time.monotonic()
    with pytest.raises(SqlError, match="time limit"):
        run_readonly(db, query, timeout_s=0.5)
    assert sql_reward({}, fenced(query), database=str(db), timeout_s=0.5) == SCORE_FAILED
    monkeypatch.setattr(sql, "_check_statement", lambda query: None)
    with pytest.raises(SqlError, match="time limit"):
        run_readonly(db, query, timeout_s=0.5)
    assert time.monotonic() - start < 5.0


def test_no_side_files_from_attack_targets(db, tmp_path, guard):
    for query in HOSTILE:
        if "{tmp}" in query:
            with pytest.raises(SqlError):
                run_readonly(db, _format(query, db, tmp_path))
    for name in ["attached.db", "attached_uri.db", "copy.db", "written.txt"]:
        assert not (tmp_path / name).exists()


def test_database_still_answers_after_the_attacks(db, tmp_path):
    for query in HOSTILE:
        with pytest.raises(SqlError):
            run_readonly(db, _format(query, db, tmp_path))
    assert run_readonly(db, "SELECT id, name, dept, salary FROM employees ORDER BY id") == EMPLOYEES
