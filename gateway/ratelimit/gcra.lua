-- GCRA (generic cell rate algorithm, virtual-scheduling form) for one subject of one policy.
-- One key holds the subject's theoretical arrival time (TAT) in microseconds of Redis server
-- time; the key expires when the TAT is reached, i.e. exactly when the subject is back at
-- rest, so an absent key and an expired one mean the same thing.
--
-- KEYS[1]  the subject's TAT (shared.keys.rate_limit)
-- ARGV[1]  emission interval in microseconds (period / rate), an integer
-- ARGV[2]  burst: requests admitted at once from rest, >= 1
-- Returns {allowed (1|0), remaining, retry_after_us, reset_us}:
--   remaining       requests that would be admitted right now after this one
--   retry_after_us  when refused: wait this long before the next request can be admitted
--   reset_us        time until the subject is at rest again (full burst available)

-- Server time, so gateways with skewed clocks agree. A non-deterministic command before a
-- write needs scripts replicated by effects: the default since Redis 5 (the only mode since
-- 7), so the per-call redis.replicate_commands() of older recipes is left out.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
-- Admit while the new TAT lies at most `tolerance` ahead of now: from rest (tat = now) the
-- k-th request gives new_tat = now + k * interval, admitted iff k <= burst.
local tolerance = interval * burst

local function store(value)
  -- %.0f: Lua's default number formatting (%.14g) would round a 16-digit microsecond value.
  local ttl_ms = math.max(1, math.ceil((value - now) / 1000))
  redis.call('SET', KEYS[1], string.format('%.0f', value), 'PX', string.format('%.0f', ttl_ms))
end

local stored = redis.call('GET', KEYS[1])
local tat = now
local clamped = false
if stored then
  tat = math.max(tonumber(stored), now)
  -- Under one policy an admission never leaves the TAT more than `tolerance` ahead, so this
  -- only fires after a policy change (lower rate or burst): the subject then starts from
  -- "burst used up" under the new policy instead of serving out the old one.
  if tat > now + tolerance then
    tat = now + tolerance
    clamped = true
  end
end

local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  if clamped then
    store(tat)
  end
  return {0, 0, allow_at - now, tat - now}
end

store(new_tat)
return {1, math.floor((now + tolerance - new_tat) / interval), 0, new_tat - now}
