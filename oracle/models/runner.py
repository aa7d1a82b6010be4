"""One feed's model, run online: features → learn/predict → quantized output with its
commitment, rolling error, drift, and the publish decision.

Everything here is a pure function of the ordered observations, so any node (or anyone
replaying a feed) that feeds the same observations gets the same outputs, commitments
and publish decisions. Time comes from the observations, never from the clock.

Order of work per observation, by output kind:

* ``forecast`` with a regressor and horizon h: the features seen h observations ago
  learn the current target, then the current features predict h steps ahead. With
  h = 0 (a record whose target already lies ahead, such as SP500Stocks' next-day return)
  the features predict the record's own target, then learn it.
* ``forecast`` with a time-series forecaster: learn the target, then forecast h ahead.
* ``anomaly``: score the features, then learn them.
* ``value``: the target itself, no model.
* ``values``: every field itself, no model, each quantized, published and decided on
  (deviation, heartbeat) as its own feed (``arms`` holds them, in the fields' order).
* ``policy``: the bandit pulls one arm (seeded; the arms in the spec's fixed order),
  learns that arm's reward from the record (bandit feedback: the other arms' rewards in
  the record are not shown to it), and outputs every arm's score, i.e. the policy's
  estimate of the arm's reward (a statistic's value, or the posterior mean of a
  Thompson sampler's distribution; an arm never pulled scores its prior). Each score is
  quantized, published and decided on (deviation, heartbeat) as its own feed.
* ``policy`` learning from an agent's logged steps (``[output] arm_field``): the record
  is one on-chain step, the arm the agent took, its reward and the context it saw; the
  policy learns that (a bandit's ``update``, or :class:`ContextualLinear`), scores every
  arm and recommends one by its own seeded rule. Its feeds, and any policy's that
  publishes its recommended arm, are published together: one report, one round.

The commitment is of the model state that produced the output.

Beside a forecast's rolling error runs the rolling error of a naive forecast of the same
targets (the last known value; for a seasonal forecaster, the value one season back), so
the feed's skill, ``1 - mae / baseline_mae``, is on the record: above 0 the model earns
its keep. A policy's skill is ``1 - regret / baseline_regret``: its rolling per-step regret
against each record's best arm, beside uniformly random play's. An anomaly score has no
labels online, so no skill.
"""

from __future__ import annotations

import collections
import math
import pickle
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from river import compose, drift, proba

from oracle.config.allowlist import ANOMALY, CONTEXTUAL_LINEAR, FORECASTER, POLICY, REGRESSOR
from oracle.config.publish import is_due
from oracle.errors import MiraError, Rejected
from oracle.models.calls import Learn, Predict, regressor_calls
from oracle.models.commitment import Snapshot, capturer, commitment, digest_of
from oracle.models.contextual import ContextualLinear
from oracle.models.quantize import QuantizationError, quantizer

if TYPE_CHECKING:
    from oracle.config.feeds import FeedSpec


_ADWIN: Any = drift.ADWIN
_new_tuple = tuple.__new__
POLICY_WINDOW = 100  # steps in a policy's rolling regret (and its baseline's)
RECOMMENDED = "#arm"  # the ArmOutput name of a policy's recommended arm (after the arms)


def _no_call(*_: Any) -> Any:
    raise AssertionError("only a regressor feed learns and predicts through _learn/_predict")


class ModelError(MiraError):
    """A model could not be built, run or restored."""


class ArmOutput(NamedTuple):
    """One arm's score of a policy feed, published as the feed ``arm_feed_id``."""

    arm: str
    raw_value: float
    value: int
    publish: bool


