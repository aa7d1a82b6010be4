"""Mira: an AI oracle network.

Data flows through the subpackages in this order: ``sources`` → ``models`` → ``reporting``
→ ``crypto`` → ``transmission`` → ``chain``; ``node`` wires them together, beside ``p2p``,
``storage``, ``api`` and ``cli``.
"""

__version__ = "0.1.0"
