-- heartbeat: extend a live lease. Never shortens it.
--
-- KEYS[1] stream:reservation:<rid>   KEYS[2] stream:leases:source:<SOURCE>
-- KEYS[3] stream:leases:camera:<camera>   KEYS[4] stream:leases
-- KEYS[5] stream:count:<SOURCE>      KEYS[6] stream:metadata:<camera> (unused, keeps the layout)
-- KEYS[7] stream:camera:<camera>     the registry entry: a deleted or disabled camera's lease
--                                    is not renewed and gets no fresh token
-- ARGV[1] clock offset ms   ARGV[2] lease member   ARGV[3] lease ms (> 0)
-- ARGV[4] hash garbage-collection slack ms
-- ARGV[5] token refresh window ms   ARGV[6] token TTL ms
--   When the lease's viewer token expires within the window, a new token expiry is recorded
--   and returned: the caller mints a token that expires then.
-- Returns: {'OK', expires_at_ms, new token expiry ms or 0, user id} | {'NOT_FOUND'}
--          | {'CAMERA_DISABLED'} | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local lease_ms = int_arg(ARGV[3], 1, 86400000)
local gc_ms = int_arg(ARGV[4], 0, 86400000)
local window_ms = int_arg(ARGV[5], 0, 86400000)
local token_ms = int_arg(ARGV[6], 1, 86400000)
if offset == nil then return {'INVALID', 'offset'} end
if lease_ms == nil then return {'INVALID', 'lease_ms'} end
if gc_ms == nil then return {'INVALID', 'gc_ms'} end
if window_ms == nil or token_ms == nil then return {'INVALID', 'token'} end
if #KEYS ~= 7 then return {'INVALID', 'keys'} end

local now = now_ms(offset)
local member = ARGV[2]
local score = tonumber(redis.call('ZSCORE', KEYS[4], member))
if score == nil or score <= now or redis.call('EXISTS', KEYS[1]) == 0 then
  return {'NOT_FOUND'}
end
local enabled = redis.call('HGET', KEYS[7], 'enabled')
if not enabled then return {'NOT_FOUND'} end  -- the camera was deleted: so is its viewing
if enabled ~= '1' then return {'CAMERA_DISABLED'} end
local expires = math.max(score, now + lease_ms)
if expires > score then
  redis.call('ZADD', KEYS[2], 'XX', expires, member)
  redis.call('ZADD', KEYS[3], 'XX', expires, member)
  redis.call('ZADD', KEYS[4], 'XX', expires, member)
  redis.call('HSET', KEYS[1], 'expires_at', expires)
  redis.call('PEXPIREAT', KEYS[1], expires + gc_ms)
end
local token_exp = tonumber(redis.call('HGET', KEYS[1], 'token_expires_at')) or 0
local new_token = 0
if token_exp - now <= window_ms then
  new_token = now + token_ms
  redis.call('HSET', KEYS[1], 'token_expires_at', new_token)
end
return {'OK', expires, new_token, redis.call('HGET', KEYS[1], 'user_id') or ''}
