"""FIX 4.4: codec, sans-I/O session layer, message store, transport, acceptor application."""
