"""A stand-in for the Lambda Runtime API on 127.0.0.1 (AWS itself cannot exist here), as AWS documents
it (AWS Lambda developer guide, "Using the Lambda runtime API for custom runtimes"): the runtime
interface client in the image asks for the next invocation, and posts its response or error."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from http.server import ThreadingHTTPServer

from tests.servers import JsonHandler

PREFIX = "/2018-06-01/runtime"


class RuntimeApi:
    def __init__(self, port: int) -> None:
        self.events: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.results: dict[str, queue.Queue[tuple[str, object]]] = {}
        self.init_errors: list[object] = []
        api = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path != f"{PREFIX}/invocation/next":
                    return self.answer(404, {"errorType": "NotFound"})
                request_id, event = api.events.get()  # long-polls, as the real API does
                return self.answer(
                    200,
                    event,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": "9999999999999",
                        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:mhist",
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                    },
                )

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.removeprefix(PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_errors.append(json.loads(body or b"null"))
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    api.results.setdefault(parts[1], queue.Queue()).put((parts[2], json.loads(body or b"null")))
                else:
                    return self.answer(404, {"errorType": "NotFound"})
                return self.answer(202, {"status": "OK"})

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, event: dict, timeout_s: float = 120) -> tuple[str, object]:
        """("response" or "error", its document) for one event, as Lambda's Invoke would give it."""
        request_id = str(uuid.uuid4())
        results = self.results.setdefault(request_id, queue.Queue())
        self.events.put((request_id, event))
        return results.get(timeout=timeout_s)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
