"""Usage and cost: what both hubs share to record, price, report and budget their calls.

Every successful chat or vision call that reports token usage becomes a
:class:`~modelport.types.UsageRecord`. :meth:`UsageLedger.observe` builds it when the runtime
reports the call (cheap: no I/O), and :meth:`UsageLedger.settle` writes it to the store once
the dialogue it belongs to is known (after the turn is stored, so a new dialogue's id is in
it). Only a store that implements :class:`~modelport.backends.UsageStore` keeps records;
recording never fails a call.

Prices come from ``[prices.<backend>."<model>"]`` in the config, then from the backend's own
optional ``chat_price(model) -> (input, output) | None`` (US dollars per million tokens; the
:class:`~modelport.backends.HasChatPrice` protocol). Both are looked up under each of
:func:`model_names`: the model, then the alias of a dated snapshot (so a backend's
``chat_price`` is a plain table lookup, called once per name).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from .backends import HasChatPrice, UsageStore, implements
from .errors import BudgetExceededError, ConfigError, ModelportError
from .logs import get_logger, redact_exception
from .types import Capability, Usage, UsageRecord

if TYPE_CHECKING:
    from ._runtime import Call, Runtime
    from .config import Settings

__all__ = ["UsageLedger", "period_start"]

#: The capabilities whose calls are recorded (those that report token usage).
RECORDED = frozenset({Capability.CHAT, Capability.VISION})

#: A dated snapshot's suffix (``some-model-2024-07-18``): priced as its alias when the table
#: has no entry for the snapshot itself.
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")

#: Records held at most while they wait for their dialogue (a turn that never finished).
_MAX_PENDING = 1024

#: Seconds a budget's spent total is trusted before it is read again from the store (other
#: processes may spend too).
BUDGET_REFRESH_S = 60.0

Price = tuple[float, float]


def model_names(model: str) -> tuple[str, ...]:
    """The names a model is priced under, most specific first: itself, then its alias when it
    is a dated snapshot."""
    alias = _SNAPSHOT.sub("", model)
    return (model, alias) if alias != model else (model,)


def cost_usd(usage: Usage, price: Price | None) -> float | None:
    if price is None:
        return None
    return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1_000_000


def period_start(period: str, now: datetime) -> datetime | None:
    """When the budget period holding ``now`` began (UTC); ``None`` for ``"total"``."""
    now = now.astimezone(UTC)
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return None


def _next_period(period: str, start: datetime | None) -> str:
    if start is None:
        return ""
    if period == "day":
        return ", or wait for the next day (00:00 UTC)"
    return ", or wait for the next month (the 1st, 00:00 UTC)"


@attrs.define
class _Spent:
    """An assistant's spent total in one period: the store's total as of one read, plus this
    hub's own records settled since that the read did not hold (each record counted once,
    whichever order the read and the record's write and settling come in)."""

    start: datetime | None
    stored: float  # the total of the records the read returned
    read_at: float  # time.monotonic() when the read began
    #: records the read returned that were still being settled here: not to be added again
    seen: Counter[UsageRecord] = attrs.field(factory=Counter)
    #: this hub's records settled that the read did not return
    local: Counter[UsageRecord] = attrs.field(factory=Counter)

    @property
    def total(self) -> float:
        return self.stored + sum((r.cost_usd or 0.0) * n for r, n in self.local.items())

    def holds(self, record: UsageRecord) -> bool:
        return self.start is None or record.at >= self.start


@attrs.define
class _Budget:
    """One budgeted assistant's bookkeeping."""

    spent: _Spent | None = None
    #: held by the one thread reading the store; the others use ``spent`` meanwhile
    refreshing: threading.Lock = attrs.field(factory=threading.Lock)
    #: the records settled while that read runs (it may or may not have returned them)
    during_read: Counter[UsageRecord] | None = None


