"""Asks a coordinator for its health and, by server reflection, its services,
as any standard gRPC client would (grpcio, without jagged's proto file).

Usage: grpc_check.py HOST:PORT
Prints one JSON object: health of the server ("") and of each named service,
the services reflection lists, and the methods of jagged.v1.WorkerService from
the file descriptor reflection returns for it.
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def main():
    channel = grpc.insecure_channel(sys.argv[1])
    grpc.channel_ready_future(channel).result(timeout=30)
    health = health_pb2_grpc.HealthStub(channel)
    status = {}
    for service in ["", "jagged.v1.WorkerService", "jagged.v1.AdminService"]:
        r = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        status[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
    try:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        status["no.such.Service"] = "answered"
    except grpc.RpcError as e:
        status["no.such.Service"] = e.code().name

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="jagged.v1.WorkerService"),
    ]
    answers = list(stub.ServerReflectionInfo(iter(requests), timeout=10))
    services = sorted(s.name for s in answers[0].list_services_response.service)
    methods = []
    for raw in answers[1].file_descriptor_response.file_descriptor_proto:
        fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        for s in fd.service:
            if f"{fd.package}.{s.name}" == "jagged.v1.WorkerService":
                methods = sorted(m.name for m in s.method)
    print(json.dumps({"health": status, "services": services, "worker_methods": methods}))


if __name__ == "__main__":
    main()
