"""Threshold attestation: FROST (RFC 9591) over secp256k1, its DKG, nonces and keys.

Modules, in the order a key lives through them:

- :mod:`~oracle.crypto.group`    secp256k1 points (identity included) and scalars mod N
- :mod:`~oracle.crypto.suites`   ciphersuites: RFC FROST(secp256k1, SHA-256), Mira's EVM suite
- :mod:`~oracle.crypto.dkg`      Pedersen DKG with proofs of knowledge, encrypted shares
- :mod:`~oracle.crypto.envelope` ECDH + HKDF + AEAD transport of DKG shares, signed by the sender
- :mod:`~oracle.crypto.keystore` operator and identity keys encrypted at rest
- :mod:`~oracle.crypto.nonces`   hedged single-use nonces and the used-nonce log protocol
- :mod:`~oracle.crypto.frost`    signing rounds, share verification, aggregation

The trusted-dealer split (RFC 9591 Appendix C), which knows the group secret, is not in
the package: it lives with the tests that pin RFC vectors (``tests/harness/dealer.py``).
"""
