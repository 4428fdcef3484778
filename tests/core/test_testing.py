"""modelport.testing: the network guard and the fakes' own contracts."""

from __future__ import annotations

import socket
import threading

import pytest

from modelport import Message
from modelport.errors import RecordNotFoundError
from modelport.testing import MemoryStore, NetworkBlockedError, block_network


def test_guard_blocks_remote_hosts_and_dns() -> None:
    with block_network(), pytest.raises(NetworkBlockedError, match=r"example\.org"):
        socket.create_connection(("example.org", 443), timeout=1)
    with block_network(), pytest.raises(NetworkBlockedError, match=r"93\.184"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)


def test_guard_allows_loopback_servers() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    with block_network(), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    server.close()


def test_guard_restores_the_socket_module() -> None:
    before = socket.socket.connect
    with block_network():
        assert socket.socket.connect is not before
    assert socket.socket.connect is before


def test_memory_store_appends_from_many_threads_without_loss() -> None:
    store = MemoryStore()
    dialogue = store.create_dialogue().id

    def write(n: int) -> None:
        for i in range(100):
            store.append(dialogue, Message("user", f"{n}-{i}"))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    texts = [m.text for m in store.load_dialogue(dialogue).messages]
    assert len(texts) == 800
    assert len(set(texts)) == 800
    for n in range(8):  # each writer's messages stay in its order
        mine = [t for t in texts if t.startswith(f"{n}-")]
        assert mine == [f"{n}-{i}" for i in range(100)]
    with pytest.raises(RecordNotFoundError, match="modelport dialogues list"):
        store.load_dialogue("nope")
