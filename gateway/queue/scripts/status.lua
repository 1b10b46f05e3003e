-- Join, status (with or without a heartbeat) of one member. The gateway answers most polls
-- from its cached snapshot (service.py); this is the authoritative read and every join.
-- A join is the hot path at opening: one HMGET of the session's meta, then the member's
-- bucket, the line counter, its heartbeat bit; it does not bump `ver` (a place at the end
-- of the line changes nobody else's status).
-- ARGV: member, bucket_ms, mode ("join" | "beat" | "peek"), opens_ms, pre_opens_ms (0: no
--       pre-queue), user_id, seed candidate (hex; kept by the first pre-queue join)
-- Returns {state, lno, rank, admitted_s, expires_s, active, alog_len, alog_oldest, now_ms,
--          ver, base, drawn} with state one of "waiting", "sold_out", "admitted", "expired",
--          "pre_queue", "early", "none".
local m, mode = ARGV[1], ARGV[3]
local opens_ms, pre_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local joining = mode == 'join'
local mv = redis.call('HMGET', KEYS[K_META], 'bms', 'hb0', 'hb1', 'hb2', 'hb3', 'hb4', 'head',
  'base', 'dabove', 'closed', 'ver', 'drawn')
local bucket_ms = tonumber(mv[1])
if not bucket_ms then
  -- The first caller's width wins (see bucket_width in common.lua).
  bucket_ms = tonumber(ARGV[2])
  if joining then redis.call('HSET', KEYS[K_META], 'bms', bucket_ms) end
end
local lv = {tonumber(mv[2]), tonumber(mv[3]), tonumber(mv[4]), tonumber(mv[5]), tonumber(mv[6])}
local head, base, dabove = tonumber(mv[7]) or 0, tonumber(mv[8]) or 0, tonumber(mv[9]) or 0
local now = now_ms()
local cur = math.floor(now / bucket_ms)

local function reply(state, lno, rank, a, e, full)
  local active, n, oldest = 0, 0, 0
  if full then
    active = redis.call('SCARD', KEYS[K_ACTIVE])
    n = redis.call('LLEN', KEYS[K_ALOG])
    if n > 0 then oldest = tonumber(redis.call('LINDEX', KEYS[K_ALOG], -1)) end
  end
  return {state, lno, rank, a, e, active, n, oldest, now, tonumber(mv[11]) or 0, base,
          tonumber(mv[12]) or 0}
end

local function waiting(lno, rank)
  if redis.call('EXISTS', KEYS[K_SOLDOUT]) == 1 then
    return reply('sold_out', lno, 0, 0, 0, false)
  end
  return reply('waiting', lno, rank, 0, 0, not joining)
end

local v = redis.call('HGET', KEYS[K_MEMBER], m)
if v then
  local lno = tonumber(v)
  if lno < 0 then
    return reply('pre_queue', 0, 0, 0, 0, false)
  end
  if dropped(lno) then
    if not joining then return reply('expired', lno, 0, 0, 0, false) end
  elseif lno > head then
    if alive(lv, cur, lno) then
      if mode ~= 'peek' then beat(lv, cur, lno, bucket_ms) end
      local rank = 0
      if lno - 1 > head then
        rank = (lno - 1 - head) - redis.call('BITCOUNT', KEYS[K_DROP], head + 1, lno - 1, 'BIT')
      end
      return waiting(lno, rank)
    end
    -- Silent past the timeout: the place is lost (a join starts over at the end).
    drop_waiter(lno)
    dabove = dabove + 1
    redis.call('HINCRBY', KEYS[K_META], 'xw', 1)
    bump()
    if not joining then return reply('expired', lno, 0, 0, 0, false) end
  else
    local a, e = batch_of(lno)
    if a and e * 1000 > now then
      return reply('admitted', lno, 0, a, e, false)
    end
    if expire_admission(lno) == 1 then redis.call('HINCRBY', KEYS[K_META], 'xa', 1) end
    if not joining then return reply('expired', lno, 0, 0, 0, false) end
  end
elseif not joining then
  return reply('none', 0, 0, 0, 0, false)
end

-- A new place.
if now < opens_ms then
  if pre_ms > 0 and now >= pre_ms then
    -- The pre-queue: no place yet, only a ticket in the draw. The seed is fixed by the
    -- first entrant at the latest (its commitment is public from then on).
    redis.call('HSETNX', KEYS[K_META], 'seed', ARGV[7])
    ensure_gen()
    local p = tonumber(redis.call('HGET', KEYS[K_PRE], ARGV[6]))
    if not p then
      p = redis.call('HINCRBY', KEYS[K_META], 'pseq', 1)
      redis.call('HSET', KEYS[K_PRE], ARGV[6], p)
    end
    redis.call('HSET', KEYS[K_MEMBER], m, -p)
    bump()
    return reply('pre_queue', 0, 0, 0, 0, false)
  end
  return reply('early', 0, 0, 0, 0, false)
end
if not mv[10] then
  close_line(now, opens_ms)
  base = meta_int('base')
end
ensure_gen()
local lno = base + redis.call('HINCRBY', KEYS[K_META], 'seq', 1)
redis.call('HSET', KEYS[K_MEMBER], m, lno)
beat(lv, cur, lno, bucket_ms)
-- At the end of the line: everyone still waiting is ahead.
return waiting(lno, lno - 1 - head - dabove)
