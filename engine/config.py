"""The typed configuration tree: frozen msgspec Structs decoded from TOML.

One file describes instruments, liquidity providers, pricing tiers, clients and the services.
:func:`load_config` validates everything once and reports *every* problem it finds, each naming
its key path and the reason (``tiers[1].min_spread_ticks: expected int >= 0, got -1``), so a
quant fixes a file in one pass rather than one error per run.

Decimal quantities that must be exact (tick sizes, quantity steps) are strings in the file: TOML
floats are binary floats and 0.00001 is not representable.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import msgspec
from msgspec import Meta, Struct

from engine.fixedpoint import DecimalFormatError, Grid

__all__ = [
    "AggregationMode",
    "BookKeys",
    "ClientConfig",
    "ClientLimits",
    "Config",
    "ConfigError",
    "HaltConfig",
    "InstrumentConfig",
    "LpConfig",
    "MarkupUnit",
    "MaxSpreadRule",
    "MetricsConfig",
    "MinSpreadRule",
    "Routing",
    "ServerConfig",
    "TierConfig",
    "load_config",
    "parse_config",
]

NonNegInt = Annotated[int, Meta(ge=0)]
PosInt = Annotated[int, Meta(ge=1)]
Name = Annotated[str, Meta(min_length=1, max_length=64)]
CompId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Port = Annotated[int, Meta(ge=0, le=65535)]


class AggregationMode(enum.Enum):
    FULL_DEPTH = "full_depth"  # merged book: sizes summed per price across LPs
    TOP_OF_BOOK = "top_of_book"  # best bid/offer across LPs only
    VWAP_BANDS = "vwap_bands"  # sweepable VWAP price for each configured size band
    FULL_AMOUNT = "full_amount"  # best single LP able to fill each band's whole size


class MarkupUnit(enum.Enum):
    TICKS = "ticks"
    BPS = "bps"


class MinSpreadRule(enum.Enum):
    WIDEN = "widen"  # widen symmetrically about the mid to the minimum
    NO_QUOTE = "no_quote"


class MaxSpreadRule(enum.Enum):
    NO_QUOTE = "no_quote"  # a market this wide is not one we price
    CAP = "cap"  # narrow symmetrically about the mid to the maximum (we take the risk)


class BookKeys(enum.Enum):
    ENTRY_ID = "entry_id"  # 278 MDEntryID: new/change/delete refer to an entry by id
    POSITION = "position"  # 290 MDEntryPositionNo: insert/delete shift the levels below


class Routing(enum.Enum):
    INTERNALISE = "internalise"  # B-book
    A_BOOK = "a_book"
    HYBRID = "hybrid"


class InstrumentConfig(Struct, frozen=True, forbid_unknown_fields=True):
    symbol: Name
    tick_size: str  # decimal string, e.g. "0.00001"
    qty_step: str  # decimal string, smallest tradable increment in base units
    price_decimals: NonNegInt | None = None  # defaults to the tick size's decimals
    enabled: bool = True
    # Data-quality settings belong to the instrument, not the tier: they decide which LP prices
    # enter the one aggregated book that every tier is priced from.
    spike_filter_ticks: NonNegInt = 0  # 0 disables; an LP top more than K ticks from the others' median is ignored
    vol_halflife_ms: PosInt = 1000  # EWMA half-life of |mid change| used for volatility widening
    # Risk feedback: one tick of inventory skew per this many quantity steps of house position
    # (0 = no skew), and the house position past which an auto-hedge goes to an LP (0 = off).
    skew_step_qty: NonNegInt = 0
    hedge_threshold: NonNegInt = 0
    price_collar_ticks: NonNegInt = 0  # reject limits this far through the market (0 = off)

    def price_grid(self) -> Grid:
        return Grid.parse(self.tick_size, self.price_decimals)

    def qty_grid(self) -> Grid:
        return Grid.parse(self.qty_step)


class LpConfig(Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    host: str = "127.0.0.1"
    port: Port = 0
    sender_comp_id: CompId = "LAGG"
    target_comp_id: CompId = "LP"
    password_env: str | None = None  # name of the environment variable holding the password
    instruments: list[str] = []
    symbol_map: dict[str, str] = {}  # our symbol -> the LP's symbol
    haircut_ticks: NonNegInt = 0  # worsen this LP's prices by N ticks before aggregation
    size_weight_pct: Annotated[int, Meta(ge=1, le=100)] = 100  # count this share of its sizes
    staleness_ms: PosInt = 1000  # no update for this long → excluded from pricing
    depth: NonNegInt = 10  # 264 MarketDepth to request (0 = full)
    incremental: bool = True  # 265=1 (W then X) or 265=0 (W snapshots only)
    book_keys: BookKeys = BookKeys.ENTRY_ID  # how the LP's X entries name their level
    orders: bool = True  # A-book routes and hedges may go to this LP (over the same FIX session)
    enabled: bool = True


class TierConfig(Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    mode: AggregationMode = AggregationMode.FULL_DEPTH
    depth: Annotated[int, Meta(ge=1, le=50)] = 5  # levels published per side
    size_bands: list[PosInt] = []  # in quantity steps; used by vwap_bands and full_amount
    markup_unit: MarkupUnit = MarkupUnit.TICKS
    bid_markup: NonNegInt = 0  # subtracted from bids (ticks or bps of the mid)
    ask_markup: NonNegInt = 0  # added to asks
    min_spread_ticks: NonNegInt = 0
    min_spread_rule: MinSpreadRule = MinSpreadRule.WIDEN
    max_spread_ticks: NonNegInt = 0  # 0 = no maximum
    max_spread_rule: MaxSpreadRule = MaxSpreadRule.NO_QUOTE
    skew_pct: Annotated[int, Meta(ge=0, le=100)] = 0  # share of the risk skew input applied
    max_skew_ticks: NonNegInt = 0
    vol_widen_pct: NonNegInt = 0  # widen each side by this % of the mid's EWMA volatility (ticks)
    max_vol_widen_ticks: NonNegInt = 0
    round_ticks: PosInt = 1  # publish on a coarser grid: bids round down, asks up, to N ticks
    quote_ttl_ms: PosInt = 1000  # how long a published quote may be hit by its QuoteID
    # How this tier's clients' orders are filled, unless a client sets its own.
    routing: Routing = Routing.INTERNALISE
    hybrid_threshold: NonNegInt = 0  # hybrid: internalise up to this many steps per order, route the rest


class ClientLimits(Struct, frozen=True, forbid_unknown_fields=True):
    max_order_qty: NonNegInt = 0  # in quantity steps; 0 = no limit
    max_position: NonNegInt = 0  # per instrument, in quantity steps; 0 = no limit
    max_orders_per_s: NonNegInt = 0  # 0 = no limit


class ClientConfig(Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    sender_comp_id: CompId  # the client's SenderCompID (our TargetCompID)
    tier: str
    password_sha256: str | None = None  # hex digest; the plain password is never stored
    password_env: str | None = None  # or: the environment variable holding it
    routing: Routing | None = None  # None: the tier's routing
    hybrid_threshold: NonNegInt | None = None  # None: the tier's
    limits: ClientLimits = ClientLimits()
    market_data: bool = True
    trading: bool = True

    # The digest is unsalted, so a weak password is one lookup away from it: a logged or printed
    # config shows only whether it is set.
    def __rich_repr__(self) -> list[tuple[str, Any]]:
        masked = {"password_sha256": "***"} if self.password_sha256 is not None else {}
        return [(name, masked.get(name, getattr(self, name))) for name in self.__struct_fields__]

    def __repr__(self) -> str:
        return f"ClientConfig({', '.join(f'{name}={value!r}' for name, value in self.__rich_repr__())})"


class ServerConfig(Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Port = 9878
    sender_comp_id: CompId = "LAGG"
    heartbeat_s: Annotated[int, Meta(ge=1, le=300)] = 30
    store_path: str = "var/fix_store.sqlite"
    journal_path: str = "var/journal.sqlite"
    # Every FIX message in and out but market data, as text (fixserver.message_log); "" = none.
    message_log: str = "var/fix_messages.log"
    max_send_buffer_bytes: PosInt = 4 * 1024 * 1024  # past this a slow client is dropped
    max_conflation_s: PosInt = 5  # a client conflated (not reading) this long is logged out
    socket_send_buffer_bytes: NonNegInt = 256 * 1024  # kernel SO_SNDBUF per client; 0 = OS default


class MetricsConfig(Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Port = 9100
    enabled: bool = True


class RoutingConfig(Struct, frozen=True, forbid_unknown_fields=True):
    # An A-book order (or hedge) tries LPs best price first until it is filled or this much time
    # has passed since the client's order arrived; what is left then is cancelled.
    budget_ms: PosInt = 250


class EngineConfig(Struct, frozen=True, forbid_unknown_fields=True):
    max_levels: Annotated[int, Meta(ge=1, le=64)] = 10  # per LP ladder side


class HaltConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Kill switches, set by operators in the file and hot-reloaded. A halt refuses new orders
    (103=2, 58 'trading halted') and holds resting orders unfilled; quotes keep streaming."""

    all: bool = False  # every client and instrument
    clients: list[str] = []  # client SenderCompIDs
    instruments: list[str] = []  # symbols
    lps: list[str] = []  # LP names: no A-book routes or hedges go to them


