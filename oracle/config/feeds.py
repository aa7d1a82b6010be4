"""Feed specs (``feeds/*.toml``): what a feed observes, how it models it, what it
publishes.

A feed's on-chain id is ``keccak256(utf8(id))`` (bytes32), see :func:`feed_id_bytes32`.
A policy feed (``[output] kind = "policy"``) publishes one on-chain feed per arm, with
id ``keccak256(utf8("<feed id>/<arm>"))``, see :func:`arm_feed_id`.

Example::

    id = "SP500/return-1d"
    version = 1
    description = "the SP500Stocks target (next day's portfolio return), forecast"
    decimals = 8

    [[sources]]
    name = "sp500"
    kind = "replay"
    dataset = "river:SP500Stocks"

    [features]
    fields = ["AAPL", "AMZN", "IBM", "INTC", "JNJ", "JPM", "KO", "MSFT"]
    target = "y"

    [[model.steps]]
    class = "preprocessing.StandardScaler"

    [[model.steps]]
    class = "linear_model.LinearRegression"
    intercept_lr = 0.01

    [output]
    kind = "forecast"
    horizon = 0  # y is already the next day's return: forecast the record's own target

    [quantize]
    rounding = "ROUND_HALF_EVEN"

    [publish]
    deviation_abs = 0.05  # a return lives near zero: publish moves of 0.05, not of 50 bps
    heartbeat_s = 3600

(A shape, not a recommendation: daily returns are close to unpredictable, and ``mira
eval`` shows this one losing to the running mean; ``feeds/sp500_forecast.toml`` forecasts
volatility instead.)
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from web3 import Web3

from oracle.config.allowlist import (
    ANOMALY,
    CONTEXTUAL_LINEAR,
    FORECASTER,
    POLICY,
    REGRESSOR,
    TRANSFORMER,
    ComponentSpec,
)
from oracle.config.allowlist import read_component as _read_component
from oracle.config.events import EventSpecError, resolve_event, resolve_event_fields
from oracle.config.reader import ConfigError, Problems, Table
from oracle.config.transform import ReturnsToIndex, read_transform
from oracle.crypto.keccak import keccak_256

FEED_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}$")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
ROUNDING_MODES = (
    "ROUND_HALF_EVEN",
    "ROUND_HALF_UP",
    "ROUND_HALF_DOWN",
    "ROUND_DOWN",
    "ROUND_UP",
    "ROUND_FLOOR",
    "ROUND_CEILING",
)
RIVER_DATASETS = ("SP500Stocks", "WaterFlow", "AirlinePassengers", "TrumpApproval")
OUTPUT_KINDS = ("value", "values", "forecast", "anomaly", "policy")
REWARD_TRANSFORMS = ("identity", "negative_abs")
ARM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
MAX_ARMS = 32
MAX_SPEC_BYTES = 256 * 1024
VERSION = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,6}){0,3}$")


def feed_id_bytes32(feed_id: str) -> bytes:
    """The on-chain ``bytes32`` id of a feed: ``keccak256`` of its UTF-8 string id (straight
    into C: a node loading 10,000 specs hashes each one's feeds)."""
    return keccak_256(feed_id.encode("utf-8")).digest()  # type: ignore[no-any-return]


def arm_feed_id(feed_id: str, arm: str) -> str:
    """The string id of one arm's score of a policy feed, or of one field of a ``values``
    feed: ``"<feed id>/<arm or field>"``. Its on-chain id is :func:`feed_id_bytes32` of it,
    like any feed's. This is the only place the rule is written down."""
    return f"{feed_id}/{arm}"


def recommended_feed_id(feed_id: str) -> str:
    """The string id of a policy's recommended-arm feed: ``"<feed id>#arm"`` (``#`` is in
    no arm name, so it never clashes with an arm's feed)."""
    return f"{feed_id}#arm"


@dataclass(frozen=True)
class LoggedSteps:
    """``[output] arm_field``, ``reward_field`` and ``context`` of a policy learning from
    an agent's steps: the record field holding the arm's index (0-based, in ``arms``
    order), the one holding its reward, and the context features (sorted)."""

    arm_field: str
    reward_field: str
    context: tuple[str, ...]


@dataclass(frozen=True)
class OutputFeed:
    """One on-chain feed a spec publishes: the spec's own id, or one per policy arm."""

    id: str
    description: str
    arm: str | None = None
    # hashed once: the rounds ask for it per feed, several times a round
    _id_bytes32: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_id_bytes32", feed_id_bytes32(self.id))

    @property
    def id_bytes32(self) -> bytes:
        return self._id_bytes32


@dataclass(frozen=True)
class HttpSourceSpec:
    name: str
    url: str
    path: tuple[
        str | int, ...
    ]  # field path into the JSON body, e.g. data.price -> ("data", "price")
    timeout_s: float
    retries: int
    backoff_s: float
    max_body_bytes: int


@dataclass(frozen=True)
class ChainEventSourceSpec:
    name: str
    rpc_url: str
    address: str  # checksummed
    contract: str  # forge artifact whose ABI declares the event (contracts/out)
    event: str
    event_abi: str  # the event's ABI entry, canonical JSON
    topic0: str  # keccak of the event signature, 0x-prefixed
    field: tuple[str, ...]  # path into the decoded arguments, e.g. point.price (or ())
    scale_decimals: int  # the integer value is divided by 10**scale_decimals
    confirmations: int
    from_block: int
    max_block_range: int  # blocks per eth_getLogs call
    max_ranges_per_poll: int
    # several values per log (``[sources.fields]``): record field → path, sorted by name;
    # a path may index an integer array (context.0). Empty: the one ``field``.
    fields: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # ``[sources.limits]``: a record field outside [low, high] rejects the log (sorted)
    limits: tuple[tuple[str, float, float], ...] = ()
    # ``[sources.decimals]``: a field's own scale (an arm index: 0), else scale_decimals
    field_decimals: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class ReplaySourceSpec:
    name: str
    dataset: str  # "river:<Name>" or a CSV path (resolved against the spec's folder)
    csv_path: Path | None
    time_field: str | None  # CSV column with unix seconds; None: synthetic clock
    start_ms: int
    step_ms: int
    passes: int
    realtime: bool = False  # release each row only once the wall clock reaches its time
    # ``[sources.transform]``: columns derived from the dataset's (oracle.config.transform)
    transform: ReturnsToIndex | None = None


SourceSpec = HttpSourceSpec | ChainEventSourceSpec | ReplaySourceSpec

# the spec reader's finding for a model fed by HTTP sources (see parse_feed_spec); the
# registry's verifier maps it to its own rejection reason
MODEL_NEEDS_DETERMINISTIC_SOURCES = (
    "expected replay or chain_events sources for a model: HTTP readings differ between "
    "members, so the members' models could never agree (publish HTTP values as a value "
    "feed, the median, without a model)"
)


TARGET_STATS = ("mean", "mean_abs")


@dataclass(frozen=True)
class FeaturesSpec:
    fields: tuple[str, ...]  # sorted
    lags: int
    target: str | None  # None for a policy feed: its rewards are fields
    ranges: tuple[tuple[str, float, float], ...]  # sorted by name
    # the target's current value is a feature too, under the target's name, beside its lags
    current: bool = False
    # the target is this statistic of the fields (e.g. "mean_abs": their mean absolute
    # value) instead of a record field; ``target`` then names it
    target_stat: str | None = None

    @property
    def record_fields(self) -> tuple[str, ...]:
        """Every field a record must carry (features and target), sorted."""
        if self.target is None or self.target_stat is not None:
            return tuple(sorted(set(self.fields)))
        return tuple(sorted({*self.fields, self.target}))


BASELINES = {
    "forecast": ("last", "mean", "median", "zero", "seasonal_naive", "lag_regression"),
    "anomaly": ("zscore",),
    "policy": ("uniform_random", "best_fixed_arm"),
}
# the metric a feed is judged by (the first is the default)
EVAL_METRICS = {
    "forecast": ("mae", "rmse"),
    "anomaly": ("average_precision", "roc_auc"),
    "policy": ("cumulative_reward",),
}


@dataclass(frozen=True)
class EvalSpec:
    """``[eval]``: how ``mira eval`` measures the feed against naive baselines (nothing a
    node runs; a node's learning-loop view shows the on-chain ``random_agent``)."""

    baselines: tuple[str, ...]  # in the spec's order; see BASELINES for each output kind
    metric: str  # forecasts: "mae" or "rmse"; anomaly: "average_precision" or "roc_auc"
    season: int  # seasonal naive's period in observations (0: not seasonal)
    lags: int  # the lag regression's lags of the target
    zscore_window: int  # observations in the rolling z-score's window
    # anomaly labels: inclusive ranges of dataset row positions (0-based) that are anomalous
    anomalies: tuple[tuple[int, int], ...]
    random_runs: int  # seeded uniform-random policy runs averaged
    # a policy's uniform-random baseline on-chain: a RandomAgent acting in a twin of the
    # agent's environment (checksummed), whose rewards the learning-loop view shows beside
    # the agent's (oracle.node.loop_view); None: no on-chain baseline
    random_agent: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    steps: tuple[ComponentSpec, ...]
    mae_window: int
    drift_delta: float
    warm_start_rows: int  # 0: no warm start
    warm_start_alpha: float  # ridge penalty of the scikit-learn warm start

    @property
    def final_role(self) -> str:
        return self.steps[-1].role


@dataclass(frozen=True)
class FeedSpec:
    id: str
    version: int
    description: str
    decimals: int
    sources: tuple[SourceSpec, ...]
    aggregate: str
    min_sources: int
    features: FeaturesSpec
    model: ModelSpec | None
    output_kind: str
    horizon: int
    rounding: str
    deviation_bps: int
    heartbeat_s: int
    poll_interval_s: float
    file: str
    digest: bytes  # sha256 of the canonical spec: binds commitments and checkpoints to it
    # how far a reported value may be from a node's own output for it to sign (reporting)
    tolerance_bps: int = 100
    # policy feeds: the arms in their fixed order, and each arm's reward field (same order)
    arms: tuple[str, ...] = ()
    reward_fields: tuple[str, ...] = ()
    # how an arm's reward is made of its field: "identity", or "negative_abs" (-|field|:
    # the policy seeks the calmest arm)
    reward_transform: str = "identity"
    # the absolute floor of a deviation, in fixed-point units (oracle.config.publish)
    deviation_abs: int = 0
    evaluation: EvalSpec | None = None
    # the oldest node release that may run the spec ("1.2.0"); older nodes report the model
    # "unsupported" instead of running it (oracle.registry)
    min_node_version: tuple[int, ...] | None = None
    # a policy learning from an agent's logged steps (the arm it took, its reward, the
    # context it saw) rather than from records holding every arm's reward
    logged: LoggedSteps | None = None
    # a policy also publishes its recommended arm (the arm's index, in the feed's fixed
    # point) as the feed :func:`recommended_feed_id`
    recommend: bool = False

    @property
    def id_bytes32(self) -> bytes:
        return feed_id_bytes32(self.id)

    @property
    def published_together(self) -> bool:
        """Whether its feeds go on-chain only all at once (a policy learning from an
        agent's steps, or one recommending an arm): the agent checks they share a round."""
        return self.logged is not None or self.recommend

    @functools.cached_property
    def outputs(self) -> tuple[OutputFeed, ...]:
        """The on-chain feeds this spec publishes, in order: one per arm for a policy feed,
        one per field (sorted) for a ``values`` feed (see :func:`arm_feed_id`), else the
        feed itself. (Made once: the rounds ask for them per feed, several times a round.)"""
        if self.output_kind == "values":
            return tuple(
                OutputFeed(arm_feed_id(self.id, f), f"{self.description} [{f}]", f)
                for f in self.features.fields
            )
        if self.output_kind != "policy":
            return (OutputFeed(self.id, self.description),)
        arms = tuple(
            OutputFeed(arm_feed_id(self.id, arm), f"{self.description} [arm {arm}]", arm)
            for arm in self.arms
        )
        if not self.recommend:
            return arms
        return (
            *arms,
            OutputFeed(recommended_feed_id(self.id), f"{self.description} [recommended arm]"),
        )


def load_feed_spec(path: Path) -> FeedSpec:
    problems = Problems()
    spec = read_feed_spec(path, problems)
    problems.raise_if_any()
    assert spec is not None
    return spec


def load_feed_specs(paths: list[Path]) -> list[FeedSpec]:
    """Load every spec or none: all problems of all files are reported together."""
    problems = Problems()
    specs = [read_feed_spec(p, problems) for p in paths]
    seen: dict[str, str] = {}
    for spec in specs:
        if spec is None:
            continue
        if spec.id in seen:
            problems.add(
                spec.file, "id", spec.id, f"expected a unique feed id (also in {seen[spec.id]})"
            )
        seen[spec.id] = spec.file
    # every published feed (a policy feed's arms too) needs its own on-chain id
    # (plain ids clashing with plain ids were reported above)
    published: dict[str, tuple[str, bool]] = {}
    for spec in specs:
        if spec is None:
            continue
        for out in spec.outputs:
            other = published.get(out.id)
            if other is not None and (out.arm is not None or other[1]):
                problems.add(
                    spec.file,
                    "id"
                    if out.arm is None
                    else "output.arms"
                    if spec.output_kind == "policy"
                    else "features.fields",
                    spec.id if out.arm is None else out.arm,
                    f"expected a unique published feed id: {out.id!r} is also published by "
                    f"{other[0]}",
                )
            published.setdefault(out.id, (spec.file, out.arm is not None))
    problems.raise_if_any()
    return [s for s in specs if s is not None]


def read_feed_spec(path: Path, problems: Problems) -> FeedSpec | None:
    file = str(path)
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        problems.add(file, "", None, f"cannot read the file: {exc.strerror}")
        return None
    if len(raw_bytes) > MAX_SPEC_BYTES:
        problems.add(
            file, "", f"{len(raw_bytes)} bytes", f"expected at most {MAX_SPEC_BYTES} bytes"
        )
        return None
    try:
        data = tomllib.loads(raw_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.add(file, "", None, f"expected valid UTF-8 TOML: {exc}")
        return None
    before = len(problems.items)
    spec = parse_feed_spec(data, file=file, base_dir=path.parent, problems=problems)
    return spec if len(problems.items) == before else None


def parse_feed_spec(
    data: dict[str, Any], *, file: str, base_dir: Path, problems: Problems
) -> FeedSpec | None:
    top = Table(data, file=file, prefix="", problems=problems)
    feed_id = top.string("id", max_len=64)
    if isinstance(feed_id, str) and not FEED_ID.match(feed_id):
        top.fail(
            "id",
            feed_id,
            "expected 1-64 characters of A-Z a-z 0-9 . _ / : - (starting alphanumeric)",
        )
    version = top.integer("version", low=1, high=2**31 - 1)
    description = top.string("description", max_len=500)
    decimals = top.integer("decimals", low=0, high=36)
    poll_interval_s = top.number("poll_interval_s", 1.0, low=0.01, high=86_400.0)
    min_version_text = top.string("min_node_version", None, max_len=32)
    min_node_version = None
    if min_version_text is not None:
        if isinstance(min_version_text, str) and VERSION.match(min_version_text):
            min_node_version = parse_version(min_version_text)
        else:
            top.fail("min_node_version", min_version_text, 'expected a release, e.g. "0.1.0"')

    sources = [_read_source(t, base_dir) for t in top.tables("sources", min_items=1, max_items=32)]
    names = [s.name for s in sources if s is not None]
    if len(set(names)) != len(names):
        top.fail("sources", names, "expected unique source names")

    agg = top.table("aggregate", required=False)
    method, min_sources = "median", 1
    if agg is not None:
        method = agg.string("method", "median", choices=("median",))
        min_sources = agg.integer("min_sources", 1, low=1, high=32)
        agg.finish()
    if isinstance(min_sources, int) and min_sources > max(len(sources), 1):
        top.fail(
            "aggregate.min_sources",
            min_sources,
            f"expected at most the number of sources ({len(sources)})",
        )
    if any(isinstance(s, ReplaySourceSpec) for s in sources) and len(sources) > 1:
        top.fail("sources", names, "expected a replay source to be the feed's only source")
    if any(isinstance(s, ChainEventSourceSpec) for s in sources) and len(sources) > 1:
        top.fail("sources", names, "expected a chain_events source to be the feed's only source")

    output = top.table("output")
    kind, horizon = "value", 0
    if output is not None:
        kind = output.string("kind", choices=OUTPUT_KINDS)
        if kind == "forecast":
            # observations between the features and the target they forecast; 0 when the
            # record's target already lies ahead (see the model author guide)
            horizon = output.integer("horizon", 1, low=0, high=1000)
    replay = any(isinstance(s, ReplaySourceSpec) for s in sources)
    # a chain source with [sources.fields] gives a record of several fields, like a replay
    records = [s for s in sources if isinstance(s, ChainEventSourceSpec) and s.fields]
    features = _read_features(
        top.table("features"),
        single_value=not (replay or records),
        policy=kind == "policy",
        values=kind == "values",
    )
    if features is not None and records:
        have = {name for name, _ in records[0].fields}
        missing = sorted(set(features.record_fields) - have)
        if missing:
            top.fail(
                "features",
                missing,
                f"expected fields of the chain source's [fields] ({', '.join(sorted(have))})",
            )
    arms: tuple[str, ...] = ()
    reward_fields: tuple[str, ...] = ()
    reward_transform = "identity"
    logged: LoggedSteps | None = None
    recommend = False
    if output is not None:
        if kind == "policy":
            logged = _read_logged_steps(output, features)
            arms, reward_fields = _read_policy_output(output, features, logged)
            reward_transform = output.string(
                "reward_transform", "identity", choices=REWARD_TRANSFORMS
            )
            recommend = output.boolean("recommend", False)
        output.finish()
    if kind == "policy" and sources and not replay and logged is None:
        top.fail(
            "sources",
            names,
            "expected a replay source for a policy feed: each arm's reward is a named field "
            "of a record (or an agent's logged steps: [output] arm_field and reward_field "
            "with a chain source's [fields])",
        )
    if kind == "values" and sources and not (replay or records):
        top.fail(
            "sources",
            names,
            "expected a replay source or a chain_events source with [fields] for output kind "
            "'values': each published feed is a named field of a record",
        )
    if kind == "values" and features is not None and len(features.fields) > MAX_ARMS:
        top.fail(
            "features.fields",
            len(features.fields),
            f"expected at most {MAX_ARMS} fields for output kind 'values' (one feed each)",
        )
    if logged is not None and sources and not (replay or records):
        top.fail(
            "sources",
            names,
            "expected a replay source or a chain_events source with [fields] for logged steps",
        )

    model_table = top.table("model", required=kind in ("forecast", "anomaly", "policy"))
    model = None
    if model_table is not None and any(isinstance(s, HttpSourceSpec) for s in sources):
        # every member polls an HTTP source at its own moment and reads its own values, so a
        # model learning from them would hold a different state, and commitment, at each
        # member: followers would refuse every report (model_commitment). One rule for local
        # and registered specs alike.
        top.fail("sources", names, MODEL_NEEDS_DETERMINISTIC_SOURCES)
    if model_table is not None:
        if kind in ("value", "values"):
            top.fail(
                "model",
                "...",
                f"expected no model for output kind {kind!r} (the values themselves are published)",
            )
        model = _read_model(model_table, kind, features)
        if model is not None and kind == "policy" and reward_transform != "identity":
            reward_obj = dict(model.steps[-1].params).get("reward_obj")
            if getattr(reward_obj, "name", None) == "proba.Beta":
                top.fail(
                    "output.reward_transform",
                    reward_transform,
                    "expected identity for a Beta reward (its rewards are 0 or 1)",
                )
        if model is not None and model.final_role == FORECASTER and horizon == 0:
            top.fail(
                "output.horizon",
                horizon,
                "expected at least 1 for a time-series forecaster: it forecasts the series "
                "past the values it has learned",
            )
        if (
            model is not None
            and features is not None
            and features.current
            and kind == "forecast"
            and horizon == 0
        ):
            top.fail(
                "features.current",
                True,
                "expected no current target among the features of a horizon-0 forecast: "
                "it is the value being forecast",
            )

    quantize = top.table("quantize")
    rounding = "ROUND_HALF_EVEN"
    if quantize is not None:
        rounding = quantize.string("rounding", choices=ROUNDING_MODES)
        quantize.finish()

    publish = top.table("publish")
    deviation_bps, deviation_abs, heartbeat_s, tolerance_bps = 0, 0, 0, 100
    if publish is not None:
        abs_value = publish.number("deviation_abs", 0.0, low=0.0, high=1e30)
        # the relative rule may be left out where the absolute floor alone decides
        if publish.has("deviation_abs"):
            deviation_bps = publish.integer("deviation_bps", 0, low=0, high=1_000_000)
        else:
            deviation_bps = publish.integer("deviation_bps", low=0, high=1_000_000)
        heartbeat_s = publish.integer("heartbeat_s", low=1, high=7 * 86_400)
        tolerance_bps = publish.integer("tolerance_bps", 100, low=0, high=1_000_000)
        if isinstance(abs_value, float) and isinstance(decimals, int):
            deviation_abs = _fixed_point(abs_value, decimals)
            if Decimal(deviation_abs).scaleb(-decimals) != Decimal(repr(abs_value)):
                publish.fail(
                    "deviation_abs",
                    abs_value,
                    f"expected a multiple of the feed's unit, 1e-{decimals} (decimals = "
                    f"{decimals})",
                )
        publish.finish()
    # an absent [eval] table reads as an empty one: the defaults of the output kind
    evaluation = _read_eval(
        top.table("eval", required=False) or Table({}, file=file, prefix="eval", problems=problems),
        kind,
        model,
    )
    top.finish()

    if (
        model is not None
        and kind == "policy"
        and model.steps[-1].name == CONTEXTUAL_LINEAR
        and logged is None
    ):
        top.fail(
            "model.steps",
            CONTEXTUAL_LINEAR,
            "expected [output] arm_field and reward_field: a contextual policy learns from an "
            "agent's logged steps (arm, reward and context)",
        )
    if (
        any(s is None for s in sources)
        or features is None
        or (model_table is not None and model is None)
        or (kind == "policy" and not arms)
    ):
        return None
    if not all(isinstance(v, int | str | float) for v in (feed_id, version, decimals, kind)):
        return None
    digest = spec_digest(data)
    return FeedSpec(
        id=feed_id,
        version=version,
        description=description,
        decimals=decimals,
        sources=tuple(s for s in sources if s is not None),
        aggregate=method,
        min_sources=min_sources,
        features=features,
        model=model,
        output_kind=kind,
        horizon=horizon,
        rounding=rounding,
        deviation_bps=deviation_bps,
        heartbeat_s=heartbeat_s,
        poll_interval_s=poll_interval_s,
        file=file,
        digest=digest,
        tolerance_bps=tolerance_bps,
        arms=arms,
        reward_fields=reward_fields,
        reward_transform=reward_transform,
        deviation_abs=deviation_abs,
        evaluation=evaluation,
        min_node_version=min_node_version,
        logged=logged,
        recommend=recommend,
    )


def spec_digest(data: dict[str, Any]) -> bytes:
    """The spec's digest: sha256 over its canonical JSON (sorted keys), domain-separated.
    What checkpoints and commitments are bound to, and the registry's on-chain spec hash."""
    canonical = json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str
    )
    return hashlib.sha256(b"MIRA-FEED-SPEC-v1\x00" + canonical.encode()).digest()


def parse_version(text: str) -> tuple[int, ...]:
    """``"1.2.0"`` as ``(1, 2, 0)``: releases compare as tuples of numbers."""
    return tuple(int(part) for part in text.split("."))


def decimal_text(value: int, decimals: int) -> str:
    """A feed's fixed-point value (``value`` units of 10^-decimals, as on-chain) as a
    decimal with its decimals written out: 0.00000000, not Decimal's 0E-8; 1000.00, not
    1.000E+3. What every human-readable output shows."""
    return format(Decimal(value).scaleb(-decimals), "f")


def _fixed_point(value: float, decimals: int) -> int:
    """``value`` in fixed-point units of ``decimals``, exactly (Decimal of its repr)."""
    return int((Decimal(repr(value)) * (Decimal(10) ** decimals)).to_integral_value())


def _read_eval(t: Table, kind: str, model: ModelSpec | None) -> EvalSpec | None:
    """``[eval]``: the baselines ``mira eval`` compares the feed with, and its labels."""
    before = len(t.problems.items)
    allowed = BASELINES.get(kind, ())
    default = tuple(b for b in allowed if b != "seasonal_naive")
    baselines = tuple(t.strings("baselines", list(default), max_items=16))
    for name in baselines:
        if name not in allowed:
            t.fail(
                "baselines",
                name,
                f"expected baselines that apply to output kind {kind!r}: "
                + (", ".join(allowed) or "none (a value feed publishes its input)"),
            )
    metrics = EVAL_METRICS.get(kind, ("none",))
    metric = t.string("metric", metrics[0], choices=metrics)
    season = t.integer("season", 0, low=0, high=10_000)
    if "seasonal_naive" in baselines and not season:
        t.fail("season", 0, "expected the season's length in observations for seasonal_naive")
    lags = t.integer("lags", 5, low=1, high=64)
    window = t.integer("zscore_window", 100, low=2, high=100_000)
    runs = t.integer("random_runs", 1000, low=1, high=10_000)
    random_agent = t.string("random_agent", None, max_len=42)
    if random_agent is not None and kind != "policy":
        t.fail("random_agent", random_agent, f"expected no random agent for output kind {kind!r}")
    elif isinstance(random_agent, str) and not re.fullmatch(r"0x[0-9a-fA-F]{40}", random_agent):
        t.fail("random_agent", random_agent, "expected a 0x-prefixed 20-byte hex address")
    anomalies: list[tuple[int, int]] = []
    raw = t.raw("anomalies", None)
    if kind == "anomaly":
        ok = isinstance(raw, list) and all(
            isinstance(r, list)
            and len(r) == 2
            and all(isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in r)
            and r[0] <= r[1]
            for r in raw
        )
        # none at all is a node's business: only `mira eval` needs labels (and says so)
        if raw is not None and not ok:
            t.fail(
                "anomalies",
                raw,
                "expected [[first_row, last_row], ...]: 0-based dataset rows, first <= last",
            )
        elif raw is not None:
            anomalies = [(r[0], r[1]) for r in raw]
    elif raw is not None:
        t.fail("anomalies", raw, f"expected no anomaly labels for output kind {kind!r}")
    t.finish()
    if model is None and kind not in ("value", "values"):
        return None
    if len(t.problems.items) != before:
        return None
    agent = Web3.to_checksum_address(random_agent) if isinstance(random_agent, str) else None
    return EvalSpec(baselines, metric, season, lags, window, tuple(anomalies), runs, agent)


def _read_logged_steps(t: Table, features: FeaturesSpec | None) -> LoggedSteps | None:
    """``arm_field``, ``reward_field`` and ``context``: all record fields ([features])."""
    arm_field = t.string("arm_field", None, max_len=64)
    reward_field = t.string("reward_field", None, max_len=64)
    context = t.strings("context", [], max_items=64)
    if arm_field is None and reward_field is None:
        if context:
            t.fail("context", context, "expected arm_field and reward_field with a context")
        return None
    if not isinstance(arm_field, str) or not isinstance(reward_field, str):
        key = "reward_field" if isinstance(arm_field, str) else "arm_field"
        t.fail(key, None, "expected arm_field and reward_field together (logged steps)")
        return None
    named = [arm_field, reward_field, *context]
    fields = set(features.fields) if features is not None else set()
    ok = True
    for key, name in [("arm_field", arm_field), ("reward_field", reward_field)] + [
        ("context", c) for c in context
    ]:
        if features is not None and name not in fields:
            t.fail(key, name, f"expected one of [features] fields ({', '.join(sorted(fields))})")
            ok = False
    if len(set(named)) != len(named):
        t.fail("context", named, "expected arm_field, reward_field and context to differ")
        ok = False
    return LoggedSteps(arm_field, reward_field, tuple(sorted(context))) if ok else None


def _read_policy_output(
    t: Table, features: FeaturesSpec | None, logged: LoggedSteps | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``arms`` (fixed order: the order of the array) and ``[output.rewards]`` (arm →
    feature field; an arm not named there is rewarded by the field of its own name)."""
    before = len(t.problems.items)
    value = t.raw("arms", None)
    arms: list[str] = []
    if value is None:
        t.fail("arms", None, 'required: the arms in their fixed order, e.g. arms = ["a", "b"]')
    elif isinstance(value, list) and all(isinstance(a, str) for a in value):
        arms = list(value)
        if not 1 <= len(arms) <= MAX_ARMS:
            t.fail("arms", value, f"expected between 1 and {MAX_ARMS} arms")
        bad = [a for a in arms if not ARM_NAME.match(a)]
        if bad:
            t.fail("arms", bad[0], "expected arm names of 1-32 characters of A-Z a-z 0-9 _ . -")
        dupes = sorted({a for a in arms if arms.count(a) > 1})
        if dupes:
            t.fail("arms", dupes[0], "expected each arm once (the arms' order is fixed)")
    else:
        t.fail("arms", value, 'expected an array of arm names, e.g. arms = ["a", "b"]')
    if logged is not None:
        if t.has("rewards"):
            t.fail("rewards", "...", "expected no [output.rewards] with logged steps")
        if len(t.problems.items) != before:
            return (), ()
        # every arm's reward is the step's reward field, when the agent took that arm
        return tuple(arms), tuple(logged.reward_field for _ in arms)
    rewards: dict[str, str] = {}
    rtable = t.table("rewards", required=False)
    if rtable is not None:
        for arm in sorted(rtable.data):
            field_name = rtable.string(arm, max_len=64)
            if arm not in arms:
                rtable.fail(arm, field_name, f"expected one of the arms ({', '.join(arms)})")
            elif isinstance(field_name, str):
                rewards[arm] = field_name
        rtable.finish()
    fields = set(features.fields) if features is not None else set()
    reward_fields = []
    for arm in arms:
        name = rewards.get(arm, arm)
        reward_fields.append(name)
        if features is not None and name not in fields:
            key = f"rewards.{arm}" if arm in rewards else "arms"
            t.fail(
                key,
                name,
                f"expected the reward of arm {arm!r} to be one of [features] fields "
                f"({', '.join(sorted(fields)) or 'none'})"
                + ("" if arm in rewards else "; name it in [output.rewards]"),
            )
    if len(t.problems.items) != before:
        return (), ()
    return tuple(arms), tuple(reward_fields)


def _read_source(t: Table, base_dir: Path) -> SourceSpec | None:
    before = len(t.problems.items)
    name = t.string("name", max_len=64)
    if isinstance(name, str) and not FIELD_NAME.match(name):
        t.fail("name", name, "expected an identifier (letters, digits, _)")
    kind = t.string("kind", choices=("http", "chain_events", "replay"))
    spec: SourceSpec | None = None
    if kind == "http":
        url = t.string("url", max_len=2000)
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            t.fail("url", url, "expected an http:// or https:// URL")
        path = t.string("path", max_len=200)
        spec = HttpSourceSpec(
            name=name,
            url=url,
            path=_parse_path(t, path) if isinstance(path, str) else (),
            timeout_s=t.number("timeout_s", 5.0, low=0.0, high=120.0, low_open=True),
            retries=t.integer("retries", 2, low=0, high=10),
            backoff_s=t.number("backoff_s", 0.2, low=0.0, high=60.0),
            max_body_bytes=t.integer("max_body_bytes", 65_536, low=16, high=16 * 1024 * 1024),
        )
    elif kind == "chain_events":
        spec = _read_chain_source(t, name)
    elif kind == "replay":
        dataset = t.string("dataset", max_len=500)
        csv_path: Path | None = None
        if isinstance(dataset, str):
            if dataset.startswith("river:"):
                if dataset[6:] not in RIVER_DATASETS:
                    t.fail(
                        "dataset",
                        dataset,
                        "expected one of " + ", ".join(f"river:{n}" for n in RIVER_DATASETS),
                    )
            else:
                csv_path = (base_dir / dataset).resolve()
                if csv_path.suffix != ".csv" or not csv_path.is_file():
                    t.fail(
                        "dataset",
                        dataset,
                        f"expected river:<name> or an existing .csv file (looked at {csv_path})",
                    )
        passes = t.integer("passes", 1, low=1, high=10_000)
        transform = None
        transform_table = t.table("transform", required=False)
        if transform_table is not None:
            transform = read_transform(transform_table, passes=passes, field_name=FIELD_NAME)
        spec = ReplaySourceSpec(
            name=name,
            dataset=dataset,
            csv_path=csv_path,
            time_field=t.string("time_field", None, max_len=64),
            start_ms=t.integer("start_ms", 1_700_000_000_000, low=0, high=2**63 - 1),
            step_ms=t.integer("step_ms", 1000, low=1, high=86_400_000),
            passes=passes,
            realtime=t.boolean("realtime", False),
            transform=transform,
        )
    t.finish()
    return spec if len(t.problems.items) == before else None


def _read_chain_source(t: Table, name: Any) -> ChainEventSourceSpec | None:
    """A chain-events source: the event is named by contract artifact and event name, and
    resolved against the ABI of the forge build (never an ABI from the spec)."""
    rpc_url = t.string("rpc_url", max_len=2000)
    if isinstance(rpc_url, str) and not rpc_url.startswith(("http://", "https://")):
        t.fail("rpc_url", rpc_url, "expected an http:// or https:// JSON-RPC URL")
    address = t.string("address", max_len=42)
    if isinstance(address, str) and not re.fullmatch(r"0x[0-9a-fA-F]{40}", address):
        t.fail("address", address, "expected a 0x-prefixed 20-byte hex address")
    contract = t.string("contract", max_len=100)
    event = t.string("event", max_len=100)
    fields_table = t.table("fields", required=False)
    field_text: Any = ""
    wanted: dict[str, str] = {}
    if fields_table is None:
        field_text = t.string("field", max_len=200)
    else:
        if t.has("field"):
            t.fail("field", t.data["field"], "expected either field or [fields], not both")
        for key in sorted(fields_table.data):
            path_text = fields_table.string(key, max_len=200)
            if not FIELD_NAME.match(key):
                fields_table.fail(key, path_text, "expected record field names (identifiers)")
            elif isinstance(path_text, str):
                wanted[key] = path_text
        if not fields_table.data:
            t.fail("fields", {}, "expected at least one record field = event argument path")
        if len(fields_table.data) > 64:
            t.fail("fields", len(fields_table.data), "expected at most 64 fields")
        fields_table.finish()
    limits = _read_limits(t, set(wanted) if fields_table is not None else {"value"})
    field_decimals: list[tuple[str, int]] = []
    dtable = t.table("decimals", required=False)
    if dtable is not None:
        for key in sorted(dtable.data):
            d = dtable.integer(key, low=0, high=77)
            if key not in wanted:
                dtable.fail(
                    key, d, f"expected one of the source's fields ({', '.join(sorted(wanted))})"
                )
            elif isinstance(d, int):
                field_decimals.append((key, d))
        dtable.finish()
    scale_decimals = t.integer("scale_decimals", 0, low=0, high=77)
    confirmations = t.integer("confirmations", 12, low=0, high=1000)
    from_block = t.integer("from_block", 0, low=0, high=2**63 - 1)
    max_block_range = t.integer("max_block_range", 1000, low=1, high=100_000)
    max_ranges = t.integer("max_ranges_per_poll", 10, low=1, high=1000)
    if not all(isinstance(v, str) for v in (rpc_url, address, contract, event, field_text)):
        return None
    if fields_table is not None and len(wanted) != len(fields_table.data):
        return None
    try:
        if fields_table is None:
            abi, topic0, path = resolve_event(contract, event, field_text)
            paths: tuple[tuple[str, tuple[str, ...]], ...] = ()
        else:
            abi, topic0, paths = resolve_event_fields(contract, event, wanted)
            path = ()
    except EventSpecError as exc:
        t.fail(exc.key, exc.value, exc.expected)
        return None
    return ChainEventSourceSpec(
        name=name,
        rpc_url=rpc_url,
        address=Web3.to_checksum_address(address) if len(address) == 42 else address,
        contract=contract,
        event=event,
        event_abi=abi,
        topic0=topic0,
        field=path,
        scale_decimals=scale_decimals,
        confirmations=confirmations,
        from_block=from_block,
        max_block_range=max_block_range,
        max_ranges_per_poll=max_ranges,
        fields=paths,
        limits=limits,
        field_decimals=tuple(field_decimals),
    )


def _read_limits(t: Table, names: set[str]) -> tuple[tuple[str, float, float], ...]:
    """``[sources.limits]``: ``name = [low, high]`` per record field (``value`` for the
    single-field form); a log whose field falls outside is rejected, never learned."""
    table = t.table("limits", required=False)
    if table is None:
        return ()
    out: list[tuple[str, float, float]] = []
    for key in sorted(table.data):
        bounds = table.raw(key)
        ok = (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
            and all(abs(b) < 1e30 for b in bounds)
            and bounds[0] <= bounds[1]
        )
        if key not in names:
            table.fail(
                key, bounds, f"expected one of the source's fields ({', '.join(sorted(names))})"
            )
        elif not ok:
            table.fail(key, bounds, "expected [low, high] with low <= high")
        else:
            out.append((key, float(bounds[0]), float(bounds[1])))
    table.finish()
    return tuple(out)


def _parse_path(t: Table, path: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for part in path.split("."):
        if not part:
            t.fail("path", path, "expected dot-separated keys, e.g. data.price or data.0.price")
            return ()
        parts.append(int(part) if part.isdigit() else part)
    return tuple(parts)


def _read_features(
    t: Table | None, *, single_value: bool, policy: bool = False, values: bool = False
) -> FeaturesSpec | None:
    if t is None:
        return None
    before = len(t.problems.items)
    fields = t.strings("fields", [], max_items=256)
    for f in fields:
        if not FIELD_NAME.match(f):
            t.fail("fields", f, "expected identifiers (letters, digits, _)")
    lags = t.integer("lags", 0, low=0, high=64)
    current = t.boolean("current", False)
    target_stat = t.string("target_stat", None, choices=TARGET_STATS)
    target: str | None
    if policy:
        target = None
        if t.has("target"):
            t.fail(
                "target",
                t.data["target"],
                "expected no target for a policy feed: each arm's reward is one of the "
                "fields, see [output] arms and [output.rewards]",
            )
        if lags:
            t.fail("lags", lags, "expected no lags for a policy feed")
        if not fields and not single_value:
            t.fail("fields", fields, "expected the fields that hold the arms' rewards")
    elif values:
        # every field is published as it is, each as its own feed: nothing is a target
        target = None
        for name in ("target", "lags", "current", "target_stat"):
            if t.has(name):
                t.fail(
                    name,
                    t.data[name],
                    "expected only fields for output kind 'values' (each field is published "
                    "as its own feed, as it is)",
                )
        if not fields and not single_value:
            t.fail("fields", fields, "expected the fields to publish, each as its own feed")
    elif single_value:
        target = t.string("target", "value", max_len=64)
    else:
        target = t.string("target", max_len=64)
    if single_value and fields:
        t.fail(
            "fields", fields, "expected no fields: http and chain sources give one value, use lags"
        )
    if target_stat is not None and (policy or not fields):
        t.fail(
            "target_stat",
            target_stat,
            "expected [features] fields to take the statistic of (and a forecast or anomaly feed)",
        )
    if target_stat is not None and isinstance(target, str) and target in fields:
        t.fail("target", target, "expected a name for the statistic that is not one of the fields")
    if current and policy:
        t.fail("current", current, "expected no current target for a policy feed")
    ranges: list[tuple[str, float, float]] = []
    rtable = t.table("ranges", required=False)
    if rtable is not None:
        for key in sorted(rtable.data):
            bounds = rtable.raw(key)
            ok = (
                isinstance(bounds, list)
                and len(bounds) == 2
                and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
                and bounds[0] < bounds[1]
            )
            if not ok:
                rtable.fail(key, bounds, "expected [low, high] with low < high")
            else:
                ranges.append((key, float(bounds[0]), float(bounds[1])))
        rtable.finish()
    t.finish()
    if len(t.problems.items) != before:
        return None
    return FeaturesSpec(
        tuple(sorted(fields)), lags, target, tuple(ranges), bool(current), target_stat
    )


def _read_model(t: Table, kind: str, features: FeaturesSpec | None) -> ModelSpec | None:
    before = len(t.problems.items)
    steps_tables = t.tables("steps", min_items=1, max_items=8)
    steps: list[ComponentSpec | None] = []
    for i, st in enumerate(steps_tables):
        last = i == len(steps_tables) - 1
        if not last:
            roles = {TRANSFORMER}
        elif kind == "forecast":
            roles = {REGRESSOR, FORECASTER}
        elif kind == "policy":
            roles = {POLICY}
        else:
            roles = {ANOMALY}
        steps.append(_read_component(st, roles=roles))
    if len(steps_tables) > 1 and any(s is not None and s.role == FORECASTER for s in steps):
        t.fail("steps", len(steps_tables), "expected a time-series forecaster to be the only step")
    if len(steps_tables) > 1 and kind == "policy":
        t.fail(
            "steps",
            len(steps_tables),
            "expected the bandit policy to be the only step (the arms' rewards go to it as is)",
        )
    if kind == "anomaly" and features is not None:
        ranged = {name for name, _, _ in features.ranges}
        needed = set(features.fields) if features.fields else set(features.record_fields)
        missing = sorted(needed - ranged)
        if missing:
            t.fail(
                "steps",
                "anomaly.HalfSpaceTrees",
                f"expected [features.ranges] for {', '.join(missing)} (explicit limits)",
            )
    if kind == "policy":
        for name in ("mae_window", "drift_delta"):
            if t.has(name):
                t.fail(name, t.data[name], "expected no error tracking for a policy feed")
    mae_window = t.integer("mae_window", 100, low=1, high=100_000)
    drift_delta = t.number("drift_delta", 0.002, low=0.0, high=1.0, low_open=True)
    ws = t.table("warm_start", required=False)
    rows, alpha = 0, 0.0
    if ws is not None:
        rows = ws.integer("rows", low=2, high=1_000_000)
        alpha = ws.number("alpha", 1e-6, low=0.0, high=1e6)
        ws.finish()
        names = [s.name for s in steps if s is not None]
        if names not in (
            ["linear_model.LinearRegression"],
            ["preprocessing.StandardScaler", "linear_model.LinearRegression"],
        ):
            t.fail(
                "warm_start",
                names,
                "expected the steps to be [StandardScaler,] LinearRegression for a warm start",
            )
    t.finish()
    if len(t.problems.items) != before or any(s is None for s in steps):
        return None
    return ModelSpec(
        steps=tuple(s for s in steps if s is not None),
        mae_window=mae_window,
        drift_delta=drift_delta,
        warm_start_rows=rows,
        warm_start_alpha=alpha,
    )


__all__ = [
    "MODEL_NEEDS_DETERMINISTIC_SOURCES",
    "ChainEventSourceSpec",
    "ConfigError",
    "EvalSpec",
    "FeaturesSpec",
    "FeedSpec",
    "HttpSourceSpec",
    "LoggedSteps",
    "ModelSpec",
    "OutputFeed",
    "ReplaySourceSpec",
    "SourceSpec",
    "arm_feed_id",
    "feed_id_bytes32",
    "load_feed_spec",
    "load_feed_specs",
    "parse_version",
    "recommended_feed_id",
    "spec_digest",
]
