"""Resuming a run: ``last.pt`` (weights, optimiser, epoch, early-stopping state, RNG) and
``best.pt`` (the selected epoch) of a run folder, checked before a run (re)starts so that a
missing or damaged checkpoint is an error naming the fix, never a silent test of another
epoch's weights; and ``part.pt``, the mid-epoch checkpoint (:class:`PartSaver`), from which a run
cut inside an epoch resumes at the step it reached instead of at the epoch's start."""

from __future__ import annotations

from pathlib import Path

import time

import torch

from renet_core.base import ddp
from renet_core.base.io import remove_partial_files, torch_save_atomic
from renet_core.base.progress import say
from renet_core.model import read_checkpoint, save_checkpoint

#: The mid-epoch checkpoint's file name in a run folder.
PART = "part.pt"


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restart_hint(run_dir: Path) -> str:
    return f"delete the run folder {run_dir} to train this run from scratch, or rerun with force=True"


def read_run_checkpoint(path: Path) -> dict:
    """:func:`read_checkpoint` of a run's ``last.pt``/``best.pt``; errors name the fix."""
    try:
        return read_checkpoint(path)
    except (FileNotFoundError, ValueError) as exc:
        raise type(exc)(f"{exc}; {restart_hint(path.parent)}") from exc


def _drop_unvouched(best: Path, why: str) -> None:
    if best.exists():
        best.unlink(missing_ok=True)
        say(f"removed {best} ({why}; it is not this run's best epoch)")


def check_checkpoints(run_dir: str | Path) -> dict | None:
    """Make ``run_dir`` safe to (re)start a run in, before any data is prepared or epoch trained;
    returns the training state saved in ``last.pt`` (None: the run starts from scratch).

    * Temporary files of checkpoints (or other files) whose writer was killed are removed.
    * An unreadable ``last.pt`` is an error naming the fix.
    * ``best.pt`` must hold the epoch that ``last.pt`` records as the best. Missing, unreadable or
      of another epoch, it is rewritten from ``last.pt`` when the best epoch is the last finished
      one (a kill between the two writes: ``last.pt`` holds those very weights); otherwise the
      best weights are lost, and that is an error naming the fix -- never a silent test of the
      last epoch's weights.
    * A ``best.pt`` that no ``last.pt`` vouches for (a run killed during its first epoch, a
      ``last.pt`` deleted by hand, no epoch ever improved) is removed: it is not this run's.
    """
    run_dir = Path(run_dir)
    remove_partial_files(run_dir)
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    if not last.exists():
        _drop_unvouched(best, f"no {last.name}: the run starts from scratch")
        return None
    payload = read_run_checkpoint(last)
    if not isinstance(payload.get("train_state"), dict):
        raise ValueError(f"checkpoint {last} holds no training state (not a last.pt of a run); "
                         f"{restart_hint(run_dir)}")
    state = payload["train_state"]
    best_epoch, epoch = int(state.get("best_epoch", 0)), int(state.get("epoch", 0))
    if best_epoch <= 0:
        _drop_unvouched(best, f"{last.name} records no best epoch")
        return state
    problem = None
    if not best.exists():
        problem = "is missing"
    else:
        try:
            found = read_checkpoint(best)
        except ValueError as exc:
            problem = f"is unreadable ({exc})"
        else:
            same_model = all(found.get(k) == payload.get(k) for k in ("kind", "task", "aus"))
            if found.get("epoch") != best_epoch or not same_model:
                problem = (f"holds epoch {found.get('epoch')} of a {found.get('kind')} model, not the "
                           f"best epoch {best_epoch} recorded in {last.name}")
    if problem is None:
        return state
    if best_epoch == epoch:
        keep = {k: v for k, v in payload.items() if k not in ("optimizer", "train_state", "rng")}
        keep["epoch"] = best_epoch
        torch_save_atomic(keep, best)
        say(f"{best} {problem}; rewritten from {last.name} (the best epoch, {best_epoch}, is its last)")
        return state
    raise ValueError(f"{best} {problem}: the weights of the best epoch ({best_epoch} of {epoch} trained) "
                     f"are lost, and testing another epoch's would be a wrong result; {restart_hint(run_dir)}")


