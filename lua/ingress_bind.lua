-- ingress_bind: keep a camera's reusable WHIP ingress id (compare-and-set).
--
-- KEYS[1] stream:metadata:<camera>
-- ARGV[1] the id the caller saw ('' for none)   ARGV[2] the id to keep
-- Returns: {'OK', kept id}. The kept id differs from ARGV[2] when another replica bound one
-- first: the caller then deletes its own ingress and uses the kept one.
--          | {'INVALID', argument}

local expected = ARGV[1]
local wanted = token_arg(ARGV[2], 64)
if type(expected) ~= 'string' or #expected > 64 then return {'INVALID', 'expected'} end
if wanted == nil then return {'INVALID', 'ingress'} end
if #KEYS ~= 1 then return {'INVALID', 'keys'} end

local current = redis.call('HGET', KEYS[1], 'ingress_id') or ''
if current ~= expected and current ~= '' then return {'OK', current} end
if current ~= wanted then
  redis.call('HSET', KEYS[1], 'ingress_id', wanted)
  redis.call('HDEL', KEYS[1], 'ingress_status', 'ingress_at', 'ingress_error')
end
return {'OK', wanted}
