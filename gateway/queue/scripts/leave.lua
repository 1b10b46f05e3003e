-- Leave the queue (or give back an admission). ARGV: member. Returns {was_waiting, freed_slot}.
local m = ARGV[1]
local w = redis.call('ZREM', KEYS[K_WAIT], m)
local a = redis.call('SREM', KEYS[K_ACTIVE], m)
local g = redis.call('ZREM', KEYS[K_GRANTED], m)
redis.call('HDEL', KEYS[K_GPOS], m)
local x = redis.call('SREM', KEYS[K_EXPIRED], m)
if w + a + g + x > 0 then bump() end
return {w, a}
