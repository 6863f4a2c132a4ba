"""Single-mixture calls that arrive together, scored together: each call waits for no timer; the calls
made while the event loop was busy (reading other requests, or running the previous predict) go into
one predict per model at the loop's next turn. Cheaper per call than Ray Serve's @serve.batch (no
queue task, signature checks or timeouts: docs/benchmarks.md), so a lone call costs little more than a
direct predict."""

import asyncio

import numpy as np


MAX_GROUP = 64  # rows in one predict at most: the loop the predict holds is Serve's too; more calls wait a turn


class Coalescer:
    def __init__(self):
        self.waiting: list[tuple[object, np.ndarray, asyncio.Future]] = []  # (model, row, caller's future)
        self.stats = {"calls": 0, "rows": 0, "largest": 0}  # predicts made, rows scored, most rows in one

    def score(self, model, row: np.ndarray) -> asyncio.Future:
        """A future of model's score of row; the first call of a group schedules the group's predict."""
        loop = asyncio.get_running_loop()
        if not self.waiting:
            loop.call_soon(self._flush)
        future = loop.create_future()
        self.waiting.append((model, row, future))
        return future

    def _flush(self) -> None:
        """One predict per model over its waiting rows (a reload may fall between two calls: each row is
        scored by the model it was checked against); a failed predict fails its callers."""
        items = [item for item in self.waiting[:MAX_GROUP] if not item[2].done()]  # callers gone: not scored
        self.waiting = self.waiting[MAX_GROUP:]
        if self.waiting:
            asyncio.get_running_loop().call_soon(self._flush)
        for model in {id(m): m for m, _, _ in items}.values():
            mine = [(row, future) for m, row, future in items if m is model]
            try:
                scores = model.predict(np.stack([row for row, _ in mine]))
            except Exception as err:
                for _, future in mine:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), value in zip(mine, scores):
                if not future.done():  # a caller that went away (a dropped connection) is cancelled
                    future.set_result(float(value))
            self.stats["calls"] += 1
            self.stats["rows"] += len(mine)
            self.stats["largest"] = max(self.stats["largest"], len(mine))
