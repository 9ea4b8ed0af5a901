-- release: end a lease. Idempotent: releasing a lease that is gone changes nothing.
--
-- KEYS[1] stream:reservation:<rid>   KEYS[2] stream:leases:source:<SOURCE>
-- KEYS[3] stream:leases:camera:<camera>   KEYS[4] stream:leases
-- KEYS[5] stream:count:<SOURCE>      KEYS[6] stream:metadata:<camera>
-- ARGV[1] clock offset ms   ARGV[2] lease member   ARGV[3] drain grace ms
-- Returns: {'OK', released 0|1, camera_empty 0|1, drain_deadline_ms or 0}
--          | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local grace_ms = int_arg(ARGV[3], 0, 86400000)
if offset == nil then return {'INVALID', 'offset'} end
if grace_ms == nil then return {'INVALID', 'grace_ms'} end
if #KEYS ~= 6 then return {'INVALID', 'keys'} end

local now = now_ms(offset)
local member = ARGV[2]
if redis.call('ZSCORE', KEYS[4], member) == false then
  redis.call('DEL', KEYS[1])
  return {'OK', 0, 0, 0}
end
drop_lease(KEYS[1], KEYS[2], KEYS[3], KEYS[4], member)
recount(KEYS[2], KEYS[5], now)
if live_count(KEYS[3], now) > 0 then
  return {'OK', 1, 0, 0}
end
drain(KEYS[6], now, grace_ms)
return {'OK', 1, 1, tonumber(redis.call('HGET', KEYS[6], 'drain_deadline')) or 0}
