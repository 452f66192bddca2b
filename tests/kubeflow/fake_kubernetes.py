"""A fake Kubernetes API server on 127.0.0.1 for the TrainJob tests.

It answers the calls ``kubeflow/trainjob.py`` makes, as the API server with Kubeflow Trainer
would: create/get/delete ``trainer.kubeflow.org/v1alpha1`` TrainJobs, list pods by JobSet
label, read a pod's log. Each GET of the job advances a scripted life: ``created`` (no status,
pods pending) -> ``running`` (node pods running) -> ``succeeded`` or ``failed``.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JOBS = re.compile(
    r"^/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/([^/]+)/trainjobs(?:/([^/?]+))?"
)
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/?]+)/log)?")


class FakeKubernetes:
    """The server's state: submitted jobs, the scripted phases, the requests seen."""

    def __init__(self, script: list[str], log: str = "") -> None:
        self.script = script
        self.log = log
        self.jobs: dict[str, dict[str, Any]] = {}
        self.gets = 0
        self.deleted: list[str] = []
        self.log_requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeKubernetes:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def phase(self) -> str:
        return self.script[min(self.gets, len(self.script)) - 1] if self.gets else "created"

    def job_with_status(self, job: dict[str, Any]) -> dict[str, Any]:
        conditions = []
        if self.phase() == "succeeded":
            conditions = [{"type": "Complete", "status": "True", "reason": "JobsCompleted"}]
        if self.phase() == "failed":
            conditions = [{"type": "Failed", "status": "True", "reason": "TrainingFailed",
                           "message": "jobset failed: node-1 exited 1"}]  # fmt: skip
        return job | {"status": {"conditions": conditions}} if conditions else job

    def pods(self, name: str) -> list[dict[str, Any]]:
        phase = {"created": "Pending", "running": "Running", "succeeded": "Succeeded"}
        phases = [phase.get(self.phase(), "Running"), phase.get(self.phase(), "Failed")]
        return [{"metadata": {"name": f"{name}-node-0-{i}-abcde", "namespace": "ml",
                              "labels": {"jobset.sigs.k8s.io/jobset-name": name}},
                 "status": {"phase": p}} for i, p in enumerate(phases)]  # fmt: skip

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def reply(self, status: int, body: Any, text: bool = False) -> None:
                data = body.encode() if text else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                match = JOBS.match(self.path)
                length = int(self.headers.get("Content-Length", 0))
                job = json.loads(self.rfile.read(length))
                job["metadata"] |= {"namespace": match.group(1), "uid": "1234"}
                fake.jobs[job["metadata"]["name"]] = job
                self.reply(201, job)

            def do_GET(self) -> None:
                if match := JOBS.match(self.path):
                    fake.gets += 1
                    self.reply(200, fake.job_with_status(fake.jobs[match.group(2)]))
                elif (match := PODS.match(self.path)) and match.group(2):
                    fake.log_requests.append(self.path)
                    self.reply(200, fake.log, text=True)
                elif PODS.match(self.path):
                    name = re.search(r"jobset-name%3D([^&]+)", self.path).group(1)
                    self.reply(200, {"kind": "PodList", "apiVersion": "v1",
                                     "items": fake.pods(name)})  # fmt: skip
                else:
                    self.reply(404, {"kind": "Status", "code": 404})

            def do_DELETE(self) -> None:
                name = JOBS.match(self.path).group(2)
                fake.deleted.append(name)
                self.reply(200, {"kind": "Status", "status": "Success"})

        return Handler
