-- Give the pre-queue's entrants their places, in the draw's order (computed by a gateway
-- from the seed: Lua has no HMAC-SHA256), one chunk per call; idempotent, so a gateway that
-- dies mid-draw leaves it for another to redo.
-- KEYS: the 13 queue keys, then the bucket of each entrant of the chunk.
-- ARGV: bucket_ms, first rank of the chunk, total entrants (set as drawn on the last chunk,
--       else 0), then member, pre-queue order for each entrant.
local bucket_ms = bucket_width(tonumber(ARGV[1]), true)
local start, total = tonumber(ARGV[2]), tonumber(ARGV[3])
local cur = math.floor(now_ms() / bucket_ms)
local lv = lanes()
local i = 0
for j = 4, #ARGV, 2 do
  local m, p = ARGV[j], tonumber(ARGV[j + 1])
  local lno = start + i
  local key = KEYS[14 + i]
  local v = tonumber(redis.call('HGET', key, m))
  if v == -p then
    redis.call('HSET', key, m, lno)
    beat(lv, cur, lno, bucket_ms)  -- the heartbeat timeout counts from the draw
  elseif v ~= lno and not dropped(lno) then
    drop_waiter(lno)  -- left the pre-queue (or rejoined after opening)
  end
  i = i + 1
end
if total > 0 and meta_int('drawn') == 0 then
  redis.call('HSET', KEYS[K_META], 'drawn', total)
  bump()
end
return i
