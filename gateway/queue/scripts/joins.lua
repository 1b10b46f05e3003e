-- Many joins in one call (a gateway collects the joins that arrive within one event-loop
-- turn): the session's meta, the clock and the line counter are read once for all of them,
-- so each join costs its bucket lookup, its place and its heartbeat bit. Only plain joins
-- are taken here: a member who already has a place (or had one), and any join before the
-- line is closed at opening, is answered "slow" and goes through status.lua.
-- KEYS: the 13 session keys, then the bucket of each member.
-- ARGV: bucket_ms, then member for each join (members distinct).
-- Returns {now_ms, ver, base, drawn, then state, lno, rank for each join}.
local mv = redis.call('HMGET', KEYS[K_META], 'bms', 'hb0', 'hb1', 'hb2', 'hb3', 'hb4', 'head',
  'base', 'dabove', 'closed', 'ver', 'drawn', 'so')
local bucket_ms = tonumber(mv[1]) or tonumber(ARGV[1])
local now = now_ms()
local out = {now, tonumber(mv[11]) or 0, tonumber(mv[8]) or 0, tonumber(mv[12]) or 0}
local n = #ARGV - 1
if not mv[1] or not mv[10] then
  for _ = 1, n do out[#out + 1] = 'slow'; out[#out + 1] = 0; out[#out + 1] = 0 end
  return out
end
local lv = {tonumber(mv[2]), tonumber(mv[3]), tonumber(mv[4]), tonumber(mv[5]), tonumber(mv[6])}
local head, base, dabove = tonumber(mv[7]) or 0, tonumber(mv[8]) or 0, tonumber(mv[9]) or 0
local state = (mv[13] == '1') and 'sold_out' or 'waiting'
local fresh = {}
for i = 1, n do
  fresh[i] = not redis.call('HGET', KEYS[13 + i], ARGV[1 + i])
end
local count = 0
for i = 1, n do if fresh[i] then count = count + 1 end end
local first = 0
if count > 0 then
  ensure_gen()
  first = base + redis.call('HINCRBY', KEYS[K_META], 'seq', count) - count
end
local cur = math.floor(now / bucket_ms)
local k = 0
for i = 1, n do
  if fresh[i] then
    k = k + 1
    local lno = first + k
    redis.call('HSET', KEYS[13 + i], ARGV[1 + i], lno)
    beat(lv, cur, lno, bucket_ms)
    out[#out + 1] = state
    out[#out + 1] = lno
    out[#out + 1] = lno - 1 - head - dabove
  else
    out[#out + 1] = 'slow'
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
