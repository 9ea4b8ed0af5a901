-- recount: rebuild a source's counter from its lease set (the truth).
--
-- KEYS[1] stream:leases:source:<SOURCE>   KEYS[2] stream:count:<SOURCE>
-- ARGV[1] clock offset ms
-- Returns: {previous counter value or -1 when absent/corrupt, new value} | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
if offset == nil then return {'INVALID', 'offset'} end
if #KEYS ~= 2 then return {'INVALID', 'keys'} end

local before = tonumber(redis.call('GET', KEYS[2])) or -1
local after = recount(KEYS[1], KEYS[2], now_ms(offset))
return {before, after}
