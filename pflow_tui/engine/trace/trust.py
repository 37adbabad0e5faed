"""Who made a trace: a per-user key signs every trace this user's pflow-tui writes.

Traces are shared (CI artifacts, a colleague's failed run), and a re-run or a fork runs
what a trace says: its flow's commands and code, and its recorded outputs fed to the
nodes after them. So pflow-tui signs each trace it writes, and runs a trace that this
user did not sign only after an explicit yes (see docs/security.md).

- **The key**: 32 random bytes in ``<config>/trace-key`` (mode 0600, folder 0700), made
  on first use. ``<config>`` is ``$PFLOW_TUI_CONFIG_DIR``, else
  ``$XDG_CONFIG_HOME/pflow-tui``, else ``~/.config/pflow-tui``.
- **The signature**: a running HMAC-SHA256 over the exact bytes of the file. At every
  flush the writer appends a ``seal`` event line whose ``mac`` covers every byte before
  it (``upto`` of them); the footer ends with ``"seal":{"mac":…,"upto":…}``, which covers
  every byte before that key. A trace cut short (``kill -9``) is signed up to its last
  seal line. The header names the key (``signer``: a hash of it, not the key).
- :func:`verify` says whether a file is signed by this user's key: all of it, up to an
  event (cut short), not signed, signed by another key, or changed since it was signed.

Nothing here reads anything but the trace's bytes: verifying runs no code.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import mmap
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .filecheck import check_file

ENV = "PFLOW_TUI_CONFIG_DIR"
KEY_FILE = "trace-key"
KIND = "seal"
_KEY_BYTES = 32
_KEY_LINE = re.compile(rb"[0-9a-f]{64}\n?")
_FOOT_SEAL = re.compile(rb',"seal":\{"mac":"([0-9a-f]{64})","upto":(\d+)\}\}\n?\Z')
_SEAL_LINE = re.compile(rb'\{"seq":\d+,"t":[-+.\deE]+,"kind":"seal",')
_SEAL_AT = b'"kind":"seal",'
_EVENTS_OPEN = b',"events":[\n'


# --- the key ---------------------------------------------------------------------------------

def config_dir() -> Path:
    """This user's pflow-tui config folder (``$PFLOW_TUI_CONFIG_DIR`` first, for tests)."""
    given = os.environ.get(ENV)
    if given:
        return Path(given)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "pflow-tui"


_keys: dict[Path, bytes] = {}
_keys_lock = threading.Lock()


def load_key(*, create: bool = True) -> bytes | None:
    """This user's signing key; made on first use when ``create`` (atomically: two
    processes starting at once agree on one key). None when there is none and it cannot
    be made (a read-only home): traces are then written unsigned."""
    folder = config_dir()
    path = folder / KEY_FILE
    with _keys_lock:
        key = _keys.get(path)
        if key is not None:
            return key
        key = _read_key(path)
        if key is None and create:
            with contextlib.suppress(OSError):
                key = _make_key(folder, path)
        if key is not None:
            _keys[path] = key
        return key


