"""loadtests/bench/cpu.py: the CPU it reads from /proc is the processes' own."""

from __future__ import annotations

import subprocess
import sys

from loadtests.bench.cpu import cpu_s

_BURN = ("import sys, time\n"
         "while time.process_time() < 0.3: pass\n"
         "print('burnt', flush=True)\n"
         "sys.stdin.read()\n")


def test_cpu_s_reads_the_service_its_workers_and_the_server() -> None:
    """A "server" whose child burns 0.3 s of CPU: counted under ``server`` for an idle
    service, and as that process's worker when it is the one measured."""
    idle = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    server = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys\n"
         f"child = subprocess.Popen([sys.executable, '-c', {_BURN!r}], stdin=subprocess.PIPE,"
         " stdout=subprocess.PIPE, text=True)\n"
         "print(child.stdout.readline().strip(), flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "burnt"
        got = cpu_s(idle.pid, server_pid=server.pid)
        assert set(got) == {"main", "server"}  # the idle one has no worker
        assert got["server"] >= 0.29  # the child's 0.3 s, in clock ticks of 10 ms
        assert got["main"] < 0.29
        own = cpu_s(server.pid)
        assert set(own) == {"main", "child1"} and own["child1"] >= 0.29
    finally:
        for p in (idle, server):
            p.kill()
            p.communicate()  # and close the pipes
