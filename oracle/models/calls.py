"""A regressor's ``learn_one`` and ``predict_one``, made as river's ``compose.Pipeline``
makes them but without its per-call dispatch.

For every observation a regressor feed calls ``learn_one(x, y)`` and ``predict_one(x)``
with no extra arguments. river's ``Pipeline.learn_one`` walks its plan on each call:
it unpacks a tuple per step, routes the (empty) extra keyword arguments through
``_route`` and calls each step by keyword; ``predict_one`` goes through
``_transform_one`` and a route of its own. For StandardScaler | LinearRegression that
dispatch is 1.5-2.5 µs of the ~8-15 µs an observation river alone costs here (scratch,
2026-12-07), all of it spent deciding the same thing every time.

:func:`regressor_calls` makes the same calls on the same step objects in the order the
Pipeline makes them (river 0.26.1, pinned exactly, ``learn_one``'s "transformer" and
"final" kinds with learning during predict off, as in the node)::

    learn_one(x, y):  for each transformer t:  t.learn_one(x); x = t.transform_one(x)
                      final.learn_one(x, y)
    predict_one(x):   for each transformer t:  x = t.transform_one(x)
                      return final.predict_one(x)

so each prediction and the state after each call are the Pipeline's bit for bit
(``tests/models/test_calls.py`` runs both side by side). A model of any other shape (a
single estimator, a supervised transformer, a union, an anomaly filter) keeps its own
methods: only the shape above is taken apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from river import base, compose

Learn = Callable[[dict[str, float], float], Any]
Predict = Callable[[dict[str, float]], Any]


def regressor_calls(model: Any) -> tuple[Learn, Predict]:
    """``(learn_one, predict_one)`` of ``model``: the steps called directly when it is a
    Pipeline of unsupervised transformers ending in a supervised estimator, else its own
    bound methods. The steps' methods are bound here: call again for a model restored
    from a checkpoint (new objects)."""
    if not _unsupervised_then_supervised(model):
        return model.learn_one, model.predict_one
    *transformers, final = model.steps.values()
    learn_transform = [(t.learn_one, t.transform_one) for t in transformers]
    transforms = [t.transform_one for t in transformers]
    final_learn, final_predict = final.learn_one, final.predict_one

    def learn_one(x: dict[str, float], y: float) -> None:
        for learn, transform in learn_transform:
            learn(x)
            x = transform(x)
        final_learn(x, y)

    def predict_one(x: dict[str, float]) -> Any:
        for transform in transforms:
            x = transform(x)
        return final_predict(x)

    return learn_one, predict_one


def _unsupervised_then_supervised(model: Any) -> bool:
    """The shape whose calls :func:`regressor_calls` makes itself: a Pipeline of at least
    one transformer, every step but the last an unsupervised, plain transformer (no
    union, no anomaly filter), the last a supervised estimator that is no transformer."""
    if not isinstance(model, compose.Pipeline) or len(model.steps) < 2:
        return False
    *transformers, final = model.steps.values()
    plain = all(
        isinstance(t, base.Transformer)
        and not isinstance(t, (compose.TransformerUnion, base.AnomalyFilter))
        and not t._supervised
        for t in transformers
    )
    return (
        plain
        and not isinstance(final, (base.Transformer, base.AnomalyFilter))
        and bool(final._supervised)
    )
