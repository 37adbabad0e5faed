"""pflow's ``copy-file``, ``move-file`` and ``delete-file`` nodes: the same params, outputs and
messages (pflow's nodes/file/*.py at fed939d7).

As in pflow: a missing path param fails the node without an error edge (pflow raises it
from ``prep``); a source that is not there, a directory, or an existing destination without
``overwrite`` is an ``error`` at once; other OS errors are retried (3 attempts, 0.1 s apart)
and then an ``error`` with pflow's message. ``overwrite`` may also come from the store, and
delete-file's ``confirm_delete`` must: an input or a root key of that name (pflow forbids
it as a param, so a flow cannot delete by accident).
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import Any

from .base import NodeFailure, NodeType, Param, RunContext, abort


def _path(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if not value:
        raise abort(ValueError, f"Missing required '{key}' parameter")
    return os.path.normpath(os.path.abspath(os.path.expanduser(str(value))))


def _transfer(params: dict[str, Any], verb: str, past: str, doing: str) -> dict[str, Any]:
    """copy-file / move-file: (verb "copy", past "copied", doing "copying")."""
    src, dst = _path(params, "source_path"), _path(params, "dest_path")
    store = params.get("__store__") or {}
    overwrite = bool(store.get("overwrite", params.get("overwrite", False)))
    if not os.path.exists(src):
        return {"error": f"Error: Source file '{src}' does not exist. Please check the path."}
    if not os.path.isfile(src):
        return {"error": f"Error: Source path '{src}' is not a file. "
                         f"This node only {'copies' if verb == 'copy' else 'moves'} files, not directories."}
    if os.path.exists(dst) and not overwrite:
        return {"error": f"Error: Destination file '{dst}' already exists. Set overwrite=True to replace it."}
    try:
        parent = os.path.dirname(dst)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if verb == "copy":
            shutil.copy2(src, dst)
        else:
            shutil.move(src, dst)
    except PermissionError as exc:
        raise NodeFailure(f"Error: Permission denied when {doing} '{src}' to '{dst}'. "
                          "Check file permissions.") from exc
    except OSError as exc:
        if "No space left" in str(exc) or "disk full" in str(exc).lower():
            raise NodeFailure(f"Error: No space left on device when {doing} to '{dst}'.") from exc
        raise NodeFailure(f"Error: Could not {verb} '{src}' to '{dst}' after 3 retries. {exc!s}. "
                          "Check if files are locked or if there are system issues.") from exc
    return {past: f"Successfully {past} '{src}' to '{dst}'"}


def copy_file(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Copy a file (with its metadata), creating the destination's directories."""
    return _transfer(params, "copy", "copied", "copying")


def move_file(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Move a file, creating the destination's directories (across file systems too)."""
    return _transfer(params, "move", "moved", "moving")


def delete_file(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Delete a file when the store's ``confirm_delete`` is true; a missing file is a success."""
    path = _path(params, "file_path")
    store = params.get("__store__") or {}
    if "confirm_delete" not in store:
        raise abort(ValueError, "Missing required 'confirm_delete' in shared store. "
                                "This safety flag must be explicitly set in shared store.")
    if not store["confirm_delete"]:
        return {"error": f"Error: Deletion of '{path}' not confirmed. "
                         "Set shared['confirm_delete'] = True to confirm."}
    if not os.path.exists(path):
        return {"deleted": f"Successfully deleted '{path}' (file did not exist)"}
    if not os.path.isfile(path):
        return {"error": f"Error: Path '{path}' is not a file. "
                         "This node only deletes files, not directories."}
    try:
        os.remove(path)
    except PermissionError as exc:
        raise NodeFailure(f"Error: Permission denied when deleting '{path}'. "
                          "Check file permissions or run with appropriate privileges.") from exc
    except OSError as exc:
        if not os.path.exists(path):
            return {"deleted": f"Successfully deleted '{path}' (deleted by another process)"}
        if exc.errno == errno.EBUSY:
            raise NodeFailure(f"Error: File '{path}' is in use and cannot be deleted.") from exc
        raise NodeFailure(f"Error: Could not delete '{path}' after 3 retries. {exc!s}. "
                          "Check if the file is locked or if there are system issues.") from exc
    return {"deleted": f"Successfully deleted '{path}'"}


def _transfer_params(verb: str) -> tuple[Param, ...]:
    return (
        Param("source_path", "str", required=True, description="Source file path"),
        Param("dest_path", "str", required=True, description="Destination file path"),
        Param("overwrite", "bool", default=False,
              description=f"Whether to overwrite an existing destination (the store's 'overwrite' wins)"
                          f" when {verb}ing"),
    )


COPY_FILE = NodeType(
    name="copy-file",
    run=copy_file,
    params=_transfer_params("copy"),
    outputs=("copied",),
    output_types=(("copied", "bool"), ("error", "str")),
    description="Copy a file to a new location, creating directories.",
    blocking=True,
    max_retries=3,
    wait=0.1,
    reads=("overwrite",),
)

MOVE_FILE = NodeType(
    name="move-file",
    run=move_file,
    params=_transfer_params("mov"),
    outputs=("moved",),
    output_types=(("moved", "bool"), ("error", "str"), ("warning", "str")),
    description="Move a file to a new location, creating directories.",
    blocking=True,
    max_retries=3,
    wait=0.1,
    reads=("overwrite",),
)

DELETE_FILE = NodeType(
    name="delete-file",
    run=delete_file,
    params=(Param("file_path", "str", required=True, description="Path to delete"),),
    outputs=("deleted",),
    output_types=(("deleted", "bool"), ("error", "str")),
    description="Delete a file; needs confirm_delete = true in the store (an input), as in pflow.",
    blocking=True,
    max_retries=3,
    wait=0.1,
    reads=("confirm_delete",),
)
