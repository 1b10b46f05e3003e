-- One admission step of a session, run by the admission loop of every gateway instance;
-- atomic, so instances racing each other can neither admit a member twice nor give a slot
-- twice. Order: close the pre-queue at opening, expire admissions, note sold-out, admit in
-- line order within the slot and rate bounds (GCRA on Redis TIME), sweep a bounded chunk of
-- silent waiters.
-- ARGV: max_active, rate (per s), burst, admission_ttl_s, bucket_ms, sweep_chunk,
--       expire_chunk, max_admit, opens_ms
-- Returns {admitted, expired_admissions, expired_waiters, active, waiting, ver, next_ms,
--          sold_out, base, drawn}
local max_active, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl_s, bucket_ms = tonumber(ARGV[4]), bucket_width(tonumber(ARGV[5]), true)
local sweep_chunk, expire_chunk, max_admit = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local now = now_ms()
close_line(now, tonumber(ARGV[9]))
local cur = math.floor(now / bucket_ms)
local lv = lanes()

-- 1. Admissions whose token expired free their slot; batch records all past expiry go.
local xa = 0
local old = redis.call('ZRANGEBYSCORE', KEYS[K_GRANTED], '-inf', now, 'LIMIT', 0, expire_chunk)
for _, lno in ipairs(old) do xa = xa + expire_admission(tonumber(lno)) end
for _ = 1, 4 do
  local b = redis.call('ZRANGE', KEYS[K_BATCH], 0, 0)
  if #b == 0 then break end
  local e = tonumber(string.match(b[1], ':(%d+)$'))
  if e * 1000 > now - 1000 then break end
  redis.call('ZREM', KEYS[K_BATCH], b[1])
end

-- 2. Sold out (flag written by ticket_server): stop admitting; tell listeners on a change.
local so = redis.call('EXISTS', KEYS[K_SOLDOUT])
if tostring(so) ~= (redis.call('HGET', KEYS[K_META], 'so') or '0') then
  redis.call('HSET', KEYS[K_META], 'so', so)
  bump()
end

-- 3. Admit the head of the line while a slot is free and the rate allows. Until the draw
-- has placed the pre-queue, nobody is admitted (they come first).
local mv = redis.call('HMGET', KEYS[K_META], 'head', 'base', 'drawn', 'seq', 'tat', 'dabove')
local head, base, drawn = tonumber(mv[1]) or 0, tonumber(mv[2]) or 0, tonumber(mv[3]) or 0
local last = base + (tonumber(mv[4]) or 0)
local blocked = base > 0 and drawn == 0
local active = redis.call('SCARD', KEYS[K_ACTIVE])
local admitted, xw, next_ms, first = 0, 0, -1, 0
local dabove = tonumber(mv[6]) or 0
if so == 0 and not blocked then
  local T = 1000 / rate
  local tau = (burst - 1) * T
  local tat = tonumber(mv[5]) or 0
  local admit_s = math.floor(now / 1000)
  local exp_s = admit_s + ttl_s
  local steps = 0
  while admitted < max_admit and active < max_active and head < last and steps < 4 * sweep_chunk do
    local lno = head + 1
    steps = steps + 1
    if dropped(lno) then
      head = lno
      dabove = dabove - 1  -- no longer above the cursor
    elseif not alive(lv, cur, lno) then
      -- A silent waiter never holds up the line (dropped at the cursor: not above it).
      drop(lno)
      head = lno
      xw = xw + 1
      if xw >= sweep_chunk then break end
    else
      local t = math.max(tat, now)
      if t - tau > now then
        next_ms = t - tau - now
        break
      end
      redis.call('SADD', KEYS[K_ACTIVE], lno)
      redis.call('ZADD', KEYS[K_GRANTED], exp_s * 1000, lno)
      redis.call('LPUSH', KEYS[K_ALOG], now)
      if first == 0 then first = lno end
      head = lno
      tat = t + T
      active = active + 1
      admitted = admitted + 1
    end
  end
  redis.call('HSET', KEYS[K_META], 'head', head, 'dabove', dabove)
  if admitted > 0 then
    redis.call('HSET', KEYS[K_META], 'tat', tat)
    redis.call('LTRIM', KEYS[K_ALOG], 0, 63)
    redis.call('ZADD', KEYS[K_BATCH], head, first .. ':' .. head .. ':' .. admit_s .. ':' .. exp_s)
  end
end

-- 4. Sweep a bounded chunk of the line for silent waiters, resuming where the last sweep
-- stopped (a cursor on the line number), so each call costs O(chunk). The chunk's bytes of
-- the drop bitmap and of each live heartbeat lane are read once (GETRANGE) and tested here,
-- instead of one GETBIT per waiter and lane.
if not blocked then
  local cursor = math.max(meta_int('sweep'), head)
  local stop = math.min(last, cursor + sweep_chunk)
  if stop > cursor then
    local b0, b1 = math.floor((cursor + 1) / 8), math.floor(stop / 8)
    local drops = redis.call('GETRANGE', KEYS[K_DROP], b0, b1)
    local beats = {}
    for k = 0, LANES - 1 do
      local l = (cur - k) % LANES
      if lv[l + 1] == cur - k then
        beats[#beats + 1] = redis.call('GETRANGE', KEYS[HB0 + l], b0, b1)
      end
    end
    for lno = cursor + 1, stop do
      local j = math.floor(lno / 8) - b0 + 1
      local mask = bit.lshift(1, 7 - lno % 8)
      if bit.band(string.byte(drops, j) or 0, mask) == 0 then
        local live = false
        for _, lane in ipairs(beats) do
          if bit.band(string.byte(lane, j) or 0, mask) ~= 0 then
            live = true
            break
          end
        end
        if not live then
          drop_waiter(lno)
          xw = xw + 1
        end
      end
    end
  end
  if stop >= last then stop = 0 end
  redis.call('HSET', KEYS[K_META], 'sweep', stop)
end

if admitted + xw > 0 then bump() end
if admitted > 0 then redis.call('HINCRBY', KEYS[K_META], 'adm', admitted) end
if xw > 0 then redis.call('HINCRBY', KEYS[K_META], 'xw', xw) end
if xa > 0 then redis.call('HINCRBY', KEYS[K_META], 'xa', xa) end
local v = redis.call('HMGET', KEYS[K_META], 'ver', 'dabove', 'base', 'seq')
local waiting = (tonumber(v[3]) or 0) + (tonumber(v[4]) or 0) - head - (tonumber(v[2]) or 0)
return {admitted, xa, xw, active, waiting, tonumber(v[1]) or 0, math.ceil(next_ms),
  so, base, drawn}
