-- expire: release a bounded batch of expired leases (the predecessor's leaked quota).
--
-- KEYS[1]        stream:leases (global index)
-- KEYS[2+5i..6+5i], for candidate i = 0..n-1, the candidate's:
--   stream:reservation:<rid>, stream:leases:source:<S>, stream:leases:camera:<camera>,
--   stream:count:<S>, stream:metadata:<camera>
-- ARGV[1] clock offset ms   ARGV[2] drain grace ms   ARGV[3..] candidate members (n <= 500)
-- A candidate that is not expired (renewed meanwhile) or already gone is skipped.
-- Returns: {expired_count, camera ids that lost their last live lease...}
--          | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local grace_ms = int_arg(ARGV[2], 0, 86400000)
local n = #ARGV - 2
if offset == nil then return {'INVALID', 'offset'} end
if grace_ms == nil then return {'INVALID', 'grace_ms'} end
if n > 500 then return {'INVALID', 'batch'} end
if #KEYS ~= 1 + 5 * n then return {'INVALID', 'keys'} end

local now = now_ms(offset)
local expired = 0
local touched = {}
local order = {}
for i = 0, n - 1 do
  local member = ARGV[3 + i]
  local base = 2 + 5 * i
  local score = tonumber(redis.call('ZSCORE', KEYS[1], member))
  if score ~= nil and score <= now then
    drop_lease(KEYS[base], KEYS[base + 1], KEYS[base + 2], KEYS[1], member)
    recount(KEYS[base + 1], KEYS[base + 3], now)
    expired = expired + 1
    local camera_id = string.match(member, '^[^|]+|([^|]+)|')
    if touched[camera_id] == nil then
      touched[camera_id] = base
      order[#order + 1] = camera_id
    end
  end
end
local result = {expired}
for _, camera_id in ipairs(order) do
  local base = touched[camera_id]
  if live_count(KEYS[base + 2], now) == 0 then
    drain(KEYS[base + 4], now, grace_ms)
    result[#result + 1] = camera_id
  end
end
return result
