"""Where ``zoo fit`` writes a run: checked before fitting, staged, and moved into place whole.

A run is written into a hidden staging folder beside its destination
(``runs/.blr.partial`` for ``runs/blr``) and renamed onto the destination only when every file
is written, so a reader, or a kill at any moment, sees the old run or the new one, never a
mix. The staging folder also holds the training checkpoint: after Ctrl-C or a kill,
``zoo fit ... --resume`` continues from it. A destination that holds anything is refused
unless ``overwrite`` is set.

Usage::

    from zoo.run_folder import RunFolder
    folder = RunFolder("runs/blr", overwrite=False, resume=False)
    folder.check()                      # before any fitting: a clear error for a bad --out
    staging = folder.start(command)     # write files under ``staging``
    folder.commit()                     # the whole run appears at runs/blr
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

#: the checkpoint a resumable method writes inside the staging folder
CHECKPOINT_FILE = "checkpoint.pt"
#: the command that started the staged run, to refuse resuming it with another one
COMMAND_FILE = "command.json"


class RunFolderError(ValueError):
    """An output folder that cannot take this run (a file, not writable, another run's)."""


def default_out(model: str, method: str, root: str | os.PathLike[str] = "runs") -> Path:
    """``runs/<model>/<method>-<timestamp>``: where a fit without ``--out`` goes."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / model / f"{method}-{stamp}"


class RunFolder:
    """The destination of one run and its staging folder (see the module docstring)."""

    def __init__(self, out: str | os.PathLike[str], *, overwrite: bool = False,
                 resume: bool = False) -> None:
        self.out = Path(out)
        self.overwrite, self.resume = overwrite, resume
        self.staging = self.out.parent / f".{self.out.name}.partial"

    @property
    def checkpoint(self) -> Path:
        """The checkpoint file inside the staging folder."""
        return self.staging / CHECKPOINT_FILE

    def check(self) -> None:
        """Refuse, before anything runs, an ``out`` that is a file, cannot be written, holds
        another run without ``overwrite``, or a ``resume`` with nothing to resume."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise RunFolderError(f"--out {out} is a file, not a folder; give a folder path")
        if out.is_dir() and any(out.iterdir()) and not self.overwrite:
            what = "another run" if (out / "result.json").exists() else "other files"
            raise RunFolderError(f"--out {out} already holds {what}; pass --overwrite to "
                                 f"replace it, or choose another folder")
        parent = next((p for p in [out.parent, *out.parent.parents] if p.exists()), Path("."))
        if not parent.is_dir():
            raise RunFolderError(f"--out {out}: {parent} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RunFolderError(f"--out {out}: the folder {parent} is not writable")
        if self.resume and not self.checkpoint.exists():
            raise RunFolderError(f"--resume: no interrupted run to resume for --out {out} "
                                 f"(no {self.checkpoint})")

    def start(self, command: Mapping[str, Any]) -> Path:
        """Create (or, resuming, reuse) the staging folder and return it.

        ``command`` is the run's command line as a mapping; resuming with a different one is
        refused, since the checkpoint belongs to the first.
        """
        record = json.dumps(dict(command), sort_keys=True, default=str)
        if self.resume:
            saved = (self.staging / COMMAND_FILE).read_text() if (
                self.staging / COMMAND_FILE).exists() else record
            if json.loads(saved) != json.loads(record):
                raise RunFolderError(f"--resume: the run staged in {self.staging} was started by "
                                     f"a different command ({saved}); rerun that command with "
                                     f"--resume, or drop --resume to start afresh")
            return self.staging
        if self.staging.exists():
            shutil.rmtree(self.staging)  # an abandoned attempt: a new run starts afresh
        self.staging.mkdir(parents=True)
        (self.staging / COMMAND_FILE).write_text(record)
        return self.staging

    def commit(self) -> Path:
        """Move the staged run onto ``out`` as a whole; the replaced run is deleted after.

        The checkpoint and command record are dropped first (the run is finished). Between
        the two renames ``out`` is briefly absent; the old run is then still whole in a
        hidden ``.<name>.old`` folder, which the next commit removes.
        """
        for name in (CHECKPOINT_FILE, COMMAND_FILE):
            (self.staging / name).unlink(missing_ok=True)
        old = self.out.parent / f".{self.out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        if self.out.exists():
            os.rename(self.out, old)
        os.rename(self.staging, self.out)
        if old.exists():
            shutil.rmtree(old)
        return self.out
