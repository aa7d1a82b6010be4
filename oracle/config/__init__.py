"""Typed configuration: the node's ``node.toml`` and the feed specs in ``feeds/``."""

from oracle.config.feeds import FeedSpec, feed_id_bytes32, load_feed_spec, load_feed_specs
from oracle.config.node import NodeConfig, load_node, load_node_config
from oracle.config.reader import ConfigError, Problem

__all__ = [
    "ConfigError",
    "FeedSpec",
    "NodeConfig",
    "Problem",
    "feed_id_bytes32",
    "load_feed_spec",
    "load_feed_specs",
    "load_node",
    "load_node_config",
]