def _load_states(model, optimizer, payload: dict, path: Path, fix: str) -> None:
    """The weights and optimiser state of a run checkpoint into ``model`` and ``optimizer``; one
    of another model or optimiser is an error naming the file and ``fix``."""
    try:
        ddp.unwrap(model).load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ValueError(f"checkpoint {path} does not match this run's model/optimizer ({exc}); {fix}") from exc


def restore(model, optimizer, path: Path) -> dict:
    """Load ``last.pt`` into ``model`` and ``optimizer``; returns the saved training state."""
    payload = read_run_checkpoint(path)
    _load_states(model, optimizer, payload, path, restart_hint(path.parent))
    torch.set_rng_state(payload["rng"]["torch"])
    return payload["train_state"]


def training_state(run_dir: str | Path) -> dict | None:
    """The training state a run folder's ``last.pt`` records (epoch, early-stopping state,
    history), or None when there is no ``last.pt``; an unreadable one is an error naming the fix."""
    last = Path(run_dir) / "last.pt"
    if not last.exists():
        return None
    state = read_run_checkpoint(last).get("train_state")
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {last} holds no training state (not a last.pt of a run); "
                         f"{restart_hint(last.parent)}")
    return state


def unfinished(state: dict | None, cfg) -> str:
    """"" when ``state`` (:func:`training_state`) is a whole training of ``cfg``: all
    ``cfg.epochs`` epochs, or stopped early by ``cfg.patience`` epochs without a better validation
    score; else how far it got, in words. A run short of its planned training must never be filed
    under the identity of the full budget (issue 31, case 1)."""
    if state is None:
        return "has no last.pt: it was never trained, or its training record was deleted"
    epoch, bad = int(state.get("epoch", 0)), int(state.get("bad_epochs", 0))
    if epoch >= int(cfg.epochs) or bad >= int(cfg.patience):
        return ""
    return f"trained {epoch} of its {cfg.epochs} epochs (last.pt) and did not stop early"


class PartSaver:
    """Writes ``part.pt`` during an epoch, every ``cfg.checkpoint_seconds`` of training (0: never):
    the weights, the optimiser, the epoch and the steps it has done, the AU-drawing generator and
    the epoch's running loss sums. A run killed inside an epoch then loses at most that much
    training: :func:`read_part` restores the state and the loop skips the batches already trained
    (it still reads them, so every random draw of the data is replayed), so the resumed run ends
    exactly where an uninterrupted one ends (on the CPU; tests/engine/test_part_checkpoint.py).
    Not in the run identity: it changes when state is saved, not what is computed."""

    def __init__(self, run_dir: Path, cfg, seconds: float | None = None):
        self.path = Path(run_dir) / PART
        self.cfg = cfg
        self.seconds = float(cfg.checkpoint_seconds if seconds is None else seconds)
        self.last = time.monotonic()

    def due(self) -> bool:
        return self.seconds > 0 and time.monotonic() - self.last >= self.seconds

    def save(self, model, optimizer, part: dict) -> None:
        save_checkpoint(self.path, model, self.cfg, optimizer=optimizer.state_dict(), part_state=part)
        self.last = time.monotonic()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def read_part(run_dir: str | Path, epoch: int, model, optimizer) -> dict | None:
    """The in-epoch state of ``run_dir/part.pt`` when it belongs to ``epoch`` (0-based: the epoch
    after the last finished one), after loading its weights and optimiser state into ``model`` and
    ``optimizer``; else None. A part of another epoch (stale: the epoch finished after it was
    written) or an unreadable one is removed: it only ever saves time, never decides a result."""
    path = Path(run_dir) / PART
    if not path.exists():
        return None
    try:
        payload = read_checkpoint(path)
    except ValueError as exc:
        path.unlink(missing_ok=True)
        say(f"removed {path}: {exc}; the epoch restarts from its beginning")
        return None
    part = payload.get("part_state")
    if not isinstance(part, dict) or int(part.get("epoch", -1)) != int(epoch):
        path.unlink(missing_ok=True)
        return None
    _load_states(model, optimizer, payload, path,
                 f"delete it to restart epoch {epoch + 1} from its beginning, or {restart_hint(path.parent)}")
    say(f"resuming {path.parent.name} inside epoch {epoch + 1}, after step {part['step']}")
    return part
