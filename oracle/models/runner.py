"""One feed's model, run online: features → learn/predict → quantized output with its
commitment, rolling error, drift, and the publish decision.

Everything here is a pure function of the ordered observations, so any node (or anyone
replaying a feed) that feeds the same observations gets the same outputs, commitments
and publish decisions. Time comes from the observations, never from the clock.

Order of work per observation, by output kind:

* ``forecast`` with a regressor and horizon h: the features seen h observations ago
  learn the current target, then the current features predict h steps ahead.
* ``forecast`` with a time-series forecaster: learn the target, then forecast h ahead.
* ``anomaly``: score the features, then learn them.
* ``value``: the target itself, no model.

The commitment is of the model state that produced the output.
"""

from __future__ import annotations

import collections
import math
import pickle
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from river import compose, drift

from oracle.errors import MiraError
from oracle.models.allowlist import ANOMALY, FORECASTER, REGRESSOR
from oracle.models.commitment import commitment, committer
from oracle.models.quantize import quantize

if TYPE_CHECKING:
    from oracle.config.feeds import FeedSpec


_ADWIN: Any = drift.ADWIN


class ModelError(MiraError):
    """A model could not be built, run or restored."""


class Rejected(MiraError, ValueError):
    """An observation the feed refuses; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class StepOutput(NamedTuple):
    seq: int
    observed_at_ms: int
    raw_value: float
    value: int
    commitment: bytes
    publish: bool
    drift: bool


class RollingMAE:
    """Mean absolute error over the last ``window`` errors (exact sum on read)."""

    def __init__(self, window: int) -> None:
        self.errors: collections.deque[float] = collections.deque(maxlen=window)

    def update(self, error: float) -> None:
        self.errors.append(abs(error))

    def get(self) -> float | None:
        return math.fsum(self.errors) / len(self.errors) if self.errors else None


@dataclass
class _State:
    """Everything a checkpoint holds besides the spec."""

    model: Any
    last_targets: collections.deque[float]
    pending: collections.deque[tuple[dict[str, float], float | None]]
    mae: RollingMAE | None
    adwin: Any
    warm_rows: list[tuple[dict[str, float], float]] = field(default_factory=list)
    warm_done: bool = True
    seq: int = 0
    last_observed_at_ms: int = -1
    last_published_value: int | None = None
    last_published_at_ms: int = -1
    drifts: int = 0
    last_drift_seq: int | None = None
    outputs: int = 0


def build_model(spec: FeedSpec) -> Any:
    """Instantiate the feed's pipeline from the allowlist (nothing else)."""
    if spec.model is None:
        return None
    limits = {name: (low, high) for name, low, high in spec.features.ranges}
    steps = []
    for step in spec.model.steps:
        if step.role == ANOMALY:
            steps.append(step.build(limits=limits))
        else:
            steps.append(step.build())
    return steps[0] if len(steps) == 1 else compose.Pipeline(*steps)


