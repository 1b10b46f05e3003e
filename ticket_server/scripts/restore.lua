-- Load a session's seat map into Redis, restoring what the database already stored: sold
-- seats stay sold, the rank counter continues after the highest rank ever given, and the
-- reservations, each user's seat count and the ranking come back. All at once; the info
-- key, whose presence means "loaded", is written last. Never over live state: a key or
-- field still in Redis wins, being newer than the database (the worker lags behind).
-- KEYS: 1 seats, 2 seat_meta, 3 info, 4 rank_seq, 5 ranking, 6 sold_out, then three per
--       reservation i (same order as ARGV's list): reservation, user_reservations, user_sold
-- ARGV: 1 JSON {"opens_ms", "seat_count", "max_rank", "meta": [id, blob, ...],
--       "reservations": [{"id", "live": bool, "rank", "created_ms", "seat_ids": [id, ...],
--       "fields": [name, value, ...]}, ...]}; every number is a string (cjson would turn
--       big ones into floats).
-- Returns {loaded (1, or 0 when it already was), sold seats}.
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {0, 0}
end
local p = cjson.decode(ARGV[1])

local user_sold = {}
for i, r in ipairs(p.reservations) do
  local base = 6 + 3 * (i - 1)
  if r.live then
    local sold_state = 'S:' .. r.id
    for _, id in ipairs(r.seat_ids) do
      redis.call('HSETNX', KEYS[1], id, sold_state)
    end
    redis.call('ZADD', KEYS[5], 'NX', r.rank, r.id)
    user_sold[KEYS[base + 3]] = (user_sold[KEYS[base + 3]] or 0) + #r.seat_ids
  end
  if redis.call('EXISTS', KEYS[base + 1]) == 0 then
    redis.call('HSET', KEYS[base + 1], unpack(r.fields))
  end
  redis.call('ZADD', KEYS[base + 2], 'NX', r.created_ms, r.id)
end
for key, n in pairs(user_sold) do
  redis.call('SET', key, n, 'NX')
end

local meta = p.meta
for i = 1, #meta, 2 do
  redis.call('HSETNX', KEYS[1], meta[i], 'A')
  redis.call('HSET', KEYS[2], meta[i], meta[i + 1])
end

local rank = tonumber(redis.call('GET', KEYS[4]) or '0')
if tonumber(p.max_rank) > rank then
  redis.call('SET', KEYS[4], p.max_rank)
end

local sold = 0
local states = redis.call('HVALS', KEYS[1])
for i = 1, #states do
  if string.sub(states[i], 1, 2) == 'S:' then
    sold = sold + 1
  end
end
redis.call('HSETNX', KEYS[3], 'sold', sold)
local seat_count = tonumber(p.seat_count)
if seat_count > 0 and sold >= seat_count then
  redis.call('SET', KEYS[6], '1')
end
redis.call('HSET', KEYS[3], 'opens_ms', p.opens_ms, 'seat_count', p.seat_count)
return {1, sold}
