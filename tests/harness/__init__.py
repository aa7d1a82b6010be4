"""Test-only harness: what the multi-process and in-process tests build on, and faults
no production code carries (a lying price source, a signer sending invalid shares, an
unreachable member, an RPC that stops answering, a trusted dealer)."""