class FeedModel:
    """The online model of one feed."""

    def __init__(self, spec: FeedSpec) -> None:
        self.spec = spec
        m = spec.model
        self._kind = spec.output_kind
        self._final = m.final_role if m is not None else None
        self._fields = spec.features.fields
        self._lags = spec.features.lags
        self._target = spec.features.target
        self.state = _State(
            model=build_model(spec),
            last_targets=collections.deque(maxlen=max(self._lags, 1)),
            pending=collections.deque(),
            mae=RollingMAE(m.mae_window) if m is not None else None,
            adwin=_ADWIN(delta=m.drift_delta) if m is not None else None,
            warm_done=not (m is not None and m.warm_start_rows > 0),
        )
        self._static_commitment = commitment(spec.digest, None)
        self._commit = committer(spec.digest, self.state.model)

    # -- the online step ---------------------------------------------------------------------

    def features(self, record: dict[str, float]) -> tuple[dict[str, float], float]:
        """Validate ``record`` and return (features in sorted key order, target)."""
        y = record.get(self._target)
        if y is None:
            raise Rejected("missing_field", f"the record has no target field {self._target!r}")
        if not self._lags:
            try:  # spec fields are sorted already: the dict is built in sorted key order
                return {name: record[name] for name in self._fields}, y
            except KeyError:
                pass  # name the missing field below
        x: dict[str, float] = {}
        for name in self._fields:
            if name not in record:
                raise Rejected("missing_field", f"the record has no feature field {name!r}")
            x[name] = record[name]
        if self._lags:
            for i, past in enumerate(reversed(self.state.last_targets), start=1):
                x[f"lag_{i}"] = past
        return {k: x[k] for k in sorted(x)}, y

    def step(self, record: dict[str, float], observed_at_ms: int) -> StepOutput | None:
        """Consume one validated observation. Returns the output, or None while the
        model warms up (lags not yet filled, a forecaster not initialised, warm start)."""
        st = self.state
        if observed_at_ms <= st.last_observed_at_ms:
            raise Rejected(
                "out_of_order",
                f"observed at {observed_at_ms} ms, not after the last one "
                f"({st.last_observed_at_ms} ms)",
            )
        x, y = self.features(record)
        st.seq += 1
        st.last_observed_at_ms = observed_at_ms
        lags_ready = len(st.last_targets) >= self._lags if self._lags else True
        if self._lags:
            st.last_targets.append(y)
        if not lags_ready:
            return None
        raw, state_commitment, drifted = self._advance(x, y)
        if raw is None:
            return None
        if not math.isfinite(raw):
            raise ModelError(f"feed {self.spec.id}: the model produced {raw!r}")
        value = quantize(raw, self.spec.decimals, self.spec.rounding)
        publish = self._should_publish(value, observed_at_ms)
        st.outputs += 1
        return StepOutput(st.seq, observed_at_ms, raw, value, state_commitment, publish, drifted)

    def _advance(self, x: dict[str, float], y: float) -> tuple[float | None, bytes, bool]:
        st = self.state
        model = st.model
        if self._kind == "value":
            return float(y), self._static_commitment, False
        if self._final == ANOMALY:
            score = float(model.score_one(x))
            c = self._commit()
            model.learn_one(x)
            return score, c, self._track(score, None)
        # forecast
        h = self.spec.horizon
        drifted = False
        if len(st.pending) == h:
            x_old, predicted = st.pending.popleft()
            if predicted is not None:
                drifted = self._track(predicted, y)
            if self._final == REGRESSOR:
                if not st.warm_done:
                    self._collect_warm(x_old, y)
                else:
                    model.learn_one(x_old, y)
        if self._final == FORECASTER:
            model.learn_one(y)
            try:
                forecast = model.forecast(horizon=h)
            except (IndexError, ZeroDivisionError, ValueError):
                forecast = None  # not initialised yet (e.g. a first season)
            prediction = None if not forecast else float(forecast[-1])
        elif st.warm_done:
            prediction = float(model.predict_one(x))
        else:
            prediction = None
        st.pending.append((x, prediction))
        if prediction is None:
            return None, b"", drifted
        return prediction, self._commit(), drifted

    def _track(self, prediction: float, actual: float | None) -> bool:
        st = self.state
        if actual is None:
            signal = prediction
        else:
            signal = abs(actual - prediction)
            if st.mae is not None:
                st.mae.errors.append(signal)
        st.adwin.update(signal)
        if st.adwin.drift_detected:
            st.drifts += 1
            st.last_drift_seq = st.seq
            return True
        return False

    def _collect_warm(self, x: dict[str, float], y: float) -> None:
        from oracle.models.warm_start import warm_start

        st = self.state
        st.warm_rows.append((x, y))
        assert self.spec.model is not None
        if len(st.warm_rows) >= self.spec.model.warm_start_rows:
            warm_start(st.model, st.warm_rows, alpha=self.spec.model.warm_start_alpha)
            st.warm_rows = []
            st.warm_done = True

    def _should_publish(self, value: int, observed_at_ms: int) -> bool:
        st = self.state
        last = st.last_published_value
        due = (
            last is None
            or observed_at_ms - st.last_published_at_ms >= self.spec.heartbeat_s * 1000
            or _deviation_bps(last, value) >= self.spec.deviation_bps
        )
        if due:
            st.last_published_value = value
            st.last_published_at_ms = observed_at_ms
        return due

    # -- introspection and persistence -------------------------------------------------------

    @property
    def seq(self) -> int:
        return self.state.seq

    def commitment(self) -> bytes:
        if self.state.model is None:
            return self._static_commitment
        return self._commit()

    def metrics(self) -> dict[str, Any]:
        st = self.state
        return {
            "observations": st.seq,
            "outputs": st.outputs,
            "mae": st.mae.get() if st.mae is not None else None,
            "mae_window": self.spec.model.mae_window if self.spec.model else None,
            "drifts": st.drifts,
            "last_drift_seq": st.last_drift_seq,
            "warming_up": not st.warm_done,
        }

    def checkpoint(self) -> bytes:
        """Pickle of this node's own state. Only ever loaded by :meth:`restore` from the
        node's own database, never from another party."""
        return pickle.dumps(self.state, protocol=5)

    def restore(self, blob: bytes) -> None:
        state = pickle.loads(blob)  # noqa: S301 — our own checkpoint, see checkpoint()
        if not isinstance(state, _State):
            raise ModelError(f"feed {self.spec.id}: checkpoint holds {type(state).__name__}")
        self.state = state
        self._commit = committer(self.spec.digest, state.model)


def _deviation_bps(old: int, new: int) -> int:
    """|new - old| / |old| in basis points, exact integer arithmetic (rounded down)."""
    if old == 0:
        return 0 if new == 0 else 10**9
    return abs(new - old) * 10_000 // abs(old)
