-- A gateway instance says it is alive and learns how many are.
-- KEYS[1]  sorted set of instances (shared.keys.gateway_instances): member id, score the
--          Redis server time (ms) of its last heartbeat
-- ARGV[1]  this instance's id
-- ARGV[2]  window in ms: instances seen within it count as live; older ones are removed
-- Returns the number of live instances (this one included).
if redis.replicate_commands then
  pcall(redis.replicate_commands)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%.0f', now - window))
-- The set removes itself once every gateway is gone.
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', window * 2))
return redis.call('ZCARD', KEYS[1])
