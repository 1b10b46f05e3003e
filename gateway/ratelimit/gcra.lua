-- GCRA (generic cell rate algorithm, virtual-scheduling form) for one subject of one policy.
-- One key holds the subject's theoretical arrival time (TAT) in microseconds of Redis server
-- time; the key expires when the TAT is reached, i.e. exactly when the subject is back at
-- rest, so an absent key and an expired one mean the same thing.
--
-- KEYS[1]  the subject's TAT (shared.keys.rate_limit)
-- ARGV[1]  emission interval in microseconds (period / rate), an integer >= 1
-- ARGV[2]  burst: requests admitted at once from rest, >= 1
-- Returns one integer, the time in microseconds until the subject is at rest again (the
-- reset): positive when the request is admitted, negated when it is refused. Admitted gives
-- reset >= interval; refused gives reset > interval * (burst - 1) >= 0, so the sign is the
-- verdict. The caller, which sent interval and burst, derives the rest exactly (every value
-- is a whole number of microseconds):
--   admitted: remaining = (interval * burst - reset) // interval  (requests admitted right
--             now after this one)
--   refused:  retry_after = reset + interval - interval * burst  (the wait until the next
--             request can be admitted)
-- One integer instead of a table of four: the reply is the script's cheapest part then.

-- Server time, so gateways with skewed clocks agree. A non-deterministic command before a
-- write needs scripts replicated by effects: the default since Redis 5 (the only mode since
-- 7), so the per-call redis.replicate_commands() of older recipes is left out.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local interval = tonumber(ARGV[1])
-- Admit while the new TAT lies at most `tolerance` ahead of now: from rest (tat = now) the
-- k-th request gives new_tat = now + k * interval, admitted iff k <= burst.
local tolerance = interval * tonumber(ARGV[2])

-- GET answers false for an absent key, and tonumber(false) is nil.
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
-- Under one policy an admission never leaves the TAT more than `tolerance` ahead, so this
-- only fires after a policy change (lower rate or burst): the subject then starts from
-- "burst used up" under the new policy instead of serving out the old one.
local clamped = tat > now + tolerance
if clamped then
  tat = now + tolerance
end

-- Numbers go to redis.call as exact integers (Redis formats them with %.17g, or as
-- integers since 7.2), so a 16-digit microsecond value needs no string.format.
local new_tat = tat + interval
if new_tat - tolerance > now then
  if clamped then
    redis.call('SET', KEYS[1], tat, 'PX', math.ceil(tolerance / 1000))
  end
  return now - tat
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
return new_tat - now
