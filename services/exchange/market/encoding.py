"""The simulator's wire form: Alpaca's market-data messages as msgpack, encoded a numpy chunk at a
time (:class:`Batch`: one step's messages, each a byte range, with its kind and symbol), so the data
stream hub (services/exchange/http/datastream.py) sends frames without packing messages itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np

from services.exchange.market.history import NS

Message = dict[str, Any]

ENCODE_CHUNK = 65_536  # messages encoded per numpy pass (bounds the scratch arrays after a stall)
# Value encodings of the fixed-width fields: msgpack marker bytes, numpy dtype, value width.
FIELD_FORMATS: dict[str, tuple[bytes, str, int]] = {
    "f8": (b"\xcb", ">f8", 8),  # float 64
    "u4": (b"\xce", ">u4", 4),  # uint 32
    "u8": (b"\xcf", ">u8", 8),  # uint 64
    "ts": (b"\xd7\xff", ">u8", 8),  # Timestamp ext, 64-bit form: nanoseconds << 34 | seconds
    "c1": (b"\xa1", "u1", 1),  # a one-character string
}


def array_header(n: int) -> bytes:
    """The msgpack header of an array of ``n`` items."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def timestamp64(ns: np.ndarray) -> np.ndarray:
    """msgpack's 64-bit Timestamp payload (``nsec << 34 | sec``) for int64 nanoseconds since the epoch.

    The 64-bit form holds 0 <= seconds < 2**34 (1970 to 2514), which is every simulated time."""
    ns = np.asarray(ns, dtype=np.int64)
    sec = ns // NS
    nsec = (ns - sec * NS).astype(np.uint64)
    return (nsec << np.uint64(34)) | sec.astype(np.uint64)


