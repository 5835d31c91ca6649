"""A local Ray cluster for tests and benchmarks: a head node and one worker node started with ``ray start``
on this machine, each with its own CPUs (as two machines would have), each in its own session so that
stopping them stops exactly this cluster's processes (Serve's HAProxy too, which outlives its node otherwise).
Token authentication is off: the cluster listens on loopback only and lives as long as its owner."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
WAIT_S = 90
STOP_S = 60  # a node drains before it exits: tens of seconds


class LocalRayCluster:
    """``start()`` a head and a worker with ``cpus`` CPUs each; ``address`` for ``ray.init`` / ``--address``;
    ``env`` for the processes that connect (the repository on PYTHONPATH, no token); ``stop()``."""

    def __init__(self, cpus: int = 1, root: str | os.PathLike[str] | None = None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.cpus = cpus
        self.temp = tempfile.mkdtemp(prefix="rayc", dir="/tmp")  # short: Ray's socket paths must stay short
        path = os.pathsep.join(filter(None, (str(root) if root else None, os.environ.get("PYTHONPATH"))))
        self.env = {**os.environ, **ENV, **({"PYTHONPATH": path} if path else {})}
        self.nodes: list[subprocess.Popen] = []

    def _ray(self, *args: str) -> list[str]:
        return [str(Path(sys.executable).with_name("ray")), *args]

    def _node(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self._ray("start", "--block", "--num-cpus", str(self.cpus), "--disable-usage-stats",
                                          *args), env=self.env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> LocalRayCluster:
        self.nodes.append(self._node("--head", "--port", str(self.port), "--include-dashboard=false",
                                     "--temp-dir", self.temp))
        self._wait_for_nodes(1)
        self.nodes.append(self._node("--address", self.address, "--resources", '{"second_node": 1}'))
        self._wait_for_nodes(2)
        return self

    def _wait_for_nodes(self, count: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            status = subprocess.run(self._ray("status", "--address", self.address), env=self.env,
                                    capture_output=True, text=True)
            if status.returncode == 0 and status.stdout.count(" node_") >= count:
                return
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"the local Ray cluster did not reach {count} nodes in {WAIT_S} s")

    def stop(self) -> None:
        for node in reversed(self.nodes):  # the worker first, then the head
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
                try:
                    node.wait(timeout=STOP_S)
                except subprocess.TimeoutExpired:
                    os.killpg(node.pid, signal.SIGKILL)
                    node.wait()
            for pid in _session(node.pid):  # what left the node's process group: Serve's HAProxy
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.nodes = []
        shutil.rmtree(self.temp, ignore_errors=True)


def _session(sid: int) -> list[int]:
    """The live processes of session ``sid`` on this machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def replica_pids(app: str, deployment: str) -> list[int]:
    """The processes on this machine of Serve application ``app``'s replicas of ``deployment`` (Ray titles them
    ``ray::ServeReplica:APP:DEPLOYMENT``): what a test or a benchmark kills to play a failure."""
    title = f"ServeReplica:{app}:{deployment}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if title in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
