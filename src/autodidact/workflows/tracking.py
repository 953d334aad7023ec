"""Optional Weights & Biases logging (`train --wandb`): the scalars TensorBoard gets, at the same steps.

wandb is an extra (`pip install 'autodidact[wandb]'`); the core never imports it. The W&B run
lives in RUN_DIR/wandb/, takes the run directory's name and its run.json as config, and keeps its
id in RUN_DIR/wandb_id.txt so `train --resume` continues the same W&B run. `WANDB_MODE=offline`
logs without a network (`wandb sync RUN_DIR/wandb/offline-run-*` uploads later); `WANDB_PROJECT`
picks the project (default autodidact).
"""

import os
import secrets
from pathlib import Path

from autodidact.core.errors import UserError
from autodidact.core.io import atomic_write_text

EXTRA_HINT = "pip install 'autodidact[wandb]'"


def require_wandb():
    """The wandb module, or a one-line UserError saying which extra installs it."""
    try:
        import wandb
    except ImportError:
        raise UserError(f"--wandb needs Weights & Biases, which is not installed: {EXTRA_HINT}") from None
    return wandb


class WandbLog:
    """One W&B run per run directory; `log(row, step)` takes the trainer's metric rows."""

    def __init__(self, run_dir, run_cfg):
        wandb = require_wandb()
        run_dir = Path(run_dir)
        id_file = run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
        if not id_file.exists():
            atomic_write_text(id_file, run_id + "\n")
        try:
            # console="off": the trainer's progress bar stays the terminal's; W&B records scalars only.
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "autodidact"), name=run_dir.name,
                                  id=run_id, resume="allow", dir=str(run_dir), config=run_cfg,
                                  settings=wandb.Settings(console="off", silent=True))
        except wandb.errors.Error as exc:
            raise UserError(f"--wandb: W&B refused to start ({str(exc).splitlines()[0]}); log in with "
                            "`wandb login`, or log offline with WANDB_MODE=offline") from None

    def log(self, row, step):
        self.run.log({k: float(v) for k, v in row.items() if k != "step"}, step=step)

    def close(self):
        self.run.finish()
