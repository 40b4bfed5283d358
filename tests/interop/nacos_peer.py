"""Reads and writes Dubbo instances in Nacos with the stock client nacos-sdk-python 0.1.17.

usage:
  nacos_peer.py list SERVER NAMESPACE GROUP SERVICE
      prints one JSON list: every instance of SERVICE (ip, port, healthy, metadata) as the
      client's list_naming_instance returns it.
  nacos_peer.py register SERVER NAMESPACE GROUP SERVICE IP PORT METADATA_JSON SECONDS
      registers an ephemeral instance with the client's own heartbeats, prints `registered`,
      keeps it alive for SECONDS (or until standard input closes), then removes it.
"""
import json
import sys
import threading
import time

import nacos


def main():
    mode, server, namespace, group, service = sys.argv[1:6]
    client = nacos.NacosClient(server, namespace=namespace)
    if mode == "list":
        found = client.list_naming_instance(service, group_name=group)
        hosts = found.get("hosts", []) if isinstance(found, dict) else []
        print(json.dumps([
            {"ip": h.get("ip"), "port": h.get("port"), "healthy": h.get("healthy"),
             "metadata": h.get("metadata", {})}
            for h in hosts
        ], sort_keys=True))
    elif mode == "register":
        ip, port, metadata, seconds = sys.argv[6], int(sys.argv[7]), sys.argv[8], float(sys.argv[9])
        ok = client.add_naming_instance(service, ip, port, metadata=json.loads(metadata),
                                        group_name=group, ephemeral=True, heartbeat_interval=1)
        if not ok:
            print("FAIL the server refused the instance", flush=True)
            sys.exit(1)
        print("registered", flush=True)
        closed = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
        closed.wait(seconds)
        client.remove_naming_instance(service, ip, port, group_name=group, ephemeral=True)
        print("removed", flush=True)
        # The heartbeat threads are not daemons: leave without waiting for them.
        sys.stdout.flush()
        import os
        os._exit(0)
    else:
        print("FAIL unknown mode " + mode)
        sys.exit(2)


if __name__ == "__main__":
    main()
