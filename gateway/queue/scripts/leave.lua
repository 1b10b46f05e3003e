-- Leave the queue (or give back an admission, or the pre-queue). ARGV: member.
-- Returns {was_waiting, freed_slot}.
local v = redis.call('HGET', KEYS[K_MEMBER], ARGV[1])
if not v then return {0, 0} end
redis.call('HDEL', KEYS[K_MEMBER], ARGV[1])
local lno = tonumber(v)
local w, a = 0, 0
if lno < 0 then
  w = 1  -- the draw drops a pre-queue entrant who is gone
elseif not dropped(lno) then
  if lno > meta_int('head') then
    drop_waiter(lno)
    w = 1
  else
    drop(lno)
    a = redis.call('SREM', KEYS[K_ACTIVE], lno)
    redis.call('ZREM', KEYS[K_GRANTED], lno)
  end
end
bump()
return {w, a}
