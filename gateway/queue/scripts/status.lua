-- Join, status (with or without a heartbeat) of one member.
-- ARGV: member, bucket_ms, mode ("join" | "beat" | "peek")
-- Returns {state, seq, rank, admitted_s, expires_s, active, alog_len, alog_oldest, now_ms, ver}
-- with state one of "waiting", "sold_out", "admitted", "expired", "none".
local m, mode = ARGV[1], ARGV[3]
local bucket_ms = bucket_width(tonumber(ARGV[2]), mode == 'join')
local now = now_ms()
local cur = math.floor(now / bucket_ms)

local function rate_info()
  local n = redis.call('LLEN', KEYS[K_ALOG])
  local oldest = 0
  if n > 0 then oldest = tonumber(redis.call('LINDEX', KEYS[K_ALOG], -1)) end
  return n, oldest
end

local function ver()
  return tonumber(redis.call('HGET', KEYS[K_META], 'ver')) or 0
end

local function waiting_reply(seq, lv)
  if mode ~= 'peek' then beat(lv, cur, seq, bucket_ms) end
  if redis.call('EXISTS', KEYS[K_SOLDOUT]) == 1 then
    return {'sold_out', seq, 0, 0, 0, 0, 0, 0, now, ver()}
  end
  local rank = redis.call('ZRANK', KEYS[K_WAIT], m)
  local n, oldest = rate_info()
  return {'waiting', seq, rank, 0, 0, redis.call('SCARD', KEYS[K_ACTIVE]), n, oldest, now, ver()}
end

local seq = redis.call('ZSCORE', KEYS[K_WAIT], m)
if seq then
  seq = tonumber(seq)
  local lv = lanes()
  if alive(lv, cur, seq) then
    return waiting_reply(seq, lv)
  end
  -- Silent past the timeout: the place is lost (a join starts over at the end).
  redis.call('ZREM', KEYS[K_WAIT], m)
  redis.call('HINCRBY', KEYS[K_META], 'xw', 1)
  mark_expired(m)
  bump()
  if mode ~= 'join' then return {'expired', seq, 0, 0, 0, 0, 0, 0, now, ver()} end
else
  local g = redis.call('HGET', KEYS[K_GPOS], m)
  if g then
    local s, a, e = string.match(g, '^(%d+):(%d+):(%d+)$')
    if tonumber(e) * 1000 > now then
      return {'admitted', tonumber(s), 0, tonumber(a), tonumber(e), 0, 0, 0, now, ver()}
    end
    if expire_admission(m) == 1 then redis.call('HINCRBY', KEYS[K_META], 'xa', 1) end
    if mode ~= 'join' then return {'expired', tonumber(s), 0, 0, 0, 0, 0, 0, now, ver()} end
  elseif mode ~= 'join' then
    if redis.call('SISMEMBER', KEYS[K_EXPIRED], m) == 1 then
      return {'expired', 0, 0, 0, 0, 0, 0, 0, now, ver()}
    end
    return {'none', 0, 0, 0, 0, 0, 0, 0, now, ver()}
  end
end

-- A new place at the end of the line.
redis.call('SREM', KEYS[K_EXPIRED], m)
seq = redis.call('HINCRBY', KEYS[K_META], 'seq', 1)
redis.call('ZADD', KEYS[K_WAIT], seq, m)
bump()
return waiting_reply(seq, lanes())
