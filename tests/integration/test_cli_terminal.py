"""On a terminal, ``qm run`` asks at user nodes and resumes in place (a real pty)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QM = Path(sys.executable).parent / "qm"


def read_until(fd: int, text: str, timeout: float = 30) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"never saw {text!r}; got {seen.decode(errors='replace')!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            seen += os.read(fd, 4096)
    return seen.decode()


def test_qm_run_asks_at_each_user_node_and_resumes_in_place() -> None:
    terminal, child_end = pty.openpty()
    proc = subprocess.Popen(
        [str(QM), "run", "examples/approval-loop.yaml", "--input", "Ship v2 on Friday", "-q"],
        stdin=child_end,
        stderr=child_end,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("QM_")},
    )
    os.close(child_end)
    try:
        first = read_until(terminal, "Answer 'approve', or say what to change.: ")
        assert "Review: Review 1 of 3: Ship v2 on Friday" in first
        os.write(terminal, b"make it Monday\n")
        second = read_until(terminal, "Answer 'approve', or say what to change.: ")
        assert "Review 2 of 3: Ship v2 on Friday (make it Monday)" in second
        os.write(terminal, b"approve\n")
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(terminal)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert out.decode() == "Published after 1 revision(s): Ship v2 on Friday (make it Monday)\n"


def qm_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``qm ARGS`` in ``folder``, with no terminal and no QM_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QM_")}
    return subprocess.run(
        [str(QM), *args],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def test_without_a_terminal_qm_run_prints_how_to_resume(tmp_path: Path) -> None:
    (tmp_path / "qm.toml").write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    graph = str(ROOT / "examples" / "approval-loop.yaml")
    paused = qm_in(tmp_path, "run", graph, "--input", "Ship v2", "--json", "--config", "qm.toml")
    assert paused.returncode == 3
    flow_id = json.loads(paused.stdout)["flow_id"]
    plain = qm_in(tmp_path, "run", graph, "--input", "Ship v3", "--config", "qm.toml", "-q")
    assert plain.returncode == 3
    lines = plain.stderr.strip().splitlines()
    assert lines[-1].startswith("  qm resume ")
    assert lines[-1].endswith(" --input ANSWER --config qm.toml")
    # Another process continues the first flow from the file.
    done = qm_in(tmp_path, "resume", flow_id, "--input", "approve", "--config", "qm.toml", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Published after 0 revision(s): Ship v2\n"


ECHO_GRAPH = """\
name: Echo
nodes:
  - {name: Start, type: Start1}
  - {name: Echo, type: Text1, metadata: {text: "said {{ input }}"}}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Echo}
  - {from: Echo, to: End}
"""

# A clipboard write (OSC 52), a window title and a clear screen.
HOSTILE = "hi\x1b]52;c;ZXZpbA==\x07\x1b]0;owned\x07\x1b[2J\x9b1m"


def test_qm_run_and_flows_show_escape_terminal_commands_in_flow_text(tmp_path: Path) -> None:
    (tmp_path / "qm.toml").write_text('[store]\nname = "sqlite"\npath = "flows.db"\n')
    (tmp_path / "echo.yaml").write_text(ECHO_GRAPH)
    ran = qm_in(tmp_path, "run", "echo.yaml", "--input", HOSTILE, "--config", "qm.toml")
    assert ran.returncode == 0, ran.stderr
    shown = "hi\\x1b]52;c;ZXZpbA==\\x07\\x1b]0;owned\\x07\\x1b[2J\\x9b1m"
    assert ran.stdout == f"said {shown}\n"
    flow_id = qm_in(tmp_path, "flows", "list", "--json", "--config", "qm.toml")
    fid = json.loads(flow_id.stdout)[0]["flow_id"]
    show = qm_in(tmp_path, "flows", "show", fid, "--config", "qm.toml")
    assert show.returncode == 0, show.stderr
    for output in (ran.stdout, ran.stderr, show.stdout):
        assert not {"\x1b", "\x07", "\x9b"} & set(output)
    assert f"input: {shown}\n" in show.stdout
    assert f"final output: said {shown}\n" in show.stdout


def test_a_file_that_is_no_graph_is_never_echoed(tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s4lt$h4sh3dpassw0rd:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n")
    (tmp_path / "shadow.yaml").symlink_to(secret)
    expected = (
        "shadow.yaml: not a graph file: none of its top-level keys is a graph field "
        "(nodes, edges, ...); it starts with 'root:$6$…'"
    )
    for command in (["validate"], ["show"], ["run", "--input", "x"]):
        result = qm_in(tmp_path, *command, "shadow.yaml")
        assert result.returncode != 0
        assert "h4sh" not in result.stdout + result.stderr
        assert "bin:" not in result.stdout + result.stderr
        assert expected in result.stdout + result.stderr, (command, result.stderr)
