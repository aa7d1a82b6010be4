"""Everything that touches an EVM chain: the pinned toolchain, contract artifacts, deployment."""
