"""Why a registered model's version is not run (one reason per failed check)."""

from __future__ import annotations

from oracle.errors import MiraError

# the reasons a version is refused, as stored, served by GET /v1/models and counted in
# mira_registry_rejections{reason}: a fixed set, so the metric's labels stay bounded
REASONS = (
    "unknown_scheme",  # a URI scheme the node does not fetch
    "path_escape",  # a file:// path outside the configured spec_dir (or no spec_dir)
    "http_disabled",  # [models] http = false
    "unreachable",  # the URI did not answer (connection, timeout, status, missing file)
    "redirect",  # an http(s) URI redirected to another scheme, or too often
    "oversized",  # larger than [models] max_spec_bytes
    "hash_mismatch",  # the spec's digest is not the on-chain spec hash
    "invalid_spec",  # not UTF-8 TOML, or a spec problem other than those below
    "unknown_class",  # a class not in the allowlist
    "import_path",  # a dotted import path instead of an allowlisted class
    "invalid_parameter",  # a model parameter out of its bounds, or unknown
    "nondeterministic_source",  # a model learning from HTTP readings: members never agree
    "local_policy",  # refused by this node's [models] policy (class, count, dataset)
    "feeds_mismatch",  # the spec's output feeds are not the ones declared on-chain
    "unsupported",  # the spec needs a newer node (min_node_version)
    "start_failed",  # verified, but the feed could not be built or restored
)


class SpecRejected(MiraError):
    """A version's spec failed a check: ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail[:1000]

    @property
    def status(self) -> str:
        """The model's status: "unsupported" for a too-old node, else "rejected"."""
        return "unsupported" if self.reason == "unsupported" else "rejected"
