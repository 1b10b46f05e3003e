-- Shared prelude of every queue script (prepended by gateway/queue/scripts.py).
-- A waiter is identified by its line number (lno): 1..base are the pre-queue's entrants in
-- draw order, base+1.. those who joined after opening, in join order. Admission walks the
-- line in lno order (the cursor `head`), so every lno <= head is admitted or dropped.
-- KEYS (all under the session's hash tag {s:<id>}):
--   1 drop     BITMAP bit lno = that place is gone (left, silent, admission expired)
--   2 meta     HASH seq, pseq, base, closed, drawn, head, dabove, dver, tat, ver, so, sweep,
--                   bms, hb0..hb4, seed, adm/xw/xa/freed counters
--   3 active   SET  lnos holding a slot (admitted and unfinished)
--   4 granted  ZSET lno -> admission expiry (ms); admitted, token not yet expired
--   5 batch    ZSET last lno -> "first:last:admitted_s:expires_s", one per admitting tick
--   6 pre      HASH user id -> pre-queue join order (the draw's entrants)
--   7 soldout  STRING set by ticket_server when the last seat is sold
--   8 alog     LIST recent admission times (ms), newest first (the measured rate)
--   9..13      heartbeat bitmaps, one per time bucket (a ring of LANES lanes), bit = lno
--   14         (member scripts) the member's bucket: HASH member -> lno (-pre-queue order)
-- Members are compact digests of user ids (computed in Python); only the pre-queue keeps
-- user ids (the draw hashes them).
local K_DROP, K_META, K_ACTIVE, K_GRANTED, K_BATCH, K_PRE, K_SOLDOUT, K_ALOG = 1, 2, 3, 4, 5, 6, 7, 8
local HB0 = 9
local K_MEMBER = 14
local LANES = 5          -- the current bucket plus LANES-1 look-back buckets = the timeout

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The heartbeat bucket width of this session: the first caller's setting wins, so gateway
-- instances configured with different timeouts still agree on what a lane holds.
local function bucket_width(requested, record)
  local stored = tonumber(redis.call('HGET', KEYS[K_META], 'bms'))
  if stored then return stored end
  if record then redis.call('HSET', KEYS[K_META], 'bms', requested) end
  return requested
end

-- Which time bucket each heartbeat lane currently holds.
local function lanes()
  local v = redis.call('HMGET', KEYS[K_META], 'hb0', 'hb1', 'hb2', 'hb3', 'hb4')
  for i = 1, LANES do v[i] = tonumber(v[i]) end
  return v
end

-- Record a heartbeat of line number `lno` in bucket `cur`. A lane is reused LANES buckets
-- later: it is deleted first, so old bits never count as fresh ones.
local function beat(lv, cur, lno, bucket_ms)
  local lane = cur % LANES
  if lv[lane + 1] ~= cur then
    redis.call('DEL', KEYS[HB0 + lane])
    redis.call('HSET', KEYS[K_META], 'hb' .. lane, cur)
    lv[lane + 1] = cur
    redis.call('SETBIT', KEYS[HB0 + lane], lno, 1)
    redis.call('PEXPIRE', KEYS[HB0 + lane], bucket_ms * LANES * 2)
  else
    redis.call('SETBIT', KEYS[HB0 + lane], lno, 1)
  end
end

-- Alive = a beat in the current bucket or one of the LANES-1 before it, i.e. dropped only
-- after being silent for at least (LANES-1) buckets = the timeout. Newest bucket first.
local function alive(lv, cur, lno)
  for k = 0, LANES - 1 do
    local l = (cur - k) % LANES
    if lv[l + 1] == cur - k and redis.call('GETBIT', KEYS[HB0 + l], lno) == 1 then
      return true
    end
  end
  return false
end

local function bump()
  redis.call('HINCRBY', KEYS[K_META], 'ver', 1)
end

-- The line's generation: set when its first place is given out. Redis losing the line (a
-- flush, a restart without persistence) starts a new one, so a gateway can tell a line
-- number it remembers, or a ticket carries, from a number of the new line.
local function ensure_gen()
  if redis.call('HEXISTS', KEYS[K_META], 'gen') == 0 then
    local t = redis.call('TIME')
    redis.call('HSET', KEYS[K_META], 'gen', t[1] .. string.format('%06d', tonumber(t[2])))
  end
end

local function meta_int(field)
  return tonumber(redis.call('HGET', KEYS[K_META], field)) or 0
end

local function dropped(lno)
  return redis.call('GETBIT', KEYS[K_DROP], lno) == 1
end

-- Mark a place gone; `dver` tells the gateways' caches that the drop bitmap changed.
local function drop(lno)
  redis.call('SETBIT', KEYS[K_DROP], lno, 1)
  redis.call('HINCRBY', KEYS[K_META], 'dver', 1)
end

-- A waiter (lno > head) leaves the line. `dabove` counts the drop-outs above the cursor,
-- so those still waiting are (base + seq) - head - dabove, with nothing to count per join.
local function drop_waiter(lno)
  drop(lno)
  redis.call('HINCRBY', KEYS[K_META], 'dabove', 1)
end

-- Drop an admission whose token expired: its slot (if still held) frees.
local function expire_admission(lno)
  redis.call('ZREM', KEYS[K_GRANTED], lno)
  local freed = redis.call('SREM', KEYS[K_ACTIVE], lno)
  drop(lno)
  bump()
  return freed
end

-- The admission time and expiry (s) of an admitted lno, from its tick's batch record.
local function batch_of(lno)
  local b = redis.call('ZRANGEBYSCORE', KEYS[K_BATCH], lno, '+inf', 'LIMIT', 0, 1)
  if #b == 0 then return nil end
  local first, _, a, e = string.match(b[1], '^(%d+):(%d+):(%d+):(%d+)$')
  if tonumber(first) > lno then return nil end
  return tonumber(a), tonumber(e)
end

-- At opening the pre-queue closes: its entrants take line numbers 1..base (given by the
-- draw), everyone joining from now on comes after them. Idempotent; the first call wins.
local function close_line(now, opens_ms)
  if now < opens_ms then return end
  if redis.call('HSETNX', KEYS[K_META], 'closed', 1) == 1 then
    local p = meta_int('pseq')
    if p > 0 then
      redis.call('HSET', KEYS[K_META], 'base', p)
      bump()
    end
  end
end
