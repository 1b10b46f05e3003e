-- Confirm a hold into a reservation: seats sold, rank, ranking entry, idempotency record,
-- sold-out flag and the reservation.completed event, all in one atomic step (the outbox).
-- Every check runs before the first write, so a refused call changes nothing.
-- KEYS: 1 seats, 2 info, 3 hold, 4 user_holds, 5 user_sold, 6 user_reservations,
--       7 reservation, 8 rank_seq, 9 ranking, 10 idempotency, 11 events, 12 sold_out
-- ARGV: 1 hold_id, 2 user_id, 3 nickname, 4 reservation_id, 5 body fingerprint,
--       6 idempotency ttl ms, 7 queue_position ('' for none), 8 session_id
local idem = redis.call('GET', KEYS[10])
if idem then
  local fp, rid = string.match(idem, '^([^|]*)|(.*)$')
  if fp ~= ARGV[5] then
    return {'idem_mismatch'}
  end
  return {'replay', rid}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local h = redis.call('HMGET', KEYS[3], 'user_id', 'seat_ids', 'expires_ms')
if not h[1] or h[1] ~= ARGV[2] then
  return {'hold_not_found'}
end
if tonumber(h[3]) <= now then
  return {'hold_expired'}
end
local info = redis.call('HMGET', KEYS[2], 'opens_ms', 'seat_count')
if not info[1] then
  return {'not_loaded'}
end
local mine = 'H:' .. ARGV[1] .. ':'
local ids = {}
for id in string.gmatch(h[2], '[^,]+') do
  local s = redis.call('HGET', KEYS[1], id)
  if not s or string.sub(s, 1, #mine) ~= mine then
    return {'hold_lost'}
  end
  ids[#ids + 1] = id
end
local n = #ids

-- Writes.
local rid = ARGV[4]
local sold_state = 'S:' .. rid
local pairs_ = {}
for i = 1, n do
  pairs_[#pairs_ + 1] = ids[i]
  pairs_[#pairs_ + 1] = sold_state
end
redis.call('HSET', KEYS[1], unpack(pairs_))
local rank = redis.call('INCR', KEYS[8])
local now_s = string.format('%d', now)
local completion = string.format('%d', now - tonumber(info[1]))
redis.call('ZADD', KEYS[9], rank, rid)
redis.call('HSET', KEYS[7],
  'reservation_id', rid, 'session_id', ARGV[8], 'user_id', ARGV[2], 'nickname', ARGV[3],
  'seat_ids', h[2], 'status', 'confirmed', 'rank', rank, 'completion_ms', completion,
  'queue_position', ARGV[7], 'created_ms', now_s)
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1] .. ':' .. n)
redis.call('INCRBY', KEYS[5], n)
redis.call('ZADD', KEYS[6], now, rid)
redis.call('SET', KEYS[10], ARGV[5] .. '|' .. rid, 'PX', ARGV[6])
local sold = redis.call('HINCRBY', KEYS[2], 'sold', n)
if sold >= tonumber(info[2]) then
  redis.call('SET', KEYS[12], '1')
end
redis.call('XADD', KEYS[11], '*',
  'type', 'reservation.completed', 'reservation_id', rid, 'session_id', ARGV[8],
  'user_id', ARGV[2], 'seat_ids', h[2], 'nickname', ARGV[3], 'rank', rank,
  'completion_ms', completion, 'queue_position', ARGV[7], 'created_at', now_s)
return {'ok', rid, rank, tonumber(completion), now, h[2]}
