-- set_limit: set a source's (or the TOTAL) limit. Refuses a limit below live usage, so the
-- invariant "counter never above its limit" holds; kick leases first to lower further.
--
-- KEYS[1] stream:limit:<SOURCE> or stream:limit:TOTAL
-- KEYS[2] the lease set the limit bounds: stream:leases:source:<SOURCE>, or stream:leases
-- ARGV[1] clock offset ms   ARGV[2] new limit (0 .. 1e9)
-- Returns: {'OK', previous limit or -1, new limit} | {'BELOW_USAGE', live, limit}
--          | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local limit = int_arg(ARGV[2], 0, 1e9)
if offset == nil then return {'INVALID', 'offset'} end
if limit == nil then return {'INVALID', 'limit'} end
if #KEYS ~= 2 then return {'INVALID', 'keys'} end

local live = live_count(KEYS[2], now_ms(offset))
if limit < live then return {'BELOW_USAGE', live, limit} end
local before = tonumber(redis.call('GET', KEYS[1])) or -1
redis.call('SET', KEYS[1], limit)
return {'OK', before, limit}
