-- The member's reservation was confirmed: its slot frees. The admission record stays (the
-- token is valid until it expires, API.md). ARGV: member. Returns 1 if a slot was freed.
local freed = redis.call('SREM', KEYS[K_ACTIVE], ARGV[1])
if freed == 1 then
  redis.call('HINCRBY', KEYS[K_META], 'freed', 1)
  bump()
end
return freed
