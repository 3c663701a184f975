"""Store URLs: what each form names, which store the write side opens, and clear refusals."""
import pytest

from common import store_url
from common.store_url import MEMORY, SCHEMES, StoreURL, absolute, parse, resolve


@pytest.mark.parametrize("url, path", [
    ("sqlite:////abs/path/events.sqlite3", "/abs/path/events.sqlite3"),  # SQLAlchemy's form
    ("sqlite:///relative/events.sqlite3", "relative/events.sqlite3"),
    ("sqlite:///events.sqlite3", "events.sqlite3"),
    ("sqlite:///:memory:", MEMORY),
    ("sqlite://", MEMORY),
])
def test_sqlite_urls(url, path):
    assert parse(url) == StoreURL("sqlite", path, url)
    assert str(parse(url)) == url


@pytest.mark.parametrize("url, why", [
    ("mysql://db/events", "unknown scheme 'mysql'"),
    ("postgresql://app@db:five/cqrs", "port 'five' is not a number"),
    ("postgresql://app@db:5432/cqrs/events", "the path is one database name"),
    ("postgresql://app@db:5432/cqrs#x", "no fragment"),
    ("SQLITE:////x/events.sqlite3", "unknown scheme 'SQLITE'"),
    ("/data/events.sqlite3", "not a URL"),
    ("", "not a URL"),
    ("sqlite:/x/events.sqlite3", "not a URL"),
    ("sqlite://host/events.sqlite3", "no host"),
    ("sqlite:///", "no file name"),
    ("sqlite:////", "no file name"),
    ("sqlite:////data/", "no file name"),
    ("sqlite:////data/events.sqlite3?mode=ro", "query strings"),
])
def test_unusable_urls_are_refused_naming_the_known_schemes(url, why):
    with pytest.raises(ValueError, match=why) as refused:
        parse(url)
    assert str(refused.value).endswith("known schemes: " + ", ".join(SCHEMES))
    # A PostgreSQL URL is shown as it may be logged (store_url.redact: no password).
    shown = store_url.redact(url) if url.startswith("postgresql:") else url
    assert repr(shown) in str(refused.value)


@pytest.mark.parametrize("url", [
    "postgresql://app@db.internal:5432/cqrs",
    "postgresql://app:s3cret@db.internal:5432/cqrs?sslmode=require",
    "postgresql://app@h1:5432,h2:5433/cqrs",   # libpq's failover list
    "postgresql:///cqrs?host=/var/run/postgresql",  # a Unix socket
    "postgresql://[::1]:5432/cqrs",
    "postgres://app@db/cqrs",                  # libpq's other spelling
])
def test_postgresql_urls_are_handed_to_libpq_as_written(url):
    parsed = parse(url)
    assert (parsed.scheme, parsed.path, parsed.text) == ("postgresql", url, url)


@pytest.mark.parametrize("url, shown", [
    ("postgresql://app:s3cret@db:5432/cqrs?password=other&sslmode=require",
     "postgresql://app@db:5432/cqrs"),
    ("postgresql://app:p%40ss@h1:5432,h2:5433/cqrs", "postgresql://app@h1:5432,h2:5433/cqrs"),
    ("postgresql://db/cqrs", "postgresql://db/cqrs"),
    ("postgresql:///cqrs?host=/tmp&password=x", "postgresql:///cqrs"),
])
def test_a_postgresql_url_is_shown_without_its_password(url, shown):
    parsed = parse(url)
    assert parsed.redacted == shown and str(parsed) == shown and f"{parsed}" == shown
    assert parsed.text == url  # what the engine connects with keeps it


def test_a_sqlite_url_is_shown_as_written():
    url = parse("sqlite:////data/events.sqlite3")
    assert url.redacted == str(url) == "sqlite:////data/events.sqlite3"


def test_a_refused_postgresql_url_is_not_echoed_with_its_password():
    with pytest.raises(ValueError) as refused:
        parse("postgresql://app:s3cret@db:x/cqrs?password=s3cret")
    assert "s3cret" not in str(refused.value)
    assert "'postgresql://app@db:x/cqrs'" in str(refused.value)


def test_the_url_is_a_value():
    url = parse("sqlite:////a/events.sqlite3")
    assert url == parse("sqlite:////a/events.sqlite3") and hash(url) == hash(parse(url.text))
    with pytest.raises(AttributeError):
        url.path = "/b"  # frozen


def test_resolve_prefers_the_store_then_the_data_folder_then_the_runtime_folder():
    given = "sqlite:////elsewhere/mine.sqlite3"
    assert resolve(given, "/data", "/run") == parse(given)
    assert resolve("", "/data", "/run") == parse("sqlite:////data/events.sqlite3")
    assert resolve("", "", "/run") == parse("sqlite:////run/events.sqlite3")
    assert resolve("", "", "").path == "./events.sqlite3"
    # A relative data folder (service mode's `data`) stays relative.
    assert resolve("", "data", "/run") == parse("sqlite:///data/events.sqlite3")


def test_resolve_refuses_a_bad_store_url_even_with_a_data_folder():
    with pytest.raises(ValueError, match="known schemes"):
        resolve("mysql://db", "/data", "")


def test_a_data_folder_is_taken_as_it_is_written():
    """Any folder name that worked as --data-dir keeps working, even one a URL would
    read as a query string."""
    url = resolve("", "/tmp/odd?name#1", "")
    assert url.path == "/tmp/odd?name#1/events.sqlite3"
    assert url == store_url.sqlite_file("/tmp/odd?name#1/events.sqlite3")


def test_absolute_makes_a_relative_file_path_absolute_and_leaves_the_rest(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert absolute(parse("sqlite:///data/events.sqlite3")) == \
        parse(f"sqlite:///{tmp_path}/data/events.sqlite3")
    for kept in ("sqlite:////abs/events.sqlite3", "sqlite://", "sqlite:///:memory:",
                 "postgresql://app@db:5432/cqrs"):
        assert absolute(parse(kept)) == parse(kept)
