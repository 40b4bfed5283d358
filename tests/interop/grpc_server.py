"""A stock grpcio server of org.example.Greeter (tests/proto/greeter.proto) and
org.example.Streamer (tests/proto/streams.proto) on 127.0.0.1.

usage: grpc_server.py STUBS_DIR SECONDS
Prints `port N` once listening; serves for SECONDS at most (the test stops it by PID before).
Greet answers `hello <name> from grpcio`; the name `bob` is refused with NOT_FOUND.
Count streams 1..=n, Sum adds a stream, Double doubles each item as it comes.
"""
import sys
import time
from concurrent import futures

import grpc

sys.path.insert(0, sys.argv[1])
import greeter_pb2  # noqa: E402
import greeter_pb2_grpc  # noqa: E402
import streams_pb2  # noqa: E402
import streams_pb2_grpc  # noqa: E402


class Greeter(greeter_pb2_grpc.GreeterServicer):
    def Greet(self, request, context):
        if request.name == "bob":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such user: bob")
        return greeter_pb2.GreetReply(message="hello %s from grpcio" % request.name)


class Streamer(streams_pb2_grpc.StreamerServicer):
    def Count(self, request, context):
        for v in range(1, request.n + 1):
            yield streams_pb2.Number(value=v)

    def Sum(self, request_iterator, context):
        return streams_pb2.Number(value=sum(n.value for n in request_iterator))

    def Double(self, request_iterator, context):
        for n in request_iterator:
            yield streams_pb2.Number(value=n.value * 2)


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
streams_pb2_grpc.add_StreamerServicer_to_server(Streamer(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print("port %d" % port, flush=True)
time.sleep(float(sys.argv[2]))
server.stop(0)
