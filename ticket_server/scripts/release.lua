-- Release a user's hold: its seats become available again.
-- KEYS: 1 seats, 2 hold, 3 user_holds
-- ARGV: 1 hold_id, 2 user_id
local h = redis.call('HMGET', KEYS[2], 'user_id', 'seat_ids')
if not h[1] or h[1] ~= ARGV[2] then
  return 'not_found'
end
local mine = 'H:' .. ARGV[1] .. ':'
local n = 0
for id in string.gmatch(h[2], '[^,]+') do
  n = n + 1
  local s = redis.call('HGET', KEYS[1], id)
  -- Only seats still stamped with this hold: an expired hold's seat may be someone else's now.
  if s and string.sub(s, 1, #mine) == mine then
    redis.call('HSET', KEYS[1], id, 'A')
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1] .. ':' .. n)
return 'ok'
