"""Credits (``bot.ports.LedgerStore``), written once for both backends.

The invariant: an account's balance equals the sum of its ledger entries. Every change is one
write transaction that moves the balance with a single atomic ``UPDATE ... RETURNING`` (which
also re-checks ``balance >= 0`` under the row lock, so concurrent processes cannot overdraw)
and writes one entry whose unique idempotency key makes a repeat a no-op. Reservations are
locked (``FOR UPDATE`` on PostgreSQL) while they are settled or released, so they close once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.errors import InsufficientCredits, SpendingLimitReached, StorageError
from bot.ports import Account, Counter, EntryKind, LedgerEntry, Reservation
from storage.common import (
    entry_from_row,
    load_mapping,
    meta_json,
    reservation_from_row,
    to_utc,
    utcnow,
)
from storage.database import Database, Rollback, Tx

_ENTRY_COLUMNS = (
    "id, platform, holder, kind, amount, balance_after, reason, idempotency_key, reservation_id, meta,"
    " created_at"
)
_RESERVATION_COLUMNS = (
    "id, platform, holder, spender_platform, spender_holder, amount, purpose, state, charged, meta,"
    " created_at, closed_at"
)


SPENDING_META = "spending_counters"  # a reservation's meta: the counters its hold moved


def _dollars(micro: int) -> str:
    return f"${micro / 1_000_000:,.4f}"


class LedgerMixin:
    _db: Database

    async def open_account(
        self, account: Account, *, starting_grant: int, reason: str, grants: Counter | None = None
    ) -> int:
        if starting_grant < 0:
            raise ValueError("A starting grant must not be negative.")
        key = f"open:{account.platform}:{account.holder}"

        async def body(tx: Tx) -> int:
            grant, meta = starting_grant, None
            await _ensure_account(tx, account)
            if await _key_used(tx, key):
                return await _balance(tx, account)
            if grant and grants is not None and not await _count(tx, grants, 1):
                grant, meta = 0, {"grant_withheld": True}
            balance = await _credit(tx, account, grant)
            await _record(tx, account, "grant", grant, balance, reason, key, meta=meta)
            return balance

        try:
            return await self._db.run_write(body)
        except Rollback:
            return await self._balance_or_zero(account)

    async def balance(self, account: Account) -> int | None:
        async with self._db.read() as tx:
            value = await tx.fetchval(
                "SELECT balance FROM accounts WHERE platform = ? AND holder = ?",
                account.platform,
                account.holder,
            )
        return None if value is None else int(value)

    async def apply(
        self,
        account: Account,
        amount: int,
        *,
        kind: EntryKind,
        reason: str,
        idempotency_key: str,
        meta: Mapping[str, Any] | None = None,
    ) -> LedgerEntry | None:

        async def body(tx: Tx) -> LedgerEntry | None:
            if await _key_used(tx, idempotency_key):
                return None
            await _ensure_account(tx, account)
            balance = await _move(tx, account, amount)
            if balance is None:
                current = await _balance(tx, account)
                raise InsufficientCredits(
                    f"This needs {_dollars(-amount)} but the balance is {_dollars(current)}.",
                    balance=current,
                    needed=-amount,
                )
            row = await _record(tx, account, kind, amount, balance, reason, idempotency_key, meta=meta)
            return entry_from_row(row)

        try:
            return await self._db.run_write(body)
        except Rollback:
            return None

    async def top_up(
        self, account: Account, amount: int, *, up_to: int, reason: str, idempotency_key: str
    ) -> int:
        lock = self._db.lock_clause

        async def body(tx: Tx) -> int:
            if await _key_used(tx, idempotency_key):
                return 0
            await _ensure_account(tx, account)
            current = await _balance(tx, account, lock=lock)
            added = max(0, min(amount, up_to - current))
            balance = await _credit(tx, account, added)
            # Recorded even when 0, so one key is one allowance whatever the balance was.
            await _record(tx, account, "allowance", added, balance, reason, idempotency_key)
            return added

        try:
            return await self._db.run_write(body)
        except Rollback:
            return 0

    async def reserve(
        self,
        reservation_id: str,
        account: Account,
        amount: int,
        *,
        purpose: str,
        reason: str,
        spender: Account | None = None,
        meta: Mapping[str, Any] | None = None,
        spending: Sequence[Counter] = (),
    ) -> bool:
        if amount < 0:
            raise ValueError("A reservation must not be negative.")
        if spending:
            meta = {**(meta or {}), SPENDING_META: [c.key for c in spending]}

        async def body(tx: Tx) -> bool:
            if await tx.fetchval("SELECT 1 FROM reservations WHERE id = ?", reservation_id):
                return True
            balance = await _move(tx, account, -amount)
            if balance is None:
                return False
            await _insert_reservation(tx, reservation_id, account, amount, purpose, spender, meta)
            await _record(
                tx,
                account,
                "reserve",
                -amount,
                balance,
                reason,
                f"reserve:{reservation_id}",
                reservation_id=reservation_id,
                meta=meta,
            )
            # Last, so the bot-wide rows every hold moves stay locked only until the commit;
            # after the account, as in settle: every writer takes the rows in one order.
            for counter in spending:
                if not await _count(tx, counter, amount):
                    raise SpendingLimitReached(key=counter.key, limit=counter.limit or 0)
            return True

        try:
            return await self._db.run_write(body)
        except Rollback as lost:
            return bool(lost.result)

    async def settle(
        self, reservation_id: str, charged: int, *, reason: str, meta: Mapping[str, Any] | None = None
    ) -> bool:
        if charged < 0:
            raise ValueError("A settled charge must not be negative.")
        return await self._close(reservation_id, "settled", charged, reason, meta)

    async def release(self, reservation_id: str, *, reason: str) -> bool:
        return await self._close(reservation_id, "released", 0, reason, None)

    async def _close(
        self,
        reservation_id: str,
        state: str,
        charged: int,
        reason: str,
        meta: Mapping[str, Any] | None,
    ) -> bool:
        kind: EntryKind = "settle" if state == "settled" else "release"
        lock = self._db.lock_clause

        async def body(tx: Tx) -> bool:
            row = await tx.fetchrow(
                f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE id = ?{lock}",
                reservation_id,
            )
            if row is None or row["state"] != "open":
                return False
            reservation = reservation_from_row(row)
            kept = min(charged, reservation.amount)
            if charged > reservation.amount:
                # More was used than held: the rest comes from the balance, as far as it goes.
                available = await _balance(tx, reservation.account, lock=lock)
                kept += min(charged - reservation.amount, available)
            refund = reservation.amount - kept
            balance = await _move(tx, reservation.account, refund)
            if balance is None:
                raise StorageError(
                    f"The credit account {reservation.account.platform}:{reservation.account.holder}"
                    " cannot pay this settlement."
                )
            await _record(
                tx,
                reservation.account,
                kind,
                refund,
                balance,
                reason,
                f"{kind}:{reservation_id}",
                reservation_id=reservation_id,
                meta={"charged": kept, **(meta or {})},
            )
            await tx.execute(
                "UPDATE reservations SET state = ?, charged = ?, meta = ?, closed_at = ? WHERE id = ?",
                state,
                kept if state == "settled" else None,
                meta_json({**load_mapping(row["meta"]), **(meta or {})}),
                utcnow(),
                reservation_id,
            )
            for key in _spending_keys(reservation.meta):  # last, as in reserve
                await _uncount(tx, key, refund)
            return True

        try:
            return await self._db.run_write(body)
        except Rollback:
            return False

    async def annotate_reservation(self, reservation_id: str, meta: Mapping[str, Any]) -> None:
        lock = self._db.lock_clause

        async def body(tx: Tx) -> None:
            stored = await tx.fetchval(
                f"SELECT meta FROM reservations WHERE id = ? AND state = 'open'{lock}", reservation_id
            )
            if stored is not None:
                await tx.execute(
                    "UPDATE reservations SET meta = ? WHERE id = ?",
                    meta_json({**load_mapping(stored), **meta}),
                    reservation_id,
                )

        await self._db.run_write(body)

    async def get_reservation(self, reservation_id: str) -> Reservation | None:
        async with self._db.read() as tx:
            row = await tx.fetchrow(
                f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE id = ?", reservation_id
            )
        return None if row is None else reservation_from_row(row)

    async def counter(self, key: str) -> int:
        async with self._db.read() as tx:
            value = await tx.fetchval("SELECT value FROM counters WHERE key = ?", key)
        return 0 if value is None else int(value)

    async def claim_once(self, key: str) -> bool:
        async with self._db.write() as tx:
            claimed = await tx.fetchval(
                "INSERT INTO claims (key, claimed_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING RETURNING key",
                key,
                utcnow(),
            )
        return claimed is not None

    async def open_reservations(self) -> list[Reservation]:
        async with self._db.read() as tx:
            rows = await tx.fetch(
                f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE state = 'open'"
                " ORDER BY created_at, id"
            )
        return [reservation_from_row(row) for row in rows]

    async def entries(
        self, account: Account, *, limit: int = 20, kinds: Sequence[EntryKind] | None = None
    ) -> list[LedgerEntry]:
        where, args = "platform = ? AND holder = ?", [account.platform, account.holder]
        if kinds is not None:
            if not kinds:
                return []
            where += f" AND kind IN ({', '.join('?' * len(kinds))})"
            args.extend(kinds)
        async with self._db.read() as tx:
            rows = await tx.fetch(
                f"SELECT {_ENTRY_COLUMNS} FROM ledger WHERE {where} ORDER BY id DESC LIMIT ?",
                *args,
                max(limit, 0),
            )
        return [entry_from_row(row) for row in rows]

    async def held(self, account: Account, *, spender: Account | None = None) -> int:
        where, args = "platform = ? AND holder = ? AND state = 'open'", [account.platform, account.holder]
        if spender is not None:
            where += " AND spender_platform = ? AND spender_holder = ?"
            args += [spender.platform, spender.holder]
        async with self._db.read() as tx:
            total = await tx.fetchval(
                f"SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE {where}", *args
            )
        return int(total)

    async def charged_between(
        self, account: Account, start: datetime, end: datetime, *, spender: Account | None = None
    ) -> int:
        where, args = _settled_where(account, spender)
        async with self._db.read() as tx:
            total = await tx.fetchval(
                f"SELECT COALESCE(SUM(charged), 0) FROM reservations WHERE {where}"
                " AND closed_at >= ? AND closed_at < ?",
                *args,
                to_utc(start),
                to_utc(end),
            )
        return int(total)

    async def settled_reservations(
        self, account: Account, *, limit: int = 20, spender: Account | None = None
    ) -> list[Reservation]:
        where, args = _settled_where(account, spender)
        async with self._db.read() as tx:
            rows = await tx.fetch(
                f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE {where}"
                " ORDER BY closed_at DESC, id DESC LIMIT ?",
                *args,
                max(limit, 0),
            )
        return [reservation_from_row(row) for row in rows]

    async def spent_between(self, start: datetime, end: datetime) -> int:
        async with self._db.read() as tx:
            total = await tx.fetchval(
                "SELECT COALESCE(SUM(charged), 0) FROM reservations WHERE state = 'settled'"
                " AND closed_at >= ? AND closed_at < ?",
                to_utc(start),
                to_utc(end),
            )
        return int(total)

    async def _balance_or_zero(self, account: Account) -> int:
        return await self.balance(account) or 0


async def _count(tx: Tx, counter: Counter, amount: int) -> bool:
    """Add ``amount`` to a counter unless that passes its limit; False (and no change) if it would.

    One upsert: the update re-checks the limit against the row's committed value under its lock,
    so concurrent writers can never pass it together.
    """
    if counter.limit is not None and amount > counter.limit:
        return False
    sql = (
        "INSERT INTO counters (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
        " SET value = counters.value + excluded.value, updated_at = excluded.updated_at"
    )
    args: list[object] = [counter.key, amount, utcnow()]
    if counter.limit is not None:
        sql += " WHERE counters.value + excluded.value <= ?"
        args.append(counter.limit)
    return await tx.fetchval(sql + " RETURNING value", *args) is not None


async def _uncount(tx: Tx, key: str, amount: int) -> None:
    if amount:
        await tx.execute(
            "UPDATE counters SET value = value - ?, updated_at = ? WHERE key = ? AND value >= ?",
            amount,
            utcnow(),
            key,
            amount,
        )


def _spending_keys(meta: Mapping[str, Any]) -> list[str]:
    keys = meta.get(SPENDING_META)
    return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []


def _settled_where(account: Account, spender: Account | None) -> tuple[str, list[object]]:
    where = "platform = ? AND holder = ? AND state = 'settled'"
    args: list[object] = [account.platform, account.holder]
    if spender is not None:
        where += " AND spender_platform = ? AND spender_holder = ?"
        args += [spender.platform, spender.holder]
    return where, args


async def _ensure_account(tx: Tx, account: Account) -> None:
    await tx.execute(
        "INSERT INTO accounts (platform, holder, balance, created_at) VALUES (?, ?, 0, ?)"
        " ON CONFLICT (platform, holder) DO NOTHING",
        account.platform,
        account.holder,
        utcnow(),
    )


async def _insert_reservation(
    tx: Tx,
    reservation_id: str,
    account: Account,
    amount: int,
    purpose: str,
    spender: Account | None,
    meta: Mapping[str, Any] | None,
) -> None:
    inserted = await tx.fetchval(
        "INSERT INTO reservations (id, platform, holder, spender_platform, spender_holder,"
        " amount, purpose, meta, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING RETURNING id",
        reservation_id,
        account.platform,
        account.holder,
        None if spender is None else spender.platform,
        None if spender is None else spender.holder,
        amount,
        purpose,
        meta_json(meta),
        utcnow(),
    )
    if inserted is None:
        raise Rollback(True)  # another process reserved this id first: theirs stands, ours is undone


async def _key_used(tx: Tx, key: str) -> bool:
    return await tx.fetchval("SELECT 1 FROM ledger WHERE idempotency_key = ?", key) is not None


async def _balance(tx: Tx, account: Account, *, lock: str = "") -> int:
    value = await tx.fetchval(
        f"SELECT balance FROM accounts WHERE platform = ? AND holder = ?{lock}",
        account.platform,
        account.holder,
    )
    return 0 if value is None else int(value)


async def _move(tx: Tx, account: Account, amount: int) -> int | None:
    """Add ``amount`` in one atomic statement; the new balance, or None if it would go negative."""
    balance = await tx.fetchval(
        "UPDATE accounts SET balance = balance + ? WHERE platform = ? AND holder = ?"
        " AND balance + ? >= 0 RETURNING balance",
        amount,
        account.platform,
        account.holder,
        amount,
    )
    return None if balance is None else int(balance)


async def _credit(tx: Tx, account: Account, amount: int) -> int:
    """Add a non-negative amount to an account that exists (its row is created first)."""
    balance = await _move(tx, account, amount)
    if balance is None:
        raise StorageError(f"The credit account {account.platform}:{account.holder} does not exist.")
    return balance


async def _record(
    tx: Tx,
    account: Account,
    kind: EntryKind,
    amount: int,
    balance_after: int,
    reason: str,
    key: str,
    *,
    reservation_id: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Any:
    """Write one ledger entry; a key someone else used first rolls the whole change back."""
    row = await tx.fetchrow(
        "INSERT INTO ledger (platform, holder, kind, amount, balance_after, reason, idempotency_key,"
        " reservation_id, meta, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        f" ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_ENTRY_COLUMNS}",
        account.platform,
        account.holder,
        kind,
        amount,
        balance_after,
        reason,
        key,
        reservation_id,
        meta_json(meta),
        utcnow(),
    )
    if row is None:
        raise Rollback()
    return row
