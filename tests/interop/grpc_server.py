"""A stock grpcio server of org.example.Greeter (tests/proto/greeter.proto) on 127.0.0.1.

usage: grpc_server.py STUBS_DIR SECONDS
Prints `port N` once listening; serves for SECONDS at most (the test stops it by PID before).
Greet answers `hello <name> from grpcio`; the name `bob` is refused with NOT_FOUND.
"""
import sys
import time
from concurrent import futures

import grpc

sys.path.insert(0, sys.argv[1])
import greeter_pb2  # noqa: E402
import greeter_pb2_grpc  # noqa: E402


class Greeter(greeter_pb2_grpc.GreeterServicer):
    def Greet(self, request, context):
        if request.name == "bob":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such user: bob")
        return greeter_pb2.GreetReply(message="hello %s from grpcio" % request.name)


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print("port %d" % port, flush=True)
time.sleep(float(sys.argv[2]))
server.stop(0)
