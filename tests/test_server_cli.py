"""`remem keys ...` and `remem serve` as commands: keys work while a server runs; a second process on the same
data directory is refused with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from remem.server.auth import KeyStore
from test_server_support import free_port


def remem(*args: str, home: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REMEM_HOME": str(home), "REMEM_EMBEDDER": "fake"}
    return subprocess.run([sys.executable, "-m", "remem.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False, **kw)  # type: ignore[call-overload]


def test_serve_keys_and_the_one_process_lock(tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = remem("keys", "create", "--tenant", "acme", "--label", "laptop", home=home)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("rk_")
    port = free_port()
    env = {**os.environ, "REMEM_HOME": str(home), "REMEM_EMBEDDER": "fake"}
    server = subprocess.Popen([sys.executable, "-m", "remem.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/v1/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {key}"}
        r = httpx.post(url + "/v1/users/alice/memories", json={"messages": "hello there"}, headers=headers)
        assert r.status_code == 200
        # A second process on the same directory: refused, clearly, with a non-zero exit.
        second = remem("serve", "--port", str(free_port()), home=home)
        assert second.returncode == 1
        assert "already open in another process" in second.stderr and "one process per data directory" in (
            " ".join(second.stderr.split()))
        # Keys are managed while the server runs; a revocation applies at once.
        listed = remem("keys", "list", home=home)
        key_id = key.split("_")[1]
        assert key_id in listed.stdout and "acme" in listed.stdout and key not in listed.stdout
        assert remem("keys", "revoke", key_id, home=home).returncode == 0
        assert httpx.get(url + "/v1/users", headers=headers).status_code == 401
        assert remem("keys", "revoke", "nope", home=home).returncode == 1
        assert remem("keys", "create", "--tenant", "Not:Valid", home=home).returncode == 2
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert "hello there" not in err + out  # no memory text in the logs
    assert '"route": "/v1/users/{user_id}/memories"' in err
    assert [k.role for k in KeyStore.for_home(home).list()] == ["tenant"]