class Config(Struct, frozen=True, forbid_unknown_fields=True):
    instruments: list[InstrumentConfig]
    lps: list[LpConfig]
    tiers: list[TierConfig]
    clients: list[ClientConfig] = []
    server: ServerConfig = ServerConfig()
    metrics: MetricsConfig = MetricsConfig()
    routing: RoutingConfig = RoutingConfig()
    engine: EngineConfig = EngineConfig()
    halt: HaltConfig = HaltConfig()

    def instrument(self, symbol: str) -> InstrumentConfig:
        for inst in self.instruments:
            if inst.symbol == symbol:
                return inst
        raise KeyError(symbol)

    def routing_of(self, client: ClientConfig) -> tuple[Routing, int]:
        """The client's routing and hybrid threshold: its own where set, else its tier's."""
        tier = self.tier(client.tier)
        routing = client.routing if client.routing is not None else tier.routing
        threshold = client.hybrid_threshold if client.hybrid_threshold is not None else tier.hybrid_threshold
        return routing, threshold

    def tier(self, name: str) -> TierConfig:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)


class ConfigError(Exception):
    """A config could not be loaded; ``errors`` holds every problem as ``"path: reason"``."""

    def __init__(self, errors: list[str], source: str = "config") -> None:
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} error(s)\n" + "\n".join(f"  {e}" for e in errors))


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror}"], str(path)) from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; an editor saved it otherwise, or it is no config
        raise ConfigError([f"cannot read {path}: not UTF-8 text (byte {exc.start})"], str(path)) from None
    return parse_config(text, source=str(path))


