"""Types of the native FIX encoders (fixserver/_wire.c); semantics in fixserver.codec."""

class Encoder:
    msg_type: bytes
    what: str

    def __init__(
        self,
        msg_type: bytes,
        consts: tuple[bytes, ...],
        what: str,
        error: type[Exception],
        shape: tuple[int, int, int, bool] | None = None,
    ) -> None: ...
    def __call__(self, *args: object, **kwargs: object) -> bytes: ...

def encode_prepared(header: bytes, prepared: tuple[bytes, bytes, int], begin_string: bytes = b"FIX.4.4") -> bytes: ...