def _read_key(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            raw = f.read(200)
    except OSError:
        return None
    if not _KEY_LINE.fullmatch(raw):
        return None  # damaged: not used (and not replaced: the user may want to look)
    return bytes.fromhex(raw[:64].decode())


def _make_key(folder: Path, path: Path) -> bytes | None:
    if not folder.is_dir():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)  # mkdir's mode is cut by the umask
    key = secrets.token_bytes(_KEY_BYTES)
    tmp = folder / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key.hex().encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # whole or not at all, and never over a key another run made
        except FileExistsError:
            return _read_key(path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return key


def key_id(key: bytes) -> str:
    """What a trace's header says of the key that signed it (a hash: not the key)."""
    return hashlib.sha256(b"pflow-tui trace key\0" + key).hexdigest()[:16]


# --- signing (the writer's side) -------------------------------------------------------------

class Sealer:
    """The running HMAC-SHA256 of one trace being written (see :class:`~.trace.TraceWriter`).

    HMAC spelled out (RFC 2104) so that :attr:`update`, called once per event, is the C
    method of the inner hash. The writer says how many bytes a seal covers (``upto``)."""

    __slots__ = ("_inner", "_outer", "update")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        self.update = self._inner.update

    def mac(self) -> str:
        """The MAC of every byte given so far (equal to ``hmac.new(key, data, sha256)``)."""
        outer = self._outer.copy()
        outer.update(self._inner.copy().digest())
        return outer.hexdigest()

    def seal_event(self, last: Mapping[str, Any] | None, path: str, events: int,
                   upto: int) -> dict[str, Any]:
        """The seal event covering the ``upto`` bytes given so far (written after them)."""
        last = last or {}
        return {"seq": last.get("seq", 0), "t": last.get("t", 0.0), "kind": KIND, "path": path,
                "events": events, "upto": upto, "mac": self.mac()}

    def footer_seal(self, upto: int) -> bytes:
        """The footer's last key (then ``}``), covering the ``upto`` bytes given so far."""
        return b',"seal":{"mac":"' + self.mac().encode() + b'","upto":' + str(upto).encode() + b"}}"


def sign(data: bytes, key: bytes) -> bytes:
    """A trace's bytes as a writer holding ``key`` would have signed them (for tests and
    tools that write traces by hand): the header gets ``signer``; a finished trace gets its
    footer seal, one cut short a seal line after its last complete event."""
    nl = data.find(b"\n")
    head = data[: nl + 1]
    if not head.endswith(_EVENTS_OPEN):
        raise ValueError("not a trace laid out one event per line")
    header = orjson.loads(head[: -len(_EVENTS_OPEN)] + b"}")
    header["signer"] = key_id(key)
    body = data[nl + 1:]
    out = orjson.dumps(header)[:-1] + _EVENTS_OPEN
    foot = body.rfind(b"\n],")
    sealer = Sealer(key)
    if foot >= 0 and body.rstrip().endswith(b"}"):
        out += body[: foot] + b"\n]," + body[foot + 3:].rstrip()[:-1]
        sealer.update(out)
        return out + sealer.footer_seal(len(out)) + b"\n"
    lines = body.split(b"\n")
    complete = [ln.rstrip(b",") for ln in lines if ln.strip().rstrip(b",").endswith(b"}")]
    out += b",\n".join(complete)
    sealer.update(out)
    last = orjson.loads(complete[-1]) if complete else {}
    seal = sealer.seal_event(last, str(header.get("flow_name") or "flow"), len(complete), len(out))
    return out + b",\n" + orjson.dumps(seal)


# --- verifying -------------------------------------------------------------------------------

OWN, UNSIGNED, FOREIGN, TAMPERED = "own", "unsigned", "foreign", "tampered"


@dataclass(frozen=True)
class Verdict:
    """Whether a trace is signed by this user's key, and how much of it.

    ``state``: ``own`` (signed by this key: all of it when ``complete``, else up to
    ``events`` of ``total`` events, the first ``upto`` bytes), ``unsigned`` (no valid
    signature: an old or re-formatted trace, a run killed before its first seal),
    ``foreign`` (signed by another key) or ``tampered`` (signed by this key and changed
    since). Only ``own`` is trusted.
    """

    state: str
    events: int = 0
    total: int = 0
    upto: int | None = None
    complete: bool = False
    signer: str | None = None
    why: str = ""

    @property
    def trusted(self) -> bool:
        return self.state == OWN

    def describe(self) -> str:
        if self.state == OWN:
            if self.complete:
                return f"signed by you (all {_n(self.total, 'event')})"
            rest = self.total - self.events
            if rest <= 0:
                return (f"signed by you (all {_n(self.events, 'event')}; the run was cut short "
                        "before its footer)")
            return (f"signed by you up to event {self.events} of {self.total} (the run was cut "
                    f"short: the {_n(rest, 'event')} after its last seal are not signed, and are "
                    "neither restored nor trusted)")
        if self.state == FOREIGN:
            return f"signed by someone else (key {(self.signer or '')[:64]})"
        if self.state == TAMPERED:
            return f"signed by you but changed since ({self.why})"
        return f"not signed ({self.why})" if self.why else "not signed"


def _n(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def verify(path: str | Path, key: bytes | None = None) -> Verdict:
    """Check a trace file against ``key`` (default: this user's key; none is made here)."""
    try:
        check_file(path, "trace")  # never open a FIFO (it blocks) or read /dev/zero
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if not size:
                return Verdict(UNSIGNED, why="the file is empty")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return verify_bytes(data, key)
    except (OSError, ValueError) as exc:
        return Verdict(UNSIGNED, why=f"cannot read it: {getattr(exc, 'strerror', None) or exc}")


def verify_bytes(data: bytes | mmap.mmap, key: bytes | None = None) -> Verdict:
    """:func:`verify` on a trace's bytes."""
    nl = data.find(b"\n")
    head = data[: nl + 1] if nl >= 0 else b""
    if not head.endswith(_EVENTS_OPEN):
        return Verdict(UNSIGNED, why="not laid out as pflow-tui writes a trace, one event a line")
    try:
        header = orjson.loads(head[: -len(_EVENTS_OPEN)] + b"}")
    except orjson.JSONDecodeError:
        return Verdict(UNSIGNED, why="its header is damaged")
    signer = header.get("signer") if isinstance(header, dict) else None
    signer = signer if isinstance(signer, str) else None
    start = nl + 1
    foot = data.rfind(b"\n],", start - 1)
    if foot >= 0 and not data[foot:].rstrip().endswith(b"}"):
        foot = -1  # a footer cut short is no footer
    end = foot if foot >= 0 else len(data)
    total = _count_events(data, start, end)
    if signer is None:
        return Verdict(UNSIGNED, total=total, why="written by a pflow-tui that did not sign traces, "
                       "or by another program")
    key = load_key(create=False) if key is None else key
    if key is None or signer != key_id(key):
        return Verdict(FOREIGN, total=total, signer=signer)
    mac = hmac.new(key, digestmod=hashlib.sha256)
    pos, seals, signed = 0, 0, None
    at = data.find(_SEAL_AT, start, end)
    while at >= 0:
        line_start = data.rfind(b"\n", 0, at) + 1
        line_end = data.find(b"\n", at, end)
        line_end = end if line_end < 0 else line_end
        seal = _seal_at(data, line_start, line_end)
        if seal is not None:
            upto, expected = seal
            if upto != line_start - 2 or upto < pos or data[upto: line_start] != b",\n":
                return Verdict(TAMPERED, total=total, signer=signer, why="a seal is out of place")
            mac.update(data[pos: upto])
            pos = upto
            if not hmac.compare_digest(mac.copy().hexdigest(), expected):
                return Verdict(TAMPERED, total=total, signer=signer,
                               why=f"the events before seal {seals + 1} do not match it")
            seals += 1
            signed = upto
        at = data.find(_SEAL_AT, line_end, end)
    if foot >= 0:
        tail = data[foot: len(data)]
        m = _FOOT_SEAL.search(tail)
        if m is None:
            return Verdict(TAMPERED, total=total, signer=signer, why="its footer is not signed")
        upto = int(m.group(2))
        if upto != foot + m.start():
            return Verdict(TAMPERED, total=total, signer=signer, why="the footer's seal is out of place")
        mac.update(data[pos: upto])
        if not hmac.compare_digest(mac.hexdigest(), m.group(1).decode()):
            return Verdict(TAMPERED, total=total, signer=signer,
                           why="its events or footer do not match its signature")
        return Verdict(OWN, total, total, None, True, signer)
    if signed is None:
        return Verdict(UNSIGNED, total=total, signer=signer,
                       why="the run was cut short before its first seal")
    return Verdict(OWN, _count_events(data, start, signed), total, signed, False, signer)


def _seal_at(data: bytes | mmap.mmap, start: int, end: int) -> tuple[int, str] | None:
    """(upto, mac) of the seal event on the line ``data[start:end]``; None if it is none."""
    if _SEAL_LINE.match(data, start, end) is None:
        return None
    try:
        seal = orjson.loads(data[start: end].rstrip(b",\r"))
    except orjson.JSONDecodeError:
        return None
    if not isinstance(seal, dict) or seal.get("kind") != KIND:
        return None
    upto, mac = seal.get("upto"), seal.get("mac")
    if not isinstance(upto, int) or isinstance(upto, bool) or not isinstance(mac, str):
        return None
    return upto, mac


def _count_events(data: bytes | mmap.mmap, start: int, end: int) -> int:
    """Event lines in ``data[start:end]``, seal lines not counted (a last line cut short is)."""
    if end <= start:
        return 0
    chunk = data[start:end]
    lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
    return lines - chunk.count(_SEAL_AT)


def is_seal(event: Any) -> bool:
    return isinstance(event, dict) and event.get("kind") == KIND


# --- consent: what running a trace would do --------------------------------------------------

_LINES = 40  # lines of a long text value shown (code, a script)
_WIDTH = 300  # characters of a one-line value shown


def _value_lines(name: str, value: Any, indent: str) -> list[str]:
    """``name: value`` as plain text lines: a multi-line string as a block, the rest as JSON,
    cut to :data:`_LINES` lines or :data:`_WIDTH` characters (saying what was cut)."""
    if isinstance(value, str) and "\n" in value:
        lines = value.splitlines()
        out = [f"{indent}{name}:"] + [f"{indent}  | {ln[:_WIDTH]}" for ln in lines[:_LINES]]
        if len(lines) > _LINES:
            out.append(f"{indent}  | … ({len(lines) - _LINES} more lines)")
        return out
    text = value if isinstance(value, str) else orjson.dumps(
        value, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
    if len(text) > _WIDTH:
        text = text[:_WIDTH] + f"… ({len(text) - _WIDTH} more characters)"
    return [f"{indent}{name}: {text}"]


def _nodes(spec: Any, prefix: str) -> list[tuple[str, Any]]:
    """(path, NodeSpec) of every node of a flow and of its nested flows."""
    out: list[tuple[str, Any]] = []
    for nid, node in spec.nodes.items():
        out.append((f"{prefix}.{nid}", node))
        child = spec.children.get(nid)
        if child is not None:
            out.extend(_nodes(child, f"{prefix}.{nid}"))
    return out


def rerun_plan(spec: Any, cache: Any, verdict: Verdict, source: str) -> list[str]:
    """What re-running a trace runs and restores, as lines of plain text (shown before
    asking, and printed when a re-run is refused): every node with its command, code and
    params, and every recorded output that would be restored."""
    lines = [f"{source}: {verdict.describe()}.",
             "A re-run runs this flow's commands and code, and gives the outputs recorded in the "
             "trace to the nodes after them as if they had run here."]
    nodes = _nodes(spec, spec.name)
    lines += ["", f"Nodes that may run ({len(nodes)}):"]
    for path, node in nodes:
        key = path.partition(".")[2]
        rec = cache.nodes.get(key)
        restorable = rec is not None and (rec.ok or rec.batch) and key not in cache.invalid
        state = ("its iterations that ended ok are restored, the others run" if node.batch and restorable
                 else "restored from the trace unless what it is given changed" if restorable
                 else "runs")
        lines.append(f"  {path} ({node.type}): {state}")
        if node.batch is not None:
            lines += _value_lines("batch items", node.batch.items, "      ")
        for name, value in node.params.items():
            if node.type == "workflow" and name == "workflow_ir":
                continue
            lines += _value_lines(name, value, "      ")
    restored = [(key, rec) for key, rec in cache.nodes.items() if rec.ok and rec.outputs is not None]
    batches = [key for key, rec in cache.nodes.items() if rec.batch]
    lines += ["", f"Recorded outputs that would be restored ({_n(len(restored), 'node')}"
              + (f", and the iterations that ended ok of {_n(len(batches), 'batch node')}"
                 if batches else "") + "):"]
    if not restored and not batches:
        lines.append("  none")
    for key, rec in restored:
        lines.append(f"  {cache.root}.{key}:")
        for name, value in list(rec.outputs.items())[:12]:
            lines += _value_lines(name, value, "      ")
        if len(rec.outputs) > 12:
            lines.append(f"      … ({len(rec.outputs) - 12} more outputs)")
    for key in batches:
        lines.append(f"  {cache.root}.{key}: the recorded outputs of its iterations that ended ok")
    return lines


def fork_plan(path: str, node_type: str, params: Mapping[str, Any], verdict: Verdict,
              source: str) -> list[str]:
    """What forking one node or iteration of a trace runs: the node and its params."""
    lines = [f"{source}: {verdict.describe()}.",
             "A fork runs this node again, alone, with the params recorded in the trace:", "",
             f"  {path} ({node_type})"]
    for name, value in params.items():
        lines += _value_lines(name, value, "      ")
    return lines
