-- Hold seats for a user, all or nothing.
-- KEYS: 1 seats, 2 info, 3 user_holds, 4 user_sold, 5 hold
-- ARGV: 1 hold_id, 2 user_id, 3 ttl_ms, 4 per-user limit, 5 grace_ms, 6 session_id,
--       7.. seat ids
-- Seat states in the seats hash: "A" available, "H:<hold_id>:<expires_ms>" held,
-- "S:<reservation_id>" sold. A hold whose expiry (Redis server TIME) has passed counts as
-- available, so no sweeper is needed for correctness.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'not_loaded'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- A retried call with the same hold id returns the hold it already made.
local prev = redis.call('HGET', KEYS[5], 'expires_ms')
if prev then
  return {'ok', tonumber(prev)}
end

local n = #ARGV - 6
local states = redis.call('HMGET', KEYS[1], unpack(ARGV, 7))
local unknown = {}
for i = 1, n do
  if not states[i] then
    unknown[#unknown + 1] = ARGV[6 + i]
  end
end
if #unknown > 0 then
  return {'unknown', unknown}
end

-- Per-user limit: seats in live holds plus seats in live reservations of the session.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local used = tonumber(redis.call('GET', KEYS[4]) or '0')
for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  used = used + tonumber(string.match(member, ':(%d+)$'))
end
if used + n > tonumber(ARGV[4]) then
  return {'limit', used}
end

local conflicts = {}
for i = 1, n do
  local s = states[i]
  if s ~= 'A' then
    local exp = string.match(s, '^H:[^:]+:(%d+)$')
    if not exp or tonumber(exp) > now then
      conflicts[#conflicts + 1] = ARGV[6 + i]
    end
  end
end
if #conflicts > 0 then
  return {'conflict', conflicts}
end

local ttl = tonumber(ARGV[3])
local expires = now + ttl
local state = 'H:' .. ARGV[1] .. ':' .. string.format('%d', expires)
local pairs_ = {}
for i = 1, n do
  pairs_[#pairs_ + 1] = ARGV[6 + i]
  pairs_[#pairs_ + 1] = state
end
redis.call('HSET', KEYS[1], unpack(pairs_))
redis.call('HSET', KEYS[5], 'user_id', ARGV[2], 'session_id', ARGV[6],
  'seat_ids', table.concat(ARGV, ',', 7), 'expires_ms', string.format('%d', expires))
redis.call('PEXPIRE', KEYS[5], ttl + tonumber(ARGV[5]))
redis.call('ZADD', KEYS[3], expires, ARGV[1] .. ':' .. n)
redis.call('PEXPIRE', KEYS[3], ttl + tonumber(ARGV[5]))
return {'ok', expires}
