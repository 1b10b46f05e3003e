-- The live statuses of a session's seats, for the seat map: only the taken ones travel.
-- KEYS: 1 seats
-- Returns {seat_count, sold_ids, held_ids}: the ids comma-separated ("" when none). A
-- seat_count of 0 means the seat map is not in Redis (load it, then ask again).
-- States as in hold.lua: "S:..." sold; "H:<hold_id>:<expires_ms>" held until it expires
-- (Redis server TIME); anything else is available.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local flat = redis.call('HGETALL', KEYS[1])
local sold, held = {}, {}
for i = 1, #flat, 2 do
  local state = flat[i + 1]
  local kind = string.byte(state, 1)
  if kind == 83 and string.byte(state, 2) == 58 then -- "S:"
    sold[#sold + 1] = flat[i]
  elseif kind == 72 then -- "H"
    local exp = string.match(state, '^H:[^:]+:(%d+)$')
    if exp and tonumber(exp) > now then
      held[#held + 1] = flat[i]
    end
  end
end
return {#flat / 2, table.concat(sold, ','), table.concat(held, ',')}
