-- The member's reservation was confirmed: its slot frees. The admission stays (the token is
-- valid until it expires, API.md). ARGV: member. Returns 1 if a slot was freed.
local v = tonumber(redis.call('HGET', KEYS[K_MEMBER], ARGV[1]))
if not v or v < 0 then return 0 end
local freed = redis.call('SREM', KEYS[K_ACTIVE], v)
if freed == 1 then
  redis.call('HINCRBY', KEYS[K_META], 'freed', 1)
  bump()
end
return freed
