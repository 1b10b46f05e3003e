-- One gateway's batched heartbeats of one session: ARGV: bucket_ms, lno, lno, ...
-- Returns how many were written.
local bucket_ms = bucket_width(tonumber(ARGV[1]), false)
local cur = math.floor(now_ms() / bucket_ms)
local lv = lanes()
for i = 2, #ARGV do beat(lv, cur, tonumber(ARGV[i]), bucket_ms) end
return #ARGV - 1
