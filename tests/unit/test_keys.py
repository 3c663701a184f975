"""cqrs-keys: key pairs per role, never overwritten by accident."""
import os

from common import keys


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_a_second_run_refuses_to_replace_the_keys(tmp_path, capsys):
    assert keys.main([str(tmp_path), "server"]) == 0
    secret = read(tmp_path / "server.key_secret")
    assert keys.main([str(tmp_path), "server"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert read(tmp_path / "server.key_secret") == secret
    assert keys.main([str(tmp_path), "server", "--force"]) == 0
    assert read(tmp_path / "server.key_secret") != secret


def test_a_peer_key_lands_in_its_roles_folder(tmp_path):
    for role, folder in (("writer", "writers"), ("reader", "readers"), ("client", "clients")):
        assert keys.main([str(tmp_path), f"a-{role}", "--role", role]) == 0
        assert os.listdir(tmp_path / folder) == [f"a-{role}.key"]
        assert read(tmp_path / folder / f"a-{role}.key") == read(tmp_path / f"a-{role}.key")
    assert os.stat(tmp_path / "a-writer.key_secret").st_mode & 0o077 == 0
