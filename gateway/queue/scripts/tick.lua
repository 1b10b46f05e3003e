-- One admission step of a session, run by the admission loop of every gateway instance;
-- atomic, so instances racing each other can neither admit a member twice nor give a slot
-- twice. Order: expire admissions, note sold-out, admit in join order within the slot and
-- rate bounds (GCRA on Redis TIME), sweep a bounded chunk of silent waiters.
-- ARGV: max_active, rate (per s), burst, admission_ttl_s, bucket_ms, sweep_chunk,
--       expire_chunk, max_admit
-- Returns {admitted, expired_admissions, expired_waiters, active, waiting, ver, next_ms,
--          sold_out}
local max_active, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl_s, bucket_ms = tonumber(ARGV[4]), bucket_width(tonumber(ARGV[5]), true)
local sweep_chunk, expire_chunk, max_admit = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local now = now_ms()
local cur = math.floor(now / bucket_ms)
local lv = lanes()

-- 1. Admissions whose token expired free their slot.
local xa = 0
local old = redis.call('ZRANGEBYSCORE', KEYS[K_GRANTED], '-inf', now, 'LIMIT', 0, expire_chunk)
for _, m in ipairs(old) do xa = xa + expire_admission(m) end

-- 2. Sold out (flag written by ticket_server): stop admitting; tell listeners on a change.
local so = redis.call('EXISTS', KEYS[K_SOLDOUT])
if tostring(so) ~= (redis.call('HGET', KEYS[K_META], 'so') or '0') then
  redis.call('HSET', KEYS[K_META], 'so', so)
  bump()
end

-- 3. Admit the head of the line while a slot is free and the rate allows.
local active = redis.call('SCARD', KEYS[K_ACTIVE])
local admitted, xw, next_ms = 0, 0, -1
if so == 0 then
  local T = 1000 / rate
  local tau = (burst - 1) * T
  local tat = tonumber(redis.call('HGET', KEYS[K_META], 'tat')) or 0
  local admit_s = math.floor(now / 1000)
  local exp_s = admit_s + ttl_s
  while admitted < max_admit and active < max_active do
    local t = math.max(tat, now)
    if t - tau > now then
      next_ms = t - tau - now
      break
    end
    local head = redis.call('ZRANGE', KEYS[K_WAIT], 0, 0, 'WITHSCORES')
    if #head == 0 then break end
    local m, seq = head[1], tonumber(head[2])
    redis.call('ZREM', KEYS[K_WAIT], m)
    if alive(lv, cur, seq) then
      redis.call('SADD', KEYS[K_ACTIVE], m)
      redis.call('ZADD', KEYS[K_GRANTED], exp_s * 1000, m)
      redis.call('HSET', KEYS[K_GPOS], m, seq .. ':' .. admit_s .. ':' .. exp_s)
      redis.call('LPUSH', KEYS[K_ALOG], now)
      tat = t + T
      active = active + 1
      admitted = admitted + 1
    else
      -- A silent waiter never holds up the line.
      mark_expired(m)
      xw = xw + 1
      if xw >= sweep_chunk then break end
    end
  end
  if admitted > 0 then
    redis.call('HSET', KEYS[K_META], 'tat', tat)
    redis.call('LTRIM', KEYS[K_ALOG], 0, 63)
  end
end

-- 4. Sweep a bounded chunk of the line for silent waiters, resuming where the last sweep
-- stopped (a cursor on the join seq), so each call costs O(chunk * log n).
local cursor = tonumber(redis.call('HGET', KEYS[K_META], 'sweep')) or 0
local batch = redis.call('ZRANGEBYSCORE', KEYS[K_WAIT], '(' .. cursor, '+inf', 'WITHSCORES',
  'LIMIT', 0, sweep_chunk)
for i = 1, #batch, 2 do
  local seq = tonumber(batch[i + 1])
  if not alive(lv, cur, seq) then
    redis.call('ZREM', KEYS[K_WAIT], batch[i])
    mark_expired(batch[i])
    xw = xw + 1
  end
  cursor = seq
end
if #batch < 2 * sweep_chunk then cursor = 0 end
redis.call('HSET', KEYS[K_META], 'sweep', cursor)

if admitted + xw > 0 then bump() end
if admitted > 0 then redis.call('HINCRBY', KEYS[K_META], 'adm', admitted) end
if xw > 0 then redis.call('HINCRBY', KEYS[K_META], 'xw', xw) end
if xa > 0 then redis.call('HINCRBY', KEYS[K_META], 'xa', xa) end
local ver = tonumber(redis.call('HGET', KEYS[K_META], 'ver')) or 0
return {admitted, xa, xw, active, redis.call('ZCARD', KEYS[K_WAIT]), ver, math.ceil(next_ms), so}
