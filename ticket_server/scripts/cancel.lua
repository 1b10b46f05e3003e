-- Cancel a confirmed reservation: the mirror of confirm.lua. Seats available again, the
-- ranking entry removed (the others keep their ranks), sold-out flag cleared and a
-- reservation.cancelled event appended, all at once.
-- KEYS: 1 seats, 2 info, 3 reservation, 4 ranking, 5 user_sold, 6 events, 7 sold_out
-- ARGV: 1 reservation_id, 2 user_id, 3 session_id
local r = redis.call('HMGET', KEYS[3], 'user_id', 'status', 'seat_ids')
if not r[1] or r[1] ~= ARGV[2] then
  return {'not_found'}
end
if r[2] == 'cancelled' then
  return {'already'}
end
local t = redis.call('TIME')
local now_s = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local sold_state = 'S:' .. ARGV[1]
local n = 0
for id in string.gmatch(r[3], '[^,]+') do
  n = n + 1
  if redis.call('HGET', KEYS[1], id) == sold_state then
    redis.call('HSET', KEYS[1], id, 'A')
  end
end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[3], 'status', 'cancelled', 'cancelled_ms', now_s)
redis.call('DECRBY', KEYS[5], n)
redis.call('HINCRBY', KEYS[2], 'sold', -n)
redis.call('DEL', KEYS[7])
redis.call('XADD', KEYS[6], '*',
  'type', 'reservation.cancelled', 'reservation_id', ARGV[1], 'session_id', ARGV[3],
  'user_id', ARGV[2], 'seat_ids', r[3], 'cancelled_at', now_s)
return {'ok'}
