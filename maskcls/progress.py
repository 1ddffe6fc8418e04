"""Progress bars that also work in log files.

On a terminal this is rich's Progress. When the output is a file or a pipe (nohup, CI, `| tee`),
rich draws nothing until the end, so LogProgress writes a plain line per task every
`every` seconds and when it completes: "crop: 1,200/4,200 (29%), 0:41 elapsed, about 1:40 left".
"""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

EVERY = 30.0  # seconds between plain lines


class LogProgress(Progress):
    def __init__(self, *columns, every: float = EVERY, **kwargs):
        super().__init__(*(columns or default_columns()), **kwargs)
        self.every = every
        self._last: dict[TaskID, float] = {}

    def update(self, task_id: TaskID, **kwargs) -> None:
        super().update(task_id, **kwargs)
        if self.console.is_terminal or self.disable:
            return
        task = self._tasks.get(task_id)
        if task is None or task.total is None:
            return
        now = time.monotonic()
        done = task.completed >= task.total
        if done or now - self._last.get(task_id, task.start_time or now) >= self.every:
            self._last[task_id] = now
            self.console.print(plain_line(task.description, task.completed, task.total, task.elapsed or 0.0))

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        self.update(task_id, advance=advance)


def loss_columns() -> list:
    """An epoch's bar: description, bar, steps, the running loss, time left."""
    return [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn()]  # fmt: skip


def plain_line(what: str, done: float, total: float, elapsed: float) -> str:
    left = elapsed / done * (total - done) if done else None
    eta = f", about {clock(left)} left" if left is not None and done < total else ""
    return f"{what}: {int(done):,}/{int(total):,} ({done / max(total, 1):.0%}), {clock(elapsed)} elapsed{eta}"


def clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def default_columns() -> list:
    return [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
