"""The storage tests run on both databases: a SQLite file, and the PostgreSQL on 127.0.0.1
where one runs (the `database_url` fixture of tests/conftest.py)."""


def pytest_generate_tests(metafunc):
    if "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
