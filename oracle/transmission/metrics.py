"""Prometheus metrics of the transaction manager, on a registry the caller passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class TxMetrics:
    """Every series carries the chain id and sender as labels."""

    def __init__(self, registry: CollectorRegistry, chain_id: int, sender: str) -> None:
        labels = {"chain_id": str(chain_id), "sender": sender}
        names = list(labels)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, names, registry=registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, names, registry=registry)

        self.pending = Gauge(
            "mira_tx_pending", "Unfinished transmissions by state", [*names, "state"],
            registry=registry,
        )  # fmt: skip
        self._pending_labels = labels
        self.bumps = counter(
            "mira_tx_bumps", "Fee bumps (replacements with the same nonce)"
        ).labels(**labels)
        self.failovers = counter(
            "mira_tx_rpc_failovers", "Switches to another RPC endpoint"
        ).labels(**labels)
        self._demotions = Counter(
            "mira_tx_rpc_demotions", "RPC endpoints taken out of rotation, by reason",
            [*names, "reason"], registry=registry,
        )  # fmt: skip
        self.rpc_healthy = gauge("mira_tx_rpc_healthy", "RPC endpoints in rotation").labels(
            **labels
        )
        self.confirmation_seconds = Histogram(
            "mira_tx_confirmation_seconds", "From enqueue to confirmation", names,
            buckets=(1, 2, 5, 10, 20, 40, 60, 120, 300, 600, 1800), registry=registry,
        ).labels(**labels)  # fmt: skip
        self.gas_used = counter("mira_tx_gas_used", "Gas used by confirmed transactions").labels(
            **labels
        )
        self.gas_spent_wei = counter(
            "mira_tx_gas_spent_wei", "Wei spent on confirmed transactions, L1 data fee included"
        ).labels(**labels)
        self.l1_fee_wei = counter("mira_tx_l1_fee_wei", "OP Stack L1 data fees paid").labels(
            **labels
        )
        self.reorgs = counter("mira_tx_reorged", "Inclusions undone by a reorg").labels(**labels)
        self.simulation_reverts = counter(
            "mira_tx_simulation_reverts", "Calls not sent because eth_call reverted"
        ).labels(**labels)
        self.broadcast_errors = counter(
            "mira_tx_broadcast_errors", "eth_sendRawTransaction refusals"
        ).labels(**labels)
        self.balance_wei = gauge("mira_tx_balance_wei", "Sender balance").labels(**labels)
        self.low_balance = gauge(
            "mira_tx_low_balance", "1 while the sender's balance is below the alert threshold"
        ).labels(**labels)

    def demotion(self, reason: str) -> Counter:
        return self._demotions.labels(**self._pending_labels, reason=reason)

    def set_pending(self, counts: dict[str, int]) -> None:
        for state, n in counts.items():
            self.pending.labels(**self._pending_labels, state=state).set(n)
