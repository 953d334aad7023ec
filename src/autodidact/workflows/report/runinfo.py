"""What a report reads from a run directory (runs.py describes the layout), checked as it reads.

Every file but run.json is optional: a run that never evaluated has no eval.csv, one evaluated
without --video has no videos. A file that is there but unreadable is a UserError naming it.
"""

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from autodidact.core.errors import UserError
from autodidact.core.io import read_json
from autodidact.workflows.report.published import published_success
from autodidact.workflows.runs import read_run

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")


@dataclass
class RunSummary:
    path: Path
    name: str
    run: dict                                     # run.json, migrated to the current format
    commands: list = field(default_factory=list)  # command.txt, one command per line
    metrics: dict = field(default_factory=dict)   # metrics.csv: {key: ([steps], [values])}
    evals: dict = field(default_factory=dict)     # eval.csv: the same, success per evaluation
    result: dict = None                           # eval/final.json, else the newest eval/step_*.json
    result_file: str = None                       # which of those it is, relative to the run
    prompts: dict = field(default_factory=dict)   # prompt/NAME.json: {NAME: result}
    videos: list = field(default_factory=list)    # files under videos/
    figures: list = field(default_factory=list)   # figures/*.png

    @property
    def method(self):
        return self.run["method"]

    @property
    def dataset(self):
        return Path(self.run["dataset"]).name

    @property
    def overall_success(self):
        return None if self.result is None else self.result.get("overall_success")

    @property
    def published(self):
        return published_success(self.run["dataset"], self.method)

    def metric(self, key):
        """The last logged value of a training metric, or None."""
        values = self.metrics.get(key, ((), ()))[1]
        return values[-1] if values else None


def read_summary(run_dir, name=None):
    run_dir = Path(run_dir)
    s = RunSummary(path=run_dir, name=name or run_dir.resolve().name, run=read_run(run_dir))
    if (run_dir / "command.txt").exists():
        s.commands = [line for line in _text(run_dir / "command.txt").splitlines() if line.strip()]
    s.metrics = read_curves(run_dir / "metrics.csv")
    s.evals = read_curves(run_dir / "eval.csv")
    s.result_file, s.result = _eval_result(run_dir)
    for path in sorted((run_dir / "prompt").glob("*.json")):
        s.prompts[path.stem] = _checked_result(path, run_dir)
    s.videos = sorted(p for p in (run_dir / "videos").glob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    s.figures = sorted((run_dir / "figures").glob("*.png"))
    return s


def read_curves(path):
    """{column: ([steps], [values])} of a CSV with a `step` column; {} when the file is missing.
    Empty cells (a metric one logging interval lacked) are skipped."""
    if not path.exists():
        return {}
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot read it as CSV ({exc})") from None
    curves = {}
    for line, row in enumerate(rows, start=2):
        if None in row or "step" not in row:
            raise UserError(f"{path}: line {line}: expected a 'step' column and one value per header column")
        step = _number(path, line, "step", row.pop("step"))
        for key, text in row.items():
            if text in ("", None):
                continue
            xs, ys = curves.setdefault(key, ([], []))
            xs.append(step)
            ys.append(_number(path, line, key, text))
    return curves


def _number(path, line, column, text):
    try:
        return float(text)
    except (TypeError, ValueError):
        raise UserError(f"{path}: line {line}, column '{column}': not a number ({text!r})") from None


def _text(path):
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file") from None


def _eval_result(run_dir):
    final = run_dir / "eval" / "final.json"
    steps = sorted((run_dir / "eval").glob("step_*.json"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    path = final if final.exists() else (steps[-1] if steps else None)
    if path is None:
        return None, None
    return str(path.relative_to(run_dir)), _checked_result(path, run_dir)


def _checked_result(path, run_dir):
    """An evaluation or prompt result: an object whose tasks each have a name and a success rate."""
    result = read_json(path, "evaluation result")
    tasks = result.get("tasks") if isinstance(result, dict) else None
    if not isinstance(tasks, list) or not all(
            isinstance(t, dict) and isinstance(t.get("success"), (int, float)) and math.isfinite(t["success"])
            for t in tasks):
        raise UserError(f"{path}: field 'tasks': expected a list of tasks with a numeric 'success' (re-run "
                        f"`autodidact eval {run_dir}`)")
    return result