def parse_config(text: str, source: str = "config") -> Config:
    """Validate TOML text into a :class:`Config`; raise :class:`ConfigError` listing every problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"TOML syntax: {exc}"], source) from None
    errors: list[str] = []
    config = _convert(raw, Config, "", errors)
    if config is not _INVALID:
        errors.extend(_semantic_errors(config, _unparsed_names(raw, config)))
    if errors:
        raise ConfigError(errors, source)
    return config


# --- structural validation that collects every error -------------------------------------------

_MSGSPEC_AT = re.compile(r" - at `\$(.*)`$")
_INVALID: Any = object()  # what _convert returns for a value it could not use at all


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _struct_type(tp: Any) -> type[Struct] | None:
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp if isinstance(tp, type) and issubclass(tp, Struct) else None


def _list_item_struct(tp: Any) -> type[Struct] | None:
    if get_origin(tp) is list:
        return _struct_type(get_args(tp)[0])
    return None


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _convert(value: Any, tp: Any, path: str, errors: list[str]) -> Any:
    """Convert ``value`` to ``tp``, appending every error found (not just the first)."""
    struct = _struct_type(tp)
    if struct is not None:
        if not isinstance(value, dict):
            errors.append(f"{path or '$'}: expected a table, got {_describe(value)}")
            return _INVALID
        fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
        kwargs: dict[str, Any] = {}
        ok = True
        for key in value:
            if key not in fields:
                errors.append(f"{_join(path, key)}: unknown key (known: {', '.join(sorted(fields))})")
                ok = False
        for key, field in fields.items():
            if key not in value:
                if field.required:
                    errors.append(f"{_join(path, key)}: required key is missing")
                    ok = False
                continue
            before = len(errors)
            converted = _convert(value[key], field.type, _join(path, key), errors)
            ok = ok and len(errors) == before
            if converted is not _INVALID:
                kwargs[field.name] = converted
        if not ok and any(f.required and f.name not in kwargs for f in fields.values()):
            return _INVALID
        # With errors, still build from the valid fields (defaults for the rest) so the
        # cross-field rules can report their findings in the same pass.
        return struct(**kwargs)
    item = _list_item_struct(tp)
    if item is not None:
        if not isinstance(value, list):
            errors.append(f"{path}: expected an array of tables, got {_describe(value)}")
            return _INVALID
        # Invalid items stay as None placeholders so later indices keep their key paths.
        items = [_convert(v, item, _join(path, i), errors) for i, v in enumerate(value)]
        return [None if x is _INVALID else x for x in items]
    try:
        return msgspec.convert(value, tp, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _MSGSPEC_AT.search(message)
        sub = ""
        if match:
            sub, message = match.group(1), message[: match.start()]
        message = message.replace("`", "")
        message = message[0].lower() + message[1:] if message else message
        got = "" if ", got " in message else f", got {_describe(value)}"
        errors.append(f"{path}{sub}: {message}{got}")
        return _INVALID


# --- cross-field rules ---------------------------------------------------------------------------

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _duplicates(names: list[str]) -> Iterator[tuple[int, str]]:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            yield i, name
        seen.add(name)


def _present(items: list[Any]) -> list[tuple[int, Any]]:
    return [(i, x) for i, x in enumerate(items) if x is not None]


def _lp_symbol_clashes(i: int, lp: LpConfig) -> Iterator[str]:
    """Two of our instruments under one LP symbol: the LP's prices for it would feed both."""
    owner: dict[str, str] = {}  # LP symbol -> our instrument
    for sym in dict.fromkeys([*lp.instruments, *lp.symbol_map]):
        theirs = lp.symbol_map.get(sym, sym)
        if theirs in owner:
            where = f"symbol_map.{sym}" if sym in lp.symbol_map else f"symbol_map.{owner[theirs]}"
            yield f"lps[{i}].{where}: LP symbol {theirs!r} is used for both {owner[theirs]!r} and {sym!r}"
        else:
            owner[theirs] = sym


