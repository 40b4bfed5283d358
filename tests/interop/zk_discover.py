"""Finds a provider in ZooKeeper with a stock client, dubbo-ssl-python's ZkRegister.

Usage: zk_discover.py HOSTS INTERFACE VERSION [NAME]

Prints one JSON object: the host ZkRegister picked, every host it matched for the
interface and version (no group), and, for every provider node it parsed, the host and
the keys it read. With NAME it then calls `greet(NAME)` through its DubboClient on the
provider ZkRegister picks (hessian2, group null, as the client sends it after a ZooKeeper
lookup) and adds the answer as "called". Exits non-zero (with the error on stderr) when it
finds none or the call fails.
"""

import json
import sys

import dubbo_ssl.client as client
from dubbo_ssl.client import DubboClient, ZkRegister

# ZkRegister writes a consumer node naming this machine's address, found by routing a UDP
# socket towards a public address; keep the probe on the loopback interface instead.
client.get_ip = lambda: "127.0.0.1"


def main():
    hosts, interface, version = sys.argv[1:4]
    name = sys.argv[4] if len(sys.argv) > 4 else None
    registry = ZkRegister(hosts, application_name="interop-probe")
    try:
        picked = registry.get_provider_host(interface, version, None)
        providers = registry._raw_providers.get(interface, [])
        found = {
            "picked": picked,
            "hosts": registry.hosts.get((interface, version, None), []),
            "providers": [{"host": p["host"], "fields": p["fields"]} for p in providers],
        }
        if name is not None:
            client = DubboClient(interface=interface, group=None, version=version,
                                 dubbo_version="2.0.2", zk_register=registry)
            found["called"] = client.call("greet", [name], timeout=5)
        print(json.dumps(found, sort_keys=True))
    finally:
        registry.close()


if __name__ == "__main__":
    main()
