"""The auto-pipelined client: encoding, replies matched in order even when a caller gave up,
errors mapped to redis-py's exceptions, commands of one loop iteration in one write."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from svckit.redis_pipeline import PipelinedRedis, PipelinedScript, bulk, encode, supports

pytestmark = pytest.mark.integration


async def recorded_writes(client: PipelinedRedis) -> list[tuple[float, bytes]]:
    """Connect ``client`` and record each write it makes from now on: (loop time, bytes)."""
    await client.execute(encode("PING"))
    proto = client._proto
    assert proto is not None
    assert proto.transport is not None
    real = proto.transport
    loop = asyncio.get_running_loop()
    writes: list[tuple[float, bytes]] = []

    class Recording:
        def write(self, data: bytes) -> None:
            writes.append((loop.time(), data))
            real.write(data)

        def abort(self) -> None:
            real.abort()

    proto.transport = Recording()  # type: ignore[assignment]
    return writes


def test_encode_is_resp() -> None:
    assert encode("GET", b"k", 12) == b"*3\r\n$3\r\nGET\r\n$1\r\nk\r\n$2\r\n12\r\n"


def test_supports_tcp_and_tls_urls() -> None:
    assert supports("redis://127.0.0.1:6379/4")
    assert supports("rediss://example:6380/0")
    assert not supports("unix:///tmp/redis.sock")
    with pytest.raises(ValueError, match="redis://"):
        PipelinedRedis("unix:///tmp/redis.sock", timeout_s=0.1)


async def test_replies_stay_matched_when_a_caller_leaves(
    redis_url: str, redis_sync: object
) -> None:
    client = PipelinedRedis(redis_url, timeout_s=2.0)
    try:
        await client.execute(encode("SET", "a", "1"))
        # A caller cancelled while its command is in flight: its reply must be dropped, not
        # handed to the next caller.
        slow = asyncio.ensure_future(client.execute(encode("GET", "a")))
        await asyncio.sleep(0)
        slow.cancel()
        got = await asyncio.gather(*(client.execute(encode("ECHO", str(i))) for i in range(50)))
        assert got == [str(i).encode() for i in range(50)]
        with pytest.raises(ResponseError):
            await client.execute(encode("NOSUCHCOMMAND"))
        assert await client.execute(encode("GET", "a")) == b"1"
    finally:
        await client.aclose()


async def test_commands_of_one_iteration_share_a_write(redis_url: str) -> None:
    client = PipelinedRedis(redis_url, timeout_s=2.0)
    try:
        writes = await recorded_writes(client)
        await asyncio.gather(*(client.execute(encode("PING")) for _ in range(20)))
        assert [data for _, data in writes] == [encode("PING") * 20]
    finally:
        await client.aclose()


async def test_reset_fails_in_flight_and_reconnects(redis_url: str) -> None:
    client = PipelinedRedis(redis_url, timeout_s=2.0)
    try:
        await client.execute(encode("PING"))
        pending = asyncio.ensure_future(client.execute(encode("PING")))
        await asyncio.sleep(0)
        client.reset()
        with pytest.raises(RedisConnectionError):
            await pending
        assert await client.execute(encode("PING")) == b"PONG"
    finally:
        await client.aclose()


async def test_busy_connection_collects_commands_for_the_window(redis_url: str) -> None:
    window = 0.2
    client = PipelinedRedis(redis_url, timeout_s=2.0, window_s=window)
    try:
        writes = await recorded_writes(client)
        loop = asyncio.get_running_loop()
        # One command at a time (the last write carried one): sent at once, no waiting.
        t0 = loop.time()
        for _ in range(3):
            assert await client.execute(encode("PING")) == b"PONG"
        assert len(writes) == 3
        assert loop.time() - t0 < window
        # Several in one iteration: one write. That marks the connection busy, so what
        # comes next waits for the window and goes out together even though it was issued
        # in separate iterations.
        await asyncio.gather(*(client.execute(encode("PING")) for _ in range(4)))
        assert len(writes) == 4
        t1 = loop.time()

        async def later(i: int) -> bytes:
            await asyncio.sleep(0.01 * i)
            reply: bytes = await client.execute(encode("ECHO", str(i)))
            return reply

        got = await asyncio.gather(*(later(i) for i in range(5)))
        assert got == [str(i).encode() for i in range(5)]
        assert len(writes) == 5
        assert writes[4][1] == b"".join(encode("ECHO", str(i)) for i in range(5))
        assert writes[4][0] - t1 >= window * 0.9
        # Still busy: lone commands keep waiting until three one-command writes in a row
        # show the load is gone; then they go out at once again.
        took = []
        for _ in range(4):
            t = loop.time()
            await client.execute(encode("PING"))
            took.append(loop.time() - t)
        assert [x >= window * 0.9 for x in took] == [True, True, True, False]
    finally:
        await client.aclose()


async def test_script_loads_itself_after_noscript(redis_url: str) -> None:
    # A text the server has never seen (no SCRIPT FLUSH: the server may be shared).
    script = PipelinedScript(
        f"-- {uuid.uuid4().hex}\nreturn {{KEYS[1], ARGV[1], tonumber(ARGV[2]) * 2}}", 1
    )
    client = PipelinedRedis(redis_url, timeout_s=2.0)
    try:
        writes = await recorded_writes(client)
        assert await script(client, ["k"], ["v", 21]) == [b"k", b"v", 42]
        assert [data.split(b"\r\n")[2] for _, data in writes] == [b"EVALSHA", b"EVAL"]
        assert await script(client, ["k"], [b"w", 1.5]) == [b"k", b"w", 3]
        assert writes[2][1].split(b"\r\n")[2] == b"EVALSHA"  # cached on the server now
        assert len(writes) == 3
        with pytest.raises(ValueError, match="1 keys"):
            await script(client, ["a", "b"], [])
    finally:
        await client.aclose()


async def test_eval_form_of_a_prepared_evalsha(redis_url: str) -> None:
    # A caller that keeps its EVALSHA commands encoded (the rate limiter) turns one into
    # EVAL after NOSCRIPT: the same script and arguments, and the server caches the text.
    script = PipelinedScript(f"-- {uuid.uuid4().hex}\nreturn {{KEYS[1], ARGV[1]}}", 1)
    command = script.command(bulk("k", "v"), 2)
    client = PipelinedRedis(redis_url, timeout_s=2.0)
    try:
        with pytest.raises(NoScriptError):
            await client.execute(command)
        assert await client.execute(script.as_eval(command)) == [b"k", b"v"]
        assert await client.execute(command) == [b"k", b"v"]
        with pytest.raises(ValueError, match="EVALSHA"):
            script.as_eval(encode("GET", "k"))
    finally:
        await client.aclose()


async def test_a_reply_nobody_asked_for_drops_the_connection() -> None:
    # A server that answers one command twice: the stream can no longer be trusted.
    writers: list[asyncio.StreamWriter] = []

    async def twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while await reader.readuntil(b"PING\r\n"):
                writer.write(b"+PONG\r\n+PONG\r\n")

    server = await asyncio.start_server(twice, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout_s=2.0)
    try:
        assert await client.execute(encode("PING")) == b"PONG"
        await asyncio.sleep(0.05)  # the second reply arrives: the client hangs up
        proto = client._proto
        assert proto is not None
        assert proto.closed
        assert await client.execute(encode("PING")) == b"PONG"  # on a new connection
        assert client._proto is not proto
    finally:
        await client.aclose()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