class StepOutput(NamedTuple):
    """A model output. For a policy feed, ``arms`` holds every arm's score in the spec's
    order, and ``raw_value``/``value`` are the best arm's (the first of equals)."""

    seq: int
    observed_at_ms: int
    raw_value: float
    value: int
    commitment: bytes
    publish: bool
    drift: bool
    arms: tuple[ArmOutput, ...] = ()


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
    # policy feeds: the arm pulled last; policy and values feeds: per published feed (its
    # last published value, at ms)
    last_pulled: str | None = None
    arms_published: tuple[tuple[int | None, int], ...] = ()
    # forecasts: the naive baseline's rolling error over the same targets, its pending
    # forecasts (one per pending model forecast) and the targets it forecasts from.
    # Class-level defaults: a checkpoint written before they existed restores with None.
    baseline_mae: RollingMAE | None = None
    baseline_pending: collections.deque[float | None] | None = None
    recent_targets: collections.deque[float] | None = None
    # policies: rolling per-step regret against each record's best arm, the policy's and
    # uniform random play's
    regret: RollingMAE | None = None
    baseline_regret: RollingMAE | None = None


def build_model(spec: FeedSpec) -> Any:
    """Instantiate the feed's pipeline from the allowlist (nothing else)."""
    if spec.model is None:
        return None
    limits = {name: (low, high) for name, low, high in spec.features.ranges}
    steps = []
    for step in spec.model.steps:
        if step.name == CONTEXTUAL_LINEAR:
            steps.append(ContextualLinear(spec.arms, **dict(step.params)))
        elif step.role == ANOMALY:
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
        self._arms = list(spec.arms)
        self._reward_of = dict(zip(spec.arms, spec.reward_fields, strict=True))
        self._negative_abs = spec.reward_transform == "negative_abs"
        tracked = m is not None and self._final != POLICY
        self._current = spec.features.current
        self._target_stat = spec.features.target_stat
        # A record of exactly the spec's record fields in their (sorted) order, as the
        # pipeline builds it, whose features are those fields but the target in the same
        # order: its features dict is a copy of it without the target (one C copy), the
        # same keys in the same order as building it key by key (river's sums follow it).
        plain = not spec.features.lags and not self._current and self._target_stat is None
        record_order = spec.features.record_fields
        self._record_order: tuple[str, ...] | None = (
            record_order
            if plain
            and self._target is not None
            and [k for k in record_order if k != self._target] == list(self._fields)
            else None
        )
        # the naive baseline's season: a seasonal forecaster's own, else 1 (last value)
        self._season = 1
        if m is not None and self._final == FORECASTER:
            self._season = max(1, int(dict(m.steps[-1].params).get("seasonality") or 1))
        self.baseline = (
            None if self._kind != "forecast" else "last" if self._season == 1 else "seasonal_naive"
        )
        self.state = _State(
            model=build_model(spec),
            last_targets=collections.deque(maxlen=max(self._lags, 1)),
            pending=collections.deque(),
            mae=RollingMAE(m.mae_window) if tracked and m is not None else None,
            adwin=_ADWIN(delta=m.drift_delta) if tracked and m is not None else None,
            warm_done=not (m is not None and m.warm_start_rows > 0),
        )
        if self._kind == "forecast" and m is not None:
            self.state.baseline_mae = RollingMAE(m.mae_window)
            self.state.baseline_pending = collections.deque()
            self.state.recent_targets = collections.deque(maxlen=self._season)
        self._binary_rewards = self._final == POLICY and isinstance(
            getattr(self.state.model, "reward_obj", None), proba.Beta
        )
        self._logged = spec.logged
        self._contextual = isinstance(self.state.model, ContextualLinear)
        # the agent checks that all of a policy's feeds carry one round: publish them together
        self._together = spec.published_together
        self._recommend = spec.recommend
        self._quantize = quantizer(spec.decimals, spec.rounding)
        self._heartbeat_ms = spec.heartbeat_s * 1000
        self._deviation_bps = spec.deviation_bps
        self._deviation_abs = spec.deviation_abs
        self._static_commitment = commitment(spec.digest, None)
        self._bind_model()
        self._horizon = spec.horizon
        # the naive forecast h ahead is the target ceil(h / season) seasons back: this
        # many observations before the newest one
        self._naive_back = self._season * -(-self._horizon // self._season) - self._horizon
        # the step of this feed's kind, chosen once (a step runs for every observation):
        # a policy's and a values feed's make their whole output; a forecast ahead runs in
        # two halves (begin, finish: see begin()); the others advance the model and the
        # output is quantized and decided on in _step()
        self._whole_step = (
            self._policy_step
            if self._final == POLICY
            else self._values_step
            if self._kind == "values"
            else None
        )
        self._advance = (
            self._advance_value
            if self._kind == "value"
            else self._advance_anomaly
            if self._final == ANOMALY
            else self._advance_same_record
            if self._horizon == 0
            else None
        )
        self._halves = self._whole_step is None and self._advance is None

    # -- the online step ---------------------------------------------------------------------

    def features(self, record: dict[str, float]) -> tuple[dict[str, float], float]:
        """Validate ``record`` and return (features in sorted key order, target). A policy
        feed (its rewards are features) and a values feed (its fields are its outputs) have
        no target: the target is then nan."""
        if self._target is None:
            rewards: dict[str, float] = {}
            for name in self._fields:
                if name not in record:
                    what = "field" if self._kind == "values" else "reward field"
                    raise Rejected("missing_field", f"the record has no {what} {name!r}")
                rewards[name] = record[name]
            if self._logged is not None:
                self._check_step(rewards)
            elif self._binary_rewards:
                for name, v in rewards.items():
                    if v != 0.0 and v != 1.0:
                        raise Rejected(
                            "bad_reward",
                            f"reward field {name!r} is {v!r}: a Beta reward is 0 or 1",
                        )
            return rewards, math.nan
        y = self._statistic(record) if self._target_stat else record.get(self._target)
        if y is None:
            raise Rejected("missing_field", f"the record has no target field {self._target!r}")
        if self._record_order is not None and tuple(record) == self._record_order:
            features = record.copy()
            del features[self._target]
            return features, y
        if not self._lags and not self._current and self._target_stat is None:
            try:  # spec fields are sorted already: the dict is built in sorted key order
                return {name: record[name] for name in self._fields}, y
            except KeyError:
                pass  # name the missing field below
        x: dict[str, float] = {}
        # with a target statistic the fields only make the target: its history is the input
        for name in self._fields if self._target_stat is None else ():
            if name not in record:
                raise Rejected("missing_field", f"the record has no feature field {name!r}")
            x[name] = record[name]
        if self._lags:
            for i, past in enumerate(reversed(self.state.last_targets), start=1):
                x[f"lag_{i}"] = past
        if self._current:
            x[self._target] = y
        return {k: x[k] for k in sorted(x)}, y

    def _check_step(self, x: dict[str, float]) -> None:
        """A logged step names an arm of the policy (its 0-based index) and, for a Beta
        reward, a reward of 0 or 1; else it is rejected before anything is learned."""
        assert self._logged is not None
        index = x[self._logged.arm_field]
        if not (index.is_integer() and 0 <= index < len(self._arms)):
            raise Rejected(
                "unknown_arm",
                f"{self._logged.arm_field} = {index!r} is no arm: expected an index in "
                f"[0, {len(self._arms) - 1}] ({', '.join(self._arms)})",
            )
        reward = x[self._logged.reward_field]
        if self._binary_rewards and reward != 0.0 and reward != 1.0:
            raise Rejected(
                "bad_reward",
                f"{self._logged.reward_field} is {reward!r}: a Beta reward is 0 or 1",
            )

    def _statistic(self, record: dict[str, float]) -> float:
        """The target as a statistic of the fields (``[features] target_stat``), summed
        exactly (math.fsum) so that every node gets the same float."""
        values = []
        for name in self._fields:
            if name not in record:
                raise Rejected("missing_field", f"the record has no feature field {name!r}")
            values.append(record[name])
        if self._target_stat == "mean_abs":
            values = [abs(v) for v in values]
        return math.fsum(values) / len(values)

    def target(self, record: dict[str, float]) -> float:
        """The target of a validated record, as the model sees it (nan for a policy)."""
        return self.features(record)[1]

    def prime(self, record: dict[str, float]) -> None:
        """Take a validated record's target into the lag features without learning from it
        or producing an output. A registered version's lags are filled from the rows just
        before its start point (every member reads the same rows), so its first output is
        for the first row it learns from instead of ``lags`` rows later."""
        if self._lags:
            self.state.last_targets.append(self.target(record))

    def step(self, record: dict[str, float], observed_at_ms: int) -> StepOutput | None:
        """Consume one validated observation. Returns the output, or None while the
        model warms up (lags not yet filled, a forecaster not initialised, warm start).
        Raises :class:`Rejected` (nothing consumed), :class:`QuantizationError` (consumed,
        no output) or :class:`ModelError`."""
        if self._halves:
            (out,) = self.finish([self.begin(record, observed_at_ms)])
            if isinstance(out, QuantizationError):
                raise out
            return out
        return self._step(record, observed_at_ms)

    def begin(self, record: dict[str, float], observed_at_ms: int) -> Any:
        """The first half of :meth:`step`: consume the observation; what :meth:`finish`
        makes its output of comes back. ``finish`` of the begun observations, in the order
        they were begun, gives each one's output: the same outputs, in the same state, as
        :meth:`step` of each in turn, however many are begun before they are finished.

        Why halves: a forecast ahead's model and its commitment's capture run here, one
        observation after another (each needs the state the one before left), and what
        depends only on their results (the commitment's hashing, the rolling errors and
        drift, the quantized value, the publish decision) runs in ``finish``, over a whole
        batch at once. Two tight loops instead of one: each keeps its code and data in the
        caches, and the node's pipeline costs ~15 % less CPU an observation
        (docs/benchmarks.md "Session 19"). Any other feed's ``begin`` is its whole step,
        and ``finish`` passes its output on.

        Raises what :meth:`step` raises before anything is consumed (:class:`Rejected`),
        and :class:`ModelError` for a model that gives no finite forecast (the model has
        consumed the observation then, as with step, but not tracked its error: the error
        ends the batch, and nothing of that observation is stored); any other feed's ``begin`` also
        raises the :class:`QuantizationError` that refused its output (the observation
        consumed), where a forecast's ``finish`` gives it in the output's place."""
        if not self._halves:
            return self._step(record, observed_at_ms)
        consumed = self._consume(record, observed_at_ms)
        if consumed is None:
            return None
        x, y = consumed
        st = self.state
        # A forecast h >= 1 ahead: the features seen h observations ago learn this target
        # (a regressor; a forecaster learns the target itself), then forecast h ahead. What
        # finish() needs comes back: (seq, time, target, the forecast made h observations
        # ago of this target and the naive baseline's, this forecast, the capture of the
        # state that made it).
        model = st.model
        h = self._horizon
        # the naive baseline's forecast of the target h ahead, from the targets so far
        naive = None
        recent = st.recent_targets
        if recent is not None:
            recent.append(y)
            if self._naive_back < len(recent):
                naive = recent[-1 - self._naive_back]
        predicted = naive_old = None
        if len(st.pending) == h:
            x_old, predicted = st.pending.popleft()
            naive_old = st.baseline_pending.popleft() if st.baseline_pending else None
            if self._final == REGRESSOR:
                if not st.warm_done:
                    self._collect_warm(x_old, y)
                else:
                    self._learn(x_old, y)
        if self._final == FORECASTER:
            model.learn_one(y)
            try:
                forecast = model.forecast(horizon=h)
            except (IndexError, ZeroDivisionError, ValueError):
                forecast = None  # not initialised yet (e.g. a first season)
            prediction = None if not forecast else float(forecast[-1])
        elif st.warm_done:
            prediction = float(self._predict(x))
        else:
            prediction = None
        st.pending.append((x, prediction))
        if st.baseline_pending is not None:
            st.baseline_pending.append(naive)
        snapshot: Snapshot = b""
        if prediction is not None:
            if not math.isfinite(prediction):
                raise ModelError(f"feed {self.spec.id}: the model produced {prediction!r}")
            snapshot = self._capture()
        return (st.seq, observed_at_ms, y, predicted, naive_old, prediction, snapshot)

    def finish(self, begun: list[Any]) -> list[StepOutput | QuantizationError | None]:
        """The second half of :meth:`step` for observations :meth:`begin` took, in their
        order: each one's output, None (no output: the model warms up), or the
        :class:`QuantizationError` that refused its output (the observation is consumed)."""
        if not self._halves:
            return begun
        # the commitments first, in one loop of their own (see begin)
        commitments = [b"" if b is None else digest_of(b[6]) for b in begun]
        st = self.state
        quantize = self._quantize
        deviation_bps, heartbeat, deviation_abs = (
            self._deviation_bps,
            self._heartbeat_ms,
            self._deviation_abs,
        )
        baseline_mae = st.baseline_mae
        outs: list[StepOutput | QuantizationError | None] = []
        for b, state_commitment in zip(begun, commitments):  # noqa: B905 (one per begun)
            if b is None:
                outs.append(None)
                continue
            seq, observed_at_ms, y, predicted, naive, raw, _ = b
            drifted = False
            if predicted is not None:
                drifted = self._track(predicted, y, seq)
                if naive is not None and baseline_mae is not None:
                    baseline_mae.update(y - naive)
            if raw is None:
                outs.append(None)
                continue
            try:
                value = quantize(raw)
            except QuantizationError as exc:
                outs.append(exc)
                continue
            publish = is_due(
                st.last_published_value,
                st.last_published_at_ms,
                value,
                observed_at_ms,
                deviation_bps=deviation_bps,
                heartbeat=heartbeat,
                deviation_abs=deviation_abs,
            )
            if publish:
                st.last_published_value = value
                st.last_published_at_ms = observed_at_ms
            st.outputs += 1
            # tuple.__new__: the NamedTuple without its Python-level __new__ (hot path)
            outs.append(
                _new_tuple(
                    StepOutput,
                    (seq, observed_at_ms, raw, value, state_commitment, publish, drifted, ()),
                )
            )
        return outs

    def _consume(
        self, record: dict[str, float], observed_at_ms: int
    ) -> tuple[dict[str, float], float] | None:
        """Take an observation in order (:class:`Rejected` if it is not after the last one,
        or has no target), counted as the newest; its features and target, or None while
        the lags fill (nothing more to do with it)."""
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
        if self._lags:
            lags_ready = len(st.last_targets) >= self._lags
            st.last_targets.append(y)
            if not lags_ready:
                return None
        return x, y

    def _step(self, record: dict[str, float], observed_at_ms: int) -> StepOutput | None:
        """:meth:`step` of any feed but a forecast ahead (which runs in halves)."""
        consumed = self._consume(record, observed_at_ms)
        if consumed is None:
            return None
        x, y = consumed
        st = self.state
        if self._whole_step is not None:
            return self._whole_step(x, observed_at_ms)
        assert self._advance is not None  # else begin() and finish() step it
        raw, state_commitment, drifted = self._advance(x, y)
        if raw is None:
            return None
        if not math.isfinite(raw):
            raise ModelError(f"feed {self.spec.id}: the model produced {raw!r}")
        value = self._quantize(raw)
        publish = is_due(
            st.last_published_value,
            st.last_published_at_ms,
            value,
            observed_at_ms,
            deviation_bps=self._deviation_bps,
            heartbeat=self._heartbeat_ms,
            deviation_abs=self._deviation_abs,
        )
        if publish:
            st.last_published_value = value
            st.last_published_at_ms = observed_at_ms
        st.outputs += 1
        # tuple.__new__: the NamedTuple without its Python-level __new__ (hot path)
        return _new_tuple(
            StepOutput, (st.seq, observed_at_ms, raw, value, state_commitment, publish, drifted, ())
        )

    # Each _advance_* takes a validated observation's features and target and returns
    # (the raw output or None, the commitment of the state that made it, drift detected).

    def _advance_value(self, x: dict[str, float], y: float) -> tuple[float | None, bytes, bool]:
        """A value feed: the target itself, no model."""
        return float(y), self._static_commitment, False

    def _advance_anomaly(self, x: dict[str, float], y: float) -> tuple[float | None, bytes, bool]:
        """Score the features, then learn them."""
        model = self.state.model
        score = float(model.score_one(x))
        c = self._commit()
        model.learn_one(x)
        return score, c, self._track(score, None)

    def _advance_same_record(
        self, x: dict[str, float], y: float
    ) -> tuple[float | None, bytes, bool]:
        """Horizon 0: the features predict the record's own target, then learn it."""
        st = self.state
        naive = st.recent_targets[-1] if st.recent_targets else None
        if st.recent_targets is not None:
            st.recent_targets.append(y)
        if not st.warm_done:
            self._collect_warm(x, y)
            return None, b"", False
        prediction = float(self._predict(x))
        c = self._commit()
        self._learn(x, y)
        if st.baseline_mae is not None and naive is not None:
            st.baseline_mae.update(y - naive)
        return prediction, c, self._track(prediction, y)

    def _policy_step(self, x: dict[str, float], observed_at_ms: int) -> StepOutput:
        if self._logged is not None:
            return self._logged_step(x, observed_at_ms)
        st = self.state
        policy = st.model
        arm = policy.pull(self._arms)
        rewards = [self._reward(x[self._reward_of[a]]) for a in self._arms]
        pulled = rewards[self._arms.index(arm)]
        policy.update(arm, pulled)
        st.last_pulled = arm
        # regret against the best arm of this record, the policy's and uniform random's
        # (the record shows every arm's reward, though the policy learns only its own)
        if st.regret is None or st.baseline_regret is None:  # a checkpoint from before
            st.regret, st.baseline_regret = RollingMAE(POLICY_WINDOW), RollingMAE(POLICY_WINDOW)
        best = max(rewards)
        st.regret.update(best - pulled)
        st.baseline_regret.update(best - math.fsum(rewards) / len(rewards))
        scores = [self._arm_score(policy, a) for a in self._arms]
        recommended = max(range(len(scores)), key=scores.__getitem__)
        return self._policy_output(scores, recommended, observed_at_ms)

    def _logged_step(self, x: dict[str, float], observed_at_ms: int) -> StepOutput:
        """Learn the agent's step (checked by :meth:`_check_step`): the arm it took, that
        arm's reward, and the context it saw; then score every arm and recommend one (the
        policy's own seeded exploration rule: a bandit's pull, or the contextual policy's
        epsilon-greedy)."""
        st = self.state
        policy = st.model
        logged = self._logged
        assert logged is not None
        arm = self._arms[int(x[logged.arm_field])]
        reward = self._reward(x[logged.reward_field])
        st.last_pulled = arm
        if self._contextual:
            context = {name: x[name] for name in logged.context}  # sorted names
            policy.learn(arm, context, reward)
            scores = [policy.score(a, context) for a in self._arms]
            recommended = self._arms.index(policy.recommend(context))
        else:
            policy.update(arm, reward)
            scores = [self._arm_score(policy, a) for a in self._arms]
            recommended = self._arms.index(policy.pull(self._arms))
        return self._policy_output(scores, recommended, observed_at_ms)

    def _values_step(self, x: dict[str, float], observed_at_ms: int) -> StepOutput:
        """Every field as its own feed; ``raw_value``/``value`` are the first field's."""
        st = self.state
        names = list(x)  # the spec's fields, sorted (see features)
        raws = [x[n] for n in names]
        values = [self._quantize(raw) for raw in raws]  # all quantize before any decision
        due = self._due(values, observed_at_ms, index_last=False)
        st.outputs += 1
        outs = tuple(ArmOutput(*o) for o in zip(names, raws, values, due, strict=True))
        return StepOutput(
            st.seq,
            observed_at_ms,
            raws[0],
            values[0],
            self._static_commitment,
            any(due),
            False,
            outs,
        )

    def _due(self, values: list[int], observed_at_ms: int, *, index_last: bool) -> list[bool]:
        """Which of several feeds' ``values`` are due (each by the spec's [publish] rules
        against its own last published value; the last one, a recommended arm's index when
        ``index_last``, on any change), recorded as published."""
        st = self.state
        published = list(st.arms_published)
        if len(published) != len(values):
            published = [(None, -1)] * len(values)
        due = []
        for i, value in enumerate(values):
            last, last_at_ms = published[i]
            if index_last and i == len(values) - 1:
                # an index has no size: any change is due (and the heartbeat)
                due.append(last != value or observed_at_ms - last_at_ms >= self._heartbeat_ms)
                continue
            due.append(
                is_due(
                    last,
                    last_at_ms,
                    value,
                    observed_at_ms,
                    deviation_bps=self._deviation_bps,
                    heartbeat=self._heartbeat_ms,
                    deviation_abs=self._deviation_abs,
                )
            )
        if self._together and any(due):
            due = [True] * len(values)  # one report carries the whole policy
        for i, d in enumerate(due):
            if d:
                published[i] = (values[i], observed_at_ms)
        st.arms_published = tuple(published)
        return due

    def _policy_output(
        self, scores: list[float], recommended: int, observed_at_ms: int
    ) -> StepOutput:
        st = self.state
        for a, raw in zip(self._arms, scores, strict=True):
            if not math.isfinite(raw):
                raise ModelError(f"feed {self.spec.id}: arm {a!r} scored {raw!r}")
        # every score quantizes before any publish decision is taken: all or nothing
        values = [self._quantize(raw) for raw in scores]
        names = list(self._arms)
        raws = list(scores)
        if self._recommend:
            # the recommended arm's index, in the feed's fixed point like every output
            names.append(RECOMMENDED)
            raws.append(float(recommended))
            values.append(self._quantize(float(recommended)))
        due = self._due(values, observed_at_ms, index_last=self._recommend)
        arms = [ArmOutput(n, r, v, d) for n, r, v, d in zip(names, raws, values, due, strict=True)]
        st.outputs += 1
        best = max(range(len(scores)), key=scores.__getitem__)
        return StepOutput(
            st.seq,
            observed_at_ms,
            scores[best],
            values[best],
            self._commit(),
            any(o.publish for o in arms),
            False,
            tuple(arms),
        )

    def prior_output(self, observed_at_ms: int) -> StepOutput | None:
        """The policy before it learned any step, for a policy learning from an agent's
        steps: every arm's prior score (the contextual policy's predictions, 0 before any
        fit) and the best of them (the first of equals) recommended; all published. None
        once a step was learned, or for any other feed.

        The loop's bootstrap: the agent refuses a never-published policy and the policy
        learns only from the agent's steps, so the committee publishes this first. It is a
        function of the spec alone (no seeded draw, no state touched), so every member
        makes the same one, before and after a restart."""
        if self._logged is None or self.state.seq != 0:
            return None
        policy = self.state.model
        if self._contextual:
            scores = [policy.score(a, {}) for a in self._arms]
        else:
            scores = [self._arm_score(policy, a) for a in self._arms]
        best = max(range(len(scores)), key=scores.__getitem__)
        raws = [*scores, float(best)] if self._recommend else list(scores)
        names = [*self._arms, RECOMMENDED] if self._recommend else list(self._arms)
        values = [self._quantize(raw) for raw in raws]
        arms = tuple(ArmOutput(n, r, v, True) for n, r, v in zip(names, raws, values, strict=True))
        return StepOutput(
            0, observed_at_ms, scores[best], values[best], self._commit(), True, False, arms
        )

    def _reward(self, value: float) -> float:
        return -abs(value) if self._negative_abs else value

    def arm_rewards(self, record: dict[str, float]) -> list[float]:
        """Every arm's reward in a validated record, in the arms' order (what the policy
        learns when it pulls that arm)."""
        return [self._reward(record[self._reward_of[a]]) for a in self._arms]

    @staticmethod
    def _arm_score(policy: Any, arm: str) -> float:
        """The policy's estimate of ``arm``'s reward; its prior (the template reward object,
        which river never updates) before the arm is first pulled."""
        reward = policy._rewards.get(arm)  # river keeps per-arm state there, no public view
        if reward is None:
            reward = policy.reward_obj
        if isinstance(reward, proba.Beta):
            return float(reward.alpha / (reward.alpha + reward.beta))
        if isinstance(reward, proba.Gaussian):
            return float(reward.mu)
        return float(reward.get())

    def _track(self, prediction: float, actual: float | None, seq: int | None = None) -> bool:
        """Rolling error and drift of one output (``seq``: its observation's, if not the
        newest's)."""
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
            st.last_drift_seq = st.seq if seq is None else seq
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
        mae = st.mae.get() if st.mae is not None else None
        base = st.baseline_mae.get() if st.baseline_mae is not None else None
        out: dict[str, Any] = {
            "observations": st.seq,
            "outputs": st.outputs,
            "mae": mae,
            "mae_window": st.mae.errors.maxlen if st.mae is not None else None,
            # the naive forecast's rolling error over the same targets, and the skill score
            "baseline": self.baseline if base is not None else None,
            "baseline_mae": base,
            "skill": None if mae is None or not base else 1.0 - mae / base,
            "drifts": st.drifts,
            "last_drift_seq": st.last_drift_seq,
            "warming_up": not st.warm_done,
        }
        if self._final == POLICY:
            counts = st.model.counts if self._contextual else st.model._counts
            out["last_pulled"] = st.last_pulled
            out["pulls"] = {arm: counts[arm] for arm in self._arms}
            regret = st.regret.get() if st.regret is not None else None
            base = st.baseline_regret.get() if st.baseline_regret is not None else None
            out["regret"] = regret
            out["regret_window"] = POLICY_WINDOW
            out["baseline"] = "uniform_random" if base is not None else None
            out["baseline_regret"] = base
            out["skill"] = None if regret is None or not base else 1.0 - regret / base
        return out

    def checkpoint(self) -> bytes:
        """Pickle of this node's own state. Only ever loaded by :meth:`restore` from the
        node's own database, never from another party."""
        return pickle.dumps(self.state, protocol=5)

    def restore(self, blob: bytes) -> None:
        state = pickle.loads(blob)  # noqa: S301 — our own checkpoint, see checkpoint()
        if not isinstance(state, _State):
            raise ModelError(f"feed {self.spec.id}: checkpoint holds {type(state).__name__}")
        self.state = state
        self._bind_model()

    def _bind_model(self) -> None:
        """What is bound to the current model's objects: the commitment's capture (and the
        committer made of it), and a regressor's learn_one and predict_one (oracle.models.
        calls: river's Pipeline calls without their dispatch)."""
        capture = self._capture = capturer(self.spec.digest, self.state.model)

        def commit() -> bytes:
            return digest_of(capture())

        self._commit = commit
        calls: tuple[Learn, Predict] = (
            regressor_calls(self.state.model) if self._final == REGRESSOR else (_no_call, _no_call)
        )
        self._learn, self._predict = calls
