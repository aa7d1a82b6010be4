"""Models registered on-chain (contracts/src/interfaces/IModelRegistry.sol): following the
registry's events, fetching and verifying a version's spec, and the node's own policy on
what it runs. The node (oracle.node.registered) hot-loads what passes."""
