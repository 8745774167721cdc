"""A minimal OTLP/HTTP trace receiver for the integration tests: decodes
each POST /v1/traces body with the official protobuf definitions
(the opentelemetry-proto package) and prints every span as one JSON line
on standard output. The first line is the port it listens on (127.0.0.1).
A body that does not decode is answered 400 and reported as a line with
"error"; anything but POST /v1/traces with application/x-protobuf, 404/415.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status):
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces":
            return self.answer(404)
        if self.headers.get("Content-Type") != "application/x-protobuf":
            return self.answer(415)
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as e:
            print(json.dumps({"error": str(e)}), flush=True)
            return self.answer(400)
        for resource_spans in request.resource_spans:
            resource = {kv.key: value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    print(json.dumps({
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": trace_pb2.Span.SpanKind.Name(span.kind),
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                        "attributes": {kv.key: value(kv.value) for kv in span.attributes},
                        "status": span.status.code,
                        "status_message": span.status.message,
                        "scope": scope_spans.scope.name,
                        "resource": resource,
                        "authorization": self.headers.get("Authorization"),
                    }), flush=True)
        self.answer(200)


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
