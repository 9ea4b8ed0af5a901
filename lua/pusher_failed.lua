-- pusher_failed: a start failed or a running container died. Schedules the restart.
--
-- The failure is matched by container id when one is given (a death seen by the engine's
-- events or a listing), else by generation (a start that failed before a container ran).
-- Our own teardown (STOPPING) and stale reports never match. The restart count grows by
-- one; the attempt count restarts from 1 when the container had run for ARGV[5] ms, so a
-- crash loop backs off while a rare crash restarts fast.
--
-- KEYS[1] stream:metadata:<camera>
-- ARGV[1] clock offset ms   ARGV[2] generation   ARGV[3] container id or ''
-- ARGV[4] error text (no secrets)   ARGV[5] stable ms
-- ARGV[6..] restart delays ms for attempt 1, 2, ... (the last one repeats)
-- Returns: {'OK', attempts, retry_at_ms} | {'STALE', state} | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local gen = int_arg(ARGV[2], 1, 1e15)
local stable_ms = int_arg(ARGV[5], 0, 86400000)
local n = #ARGV - 5
if offset == nil then return {'INVALID', 'offset'} end
if gen == nil then return {'INVALID', 'generation'} end
if stable_ms == nil then return {'INVALID', 'stable_ms'} end
if n < 1 or n > 64 then return {'INVALID', 'delays'} end
for i = 6, #ARGV do
  if int_arg(ARGV[i], 0, 86400000) == nil then return {'INVALID', 'delays'} end
end
if #KEYS ~= 1 then return {'INVALID', 'keys'} end

local meta = KEYS[1]
local now = now_ms(offset)
local state = redis.call('HGET', meta, 'state') or 'IDLE'
local current = tonumber(redis.call('HGET', meta, 'generation')) or 0
local cid = redis.call('HGET', meta, 'container_id')
local matches
if ARGV[3] ~= '' then
  matches = (cid == ARGV[3])
else
  matches = (current == gen)
end
if not matches then return {'STALE', state} end

local phase = state
if state == 'DRAINING' then phase = redis.call('HGET', meta, 'resume') or '' end
if phase ~= 'STARTING' and phase ~= 'RUNNING' then return {'STALE', state} end

local attempts = tonumber(redis.call('HGET', meta, 'attempts')) or 0
local since = tonumber(redis.call('HGET', meta, 'running_since')) or now
if phase == 'RUNNING' and now - since >= stable_ms then attempts = 0 end
attempts = attempts + 1
local delay = tonumber(ARGV[5 + math.min(attempts, n)])
local retry_at = now + delay
if state == 'DRAINING' then
  redis.call('HSET', meta, 'resume', 'FAILED')
else
  redis.call('HSET', meta, 'state', 'FAILED')
end
redis.call('HSET', meta, 'attempts', attempts, 'retry_at', retry_at, 'last_error', ARGV[4],
  'updated_at', now)
redis.call('HINCRBY', meta, 'restarts', 1)
redis.call('HDEL', meta, 'container_id', 'claim_deadline', 'running_since')
return {'OK', attempts, retry_at}
