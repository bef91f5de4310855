"""kunci agent client for Python: the standard library's http.client over AF_UNIX.

`python3 client.py PROFILE` prints one JSON line; the functions are what an application copies.
"""
import http.client
import json
import os
import socket
import sys
import urllib.parse


class _AgentConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=40):
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._socket_path)


def kunci_agent(method, path, body=None, accept="application/json"):
    socket_path = os.environ.get("KUNCI_AGENT") or os.path.join(
        os.environ.get("XDG_RUNTIME_DIR", ""), "kunci", "agent.sock")
    conn = _AgentConnection(socket_path)
    try:
        conn.request(method, path, body=body, headers={"Accept": accept})
        response = conn.getresponse()
        text = response.read().decode()
    finally:
        conn.close()
    if response.status != 200:
        # error: configuration, reauthenticate, rate_limited (see until), unavailable or protocol
        error = json.loads(text)
        raise RuntimeError(f"kunci agent: {error['error']}: {error['message']}")
    return text


def kunci_token(profile):
    """The token of a profile (cached and refreshed by the agent)."""
    return json.loads(kunci_agent("GET", "/v1/token/" + urllib.parse.quote(profile)))["token"]


def kunci_header(profile):
    """The ready-made Authorization value: "Bearer <token>" (or "Token <token>")."""
    return kunci_agent("GET", "/v1/header/" + urllib.parse.quote(profile), accept="text/plain")


def kunci_invalidate(profile, token):
    """After the API answered 401 for token: one refresh, however many workers report it."""
    answer = kunci_agent("POST", "/v1/invalidate/" + urllib.parse.quote(profile), body=token)
    return json.loads(answer)["invalidated"]


if __name__ == "__main__":
    profile = sys.argv[1] if len(sys.argv) > 1 else "stamps"
    token = kunci_token(profile)
    header = kunci_header(profile)
    invalidated = kunci_invalidate(profile, token)
    print(json.dumps({"token": token, "header": header, "invalidated": invalidated,
                      "after": kunci_token(profile)}))
