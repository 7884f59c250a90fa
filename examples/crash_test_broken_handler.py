"""Crash-testing a payment handler with `durability.testing.crash_test`.

A checkout charges three orders through a payment gateway and records each
charge in an evidence outcome cache, so that a restarted checkout does not
charge again. Two versions:

* `broken_checkout` charges, *then* records the charge (a plain
  ``cache.put``): a crash between the two leaves a charge the cache does not
  know, and the restarted checkout charges the customer a second time;
* `fixed_checkout` lets `EvidencePersistenceHandler` make an intent durable
  before the charge, and reconciles an effect left in doubt with the
  gateway (which keeps each charge's idempotency key): every order is
  charged exactly once, wherever the crash lands.

`crash_test` runs a checkout in a child process, SIGKILLs it before each
write and fsync the cache makes (``fs=fs``), then runs `charged_once`: the
restarted checkout finishes the work, and every order must be charged once.
It does the same with the power cut at each point (what was not fsynced is
lost). Run it from the repository root::

    python examples/crash_test_broken_handler.py

It exits 0 when the broken checkout is caught and the fixed one passes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from durability import (
    EffectOutcome,
    EffectRequest,
    EvidenceOutcomeCacheEntry,
    EvidencePersistenceHandler,
    FileEvidenceOutcomeCache,
    current_idempotency_key,
)
from durability.fileio import DEFAULT_FS, FileSystem
from durability.testing import CrashReport, Unsynced, crash_test

ORDERS = ("order#1", "order#2", "order#3")
Checkout = Callable[[Path, FileSystem], None]


class Gateway:
    """A stand-in payment gateway: each charge is a line in ``charges.txt``
    (order and idempotency key), fsynced: the outside world, which a crash
    of the checkout cannot undo."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "charges.txt"

    def charge(self, order: str, key: str) -> str:
        with open(self.path, "a") as ledger:
            ledger.write(f"{order} {key}\n")
            ledger.flush()
            os.fsync(ledger.fileno())
        return f"receipt for {order}"

    def charges(self) -> list[tuple[str, str]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        return [(order, key) for order, key in (line.split(" ", 1) for line in lines)]

    def charged(self, key: str) -> bool:
        return any(known == key for _, known in self.charges())


def broken_checkout(directory: Path, fs: FileSystem = DEFAULT_FS) -> None:
    """BROKEN: the charge happens before anything durable says it may have."""
    gateway = Gateway(directory)
    with FileEvidenceOutcomeCache(directory / "evidence.log", fs=fs) as cache:
        for order in ORDERS:
            evidence_id = f"{order}/pay"
            if cache.get(evidence_id) is not None:
                continue  # paid before the restart
            receipt = gateway.charge(order, evidence_id)  # the side effect, then ...
            cache.put(  # ... its record: a crash in between charges twice
                EvidenceOutcomeCacheEntry(
                    evidence_id=evidence_id,
                    interface_name="Payments",
                    operation_name="pay",
                    outcome=EffectOutcome.success(receipt),
                )
            )


class GatewayHandler:
    """The effect handler the fixed checkout wraps: charges under the
    idempotency key of the effect running."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        key = current_idempotency_key()
        assert key is not None  # always set while the evidence handler runs us
        return EffectOutcome.success(self.gateway.charge(request.operation_id or "", key))


def fixed_checkout(directory: Path, fs: FileSystem = DEFAULT_FS) -> None:
    """FIXED: an intent is durable before the charge; after a crash the
    gateway is asked whether the charge in doubt happened."""
    gateway = Gateway(directory)

    def reconcile(request: EffectRequest, evidence_id: str) -> EffectOutcome | None:
        if gateway.charged(evidence_id):
            return EffectOutcome.success(f"receipt for {request.operation_id}")
        return None  # it did not happen: charge now

    with FileEvidenceOutcomeCache(directory / "evidence.log", fs=fs) as cache:
        pay = EvidencePersistenceHandler(
            GatewayHandler(gateway),
            cache,
            lambda request: f"{request.operation_id}/pay",
            reconcile=reconcile,
        )
        for tick, order in enumerate(ORDERS, start=1):
            request = EffectRequest(
                interface_name="Payments",
                operation_name="pay",
                tick=tick,
                operation_id=order,
                body={"amount": 30},
            )
            outcome = pay.handle_effect(request)
            assert outcome.is_success, f"{order}: {outcome}"


def charged_once(checkout: Checkout) -> Callable[[Path], None]:
    """The check: restart `checkout` on what the crash left (it finishes the
    work), then every order must have been charged exactly once."""

    def check(directory: Path) -> None:
        checkout(directory, DEFAULT_FS)
        orders = [order for order, _ in Gateway(directory).charges()]
        for order in ORDERS:
            times = orders.count(order)
            assert times == 1, f"{order} charged {times} times"

    return check


def crash_both(power_loss: Unsynced | None = None) -> dict[str, CrashReport]:
    """Crash-test both checkouts; their reports by name."""
    return {
        name: crash_test(checkout, charged_once(checkout), power_loss=power_loss)
        for name, checkout in (("broken", broken_checkout), ("fixed", fixed_checkout))
    }


def main() -> int:
    ok = True
    for power_loss in (None, Unsynced.DROP):
        for name, report in crash_both(power_loss).items():
            print(f"{name} checkout: {report}")
            ok = ok and report.passed == (name == "fixed")
    print("the broken checkout is caught, the fixed one passes" if ok else "UNEXPECTED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
