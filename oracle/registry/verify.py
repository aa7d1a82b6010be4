"""Checking a fetched spec against its on-chain version and this node's policy.

In order, each failure a :class:`SpecRejected` with its reason: UTF-8 TOML → the digest
(:func:`oracle.config.feeds.spec_digest`, the one rule) equals the on-chain spec hash → the
spec reader with the allowlist, exactly as for a local spec (no class outside it, no import
path, every parameter within its bounds) → the node's ``[models]`` policy (classes it
accepts; a CSV dataset only from its spec_dir) → the spec's ``min_node_version`` → the
spec's output feeds equal the feed ids declared on-chain.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path

from oracle import __version__
from oracle.config.allowlist import ComponentSpec
from oracle.config.feeds import (
    MODEL_NEEDS_DETERMINISTIC_SOURCES,
    FeedSpec,
    ReplaySourceSpec,
    parse_feed_spec,
    parse_version,
    spec_digest,
)
from oracle.config.node import ModelsConfig
from oracle.config.reader import Problem, Problems
from oracle.registry.errors import SpecRejected

NODE_VERSION = parse_version(__version__)
# a spec fetched from a URI has no folder of its own: a relative CSV dataset is looked up
# where no file can be, unless the node names a spec_dir
_NO_DIR = Path("/nonexistent/mira-registered-spec")


def verify_spec(
    data: bytes,
    *,
    uri: str,
    spec_hash: bytes,
    feed_ids: Sequence[bytes],
    policy: ModelsConfig,
    node_version: tuple[int, ...] = NODE_VERSION,
) -> FeedSpec:
    where = uri if len(uri) <= 120 else uri[:117] + "..."
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecRejected("invalid_spec", f"expected UTF-8 TOML: {exc}") from exc
    digest = spec_digest(table)
    if digest != spec_hash:
        raise SpecRejected(
            "hash_mismatch",
            f"the spec's digest is 0x{digest.hex()}, the registry's spec hash 0x{spec_hash.hex()}",
        )
    problems = Problems()
    spec = parse_feed_spec(
        table, file=where, base_dir=policy.spec_dir or _NO_DIR, problems=problems
    )
    if problems.items or spec is None:
        first = problems.items[0] if problems.items else None
        raise SpecRejected(_reason(first), "; ".join(str(p) for p in problems.items[:5]))
    if policy.classes is not None:
        allowed = set(policy.classes)
        for name in _classes(spec):
            if name not in allowed:
                raise SpecRejected(
                    "local_policy", f"class {name} is not among this node's [models] classes"
                )
    for source in spec.sources:
        if isinstance(source, ReplaySourceSpec) and source.csv_path is not None:
            root = policy.spec_dir
            if root is None or not source.csv_path.resolve().is_relative_to(root.resolve()):
                raise SpecRejected(
                    "local_policy", f"dataset {source.dataset}: a CSV outside [models] spec_dir"
                )
    if spec.min_node_version is not None and spec.min_node_version > node_version:
        need = ".".join(map(str, spec.min_node_version))
        have = ".".join(map(str, node_version))
        raise SpecRejected("unsupported", f"the spec needs node {need} or later, this is {have}")
    published = [o.id_bytes32 for o in spec.outputs]
    if sorted(published) != sorted(feed_ids) or len(set(published)) != len(published):
        raise SpecRejected(
            "feeds_mismatch",
            "the spec publishes "
            + ", ".join(o.id for o in spec.outputs)
            + f" ({len(published)} feeds), not the {len(feed_ids)} feed ids declared on-chain",
        )
    return spec


def _classes(spec: FeedSpec) -> Iterator[str]:
    def walk(component: ComponentSpec) -> Iterator[str]:
        yield component.name
        for _, value in component.params:
            if isinstance(value, ComponentSpec):
                yield from walk(value)

    if spec.model is not None:
        for step in spec.model.steps:
            yield from walk(step)


def _reason(problem: Problem | None) -> str:
    """The reason of the spec reader's first finding."""
    if problem is None:
        return "invalid_spec"
    if problem.expected == MODEL_NEEDS_DETERMINISTIC_SOURCES:
        return "nondeterministic_source"
    if problem.key.endswith("class") and "allowlisted class" in problem.expected:
        return "import_path" if "import paths" in problem.expected else "unknown_class"
    if problem.key.startswith("model."):
        return "invalid_parameter"
    return "invalid_spec"
