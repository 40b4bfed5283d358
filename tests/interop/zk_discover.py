"""Finds a provider in ZooKeeper with a stock client, dubbo-ssl-python's ZkRegister.

Usage: zk_discover.py HOSTS INTERFACE VERSION

Prints one JSON object: the host ZkRegister picked, every host it matched for the
interface and version (no group), and, for every provider node it parsed, the host and
the keys it read. Exits non-zero (with the error on stderr) when it finds none.
"""

import json
import sys

import dubbo_ssl.client as client
from dubbo_ssl.client import ZkRegister

# ZkRegister writes a consumer node naming this machine's address, found by routing a UDP
# socket towards a public address; keep the probe on the loopback interface instead.
client.get_ip = lambda: "127.0.0.1"


def main():
    hosts, interface, version = sys.argv[1:4]
    registry = ZkRegister(hosts, application_name="interop-probe")
    try:
        picked = registry.get_provider_host(interface, version, None)
        providers = registry._raw_providers.get(interface, [])
        print(json.dumps({
            "picked": picked,
            "hosts": registry.hosts.get((interface, version, None), []),
            "providers": [{"host": p["host"], "fields": p["fields"]} for p in providers],
        }, sort_keys=True))
    finally:
        registry.close()


if __name__ == "__main__":
    main()