@attrs.define
class UsageLedger:
    """One hub's usage bookkeeping: prices, records waiting for their dialogue, budgets."""

    settings: Settings
    _prices: dict[tuple[str, str], Price | None] = attrs.field(init=False, factory=dict)
    _pending: dict[int, tuple[object, UsageRecord]] = attrs.field(init=False, factory=dict)
    _keeps: dict[str, bool] = attrs.field(init=False, factory=dict)
    _budgets: dict[str, _Budget] = attrs.field(init=False, factory=dict)
    #: budget-counted records between the start of their write and their settling
    _settling: Counter[UsageRecord] = attrs.field(init=False, factory=Counter)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    clock: Callable[[], datetime] = attrs.field(default=lambda: datetime.now(UTC), kw_only=True)

    # --- prices ------------------------------------------------------------------------------

    def price(self, backend_name: str, backend: object, model: str) -> Price | None:
        """US dollars per million tokens (input, output) of ``model`` on ``backend_name``:
        the config's ``[prices]`` first, then the backend's own ``chat_price``; cached."""
        key = (backend_name, model)
        try:
            return self._prices[key]
        except KeyError:
            found = self._look_up(backend_name, backend, model)
            self._prices[key] = found
            return found

    def _look_up(self, backend_name: str, backend: object, model: str) -> Price | None:
        table = self.settings.prices.get(backend_name, {})
        for name in (*model_names(model), "*"):
            if (entry := table.get(name)) is not None:
                return (entry.input_per_million, entry.output_per_million)
        if not implements(backend, HasChatPrice):
            return None
        for name in model_names(model):  # the snapshot's own price, then its alias's
            try:
                shipped = backend.chat_price(name)
            except Exception as exc:  # a plugin's bug must not cost the caller the reply
                get_logger().warning(
                    "chat_price_failed", backend=backend_name, model=name, error=repr(exc)
                )
                return None
            if shipped is not None:
                return (float(shipped[0]), float(shipped[1]))
        return None

    # --- recording ---------------------------------------------------------------------------

    def observe(
        self, rt: Runtime, call: Call, result: object, usage: Usage, model: str | None
    ) -> None:
        """Note a successful call's usage, to be written by :meth:`settle` (no I/O here)."""
        backend = rt.built(call.backend)
        record = UsageRecord(
            at=self.clock(),
            capability=call.capability,
            backend=call.backend,
            operation=call.operation,
            model=model,
            assistant=call.assistant,
            dialogue_id=call.dialogue_id,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=cost_usd(usage, self.price(call.backend, backend, model) if model else None),
        )
        with self._lock:
            if len(self._pending) >= _MAX_PENDING:  # turns that never finished: drop the oldest
                self._pending.pop(next(iter(self._pending)))
            self._pending[id(result)] = (result, record)

    def settle(self, rt: Runtime, result: object, dialogue_id: str | None = None) -> None:
        """Write the usage noted for ``result`` (with ``dialogue_id`` when the call had none)
        to the store, if it keeps usage. Blocking; never raises: a failure is logged."""
        with self._lock:
            entry = self._pending.pop(id(result), None)
        if entry is None or entry[0] is not result:
            return
        record = entry[1]
        if record.dialogue_id is None and dialogue_id is not None:
            record = attrs.evolve(record, dialogue_id=dialogue_id)
        try:
            store = self._usage_store(rt)
            if store is None:
                return
            counted = record.assistant is not None and bool(record.cost_usd)
            if counted:  # a budget read from now on may return it: see _refresh
                with self._lock:
                    self._settling[record] += 1
            try:
                # called directly, not through the retry policy and the observers: a lost
                # record is only logged, and the call it describes was observed already
                store.record_usage(record)
            except BaseException:
                if counted:
                    with self._lock:
                        _take(self._settling, record)
                raise
        except Exception as exc:  # the reply is paid for and kept: only its usage is lost
            if not isinstance(exc, ModelportError):
                redact_exception(exc)
            get_logger().warning(
                "usage_not_recorded",
                backend=record.backend,
                model=record.model,
                dialogue_id=record.dialogue_id,
                error=str(exc),
                error_type=type(exc).__name__,
            )
            return
        self._spend(record)

    def _usage_store(self, rt: Runtime) -> Any:
        """The store when it keeps usage records (checked once per store), else ``None``."""
        if not rt.available(Capability.STORAGE):
            return None
        name, store = rt.backend(Capability.STORAGE)
        keeps = self._keeps.get(name)
        if keeps is None:
            keeps = self._keeps[name] = implements(store, UsageStore)
        return store if keeps else None

    def store(self, rt: Runtime) -> tuple[str, Any]:
        """The store's name and the store, for reading usage.

        :raises ConfigError: when the store keeps no usage records.
        """
        store = self._usage_store(rt)
        if store is None:
            name = rt.backend(Capability.STORAGE)[0]
            raise ConfigError(
                f"the store {name!r} keeps no usage records",
                key="capabilities.storage",
                hint="use a store that does (jsonfile, sql); usage is recorded from then on",
            )
        return rt.backend(Capability.STORAGE)[0], store

    def list_usage(
        self, rt: Runtime, since: datetime | None, until: datetime | None
    ) -> tuple[UsageRecord, ...]:
        """The stored usage records with ``since <= at < until``, oldest first (blocking)."""
        from ._runtime import Call

        name, store = self.store(rt)
        records = rt.call(
            Call(Capability.STORAGE, name, "list_usage"),
            lambda: store.list_usage(since=since, until=until),
        )[0]
        return tuple(records)

    # --- budgets -----------------------------------------------------------------------------

    def budgeted(self, assistant: str | None) -> bool:
        """Whether the assistant (``None``: the default one) has a budget (cheap)."""
        name = assistant or self.settings.default_assistant
        profile = self.settings.assistants.get(name) if name is not None else None
        return profile is not None and profile.budget_usd is not None

    def check_budget(self, rt: Runtime, assistant: str | None) -> None:
        """Refuse a call for an assistant whose budget is spent (blocking: the spent total is
        read from the store at most once per period and :data:`BUDGET_REFRESH_S`).

        :raises BudgetExceededError: naming the setting to raise.
        :raises ConfigError: when the assistant has a budget but the store keeps no usage.
        """
        if not self.budgeted(assistant):
            return
        name, profile = self.settings.assistant(assistant)
        if name is None or profile.budget_usd is None:  # pragma: no cover - see budgeted
            return
        spent = self._spent_in_period(rt, name, profile.budget_period)
        if spent >= profile.budget_usd:
            start = period_start(profile.budget_period, self.clock())
            raise BudgetExceededError(
                name,
                spent_usd=spent,
                budget_usd=profile.budget_usd,
                period=profile.budget_period,
                hint=f"raise [assistants.{name}] budget_usd"
                f"{_next_period(profile.budget_period, start)}; nothing was sent",
            )

    def _spent_in_period(self, rt: Runtime, name: str, period: str) -> float:
        """The assistant's spent total in the period holding now: the cached one while it is
        fresh; else read again by one thread while the others use the cached one (or, with
        none for this period, wait for that read)."""
        start = period_start(period, self.clock())
        with self._lock:
            budget = self._budgets.setdefault(name, _Budget())
            known = budget.spent if budget.spent and budget.spent.start == start else None
            if known is not None and time.monotonic() - known.read_at < BUDGET_REFRESH_S:
                return known.total
        if known is None:
            budget.refreshing.acquire()  # none for this period yet: wait for a read under way
        elif not budget.refreshing.acquire(blocking=False):
            with self._lock:  # another thread is reading: use the total known meanwhile
                current = budget.spent
                return (current if current and current.start == start else known).total
        try:
            with self._lock:  # read meanwhile by the thread waited for?
                spent = budget.spent
                if (
                    spent is not None
                    and spent.start == start
                    and time.monotonic() - spent.read_at < BUDGET_REFRESH_S
                ):
                    return spent.total
            return self._refresh(rt, budget, name, start)
        finally:
            budget.refreshing.release()

    def _refresh(self, rt: Runtime, budget: _Budget, name: str, start: datetime | None) -> float:
        """Read the assistant's records of the period from the store (holding
        ``budget.refreshing``); the new spent total."""
        with self._lock:
            budget.during_read = Counter()
        read_at = time.monotonic()
        try:
            records = self.list_usage(rt, start, None)
        finally:
            with self._lock:
                during_read, budget.during_read = budget.during_read, None
        stored = Counter(r for r in records if r.assistant == name)
        with self._lock:
            # this hub's records settled but not returned: those settled during the read, and
            # those not returned by the last read either (a store slow to show its writes)
            mine = during_read if during_read is not None else Counter()
            if budget.spent is not None:
                mine |= budget.spent.local
            spent = _Spent(
                start,
                sum((r.cost_usd or 0.0) * n for r, n in stored.items()),
                read_at,
                # returned, but still to be settled here: _spend must not add them again
                seen=stored & self._settling,
            )
            spent.local = Counter({r: n for r, n in (mine - stored).items() if spent.holds(r)})
            budget.spent = spent
            return spent.total

    def _spend(self, record: UsageRecord) -> None:
        """Count a record just written (by :meth:`settle`) in its assistant's spent total."""
        if record.assistant is None or not record.cost_usd:
            return
        with self._lock:
            _take(self._settling, record)
            budget = self._budgets.get(record.assistant)
            if budget is None:  # never read: the first read will return it
                return
            if budget.during_read is not None:
                budget.during_read[record] += 1
            spent = budget.spent
            if spent is None or not spent.holds(record):
                return
            if not _take(spent.seen, record):  # else the last read returned it already
                spent.local[record] += 1


def _take(counter: Counter[UsageRecord], record: UsageRecord) -> bool:
    """Take one ``record`` from ``counter``; whether it held one."""
    held = counter.get(record, 0)
    if held <= 1:
        counter.pop(record, None)
    else:
        counter[record] = held - 1
    return held > 0