def _unparsed_names(raw: dict[str, Any], cfg: Config) -> dict[str, set[str]]:
    """The names of instruments and tiers that are in the file but failed to parse (None in
    ``cfg``), by section: a reference to one of them is not "unknown", its own error says it all."""
    names: dict[str, set[str]] = {}
    for section, items, key in (("instruments", cfg.instruments, "symbol"), ("tiers", cfg.tiers, "name")):
        rows = raw.get(section)
        names[section] = {
            row[key]
            for row, item in zip(rows if isinstance(rows, list) else [], items, strict=False)
            if item is None and isinstance(row, dict) and isinstance(row.get(key), str)
        }
    return names


def _semantic_errors(cfg: Config, unparsed: dict[str, set[str]]) -> list[str]:
    """Rules across fields; items that failed structural checks (None) are skipped, and so are
    references to them (``unparsed``): one bad value gives one error, not one per reference."""
    errors: list[str] = []
    if not cfg.instruments:
        errors.append("instruments: at least one instrument is required")
    if not cfg.tiers:
        errors.append("tiers: at least one tier is required")
    for i, name in _duplicates([x.symbol for _, x in _present(cfg.instruments)]):
        errors.append(f"instruments[{i}].symbol: duplicate symbol {name!r}")
    for i, name in _duplicates([x.name for _, x in _present(cfg.lps)]):
        errors.append(f"lps[{i}].name: duplicate LP name {name!r}")
    for i, name in _duplicates([x.name for _, x in _present(cfg.tiers)]):
        errors.append(f"tiers[{i}].name: duplicate tier name {name!r}")
    for i, name in _duplicates([x.sender_comp_id for _, x in _present(cfg.clients)]):
        errors.append(f"clients[{i}].sender_comp_id: duplicate CompID {name!r}")

    symbols = {x.symbol for _, x in _present(cfg.instruments)} | unparsed["instruments"]
    for i, inst in _present(cfg.instruments):
        for key in ("tick_size", "qty_step"):
            try:
                Grid.parse(getattr(inst, key))
            except (DecimalFormatError, ValueError) as exc:
                errors.append(f"instruments[{i}].{key}: {exc}")
        if inst.price_decimals is not None:
            try:
                inst.price_grid()
            except (DecimalFormatError, ValueError) as exc:
                errors.append(f"instruments[{i}].price_decimals: {exc}")

    sessions: dict[tuple[str, int, str], int] = {}
    for i, lp in _present(cfg.lps):
        for j, sym in enumerate(lp.instruments):
            if sym not in symbols:
                errors.append(f"lps[{i}].instruments[{j}]: unknown instrument {sym!r}")
            elif sym in lp.instruments[:j]:
                errors.append(f"lps[{i}].instruments[{j}]: duplicate instrument {sym!r}")
        for sym in lp.symbol_map:
            if sym not in symbols:
                errors.append(f"lps[{i}].symbol_map.{sym}: unknown instrument {sym!r}")
        errors.extend(_lp_symbol_clashes(i, lp))
        # Port 0 is the unset default (tests and `--lp-port` fill it in), not an address.
        if lp.port:
            session = (lp.host, lp.port, lp.target_comp_id)
            if session in sessions:
                errors.append(
                    f"lps[{i}]: same host, port and target_comp_id as lps[{sessions[session]}] "
                    f"({lp.host}:{lp.port} {lp.target_comp_id})"
                )
            sessions.setdefault(session, i)

    for i, tier in _present(cfg.tiers):
        if tier.max_spread_ticks and tier.max_spread_ticks < tier.min_spread_ticks:
            errors.append(
                f"tiers[{i}].max_spread_ticks: {tier.max_spread_ticks} is below "
                f"min_spread_ticks {tier.min_spread_ticks}"
            )
        needs_bands = tier.mode in (AggregationMode.VWAP_BANDS, AggregationMode.FULL_AMOUNT)
        if needs_bands and not tier.size_bands:
            errors.append(f"tiers[{i}].size_bands: required for mode {tier.mode.value!r}")
        if tier.size_bands != sorted(set(tier.size_bands)):
            errors.append(f"tiers[{i}].size_bands: must be strictly increasing")
        if needs_bands and len(tier.size_bands) > tier.depth:
            errors.append(f"tiers[{i}].size_bands: {len(tier.size_bands)} bands exceed depth {tier.depth}")
        if tier.routing is Routing.HYBRID and tier.hybrid_threshold == 0:
            errors.append(f"tiers[{i}].hybrid_threshold: must be > 0 for hybrid routing")

    tiers = {t.name for _, t in _present(cfg.tiers)}
    unparsed_tiers = unparsed["tiers"]
    # routing_of looks tiers up by name: give it only the ones that parsed.
    parsed = msgspec.structs.replace(cfg, tiers=[t for _, t in _present(cfg.tiers)])
    for i, client in _present(cfg.clients):
        if client.sender_comp_id == cfg.server.sender_comp_id:
            errors.append(
                f"clients[{i}].sender_comp_id: {client.sender_comp_id!r} is the server's own CompID "
                "(server.sender_comp_id)"
            )
        if client.tier not in tiers and client.tier not in unparsed_tiers:
            errors.append(f"clients[{i}].tier: unknown tier {client.tier!r} (known: {', '.join(sorted(tiers))})")
        if (client.password_sha256 is None) == (client.password_env is None):
            errors.append(f"clients[{i}]: set exactly one of password_sha256 or password_env")
        if client.password_sha256 is not None and not _SHA256.match(client.password_sha256):
            errors.append(f"clients[{i}].password_sha256: must be 64 lowercase hex digits")
        own = client.routing is not None or client.hybrid_threshold is not None  # else the tier's, checked there
        if own and client.tier in tiers and parsed.routing_of(client) == (Routing.HYBRID, 0):
            errors.append(f"clients[{i}].hybrid_threshold: must be > 0 for hybrid routing")
    errors += _halt_errors(cfg, unparsed)
    return errors


def _halt_errors(cfg: Config, unparsed: dict[str, set[str]]) -> Iterator[str]:
    """Each name a kill switch holds must be one the config defines (a typo halts nothing)."""
    known = {
        ("clients", "client CompID"): {c.sender_comp_id for _, c in _present(cfg.clients)},
        ("instruments", "instrument"): {i.symbol for _, i in _present(cfg.instruments)}
        | unparsed.get("instruments", set()),
        ("lps", "LP"): {lp.name for _, lp in _present(cfg.lps)},
    }
    for (key, what), names in known.items():
        for j, name in enumerate(getattr(cfg.halt, key)):
            if name not in names:
                yield f"halt.{key}[{j}]: unknown {what} {name!r}"

