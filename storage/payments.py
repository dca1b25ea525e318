"""Telegram Stars payments (``bot.payments.values.StarPaymentStore``), written once for both backends.

A payment row and the ledger entry that credits it are written in one transaction; the row's
primary key is the charge id and the entry's idempotency key names it too, so a payment delivered
twice changes nothing the second time. A refund first takes the credit back (one ledger entry,
under the row's lock, refused when the balance no longer holds it) and marks the row pending; the
platform's answer then finishes it, or gives the credit back when the platform refused.
"""

from __future__ import annotations

from typing import Any

from bot.payments.values import PurchaseTotals, RefundStart, StarPayment
from bot.ports import Account
from storage.common import as_utc, load_mapping, meta_json, utcnow
from storage.database import Database, Rollback
from storage.ledger import _balance, _credit, _ensure_account, _move, _record

_COLUMNS = (
    "charge_id, platform, holder, stars, credit, provider_charge_id, meta, paid_at, confirmed_at,"
    " refund_state, refund_taken, refund_attempts, refunded_at"
)


def purchase_key(charge_id: str) -> str:
    return f"stars:{charge_id}"


def refund_key(charge_id: str, attempt: int) -> str:
    return f"stars-refund:{charge_id}:{attempt}"


class PaymentsMixin:
    _db: Database

    async def record_star_payment(self, payment: StarPayment) -> tuple[StarPayment, int | None]:
        try:
            async with self._db.write() as tx:
                await _ensure_account(tx, payment.member)
                inserted = await tx.fetchval(
                    "INSERT INTO star_payments (charge_id, platform, holder, stars, credit,"
                    " provider_charge_id, meta, paid_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (charge_id) DO NOTHING RETURNING charge_id",
                    payment.charge_id,
                    payment.member.platform,
                    payment.member.holder,
                    payment.stars,
                    payment.credit,
                    payment.provider_charge_id,
                    meta_json(payment.meta),
                    utcnow(),
                )
                balance: int | None = None
                if inserted is not None:  # else delivered before: the stored row stands, nothing changes
                    balance = await _credit(tx, payment.member, payment.credit)
                    await _record(
                        tx,
                        payment.member,
                        "purchase",
                        payment.credit,
                        balance,
                        f"{payment.stars} Telegram Stars",
                        purchase_key(payment.charge_id),
                        meta={"charge_id": payment.charge_id, "stars": payment.stars},
                    )
                row = await tx.fetchrow(
                    f"SELECT {_COLUMNS} FROM star_payments WHERE charge_id = ?", payment.charge_id
                )
                return _payment(row), balance
        except Rollback:  # the ledger key was written by a concurrent delivery: theirs stands
            stored = await self.get_star_payment(payment.charge_id)
            assert stored is not None
            return stored, None

    async def get_star_payment(self, charge_id: str) -> StarPayment | None:
        async with self._db.read() as tx:
            row = await tx.fetchrow(f"SELECT {_COLUMNS} FROM star_payments WHERE charge_id = ?", charge_id)
        return None if row is None else _payment(row)

    async def mark_star_payment_confirmed(self, charge_id: str) -> None:
        async with self._db.write() as tx:
            await tx.execute(
                "UPDATE star_payments SET confirmed_at = ? WHERE charge_id = ? AND confirmed_at IS NULL",
                utcnow(),
                charge_id,
            )

    async def star_payments(self, member: Account | None = None, *, limit: int = 20) -> list[StarPayment]:
        where, args = _member_where(member)
        async with self._db.read() as tx:
            rows = await tx.fetch(
                f"SELECT {_COLUMNS} FROM star_payments{where} ORDER BY paid_at DESC, charge_id DESC LIMIT ?",
                *args,
                max(limit, 0),
            )
        return [_payment(row) for row in rows]

    async def star_payment_totals(self, member: Account | None = None) -> list[PurchaseTotals]:
        where, args = _member_where(member)
        async with self._db.read() as tx:
            rows = await tx.fetch(
                "SELECT platform, holder, COUNT(*) AS payments, SUM(stars) AS stars, SUM(credit) AS credit,"
                " SUM(CASE WHEN refund_state = 'refunded' THEN 1 ELSE 0 END) AS refunds,"
                " SUM(CASE WHEN refund_state = 'refunded' THEN stars ELSE 0 END) AS refunded_stars,"
                " SUM(CASE WHEN refund_state = 'refunded' THEN refund_taken ELSE 0 END) AS taken_back"
                f" FROM star_payments{where} GROUP BY platform, holder ORDER BY SUM(stars) DESC, platform, holder",
                *args,
            )
        return [
            PurchaseTotals(
                member=Account(row["platform"], row["holder"]),
                payments=int(row["payments"]),
                stars=int(row["stars"]),
                credit=int(row["credit"]),
                refunds=int(row["refunds"]),
                refunded_stars=int(row["refunded_stars"]),
                taken_back=int(row["taken_back"]),
            )
            for row in rows
        ]

    async def begin_star_refund(self, charge_id: str, *, force: bool) -> RefundStart:
        async with self._db.write() as tx:
            row = await tx.fetchrow(
                f"SELECT {_COLUMNS} FROM star_payments WHERE charge_id = ?{self._db.lock_clause}",
                charge_id,
            )
            if row is None:
                return RefundStart("unknown")
            payment = _payment(row)
            if payment.refund_state == "refunded":
                return RefundStart("refunded", payment, payment.refund_taken)
            if payment.refund_state == "pending":
                return RefundStart("pending", payment, payment.refund_taken)
            member = payment.member
            balance = await _balance(tx, member, lock=self._db.lock_clause)
            if balance < payment.credit and not force:
                return RefundStart("spent", payment, 0, balance)  # nothing written
            taken = min(payment.credit, balance)
            attempt = payment.refund_attempts + 1
            after = await _move(tx, member, -taken)
            assert after is not None  # taken <= balance, under the lock
            await _record(
                tx,
                member,
                "refund",
                -taken,
                after,
                f"refund of {payment.stars} Telegram Stars",
                refund_key(charge_id, attempt),
                meta={"charge_id": charge_id, "stars": payment.stars, "forced": force},
            )
            await tx.execute(
                "UPDATE star_payments SET refund_state = 'pending', refund_taken = ?, refund_attempts = ?"
                " WHERE charge_id = ?",
                taken,
                attempt,
                charge_id,
            )
            return RefundStart("started", payment, taken, after)

    async def finish_star_refund(self, charge_id: str) -> bool:
        async with self._db.write() as tx:
            changed = await tx.execute(
                "UPDATE star_payments SET refund_state = 'refunded', refunded_at = ?"
                " WHERE charge_id = ? AND refund_state = 'pending'",
                utcnow(),
                charge_id,
            )
        return changed > 0

    async def undo_star_refund(self, charge_id: str) -> None:
        async with self._db.write() as tx:
            row = await tx.fetchrow(
                f"SELECT {_COLUMNS} FROM star_payments WHERE charge_id = ?{self._db.lock_clause}", charge_id
            )
            if row is None or row["refund_state"] != "pending":
                return
            payment = _payment(row)
            balance = await _credit(tx, payment.member, payment.refund_taken)
            await _record(
                tx,
                payment.member,
                "refund",
                payment.refund_taken,
                balance,
                "refund refused by the platform: credit given back",
                f"stars-refund-undo:{charge_id}:{payment.refund_attempts}",
                meta={"charge_id": charge_id},
            )
            await tx.execute(
                "UPDATE star_payments SET refund_state = 'none', refund_taken = 0 WHERE charge_id = ?",
                charge_id,
            )


def _member_where(member: Account | None) -> tuple[str, list[object]]:
    if member is None:
        return "", []
    return " WHERE platform = ? AND holder = ?", [member.platform, member.holder]


def _payment(row: Any) -> StarPayment:
    return StarPayment(
        charge_id=row["charge_id"],
        member=Account(row["platform"], row["holder"]),
        stars=int(row["stars"]),
        credit=int(row["credit"]),
        provider_charge_id=row["provider_charge_id"],
        meta=load_mapping(row["meta"]),
        paid_at=as_utc(row["paid_at"]),
        confirmed=row["confirmed_at"] is not None,
        refund_state=row["refund_state"],
        refund_taken=int(row["refund_taken"]),
        refund_attempts=int(row["refund_attempts"]),
        refunded_at=as_utc(row["refunded_at"]),
    )
