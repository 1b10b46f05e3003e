-- Shared prelude of every queue script (prepended by gateway/queue/scripts.py).
-- KEYS (all under the session's hash tag {s:<id>}):
--   1 wait     ZSET member -> join seq (those still waiting, in join order)
--   2 meta     HASH seq, tat, ver, so, sweep, hb0..hb4, adm/xw/xa counters
--   3 active   SET  members holding a slot (admitted and unfinished)
--   4 granted  ZSET member -> admission expiry (ms); admitted, token not yet expired
--   5 gpos     HASH member -> "seq:admitted_s:expires_s"
--   6 expired  SET  members who lost their place (silent) or whose admission expired
--   7 soldout  STRING set by ticket_server when the last seat is sold
--   8 alog     LIST recent admission times (ms), newest first (the measured rate)
--   9..13      heartbeat bitmaps, one per time bucket (a ring of LANES lanes), bit = join seq
-- Members are compact digests of user ids (computed in Python); scripts never see user ids.
local K_WAIT, K_META, K_ACTIVE, K_GRANTED, K_GPOS, K_EXPIRED, K_SOLDOUT, K_ALOG = 1, 2, 3, 4, 5, 6, 7, 8
local HB0 = 9
local LANES = 5          -- the current bucket plus LANES-1 look-back buckets = the timeout
local EXPIRED_TTL_S = 86400

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The heartbeat bucket width of this session: the first caller's setting wins, so gateway
-- instances configured with different timeouts still agree on what a lane holds.
-- Only joins and ticks record it (a status probe of an unknown session writes nothing).
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

-- Record a heartbeat of the waiter with join sequence `seq` in bucket `cur`. A lane is
-- reused LANES buckets later: it is deleted first (O(1): one string), so old bits never
-- count as fresh ones.
local function beat(lv, cur, seq, bucket_ms)
  local lane = cur % LANES
  if lv[lane + 1] ~= cur then
    redis.call('DEL', KEYS[HB0 + lane])
    redis.call('HSET', KEYS[K_META], 'hb' .. lane, cur)
    lv[lane + 1] = cur
    redis.call('SETBIT', KEYS[HB0 + lane], seq, 1)
    redis.call('PEXPIRE', KEYS[HB0 + lane], bucket_ms * LANES * 2)
  else
    redis.call('SETBIT', KEYS[HB0 + lane], seq, 1)
  end
end

-- A waiter is alive if it beat in the current bucket or one of the LANES-1 before it, i.e.
-- it is dropped only after being silent for at least (LANES-1) buckets = the timeout.
-- Newest bucket first: a polling waiter is found with one GETBIT.
local function alive(lv, cur, seq)
  for k = 0, LANES - 1 do
    local l = (cur - k) % LANES
    if lv[l + 1] == cur - k and redis.call('GETBIT', KEYS[HB0 + l], seq) == 1 then
      return true
    end
  end
  return false
end

local function mark_expired(m)
  redis.call('SADD', KEYS[K_EXPIRED], m)
  redis.call('EXPIRE', KEYS[K_EXPIRED], EXPIRED_TTL_S)
end

local function bump()
  redis.call('HINCRBY', KEYS[K_META], 'ver', 1)
end

-- Drop an admission whose token expired: its slot (if still held) frees.
local function expire_admission(m)
  redis.call('ZREM', KEYS[K_GRANTED], m)
  redis.call('HDEL', KEYS[K_GPOS], m)
  local freed = redis.call('SREM', KEYS[K_ACTIVE], m)
  mark_expired(m)
  bump()
  return freed
end