class Layout:
    """The byte layout of one hot message kind: a fixed-width head, then the symbol's part.

    The head is the map header, ``T`` and the constant fields, then the numeric fields at fixed
    offsets (always the same msgpack width, e.g. float 64 for prices), so a column of values is
    written into a column of rows in one numpy assignment. The symbol's part (``S``, and ``z`` for
    stocks) comes last because it is the only variable-width piece; map key order is free in msgpack.
    """

    def __init__(
        self, kind: str, consts: Mapping[str, Any], fields: Mapping[str, str], symbol_keys: int
    ) -> None:
        keys = 1 + len(consts) + len(fields) + symbol_keys
        if keys >= 16:
            raise ValueError("a layout must be a fixmap (fewer than 16 keys)")
        head = bytearray((0x80 | keys,))
        head += msgpack.packb("T") + msgpack.packb(kind)
        for k, v in consts.items():
            head += msgpack.packb(k) + msgpack.packb(v)
        names: list[str] = []
        formats: list[str] = []
        offsets: list[int] = []
        for k, fmt in fields.items():
            marker, dtype, width = FIELD_FORMATS[fmt]
            head += msgpack.packb(k) + marker
            names.append(k)
            formats.append(dtype)
            offsets.append(len(head))
            head += bytes(width)
        self.kind = ord(kind)
        self.width = len(head)
        self.template = bytes(head)
        # The numeric fields as a packed record type over the head's bytes.
        self.record = np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": self.width}
        )

    def heads(self, count: int, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """``count`` heads as a (count, width) uint8 array; ``values[field]`` holds one value per head."""
        block = np.frombuffer(bytearray(self.template * count), dtype=self.record)
        for name in self.record.names or ():
            block[name] = values[name]
        return block.view(np.uint8).reshape(count, self.width)


STOCK_TRADE = Layout("t", {"x": "V", "c": ["@"]}, {"i": "u8", "p": "f8", "s": "u4", "t": "ts"}, 2)
STOCK_QUOTE = Layout(
    "q", {"bx": "V", "ax": "V", "c": ["R"]}, {"bp": "f8", "bs": "u4", "ap": "f8", "as": "u4", "t": "ts"}, 2
)
CRYPTO_TRADE = Layout("t", {}, {"p": "f8", "s": "f8", "t": "ts", "i": "u8", "tks": "c1"}, 1)
CRYPTO_QUOTE = Layout("q", {}, {"bp": "f8", "bs": "f8", "ap": "f8", "as": "f8", "t": "ts"}, 1)
LAYOUTS = (STOCK_TRADE, STOCK_QUOTE, CRYPTO_TRADE, CRYPTO_QUOTE)
HEAD_WIDTH = max(lay.width for lay in LAYOUTS)


class Batch:
    """One step's messages, encoded: msgpack maps end to end in ``data`` (uint8), message ``j`` being
    ``data[offsets[j]:offsets[j + 1]]``, with its kind (``T`` as an ASCII code) in ``kinds`` and its
    symbol's index in ``syms``. Immutable by convention; shared by every stream client."""

    __slots__ = ("data", "kinds", "offsets", "syms")

    def __init__(self, data: np.ndarray, offsets: np.ndarray, kinds: np.ndarray, syms: np.ndarray) -> None:
        self.data = data
        self.offsets = offsets
        self.kinds = kinds
        self.syms = syms

    @classmethod
    def empty(cls) -> Batch:
        return cls(np.zeros(0, np.uint8), np.zeros(1, np.int64), np.zeros(0, np.uint8), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.kinds)

    def count(self, kind: str) -> int:
        return int(np.count_nonzero(self.kinds == ord(kind)))

    def frames(self, select: np.ndarray | None = None, max_messages: int = 1000) -> list[tuple[bytes, int]]:
        """The selected messages (a bool mask; None = all) as msgpack array frames of at most
        ``max_messages`` each, in order: ``[(frame, messages in it), ...]``."""
        data, offsets = self.data, self.offsets
        if select is not None and not select.all():
            lengths = np.diff(offsets)
            data = data[np.repeat(select, lengths)]
            offsets = np.zeros(int(np.count_nonzero(select)) + 1, np.int64)
            np.cumsum(lengths[select], out=offsets[1:])
        n = len(offsets) - 1
        step = max(1, int(max_messages))
        out: list[tuple[bytes, int]] = []
        for a in range(0, n, step):
            b = min(n, a + step)
            out.append((array_header(b - a) + data[offsets[a] : offsets[b]].tobytes(), b - a))
        return out

    def messages(self) -> list[Message]:
        """Decode the batch into Alpaca stream dicts (``t`` as msgpack.Timestamp)."""
        if not len(self):
            return []
        decoded: list[Message] = msgpack.unpackb(array_header(len(self)) + self.data.tobytes())
        return decoded

    @staticmethod
    def concat(parts: list[Batch]) -> Batch:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Batch.empty()
        if len(parts) == 1:
            return parts[0]
        lengths = np.concatenate([np.diff(p.offsets) for p in parts])
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Batch(
            np.concatenate([p.data for p in parts]),
            offsets,
            np.concatenate([p.kinds for p in parts]),
            np.concatenate([p.syms for p in parts]),
        )


class Out:
    """Collects a step's messages in order: encoded numpy chunks and single dicts (packed here)."""

    def __init__(self) -> None:
        self.parts: list[Batch] = []
        self._single: list[bytes] = []
        self._single_kinds: list[int] = []
        self._single_syms: list[int] = []

    def add(self, msg: Message, sym: int) -> None:
        self._single.append(msgpack.packb(msg))
        self._single_kinds.append(ord(msg["T"]))
        self._single_syms.append(sym)

    def add_batch(self, batch: Batch) -> None:
        self._flush_single()
        self.parts.append(batch)

    def _flush_single(self) -> None:
        if not self._single:
            return
        lengths = np.fromiter((len(b) for b in self._single), np.int64, len(self._single))
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        kinds = np.array(self._single_kinds, np.uint8)
        syms = np.array(self._single_syms, np.int32)
        self.parts.append(Batch(np.frombuffer(b"".join(self._single), np.uint8), offsets, kinds, syms))
        self._single, self._single_kinds, self._single_syms = [], [], []

    def batch(self) -> Batch:
        self._flush_single()
        return Batch.concat(self.parts)


class MessageEncoder:
    """Encodes a step's generated trades and quotes for a fixed list of symbols: each message's
    fixed-width head from its layout, then the symbol's pre-encoded part."""

    def __init__(self, syms: list[str], crypto: list[bool], tape: list[str]) -> None:
        n = len(syms)
        # The encoded symbol part of the hot messages: "S" (and the tape "z" for stocks).
        sym_parts = [
            msgpack.packb("S")
            + msgpack.packb(s)
            + (b"" if crypto[i] else msgpack.packb("z") + msgpack.packb(tape[i]))
            for i, s in enumerate(syms)
        ]
        self._sym_len = np.array([len(b) for b in sym_parts], dtype=np.int64)
        self._sym_part = np.zeros((n, max(self._sym_len, default=1)), dtype=np.uint8)
        for i, b in enumerate(sym_parts):
            self._sym_part[i, : len(b)] = np.frombuffer(b, dtype=np.uint8)
        # Per (layout, symbol): which bytes of a scratch row [head | padding | symbol part] are the
        # message, and its length; a step's rows are then compressed with one boolean gather.
        row_w = HEAD_WIDTH + self._sym_part.shape[1]
        self._row_keep = np.zeros((len(LAYOUTS), n, row_w), dtype=bool)
        self._msg_len = np.zeros((len(LAYOUTS), n), dtype=np.int64)
        for code, lay in enumerate(LAYOUTS):
            self._row_keep[code, :, : lay.width] = True
            self._msg_len[code] = lay.width + self._sym_len
            for i, ln in enumerate(self._sym_len.tolist()):
                self._row_keep[code, i, HEAD_WIDTH : HEAD_WIDTH + ln] = True

    def encode(
        self,
        idx: np.ndarray,
        ts: np.ndarray,
        is_trade: np.ndarray,
        crypto: np.ndarray,
        price: np.ndarray,
        tsize: np.ndarray,
        bid: np.ndarray,
        bsz: np.ndarray,
        ask: np.ndarray,
        asz: np.ndarray,
        trade_ids: np.ndarray,
    ) -> Batch:
        """Encode generated trades and quotes column-wise (no per-message Python work)."""
        k = len(idx)
        kind = np.where(is_trade, 0, 1) + np.where(crypto, 2, 0)  # index into LAYOUTS
        sym_w = self._sym_part.shape[1]
        rows = np.empty((k, HEAD_WIDTH + sym_w), dtype=np.uint8)
        stamp = timestamp64(ts)
        for code, lay in enumerate(LAYOUTS):
            r = np.flatnonzero(kind == code)
            if not len(r):
                continue
            if lay is STOCK_TRADE:
                vals = {"i": trade_ids[r], "p": price[r], "s": np.clip(tsize[r], 0, 2**32 - 1), "t": stamp[r]}
            elif lay is CRYPTO_TRADE:
                vals = {
                    "p": price[r],
                    "s": tsize[r],
                    "t": stamp[r],
                    "i": trade_ids[r],
                    "tks": np.where(price[r] >= ask[r], ord("B"), ord("S")),
                }
            elif lay is STOCK_QUOTE:
                vals = {
                    "bp": bid[r],
                    "bs": np.clip(bsz[r], 0, 2**32 - 1),
                    "ap": ask[r],
                    "as": np.clip(asz[r], 0, 2**32 - 1),
                    "t": stamp[r],
                }
            else:
                vals = {"bp": bid[r], "bs": bsz[r], "ap": ask[r], "as": asz[r], "t": stamp[r]}
            rows[r, : lay.width] = lay.heads(len(r), vals)
        rows[:, HEAD_WIDTH:] = self._sym_part[idx]
        keep = self._row_keep[kind, idx]
        offsets = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(self._msg_len[kind, idx], out=offsets[1:])
        kinds = np.where(is_trade, ord("t"), ord("q")).astype(np.uint8)
        return Batch(rows[keep], offsets, kinds, idx.astype(np.int32))
