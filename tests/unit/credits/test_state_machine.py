"""A Hypothesis state machine over grants, takes, reserves, settles, releases and allowances.

A simple model of one user's balance runs beside the real service; after every step the
store must agree with the model, never be negative, and its ledger must sum to the balance.
Settles and releases are drawn from every hold ever made, so repeats test idempotency.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, MultipleResults, RuleBasedStateMachine, invariant, multiple, rule

from bot.credits import CreditPolicy, CreditService, Hold
from bot.errors import InsufficientCredits
from bot.minitoolai.prices import PriceTable
from bot.minitoolai.types import Usage
from bot.ports import Account, Actor, LedgerEntry, Reservation
from tests.fakes.memory_store import MemoryStore
from tests.fakes.wall_clock import ManualClock

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
USER = Account("discord", "42")
OWNER = Actor(Account("discord", "1"))
MODEL = "gpt-4o"  # 2.5 / 10 dollars per 1M tokens: a worst case is a few thousand micro-dollars
STARTING, ALLOWANCE, CAP = 5_000, 2_000, 8_000
PRICES = PriceTable()
tokens = st.integers(min_value=0, max_value=1_500)


class CreditMachine(RuleBasedStateMachine):
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.clock = ManualClock(START)
        self.store = MemoryStore(clock=self.clock)
        policy = CreditPolicy(
            starting_grant=STARTING,
            allowance=ALLOWANCE,
            allowance_period="daily",
            allowance_cap=CAP,
            admin_ids=frozenset({"discord:1"}),
        )
        self.credits = CreditService(self.store, PRICES, policy, clock=self.clock)
        self.expected: int | None = None  # the model balance; None until the account opens
        self.refilled: set[str] = set()
        self.open: dict[str, Hold] = {}

    def teardown(self) -> None:
        self.runner.close()

    # ------------------------------------------------------------ the model

    def seen(self) -> int:
        """What the service does on a reserve or status: open the account, add today's allowance."""
        if self.expected is None:
            self.expected = STARTING
        today = self.clock.now.date().isoformat()
        if today not in self.refilled:
            self.refilled.add(today)
            self.expected += max(0, min(ALLOWANCE, CAP - self.expected))
        return self.expected

    # ------------------------------------------------------------ rules

    @rule(amount=st.integers(min_value=1, max_value=5_000))
    def grant(self, amount: int) -> None:
        result = self.runner.run(self.credits.grant(OWNER, USER, amount))
        self.expected = (STARTING if self.expected is None else self.expected) + amount
        assert self.expected == result.balance

    @rule(amount=st.integers(min_value=1, max_value=5_000))
    def take(self, amount: int) -> None:
        result = self.runner.run(self.credits.take(OWNER, USER, amount))
        taken = min(amount, self.expected or 0)
        assert -taken == result.changed
        if self.expected is not None:
            self.expected -= taken

    @rule(target=holds, prompt=tokens, completion=tokens)
    def reserve(self, prompt: int, completion: int) -> MultipleResults[Hold]:
        worst = PRICES.chat_worst_case(MODEL, prompt, completion)
        fits = self.seen() >= worst
        try:
            hold = self.runner.run(
                self.credits.reserve_chat(
                    USER, None, model=MODEL, prompt_tokens=prompt, max_completion_tokens=completion
                )
            )
        except InsufficientCredits as exc:
            assert not fits
            assert (self.expected, worst) == (exc.balance, exc.needed)
            return multiple()
        assert fits
        assert worst == hold.amount
        self.expected = self.seen() - worst
        self.open[hold.reservation_id] = hold
        return multiple(hold)

    @rule(target=holds, count=st.integers(min_value=2, max_value=12), prompt=tokens, completion=tokens)
    def reserve_concurrently(self, count: int, prompt: int, completion: int) -> MultipleResults[Hold]:
        worst = PRICES.chat_worst_case(MODEL, prompt, completion)
        balance = self.seen()
        fitting = count if worst == 0 else min(count, balance // worst)

        async def many() -> list[Hold | BaseException]:
            calls = (
                self.credits.reserve_chat(
                    USER, None, model=MODEL, prompt_tokens=prompt, max_completion_tokens=completion
                )
                for _ in range(count)
            )
            return await asyncio.gather(*calls, return_exceptions=True)

        results = self.runner.run(many())
        made = [r for r in results if isinstance(r, Hold)]
        assert all(isinstance(r, Hold | InsufficientCredits) for r in results)
        assert fitting == len(made)
        self.expected = balance - fitting * worst
        self.open.update((h.reservation_id, h) for h in made)
        return multiple(*made)

    @rule(
        hold=holds, exact=st.booleans(), prompt=tokens, completion=st.integers(min_value=0, max_value=3_000)
    )
    def settle(self, hold: Hold, exact: bool, prompt: int, completion: int) -> None:
        usage = Usage(prompt, completion) if exact else None
        charged = self.runner.run(
            self.credits.settle_chat(
                hold, model=MODEL, usage=usage, streamed_text_tokens=completion, prompt_tokens_estimate=prompt
            )
        )
        if self.open.pop(hold.reservation_id, None) is None:
            assert 0 == charged  # already closed: idempotent
            return
        assert self.expected is not None
        # The full cost; over the hold it comes from the balance, as far as the balance goes.
        cost = PRICES.chat_worst_case(MODEL, prompt, completion)
        expected_charge = min(cost, hold.amount + self.expected)
        assert expected_charge == charged
        self.expected += hold.amount - charged

    @rule(hold=holds)
    def release(self, hold: Hold) -> None:
        released = self.runner.run(self.credits.release(hold, "test"))
        was_open = self.open.pop(hold.reservation_id, None) is not None
        assert was_open == released
        if was_open:
            assert self.expected is not None
            self.expected += hold.amount

    @rule(hours=st.integers(min_value=1, max_value=40))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours))

    @rule()
    def status(self) -> None:
        status = self.runner.run(self.credits.status(USER))
        assert self.seen() == status.balance

    # ------------------------------------------------------------ invariants

    @invariant()
    def ledger_agrees_with_the_model(self) -> None:
        """Balance equals the model and is never negative; entries sum to it; open holds match."""
        balance, entries, still_open = self.runner.run(self.snapshot())
        assert balance == self.expected
        assert balance is None or balance >= 0
        assert (balance or 0) == sum(e.amount for e in entries)
        assert all(e.balance_after >= 0 for e in entries)
        assert set(self.open) == {r.id for r in still_open}

    async def snapshot(self) -> tuple[int | None, list[LedgerEntry], list[Reservation]]:
        return (
            await self.store.balance(USER),
            await self.store.entries(USER, limit=10**9),
            await self.store.open_reservations(),
        )


CreditMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestCreditMachine = CreditMachine.TestCase
