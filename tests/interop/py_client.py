"""Calls the Rust provider's org.example.Interop:1.0.0 with the stock dubbo-ssl-python client.

usage: py_client.py PORT
Prints one `ok <call>` line per call that returned what the service computes; exits 1 at the
first wrong answer.
"""
import sys

from dubbo_ssl.client import DubboClient
from dubbo_ssl.codec.encoder import Object

port = sys.argv[1]
c = DubboClient(interface="org.example.Interop", group="", version="1.0.0",
                dubbo_version="2.0.2", host="127.0.0.1:" + port, verify=None)


def check(name, got, want):
    if got != want:
        print("FAIL %s: got %r, want %r" % (name, got, want), flush=True)
        sys.exit(1)
    print("ok " + name, flush=True)


check("greet", c.call("greet", ["ann"], timeout=5), "hello ann")
check("add", c.call("add", [2, 40], timeout=5), 42)
check("total", c.call("total", [[1, 2, 3, 10000000000]], timeout=5), 10000000006)
p = c.call("older", [Object("org.example.Person", {"name": "ann", "age": 41})], timeout=5)
check("older", (p["name"], p["age"]), ("ann", 42))
try:
    c.call("check", ["bob"], timeout=5)
    print("FAIL check: no error", flush=True)
    sys.exit(1)
except Exception as e:  # the client raises DubboResponseException
    check("check", "no such user: bob" in str(e), True)
