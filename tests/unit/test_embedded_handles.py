"""The embedded cluster's handle list (``db.embedded``): a process that is gone, or a zombie that
its new parent has not reaped yet (a SIGKILLed ``serve``'s worker), holds no handle."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from fieldsync.db.embedded import _prune_dead_handles, pid_alive


def _zombie() -> subprocess.Popen[bytes]:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # exited, not reaped: nobody has called wait() yet
        stat = Path(f"/proc/{child.pid}/stat").read_text()
        if stat[stat.rindex(")") + 2] == "Z":
            return child
        time.sleep(0.01)
    raise AssertionError("the child did not become a zombie")


def test_a_zombie_or_a_gone_process_holds_no_handle(tmp_path: Path) -> None:
    zombie = _zombie()
    try:
        gone = subprocess.Popen(["true"])
        gone.wait()
        assert pid_alive(os.getpid())
        assert not pid_alive(zombie.pid)
        assert not pid_alive(gone.pid)

        handles = tmp_path / ".handle_pids.json"
        handles.write_text(json.dumps([os.getpid(), zombie.pid, gone.pid]))
        _prune_dead_handles(tmp_path)
        assert json.loads(handles.read_text()) == [os.getpid()]
    finally:
        zombie.wait()
