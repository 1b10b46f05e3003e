-- What a gateway caches of a session to answer status polls from memory (service.py).
-- ARGV: dver the caller holds (-1: none), the highest batch lno it holds.
-- Returns {ver, head, base, drawn, seq, waiting, active, sold_out, alog_len, alog_oldest,
--          now_ms, bms, dver, closed, drop_first_byte, drop_bytes | false, gen, batch...}
local v = redis.call('HMGET', KEYS[K_META], 'ver', 'head', 'base', 'drawn', 'seq', 'dabove',
  'dver', 'bms', 'closed', 'gen')
local head, base, seq = tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[5]) or 0
local dver = tonumber(v[7]) or 0
local n = redis.call('LLEN', KEYS[K_ALOG])
local oldest = 0
if n > 0 then oldest = tonumber(redis.call('LINDEX', KEYS[K_ALOG], -1)) end
-- The bitmap from the oldest admission still on record (an admitted place can be left).
local from = head
local oldest_batch = redis.call('ZRANGE', KEYS[K_BATCH], 0, 0)
if #oldest_batch > 0 then from = math.min(from, tonumber(string.match(oldest_batch[1], '^(%d+):'))) end
local first_byte, bits = math.floor(from / 8), false
if dver ~= tonumber(ARGV[1]) then
  bits = redis.call('GETRANGE', KEYS[K_DROP], first_byte, math.floor((base + seq) / 8))
end
local out = {tonumber(v[1]) or 0, head, base, tonumber(v[4]) or 0, seq,
  base + seq - head - (tonumber(v[6]) or 0),
  redis.call('SCARD', KEYS[K_ACTIVE]), redis.call('EXISTS', KEYS[K_SOLDOUT]), n, oldest,
  now_ms(), tonumber(v[8]) or 0, dver, tonumber(v[9]) or 0, first_byte, bits, v[10] or '0'}
local batches = redis.call('ZRANGEBYSCORE', KEYS[K_BATCH], '(' .. ARGV[2], '+inf')
for i = 1, #batches do out[#out + 1] = batches[i] end
return out
