"""Payload validation of the directory context: every error text, in the protocol's order."""
import pytest

from write_side.directory import payload_errors
from write_side.validation import is_email, is_whole

CREATE = ("name", "email", "age")


@pytest.mark.parametrize("payload, errors", [
    ({"name": "Ann", "email": "ann@example.com"}, []),
    ({}, ["Name is required", "Email is required"]),
    ({"name": "  ", "email": ""}, ["Name is required", "Email is required"]),
    ({"name": 5, "email": "ann@example.com"}, ["Name is required"]),
    ({"name": "Ann", "email": "nope"}, ["Email is invalid"]),
    ({"name": "Ann", "email": 7}, ["Email is invalid"]),
    ({"name": "Ann", "email": "a@b"}, ["Email is invalid"]),
    ({"name": "Ann", "email": "a b@c.de"}, ["Email is invalid"]),
    ({"name": "Ann", "email": "ann@example.com", "age": -1}, ["Age must be a non-negative integer"]),
    ({"name": "Ann", "email": "ann@example.com", "age": 1.5}, ["Age must be a non-negative integer"]),
    ({"name": "Ann", "email": "ann@example.com", "age": True}, ["Age must be a non-negative integer"]),
    ({"name": "Ann", "email": "ann@example.com", "age": "30"}, ["Age must be a non-negative integer"]),
    ({"name": "Ann", "email": "ann@example.com", "age": 17}, ["User must be 18 or older"]),
    ({"name": "Ann", "email": "ann@example.com", "age": 18}, []),
    ({"name": "Ann", "email": "ann@example.com", "age": 30.0}, []),
    ({"email": "x", "age": 3}, ["Name is required", "Email is invalid", "User must be 18 or older"]),
])
def test_create_user_payload(payload, errors):
    assert payload_errors(payload, CREATE) == errors


def test_id_comes_last_and_only_where_asked():
    assert payload_errors({}, ("name", "id")) == ["Name is required", "Id is required"]
    assert payload_errors({"id": " "}, ("id",)) == ["Id is required"]
    assert payload_errors({"id": "u1"}, ("id",)) == []


def test_email_shape():
    assert is_email("john.doe@example.co.uk")
    assert not is_email("john@example.")
    assert not is_email("@example.com")


def test_whole_numbers():
    assert is_whole(3) and is_whole(3.0)
    assert not is_whole(False) and not is_whole(2.5) and not is_whole("3")
