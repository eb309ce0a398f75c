"""FIX 4.4 data dictionary: the subset of messages lagg speaks, and session-level validation.

The dictionary is data (tables of fields, types, enumerations, groups and messages), and
:func:`validate` is the one walk over a decoded message that turns the first problem it finds into
a :class:`Reject` carrying what a Reject (35=3) needs: RefSeqNum (45), RefTagID (371), RefMsgType
(372), SessionRejectReason (373) and a Text (58) a client's developer can act on.

Checks, in the order a message is walked (the first failure wins):

* MsgType (35): not a FIX 4.4 message type → 373=11. A real FIX 4.4 type we do not support is
  an application matter: the Reject has ``business=True`` and the session sends a
  BusinessMessageReject (35=j, 380=3 unsupported message type) instead.
* Each field in wire order: tag 0 / outside every FIX range → 0; empty value → 4; not defined
  for this message → 2; a second occurrence outside a repeating group → 13; wrong data format for
  its type → 6; value outside the tag's enumeration → 5; a header field after a body field → 14
  (FIX session test case 14g; 8, 9, 35 first and 10 last are the decoder's framing rules).
* Repeating groups: each instance must start with the group's first (delimiter) field and a
  member may not repeat inside one instance → 15; the number of instances must equal the
  NumInGroup value → 16; members required in every instance → 1.
* Required fields of the header and the message → 1.

Group members after the delimiter may come in any order, as QuickFIX accepts by default: LPs do
not agree on an order and rejecting their quotes for it would help nobody.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from fixserver.message import SECRET_TAGS, FixMessage

__all__ = [
    "FieldType",
    "FieldDef",
    "GroupDef",
    "MessageDef",
    "Reject",
    "SessionRejectReason",
    "FIELDS",
    "MESSAGES",
    "validate",
    "validate_session_level",
]


class SessionRejectReason(enum.IntEnum):
    """SessionRejectReason (373) values this validator produces."""

    INVALID_TAG_NUMBER = 0
    REQUIRED_TAG_MISSING = 1
    TAG_NOT_DEFINED_FOR_MESSAGE_TYPE = 2
    TAG_SPECIFIED_WITHOUT_A_VALUE = 4
    VALUE_INCORRECT = 5
    INCORRECT_DATA_FORMAT = 6
    INVALID_MSG_TYPE = 11
    TAG_APPEARS_MORE_THAN_ONCE = 13
    TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER = 14
    REPEATING_GROUP_FIELDS_OUT_OF_ORDER = 15
    INCORRECT_NUM_IN_GROUP_COUNT = 16


UNSUPPORTED_MESSAGE_TYPE = 3  # BusinessRejectReason (380) for a valid FIX type we do not serve


class FieldType(enum.Enum):
    INT = "int"
    NUM_IN_GROUP = "NumInGroup"  # int >= 0
    SEQ_NUM = "SeqNum"  # int >= 1
    DECIMAL = "float"  # Price, Qty, Amt, ...: plain decimal, never an exponent
    CHAR = "char"
    BOOLEAN = "Boolean"  # Y / N
    STRING = "String"
    UTC_TIMESTAMP = "UTCTimestamp"  # YYYYMMDD-HH:MM:SS[.sss[sss[sss]]]
    UTC_TIME_ONLY = "UTCTimeOnly"  # HH:MM:SS[.sss]
    DATE = "LocalMktDate"  # YYYYMMDD (also UTCDateOnly)


@dataclass(frozen=True, slots=True)
class FieldDef:
    tag: int
    name: str
    type: FieldType
    values: frozenset[bytes] | None = None  # the enumeration, when we check one


@dataclass(frozen=True, slots=True)
class GroupDef:
    """A repeating group: NumInGroup tag, then instances each starting with ``members[0]``."""

    count_tag: int
    members: tuple[int, ...]
    required: frozenset[int] = frozenset()

    @property
    def delimiter(self) -> int:
        return self.members[0]


@dataclass(frozen=True, slots=True)
class MessageDef:
    msg_type: bytes
    name: str
    required: frozenset[int]
    optional: frozenset[int]
    groups: tuple[GroupDef, ...] = ()
    allowed: frozenset[int] = field(init=False)  # body tags outside groups, incl. count tags

    def __post_init__(self) -> None:
        counts = {g.count_tag for g in self.groups}
        object.__setattr__(self, "allowed", self.required | self.optional | counts)


@dataclass(frozen=True, slots=True)
class Reject:
    """Why a message is refused at session level; ``body_fields()`` is the 35=3 body.

    ``business`` marks a valid FIX 4.4 MsgType that lagg does not serve: the session answers
    with BusinessMessageReject (35=j, 380=``reason``) rather than a session Reject.
    """

    reason: int
    ref_tag_id: int | None
    ref_msg_type: bytes
    text: str
    ref_seq_num: int | None = None
    business: bool = False

    def body_fields(self) -> list[tuple[int, bytes]]:
        """Fields for the reply, in FIX order: 35=3 (45, 371, 372, 373, 58) or 35=j (45, 372, 380, 58)."""
        out: list[tuple[int, bytes]] = []
        if self.ref_seq_num is not None:
            out.append((45, b"%d" % self.ref_seq_num))
        if self.business:
            out += [(372, self.ref_msg_type or b"?"), (380, b"%d" % self.reason)]
        else:
            if self.ref_tag_id is not None:
                out.append((371, b"%d" % self.ref_tag_id))
            if self.ref_msg_type:
                out.append((372, self.ref_msg_type))
            out.append((373, b"%d" % self.reason))
        out.append((58, self.text.encode("ascii", "replace")))
        return out


# --------------------------------------------------------------------------------------------
# Fields

T = FieldType


def _enum(*values: str) -> frozenset[bytes]:
    return frozenset(v.encode() for v in values)


_CHARS_0_9 = [str(i) for i in range(10)]

_FIELD_LIST: list[FieldDef] = [
    # Header and trailer
    FieldDef(8, "BeginString", T.STRING),
    FieldDef(9, "BodyLength", T.INT),
    FieldDef(35, "MsgType", T.STRING),
    FieldDef(49, "SenderCompID", T.STRING),
    FieldDef(56, "TargetCompID", T.STRING),
    FieldDef(115, "OnBehalfOfCompID", T.STRING),
    FieldDef(128, "DeliverToCompID", T.STRING),
    FieldDef(50, "SenderSubID", T.STRING),
    FieldDef(57, "TargetSubID", T.STRING),
    FieldDef(142, "SenderLocationID", T.STRING),
    FieldDef(143, "TargetLocationID", T.STRING),
    FieldDef(34, "MsgSeqNum", T.SEQ_NUM),
    FieldDef(43, "PossDupFlag", T.BOOLEAN, _enum("Y", "N")),
    FieldDef(97, "PossResend", T.BOOLEAN, _enum("Y", "N")),
    FieldDef(52, "SendingTime", T.UTC_TIMESTAMP),
    FieldDef(122, "OrigSendingTime", T.UTC_TIMESTAMP),
    FieldDef(369, "LastMsgSeqNumProcessed", T.SEQ_NUM),
    FieldDef(10, "CheckSum", T.STRING),
    # Session messages
    FieldDef(7, "BeginSeqNo", T.SEQ_NUM),
    FieldDef(16, "EndSeqNo", T.INT),  # 0 means "infinity"
    FieldDef(36, "NewSeqNo", T.SEQ_NUM),
    FieldDef(45, "RefSeqNum", T.SEQ_NUM),
    FieldDef(58, "Text", T.STRING),
    FieldDef(98, "EncryptMethod", T.INT, _enum("0", "1", "2", "3", "4", "5", "6")),
    FieldDef(108, "HeartBtInt", T.INT),
    FieldDef(112, "TestReqID", T.STRING),
    FieldDef(123, "GapFillFlag", T.BOOLEAN, _enum("Y", "N")),
    FieldDef(141, "ResetSeqNumFlag", T.BOOLEAN, _enum("Y", "N")),
    FieldDef(371, "RefTagID", T.INT),
    FieldDef(372, "RefMsgType", T.STRING),
    FieldDef(373, "SessionRejectReason", T.INT, _enum(*[str(i) for i in range(18)], "99")),
    FieldDef(380, "BusinessRejectReason", T.INT, _enum(*[str(i) for i in range(9)])),
    FieldDef(379, "BusinessRejectRefID", T.STRING),
    FieldDef(383, "MaxMessageSize", T.INT),
    FieldDef(464, "TestMessageIndicator", T.BOOLEAN, _enum("Y", "N")),
    FieldDef(553, "Username", T.STRING),
    FieldDef(554, "Password", T.STRING),
    FieldDef(789, "NextExpectedMsgSeqNum", T.SEQ_NUM),
    FieldDef(925, "NewPassword", T.STRING),
    # Instrument
    FieldDef(55, "Symbol", T.STRING),
    FieldDef(65, "SymbolSfx", T.STRING),
    FieldDef(48, "SecurityID", T.STRING),
    FieldDef(22, "SecurityIDSource", T.STRING),
    FieldDef(167, "SecurityType", T.STRING),
    FieldDef(460, "Product", T.INT),
    FieldDef(107, "SecurityDesc", T.STRING),
    FieldDef(15, "Currency", T.STRING),
    FieldDef(561, "RoundLot", T.DECIMAL),
    FieldDef(562, "MinTradeVol", T.DECIMAL),
    # Market data
    FieldDef(262, "MDReqID", T.STRING),
    FieldDef(263, "SubscriptionRequestType", T.CHAR, _enum("0", "1", "2")),
    FieldDef(264, "MarketDepth", T.INT),
    FieldDef(265, "MDUpdateType", T.INT, _enum("0", "1")),
    FieldDef(266, "AggregatedBook", T.BOOLEAN, _enum("Y", "N")),
    FieldDef(267, "NoMDEntryTypes", T.NUM_IN_GROUP),
    FieldDef(268, "NoMDEntries", T.NUM_IN_GROUP),
    FieldDef(269, "MDEntryType", T.CHAR, _enum(*_CHARS_0_9, "A", "B", "C")),
    FieldDef(270, "MDEntryPx", T.DECIMAL),
    FieldDef(271, "MDEntrySize", T.DECIMAL),
    FieldDef(272, "MDEntryDate", T.DATE),
    FieldDef(273, "MDEntryTime", T.UTC_TIME_ONLY),
    FieldDef(276, "QuoteCondition", T.STRING),
    FieldDef(278, "MDEntryID", T.STRING),
    FieldDef(279, "MDUpdateAction", T.CHAR, _enum("0", "1", "2", "3", "4", "5")),
    FieldDef(280, "MDEntryRefID", T.STRING),
    FieldDef(281, "MDReqRejReason", T.CHAR, _enum(*_CHARS_0_9, "A", "B", "C")),
    FieldDef(282, "MDEntryOriginator", T.STRING),
    FieldDef(285, "DeleteReason", T.CHAR, _enum("0", "1")),
    FieldDef(286, "OpenCloseSettlFlag", T.STRING),
    FieldDef(290, "MDEntryPositionNo", T.INT),
    FieldDef(299, "QuoteEntryID", T.STRING),
    FieldDef(346, "NumberOfOrders", T.INT),
    FieldDef(146, "NoRelatedSym", T.NUM_IN_GROUP),
    FieldDef(320, "SecurityReqID", T.STRING),
    FieldDef(322, "SecurityResponseID", T.STRING),
    FieldDef(393, "TotNoRelatedSym", T.INT),
    FieldDef(893, "LastFragment", T.BOOLEAN, _enum("Y", "N")),
    FieldDef(559, "SecurityListRequestType", T.INT, _enum("0", "1", "2", "3", "4")),
    FieldDef(560, "SecurityRequestResult", T.INT, _enum("0", "1", "2", "3", "4", "5")),
    # Orders and executions
    FieldDef(1, "Account", T.STRING),
    FieldDef(6, "AvgPx", T.DECIMAL),
    FieldDef(11, "ClOrdID", T.STRING),
    FieldDef(14, "CumQty", T.DECIMAL),
    FieldDef(17, "ExecID", T.STRING),
    FieldDef(18, "ExecInst", T.STRING),
    FieldDef(21, "HandlInst", T.CHAR, _enum("1", "2", "3")),
    FieldDef(31, "LastPx", T.DECIMAL),
    FieldDef(32, "LastQty", T.DECIMAL),
    FieldDef(37, "OrderID", T.STRING),
    FieldDef(38, "OrderQty", T.DECIMAL),
    FieldDef(39, "OrdStatus", T.CHAR, _enum(*_CHARS_0_9, "A", "B", "C", "D", "E")),
    FieldDef(40, "OrdType", T.CHAR, _enum(*"123456789DEGHIJKLMP")),
    FieldDef(41, "OrigClOrdID", T.STRING),
    FieldDef(44, "Price", T.DECIMAL),
    FieldDef(54, "Side", T.CHAR, _enum(*"123456789ABCDEFG")),
    FieldDef(59, "TimeInForce", T.CHAR, _enum("0", "1", "2", "3", "4", "5", "6", "7")),
    FieldDef(60, "TransactTime", T.UTC_TIMESTAMP),
    FieldDef(64, "SettlDate", T.DATE),
    FieldDef(75, "TradeDate", T.DATE),
    FieldDef(99, "StopPx", T.DECIMAL),
    FieldDef(102, "CxlRejReason", T.INT, _enum("0", "1", "2", "3", "4", "5", "6", "99")),
    FieldDef(103, "OrdRejReason", T.INT, _enum(*[str(i) for i in range(17)], "99")),
    FieldDef(110, "MinQty", T.DECIMAL),
    FieldDef(117, "QuoteID", T.STRING),
    FieldDef(126, "ExpireTime", T.UTC_TIMESTAMP),
    FieldDef(150, "ExecType", T.CHAR, _enum("0", "3", "4", "5", "6", "7", "8", "9", *"ABCDEFGHI")),
    FieldDef(151, "LeavesQty", T.DECIMAL),
    FieldDef(432, "ExpireDate", T.DATE),
    FieldDef(434, "CxlRejResponseTo", T.CHAR, _enum("1", "2")),
    FieldDef(453, "NoPartyIDs", T.NUM_IN_GROUP),
    FieldDef(448, "PartyID", T.STRING),
    FieldDef(447, "PartyIDSource", T.CHAR),
    FieldDef(452, "PartyRole", T.INT),
    FieldDef(526, "SecondaryClOrdID", T.STRING),
    FieldDef(527, "SecondaryExecID", T.STRING),
    FieldDef(528, "OrderCapacity", T.CHAR),
    FieldDef(790, "OrdStatusReqID", T.STRING),
]

FIELDS: dict[int, FieldDef] = {f.tag: f for f in _FIELD_LIST}
"""Every field the dictionary knows, by tag."""

_HEADER_REQUIRED = frozenset({8, 9, 35, 49, 56, 34, 52})
_HEADER_OPTIONAL = frozenset({115, 128, 50, 57, 142, 143, 43, 97, 122, 369})
_HEADER = _HEADER_REQUIRED | _HEADER_OPTIONAL
_TRAILER = frozenset({10})

_FIX44_MAX_TAG = 956  # highest tag FIX 4.4 defines; 5000-39999 are user-defined
_USER_DEFINED = range(5000, 40000)

_INSTRUMENT = frozenset({55, 65, 48, 22, 167, 460, 107})
_PARTIES = GroupDef(453, (448, 447, 452))

_MD_ENTRY_COMMON = (270, 15, 271, 272, 273, 276, 282, 286, 59, 432, 126, 110, 18, 37, 299, 346, 290, 58)
_W_ENTRIES = GroupDef(268, (269, 278, *_MD_ENTRY_COMMON), frozenset({269}))
_X_ENTRIES = GroupDef(268, (279, 285, 269, 278, 280, *sorted(_INSTRUMENT), *_MD_ENTRY_COMMON), frozenset({279}))


def _msg(
    msg_type: str,
    name: str,
    required: Iterable[int],
    optional: Iterable[int] = (),
    groups: tuple[GroupDef, ...] = (),
) -> MessageDef:
    return MessageDef(msg_type.encode(), name, frozenset(required), frozenset(optional), groups)


_MESSAGE_LIST = [
    _msg("0", "Heartbeat", (), (112,)),
    _msg("1", "TestRequest", (112,)),
    _msg("2", "ResendRequest", (7, 16)),
    _msg("3", "Reject", (45,), (371, 372, 373, 58)),
    _msg("4", "SequenceReset", (36,), (123,)),
    _msg("5", "Logout", (), (58,)),
    _msg("A", "Logon", (98, 108), (141, 383, 464, 553, 554, 789, 925)),
    _msg(
        "V",
        "MarketDataRequest",
        (262, 263, 264),
        (265, 266, 286),
        (
            GroupDef(267, (269,), frozenset({269})),
            GroupDef(146, (55, 65, 48, 22, 167, 460, 107, 15), frozenset({55})),
        ),
    ),
    _msg("W", "MarketDataSnapshotFullRefresh", (55,), (262, 65, 48, 22, 167, 460, 107), (_W_ENTRIES,)),
    _msg("X", "MarketDataIncrementalRefresh", (), (262,), (_X_ENTRIES,)),
    _msg("Y", "MarketDataRequestReject", (262,), (281, 58)),
    _msg("x", "SecurityListRequest", (320, 559), (*_INSTRUMENT, 15, 263, 58)),
    _msg(
        "y",
        "SecurityList",
        (320, 322, 560),
        (393, 893, 58),
        (GroupDef(146, (55, 65, 48, 22, 167, 460, 107, 15, 561, 562, 58), frozenset({55})),),
    ),
    _msg(
        "D",
        "NewOrderSingle",
        (11, 55, 54, 60, 38, 40),
        (1, 21, 44, 99, 59, 117, 126, 432, 18, 110, 15, 58, 526, 528, *_INSTRUMENT),
        (_PARTIES,),
    ),
    _msg("F", "OrderCancelRequest", (41, 11, 55, 54, 60), (37, 38, 1, 58, 526, *_INSTRUMENT), (_PARTIES,)),
    _msg("H", "OrderStatusRequest", (11, 55, 54), (37, 790, 1, 526, *_INSTRUMENT), (_PARTIES,)),
    _msg(
        "8",
        "ExecutionReport",
        (37, 17, 150, 39, 55, 54, 151, 14, 6),
        (
            11,
            41,
            1,
            38,
            40,
            44,
            59,
            31,
            32,
            60,
            58,
            103,
            117,
            15,
            126,
            432,
            99,
            18,
            110,
            526,
            527,
            790,
            64,
            75,
            *_INSTRUMENT,
        ),
        (_PARTIES,),
    ),
    _msg("9", "OrderCancelReject", (37, 11, 41, 39, 434), (102, 58, 1, 60, 526)),
    _msg("j", "BusinessMessageReject", (372, 380), (45, 379, 58)),
]

MESSAGES: dict[bytes, MessageDef] = {m.msg_type: m for m in _MESSAGE_LIST}
"""The messages lagg speaks, by MsgType."""

# Every MsgType FIX 4.4 defines: one of these that is not in MESSAGES is "unsupported"
# (BusinessMessageReject), anything else is "invalid" (Reject 373=11).
_FIX44_MSG_TYPES = frozenset(
    t.encode()
    for t in "0 1 2 3 4 5 6 7 8 9 A B C D E F G H J K L M N P Q R S T U V W X Y Z "
    "a b c d e f g h i j k l m n o p q r s t u v w x y z "
    "AA AB AC AD AE AF AG AH AI AJ AK AL AM AN AO AP AQ AR AS AT AU AV AW AX AY AZ "
    "BA BB BC BD BE BF BG BH".split()
)

# --------------------------------------------------------------------------------------------
# Value formats

_INT = re.compile(rb"-?[0-9]+\Z")
_UINT = re.compile(rb"[0-9]+\Z")
_DECIMAL = re.compile(rb"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
_TIME = rb"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{3}|\.[0-9]{6}|\.[0-9]{9})?"
_DATE = rb"[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])"
_UTC_TIMESTAMP = re.compile(_DATE + rb"-" + _TIME + rb"\Z")
_UTC_TIME_ONLY = re.compile(_TIME + rb"\Z")
_DATE_ONLY = re.compile(_DATE + rb"\Z")


def _format_ok(ftype: FieldType, value: bytes) -> bool:
    if ftype is T.STRING:
        return True
    if ftype is T.CHAR:
        return len(value) == 1 and value != b" "
    if ftype is T.INT:
        return _INT.match(value) is not None
    if ftype is T.NUM_IN_GROUP:
        return _UINT.match(value) is not None
    if ftype is T.SEQ_NUM:
        return _UINT.match(value) is not None
    if ftype is T.DECIMAL:
        return _DECIMAL.match(value) is not None
    if ftype is T.BOOLEAN:
        return value in (b"Y", b"N")
    if ftype is T.UTC_TIMESTAMP:
        return _UTC_TIMESTAMP.match(value) is not None
    if ftype is T.UTC_TIME_ONLY:
        return _UTC_TIME_ONLY.match(value) is not None
    if ftype is T.DATE:
        return _DATE_ONLY.match(value) is not None
    raise AssertionError(ftype)  # pragma: no cover - every FieldType is handled above


# --------------------------------------------------------------------------------------------
# Validation


def _name(tag: int) -> str:
    fdef = FIELDS.get(tag)
    return f"{tag} ({fdef.name})" if fdef else str(tag)


def _check_value(tag: int, value: bytes, reject: _RejectFactory) -> Reject | None:
    """Format and enumeration of one (non-empty) value of a known tag."""
    fdef = FIELDS[tag]
    if not _format_ok(fdef.type, value):
        return reject(
            SessionRejectReason.INCORRECT_DATA_FORMAT,
            tag,
            f"Incorrect data format for value: {_name(tag)} must be {fdef.type.value}, got {_show(tag, value)}",
        )
    if fdef.values is not None and value not in fdef.values:
        allowed = ", ".join(sorted(v.decode() for v in fdef.values))
        return reject(
            SessionRejectReason.VALUE_INCORRECT,
            tag,
            f"Value is incorrect (out of range) for this tag: {_name(tag)}={_show(tag, value)}; allowed: {allowed}",
        )
    if tag in _NON_NEGATIVE and value.startswith(b"-"):
        return reject(
            SessionRejectReason.VALUE_INCORRECT,
            tag,
            f"Value is incorrect (out of range) for this tag: {_name(tag)} must be >= 0",
        )
    return None


_NON_NEGATIVE = frozenset({16, 108, 264, 290, 346, 383})  # ints where a negative means nothing


def _show(tag: int, value: bytes) -> str:
    """A value quoted for a Text (58); never a password."""
    if tag in SECRET_TAGS:
        return "'***'"
    return repr(value.decode("ascii", "replace")[:40])


class _RejectFactory:
    __slots__ = ("msg_type", "seq")

    def __init__(self, msg_type: bytes, seq: int | None) -> None:
        self.msg_type = msg_type
        self.seq = seq

    def __call__(self, reason: int, tag: int | None, text: str) -> Reject:
        return Reject(int(reason), tag, self.msg_type, text, self.seq)


def validate(msg: FixMessage) -> Reject | None:
    """Check a decoded message against the FIX 4.4 dictionary; ``None`` if it is acceptable.

    Framing (8, 9, 10) has been checked by the decoder. The first problem found in wire order is
    reported; see the module docstring for the order and the 373 reason of each check.
    """
    fields = msg.fields
    msg_type = msg.msg_type
    reject = _RejectFactory(msg_type, msg.seq_num)
    mdef = MESSAGES.get(msg_type)
    if mdef is None:
        if msg_type in _FIX44_MSG_TYPES:
            return Reject(
                UNSUPPORTED_MESSAGE_TYPE,
                35,
                msg_type,
                f"Unsupported Message Type: {msg_type.decode('ascii', 'replace')}",
                msg.seq_num,
                business=True,
            )
        return reject(
            SessionRejectReason.INVALID_MSG_TYPE,
            35,
            f"Invalid MsgType: {_show(35, msg_type)} is not a FIX 4.4 message type",
        )
    groups = {g.count_tag: g for g in mdef.groups}
    seen: set[int] = set()
    in_body = False
    i = 0
    n = len(fields)
    while i < n:
        tag, value = fields[i]
        i += 1
        problem = _form_problem(tag, value, reject)
        if problem is not None:
            return problem
        if tag not in mdef.allowed and tag not in _HEADER and tag not in _TRAILER:
            return reject(
                SessionRejectReason.TAG_NOT_DEFINED_FOR_MESSAGE_TYPE,
                tag,
                f"Tag not defined for this message type: {_name(tag)} in {msg_type.decode()} ({mdef.name})",
            )
        if tag in seen:
            return _repeated(tag, reject)
        seen.add(tag)
        if tag in _HEADER:
            if in_body:
                return _out_of_order(tag, reject)
        elif tag not in _TRAILER:
            in_body = True
        problem = _check_value(tag, value, reject)
        if problem is not None:
            return problem
        group = groups.get(tag)
        if group is not None:
            i, problem = _walk_group(group, int(value), fields, i, reject)
            if problem is not None:
                return problem
    for tag in sorted(_HEADER_REQUIRED) + sorted(mdef.required):
        if tag not in seen:
            return reject(
                SessionRejectReason.REQUIRED_TAG_MISSING,
                tag,
                f"Required tag missing: {_name(tag)} in {msg_type.decode()} ({mdef.name})",
            )
    return None


_ADMIN_MSG_TYPES = frozenset({b"0", b"1", b"2", b"3", b"4", b"5", b"A"})


def validate_session_level(msg: FixMessage) -> Reject | None:
    """:func:`validate` for what the session layer owns, for an acceptor whose application checks
    its own messages (the gateway: an order's problems get an ExecutionReport or a
    BusinessMessageReject that a client's desk can act on, and a client may send FIX 4.4 fields
    this subset does not list). Admin messages (0-5) are validated in full and a MsgType that is
    not FIX 4.4 at all gets 373=11. An application message of a real FIX 4.4 type is checked for
    its form only -- every field ``tag=value`` (0) with a value (4), the header once (13) and
    before the body (14) -- and its content is left to the application (which refuses a type it
    does not serve with 35=j, 380=3). Tag numbers past FIX 4.4's are let through there: FIX 4.4
    dialects carry later versions' fields (1028 ManualOrderIndicator, say), and refusing a
    client's orders for a field we would not read anyway helps nobody."""
    msg_type = msg.msg_type
    if msg_type in _ADMIN_MSG_TYPES or msg_type not in _FIX44_MSG_TYPES:
        return validate(msg)
    reject = _RejectFactory(msg_type, msg.seq_num)
    header: set[int] = set()
    in_body = False
    for tag, value in msg.fields:
        if tag <= 0 or not value:
            return _form_problem(tag, value, reject)
        if tag in _HEADER:
            if tag in header:
                return _repeated(tag, reject)
            if in_body:
                return _out_of_order(tag, reject)
            header.add(tag)
        elif tag not in _TRAILER:
            in_body = True
    return None


