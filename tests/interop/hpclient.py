"""Drives the PyPI hpfeeds 3.1.0 client against a broker, for hpfriends' interop tests.

Every command prints one JSON object per line on stdout, so the Rust tests can parse it:
  sub HOST PORT IDENT SECRET CHANNEL COUNT   -> {"ready": true}, then COUNT messages
  pub HOST PORT IDENT SECRET CHANNEL HEX...  -> publishes each hex payload, then closes
  error HOST PORT IDENT SECRET ACTION CHANNEL -> {"error": "<broker's text>"}
  aio HOST PORT IDENT SECRET CHANNEL         -> asyncio ClientSession round trip
  stream HOST PORT IDENT SECRET CHANNEL...   -> every message received, until killed
  connect HOST PORT IDENT SECRET             -> {"connected": true} or {"error": "..."}
  store sqlite PATH KEYS_JSON                -> a 3.1.0 sqlite auth store made by 3.1.0's own
                                                Authenticator, holding KEYS_JSON's keys; prints
                                                what 3.1.0 reads back for each
  envkeys KEYS_JSON                          -> what 3.1.0's env Authenticator reads for each
                                                key from this process's HPFEEDS_* variables

With HPFEEDS_CA=PATH in the environment, every command connects over TLS and verifies the
broker's certificate against that CA (3.1.0's `certfile`).
"""
import asyncio
import binascii
import json
import os
import sys

import hpfeeds
from hpfeeds.asyncio import ClientSession


def new(host, port, ident, secret):
    ca = os.environ.get("HPFEEDS_CA")
    if ca:
        return hpfeeds.new(host, int(port), ident, secret, reconnect=False, certfile=ca)
    return hpfeeds.new(host, int(port), ident, secret, reconnect=False)


def connect(host, port, ident, secret):
    # 3.1.0 retries a failed connection forever (even with reconnect=False), logging why:
    # give it 5 s and report what it logged.
    import logging
    import signal

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    logging.getLogger("pyhpfeeds").addHandler(Keep())

    def give_up(*_):
        raise TimeoutError("no connection within 5 s")

    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(5)
    try:
        client = new(host, port, ident, secret)
    except Exception as e:
        out({"error": "%s: %s" % (type(e).__name__, e), "logged": seen})
        return
    signal.alarm(0)
    out({"connected": True})
    client.close()


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def message(ident, channel, payload):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return {"ident": ident, "channel": channel, "payload": binascii.hexlify(bytes(payload)).decode()}


def run_when_live(client, marker_channel, count, wanted=lambda channel: True):
    """The broker acknowledges nothing: publishes a marker to ourselves on MARKER_CHANNEL and
    waits for it, prints "ready" so that the test knows the subscriptions are live, then
    prints the first COUNT messages on channels WANTED accepts."""
    marker = "ready-" + binascii.hexlify(os.urandom(8)).decode()
    client._subscribe()
    client.publish(marker_channel, marker)
    state = {"ready": False, "n": 0}

    def on_message(ident_, channel_, payload):
        if not state["ready"]:
            if bytes(payload) == marker.encode():
                state["ready"] = True
                out({"ready": True})
                if count == 0:
                    client.stop()
            return
        if not wanted(channel_):
            return
        out(message(ident_, channel_, payload))
        state["n"] += 1
        if state["n"] >= count:
            client.stop()

    def on_error(err):
        out({"error": err})
        client.stop()

    client.run(on_message, on_error)
    client.close()


def sub(host, port, ident, secret, channel, count):
    client = new(host, port, ident, secret)
    client.subscribe(channel)
    run_when_live(client, channel, int(count))


def pub(host, port, ident, secret, channel, *payloads):
    client = new(host, port, ident, secret)
    for p in payloads:
        client.publish(channel, binascii.unhexlify(p))
    client.close()


def error(host, port, ident, secret, action, channel):
    client = new(host, port, ident, secret)
    if action == "pub":
        client.publish(channel, b"x")
    elif action == "sub":
        client.subscribe(channel)
        client._subscribe()
    out({"error": client.wait(timeout=10)})
    client.close()


async def aio(host, port, ident, secret, channel):
    async with ClientSession(host, int(port), ident, secret) as client:
        client.subscribe(channel)
        # Give the subscribe a marker round trip before the real message.
        for payload in (b"aio-marker", b"aio-message"):
            client.publish(channel, payload)
            while True:
                ident_, channel_, data = await asyncio.wait_for(client.read(), 10)
                if bytes(data) == payload:
                    break
        out(message(ident_, channel_, data))


def presence(host, port, ident, secret, channel, count):
    """Watches CHANNEL..broker (the marker goes through `sync`)."""
    client = new(host, port, ident, secret)
    client.subscribe(channel + "..broker")
    client.subscribe("sync")
    run_when_live(client, "sync", int(count), lambda c: c == channel + "..broker")


def stream(host, port, ident, secret, *channels):
    client = new(host, port, ident, secret)
    for c in channels:
        client.subscribe(c)
    client.run(lambda i, c, p: out(message(i, c, p)), lambda e: out({"error": e}))


def store(kind, path, keys_json):
    keys = json.loads(keys_json)
    if kind != "sqlite":
        raise SystemExit("unknown store kind " + kind)
    from hpfeeds.broker.auth.sqlite import Authenticator

    auth = Authenticator(path)  # creates 3.1.0's tables
    with auth.sql:
        for k in keys:
            auth.sql.execute(
                "insert into authkeys (owner, ident, secret, pubchans, subchans) values (?, ?, ?, ?, ?)",
                (k["owner"], k["ident"], k["secret"], json.dumps(k["publish"]), json.dumps(k["subscribe"])),
            )
    for k in keys:
        out(auth.get_authkey(k["ident"]))
    auth.sql.close()


def envkeys(keys_json):
    from hpfeeds.broker.auth.env import Authenticator

    auth = Authenticator()
    for k in json.loads(keys_json):
        out(auth.get_authkey(k["ident"]))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "aio":
        asyncio.run(aio(*args))
    else:
        {"sub": sub, "pub": pub, "error": error, "stream": stream, "connect": connect, "presence": presence,
         "store": store, "envkeys": envkeys}[cmd](*args)
