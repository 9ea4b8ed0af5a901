-- ingress_event: record an ingress_started / ingress_ended webhook on the camera's metadata,
-- when it is about the camera's own ingress and newer than what is recorded.
--
-- KEYS[1] stream:webhook:<event id>   KEYS[2] stream:metadata:<camera>
-- ARGV[1] clock offset ms   ARGV[2] ingress id   ARGV[3] status name
-- ARGV[4] state updated-at in ns, zero-padded to 20 digits (compared as a string: ns values
--         exceed a Lua number's exact range)   ARGV[5] error text ('' when none)
-- ARGV[6] dedupe window ms
-- Returns: {'OK', outcome} with outcome applied | stale | unknown | duplicate
--          | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local ingress_id = token_arg(ARGV[2], 64)
local status = token_arg(ARGV[3], 40)
local at = ARGV[4]
local window_ms = int_arg(ARGV[6], 1, 86400000)
if offset == nil then return {'INVALID', 'offset'} end
if ingress_id == nil or status == nil then return {'INVALID', 'ingress'} end
if type(at) ~= 'string' or not string.match(at, '^%d+$') or #at ~= 20 then
  return {'INVALID', 'updated_at'}
end
if #ARGV[5] > 300 then return {'INVALID', 'error'} end
if window_ms == nil then return {'INVALID', 'window'} end
if #KEYS ~= 2 then return {'INVALID', 'keys'} end

if redis.call('EXISTS', KEYS[1]) == 1 then return {'OK', 'duplicate'} end
local now = now_ms(offset)
redis.call('SET', KEYS[1], 1, 'PX', window_ms)
if redis.call('HGET', KEYS[2], 'ingress_id') ~= ingress_id then return {'OK', 'unknown'} end
if at <= (redis.call('HGET', KEYS[2], 'ingress_at') or '') then return {'OK', 'stale'} end
redis.call('HSET', KEYS[2], 'ingress_status', status, 'ingress_at', at, 'updated_at', now)
if ARGV[5] == '' then
  redis.call('HDEL', KEYS[2], 'ingress_error')
else
  redis.call('HSET', KEYS[2], 'ingress_error', ARGV[5])
end
return {'OK', 'applied'}