def _form_problem(tag: int, value: bytes, reject: _RejectFactory) -> Reject | None:
    """A field that is not a FIX 4.4 (or user-defined) ``tag=value`` with a value."""
    if tag <= 0 or (_FIX44_MAX_TAG < tag and tag not in _USER_DEFINED):
        text = f"Invalid tag number: {tag}" if tag else f"Invalid tag number: field {_show(0, value)}"
        return reject(SessionRejectReason.INVALID_TAG_NUMBER, tag or None, text)
    if not value:
        return reject(
            SessionRejectReason.TAG_SPECIFIED_WITHOUT_A_VALUE,
            tag,
            f"Tag specified without a value: {_name(tag)}",
        )
    return None


def _repeated(tag: int, reject: _RejectFactory) -> Reject:
    return reject(SessionRejectReason.TAG_APPEARS_MORE_THAN_ONCE, tag, f"Tag appears more than once: {_name(tag)}")


def _out_of_order(tag: int, reject: _RejectFactory) -> Reject:
    return reject(
        SessionRejectReason.TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER,
        tag,
        f"Tag specified out of required order: header field {_name(tag)} after the body",
    )


def _walk_group(
    group: GroupDef, count: int, fields: list[tuple[int, bytes]], i: int, reject: _RejectFactory
) -> tuple[int, Reject | None]:
    """Walk the instances of a group starting at ``fields[i]``; return where the group ends."""
    members = frozenset(group.members)
    count_name = _name(group.count_tag)
    instances = 0
    in_instance: set[int] = set()
    n = len(fields)
    while i < n:
        tag, value = fields[i]
        if tag not in members:
            break
        if tag == group.delimiter:
            if instances and (missing := group.required - in_instance):
                return i, _missing_in_group(reject, group, min(missing), instances)
            instances += 1
            in_instance = set()
        elif instances == 0 or tag in in_instance:
            what = "does not start with" if instances == 0 else "repeats a member before"
            return i, reject(
                SessionRejectReason.REPEATING_GROUP_FIELDS_OUT_OF_ORDER,
                tag,
                f"Repeating group fields out of order: {count_name} instance {instances + (instances == 0)} "
                f"{what} its first field {_name(group.delimiter)} (found {_name(tag)})",
            )
        in_instance.add(tag)
        if not value:
            return i, reject(
                SessionRejectReason.TAG_SPECIFIED_WITHOUT_A_VALUE,
                tag,
                f"Tag specified without a value: {_name(tag)}",
            )
        problem = _check_value(tag, value, reject)
        if problem is not None:
            return i, problem
        i += 1
    if instances and (missing := group.required - in_instance):
        return i, _missing_in_group(reject, group, min(missing), instances)
    if instances != count:
        return i, reject(
            SessionRejectReason.INCORRECT_NUM_IN_GROUP_COUNT,
            group.count_tag,
            f"Incorrect NumInGroup count for repeating group: {count_name}={count} but {instances} instance(s) follow",
        )
    return i, None


def _missing_in_group(reject: _RejectFactory, group: GroupDef, tag: int, instance: int) -> Reject:
    return reject(
        SessionRejectReason.REQUIRED_TAG_MISSING,
        tag,
        f"Required tag missing: {_name(tag)} in instance {instance} of group {_name(group.count_tag)}",
    )
