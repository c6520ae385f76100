"""The README runs as written: every ```python block and every command of every ```sh block.

A user follows the README in a shell whose PATH has the venv's bin, in a fresh directory holding
the repository's ``samples/`` and ``bots/``, with no ORGA_*/ORBIT_* variables of their own. A
block after ``<!-- with: peerbot serve -->`` (or ``peerbot serve --orbit``) runs where that
server is running in another terminal and its ``export`` lines were pasted: the harness starts it
on a free port and exports what it printed into the block's environment.

Python blocks run as scripts; shell commands run one by one under bash. A command's trailing
comment may say ``exits N`` (default 0). ``peerbot serve`` is started, must print its exports and
answer a request with them, then gets SIGTERM. ``make X`` cannot run inside the suite: its recipe is
read with ``make -n X``; a ``peerbot`` line of it is run, a ``pytest`` line must be there.
A block that cannot run says so right before it: ``<!-- not run: reason -->``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from peerbot.orbit import routes as orbit_routes
from peerbot.orga import routes as orga_routes

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = ROOT / ".venv" / "bin"
LANGUAGES = {"python", "sh", "text", "json"}  # text and json blocks show output or syntax: not run
FAST = "not chromium and not turn and not pulseaudio and not node"
SERVER_EXPORTS = {
    "peerbot serve": ("ORGA_BASE_URL", "ORGA_API_KEY", "ORGA_USER_EMAIL"),
    "peerbot serve --orbit": ("ORBIT_BASE_URL", "ORBIT_SECRET_KEY", "ORBIT_CLIENT_ID"),
}
BLOCK_TIMEOUT = 60.0  # seconds for a block, plus any --duration it asks for
SERVER_START_TIMEOUT = 20.0
ERROR_SIGNS = ("Traceback (most recent call last)", "Task was destroyed but it is pending")


# --- reading the README ----------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # of the opening fence
    server: str | None  # a key of SERVER_EXPORTS, from <!-- with: … -->
    not_run: str | None  # the reason, from <!-- not run: … -->


@dataclass(frozen=True)
class Command:
    text: str
    block: Block

    @property
    def exit_code(self) -> int:
        said = re.search(r"\s#.*\bexits? (\d+)\b", self.text)
        return int(said.group(1)) if said else 0

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text, comments=True)


def read_blocks(text: str) -> list[Block]:
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\S*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        start, directive = i, _directive_before(lines, i)
        i += 1
        while i < len(lines) and lines[i].rstrip() != "```":
            i += 1
        server = directive.get("with")
        if server is not None and server not in SERVER_EXPORTS:
            raise ValueError(f"README line {start + 1}: unknown server {server!r} in <!-- with: … -->")
        blocks.append(Block(fence.group(1), "\n".join(lines[start + 1:i]) + "\n", start + 1, server,
                            directive.get("not run")))
        i += 1
    return blocks


def _directive_before(lines: list[str], i: int) -> dict[str, str]:
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    comment = re.match(r"^<!--\s*(with|not run):\s*(.*?)\s*-->$", lines[j].strip()) if j >= 0 else None
    return {comment.group(1): comment.group(2)} if comment else {}


def shell_commands(block: Block) -> list[Command]:
    commands, pending = [], ""
    for line in block.code.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.strip() and not line.lstrip().startswith("#"):
            commands.append(Command(line.strip(), block))
    return commands


BLOCKS = read_blocks(README.read_text())
RUN = [b for b in BLOCKS if b.not_run is None]
PYTHON_BLOCKS = [b for b in RUN if b.language == "python"]
COMMANDS = [c for b in RUN if b.language == "sh" for c in shell_commands(b)]


def _python_id(block: Block) -> str:
    return f"L{block.line} {block.code.splitlines()[0].lstrip('# ')}"


def _command_id(command: Command) -> str:
    return f"L{command.block.line} {command.text.split('#')[0].strip()}"


# --- what a user has: a shell, a fresh directory, servers in other terminals ----------


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    for name in ("samples", "bots"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "ORBIT_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # output as a terminal shows it, line by line
    env.update(extra)
    return env


def parse_exports(lines: list[str]) -> dict[str, str]:
    """What a user gets by pasting the ``export A=… B=…`` lines a server printed."""
    exported = {}
    for line in lines:
        if line.startswith("export "):
            for word in shlex.split(line)[1:]:
                name, _, value = word.partition("=")
                exported[name] = value
    return exported


@dataclass
class RunningServer:
    process: subprocess.Popen
    lines: list[str]
    exports: dict[str, str]


@contextlib.contextmanager
def running_server(command: str, cwd: Path) -> Iterator[RunningServer]:
    """Start ``peerbot serve …`` on a free port; yield once it printed every export it should."""
    argv = shlex.split(command, comments=True)
    key = "peerbot serve --orbit" if "--orbit" in argv else "peerbot serve"
    process = subprocess.Popen([*argv, "--port", "0"], cwd=cwd, env=user_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    arrived: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process, arrived), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not set(SERVER_EXPORTS[key]) <= parse_exports(lines).keys():
            try:
                line = arrived.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                pytest.fail(f"`{command}` did not print export lines for {SERVER_EXPORTS[key]} within "
                            f"{SERVER_START_TIMEOUT:.0f} s (exit {process.poll()}); it printed:\n" + "\n".join(lines))
            lines.append(line.rstrip("\n"))
        yield RunningServer(process, lines, parse_exports(lines))
    finally:
        _stop(process)
        reader.join(timeout=5)
        while (line := _get(arrived)) is not None:  # what it printed while stopping
            lines.append(line.rstrip("\n"))


def _read_lines(process: subprocess.Popen, into: queue.Queue) -> None:
    for line in process.stdout:
        into.put(line)
    into.put(None)


def _get(q: queue.Queue) -> str | None:
    try:
        return q.get_nowait()
    except queue.Empty:
        return None


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_user_command(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"{argv[-1]!r} still ran after {timeout:.0f} s; stdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}")
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def _timeout_for(text: str) -> float:
    return BLOCK_TIMEOUT + sum(float(s) for s in re.findall(r"--duration[ =](\d+(?:\.\d+)?)", text))


@contextlib.contextmanager
def block_env(block: Block, cwd: Path) -> Iterator[dict[str, str]]:
    if block.server is None:
        yield user_env()
        return
    with running_server(block.server, cwd) as server:
        yield user_env(**server.exports)


def assert_clean_run(result: subprocess.CompletedProcess, what: str, exit_code: int = 0) -> None:
    shown = f"{what}\nexit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert result.returncode == exit_code, f"expected exit {exit_code}: {shown}"
    assert (result.stdout + result.stderr).strip(), f"printed nothing: {shown}"
    for sign in ERROR_SIGNS:
        assert sign not in result.stdout + result.stderr, shown


# --- the README's own shape ------------------------------------------------------------


def test_readme_has_python_examples_and_shell_commands_to_run():
    assert len(PYTHON_BLOCKS) >= 3, [b.line for b in PYTHON_BLOCKS]
    assert len(COMMANDS) >= 8, [c.text for c in COMMANDS]
    assert {"peerbot serve", "peerbot serve --orbit"} <= {" ".join(c.argv) for c in COMMANDS}


def test_every_readme_block_is_in_a_known_language_so_none_is_left_out_by_a_typo():
    unknown = [(b.line, b.language) for b in BLOCKS if b.language not in LANGUAGES]
    assert not unknown, f"fenced blocks in other languages than {sorted(LANGUAGES)}: {unknown}"
    fences = [n for n, line in enumerate(README.read_text().splitlines(), 1) if line.lstrip().startswith(("```", "~~~"))]
    assert len(fences) == 2 * len(BLOCKS), f"indented or ~~~ fences are not read, so not run: lines {fences}"


def test_readme_blocks_that_are_not_run_are_few_and_each_says_why():
    not_run = [b for b in BLOCKS if b.not_run is not None]
    assert all(b.not_run.strip() for b in not_run), [b.line for b in not_run]
    # Long runs and multi-process commands (load tests, Locust) are run by their own tests instead.
    assert len(not_run) <= 3, [(b.line, b.not_run) for b in not_run]
    assert all(b.language in ("python", "sh") for b in not_run), "only runnable blocks need the mark"


# --- the blocks ------------------------------------------------------------------------


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=_python_id)
def test_readme_python_block_runs_to_the_end_and_prints(block: Block, workdir: Path):
    script = workdir / f"readme_line_{block.line}.py"
    script.write_text(block.code)
    with block_env(block, workdir) as env:
        result = run_user_command([str(BIN / "python"), script.name], workdir, env, _timeout_for(block.code))
    assert_clean_run(result, f"README line {block.line}:\n{block.code}")
    assert result.stdout.strip(), f"the example printed nothing on stdout; stderr:\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("command", COMMANDS, ids=_command_id)
def test_readme_shell_command_does_what_it_says(command: Command, workdir: Path):
    argv = command.argv
    if argv[0] == "make":
        check_make_target(command, argv[1:], workdir)
    elif argv[:2] == ["peerbot", "serve"]:
        check_server(command, workdir)
    else:
        with block_env(command.block, workdir) as env:
            result = run_user_command(["bash", "-c", command.text], workdir, env, _timeout_for(command.text))
        assert_clean_run(result, command.text, command.exit_code)
        check_promised_output(command, result)


def check_promised_output(command: Command, result: subprocess.CompletedProcess) -> None:
    if "--version" in command.argv:
        assert re.search(rf"\bpeerbot {re.escape(version('peerbot'))}\b", result.stdout), result.stdout
    if "--json" in command.argv:
        summary = json.loads(result.stdout)  # the whole of stdout: one object a script can read
        assert isinstance(summary, dict) and summary, result.stdout


def check_server(command: Command, workdir: Path) -> None:
    """Started as a user would in another terminal: exports printed, a request answered, SIGTERM."""
    with running_server(command.text, workdir) as server:
        exports = server.exports
        if "--orbit" in command.argv:
            # The demo user the README calls is there, and the printed secret key is what reaches it.
            url = exports["ORBIT_BASE_URL"] + orbit_routes.USERS_GET_BY_EXTERNAL_ID.url(external_id="alice")
            response = httpx.get(url, headers={"Authorization": f"Bearer {exports['ORBIT_SECRET_KEY']}"})
            assert response.status_code == 200, response.text
            assert "alice" in response.text
        else:
            url = exports["ORGA_BASE_URL"] + orga_routes.CLIENT_SECRETS.path
            response = httpx.post(url, params={"email": exports["ORGA_USER_EMAIL"]},
                                  headers={"Authorization": f"Bearer {exports['ORGA_API_KEY']}"})
            assert response.status_code == 200, response.text
            refused = httpx.post(url, params={"email": exports["ORGA_USER_EMAIL"]},
                                 headers={"Authorization": "Bearer not-the-printed-key"})
            assert refused.status_code == 401, refused.text
    assert server.process.returncode in (0, 143, -signal.SIGTERM), f"SIGTERM: exit {server.process.returncode}"
    assert not any(sign in line for line in server.lines for sign in ERROR_SIGNS), "\n".join(server.lines)


def check_make_target(command: Command, targets: list[str], workdir: Path) -> None:
    """``make -n``: what the target would run; its peerbot lines are run, its pytest lines checked."""
    dry = subprocess.run(["make", "-n", *targets], cwd=ROOT, env=user_env(), capture_output=True, text=True,
                         timeout=30)
    assert dry.returncode == 0, dry.stderr
    recipe = dry.stdout.splitlines()
    pytest_lines = [line for line in recipe if re.search(r"(^|/)pytest\b", line)]
    peerbot_lines = [line for line in recipe if re.search(r"(^|/)peerbot\s", line)]
    assert pytest_lines or peerbot_lines, f"`{command.text}` runs neither pytest nor peerbot:\n{dry.stdout}"
    if "test-fast" in targets:
        assert any(f'-m "{FAST}"' in line for line in pytest_lines), dry.stdout
    elif "test" in targets:
        assert any("-m" not in shlex.split(line) for line in pytest_lines), f"make test runs everything:\n{dry.stdout}"
    for line in peerbot_lines:
        result = run_user_command(["bash", "-c", line.replace(".venv/bin/", str(BIN) + "/")], workdir, user_env(),
                                  _timeout_for(line))
        assert_clean_run(result, f"{command.text}: {line}")


# --- the fast subset the README promises -----------------------------------------------


def test_fast_subset_leaves_out_every_test_that_drives_chromium_coturn_pulseaudio_or_node():
    def collected(*args: str) -> set[str]:
        result = subprocess.run([str(BIN / "pytest"), "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return {line for line in result.stdout.splitlines() if "::" in line}

    everything, fast = collected(), collected("-m", FAST)
    left_out = everything - fast
    modules_left_out = {t.split("::")[0] for t in left_out}
    # Whole modules that need the programs are out; tests of the same modules that need none stay in.
    for module in ("test_chromium_interop.py", "test_node_sdk.py", "test_orbit_turn.py"):
        assert all(t.split("::")[0] != f"tests/{module}" for t in fast), module
        assert f"tests/{module}" in modules_left_out
    assert any(t.startswith("tests/test_turn.py::test_relay_only_session_echoes_the_tone_through_coturn") for t in left_out)
    assert any(t.startswith("tests/test_audio_devices.py::test_microphone_records_440hz") for t in left_out)
    assert any(t.startswith("tests/test_chromium_orga_client.py::test_embedded_server_answers_cors_preflight") for t in fast)
    assert any(t.startswith("tests/test_turn.py::test_unreadable_turn_tls_ca_is_a_configuration_error") for t in fast)
    assert any(t.startswith("tests/test_readme.py::") for t in fast)
    assert len(fast) > len(left_out)
