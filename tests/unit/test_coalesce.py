"""The single-mixture coalescer without Ray: calls made together share one predict per model."""

import asyncio

import numpy as np

from climb_ray.coalesce import Coalescer


class Model:
    def __init__(self, offset: float, fail: bool = False):
        self.offset, self.fail, self.calls = offset, fail, []

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(len(x))
        if self.fail:
            raise RuntimeError("predictor broke")
        return x[:, 0] + self.offset


def test_calls_made_together_share_one_predict_and_each_gets_its_own_row():
    model, c = Model(0.0), Coalescer()

    async def go():
        return await asyncio.gather(*(c.score(model, np.array([i, 1.0])) for i in range(5)))
    assert asyncio.run(go()) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert model.calls == [5] and c.stats == {"calls": 1, "rows": 5, "largest": 5}


def test_a_lone_call_is_scored_at_once_and_later_calls_form_a_new_group():
    model, c = Model(0.0), Coalescer()

    async def go():
        first = await c.score(model, np.array([7.0]))
        return first, await c.score(model, np.array([8.0]))
    assert asyncio.run(go()) == (7.0, 8.0) and model.calls == [1, 1]


def test_rows_checked_against_different_models_are_scored_each_by_its_own():
    old, new, c = Model(0.0), Model(100.0), Coalescer()

    async def go():
        return await asyncio.gather(c.score(old, np.array([1.0])), c.score(new, np.array([2.0])),
                                    c.score(old, np.array([3.0])))
    assert asyncio.run(go()) == [1.0, 102.0, 3.0] and old.calls == [2] and new.calls == [1]


def test_a_failed_predict_fails_its_callers_only_and_a_cancelled_caller_is_skipped():
    broken, good, c = Model(0.0, fail=True), Model(0.0), Coalescer()

    async def go():
        gone = c.score(good, np.array([5.0]))
        gone.cancel()
        return await asyncio.gather(c.score(broken, np.array([1.0])), c.score(good, np.array([2.0])),
                                    return_exceptions=True)
    bad, fine = asyncio.run(go())
    assert isinstance(bad, RuntimeError) and fine == 2.0 and good.calls == [1]  # the cancelled row was not scored


def test_a_crowd_of_calls_is_scored_in_groups_of_at_most_max_group():
    from climb_ray.coalesce import MAX_GROUP

    model, c = Model(0.0), Coalescer()

    async def go():
        return await asyncio.gather(*(c.score(model, np.array([float(i)])) for i in range(2 * MAX_GROUP + 5)))
    assert asyncio.run(go()) == [float(i) for i in range(2 * MAX_GROUP + 5)]
    assert model.calls == [MAX_GROUP, MAX_GROUP, 5]

