"""Writes the seed corpus: real hpfeeds frames as clients and brokers send them.

Run from fuzz/: python3 seeds.py (the files are committed; rerun after changing this).
The session seeds start with a valid auth for nonce 00000000, ident "k", secret "s".
"""
import hashlib
import struct


def frame(op, body):
    return struct.pack(">IB", 5 + len(body), op) + body


def s8(b):
    return bytes([len(b)]) + b


def error(msg):
    return frame(0, msg)


def info(name, nonce):
    return frame(1, s8(name) + nonce)


def auth(ident, secret, nonce=b"\0\0\0\0"):
    return frame(2, s8(ident) + hashlib.sha1(nonce + secret).digest())


def publish(ident, chan, payload):
    return frame(3, s8(ident) + s8(chan) + payload)


def subscribe(ident, chan):
    return frame(4, s8(ident) + chan)


def unsubscribe(ident, chan):
    return frame(5, s8(ident) + chan)


decode = {
    "error": error(b"Authentication failed for k"),
    "info": info(b"hpfriends", b"\x01\x02\x03\x04"),
    "auth": auth(b"k", b"s"),
    "publish": publish(b"k", b"pub", b'{"src_ip": "198.51.100.7", "dport": 445}'),
    "publish-binary": publish(b"k", b"pub", bytes(range(256))),
    "subscribe": subscribe(b"k", b"sub"),
    "unsubscribe": unsubscribe(b"k", b"sub"),
    "pipelined": auth(b"k", b"s") + subscribe(b"k", b"sub") + publish(b"k", b"pub", b"x"),
    "zero-length": b"\0\0\0\0\x03",
    "huge-length": b"\xff\xff\xff\xff\x03",
    "bad-utf8": subscribe(b"k", b"\xff\xfe"),
}
session = {
    "publish": auth(b"k", b"s") + publish(b"k", b"pub", b"hello"),
    "subscribe": auth(b"k", b"s") + subscribe(b"k", b"sub") + unsubscribe(b"k", b"sub"),
    "refusals": auth(b"k", b"s") + publish(b"other", b"pub", b"x") + subscribe(b"k", b"nope"),
    "not-auth-first": publish(b"k", b"pub", b"x"),
    "wrong-secret": auth(b"k", b"wrong") + publish(b"k", b"pub", b"x"),
    "double-auth": auth(b"k", b"s") + auth(b"k", b"s"),
}
for d, seeds in (("corpus/frame_decode", decode), ("corpus/session", session)):
    for name, data in seeds.items():
        with open("%s/%s" % (d, name), "wb") as f:
            # frame_decode takes a split point first
            f.write((b"\x07" if d.endswith("decode") else b"") + data)
