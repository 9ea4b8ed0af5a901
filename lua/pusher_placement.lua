-- pusher_placement: record where the camera's pusher runs, or why it waits, as its runtime
-- reports it (a Swarm node's hostname; the scheduler's reason while no node has room),
-- fenced by the generation and the workload the camera records.
--
-- KEYS[1] stream:metadata:<camera>
-- ARGV[1] clock offset ms   ARGV[2] generation of the workload   ARGV[3] its ref (container id)
-- ARGV[4] node ('' none or unknown)   ARGV[5] waiting reason ('' when it is placed)
-- Returns: {'OK'} | {'STALE', current generation} | {'INVALID', argument}
-- STALE: another generation or workload holds the camera; nothing is written.

local offset = int_arg(ARGV[1], -1e13, 1e13)
local gen = int_arg(ARGV[2], 1, 1e15)
if offset == nil then return {'INVALID', 'offset'} end
if gen == nil then return {'INVALID', 'generation'} end
if type(ARGV[3]) ~= 'string' or not string.match(ARGV[3], '^[%w._:-]+$') or #ARGV[3] > 128 then
  return {'INVALID', 'ref'}
end
if type(ARGV[4]) ~= 'string' or #ARGV[4] > 255 or string.match(ARGV[4], '[^%w._-]') then
  return {'INVALID', 'node'}
end
if type(ARGV[5]) ~= 'string' or #ARGV[5] > 300 or string.match(ARGV[5], '[%c]') then
  return {'INVALID', 'waiting'}
end
if #KEYS ~= 1 then return {'INVALID', 'keys'} end

local meta = KEYS[1]
local current = tonumber(redis.call('HGET', meta, 'generation')) or 0
if current ~= gen or redis.call('HGET', meta, 'container_id') ~= ARGV[3] then
  return {'STALE', current}
end
redis.call('HSET', meta, 'node', ARGV[4], 'waiting', ARGV[5], 'placement_generation', gen,
  'placement_at', now_ms(offset))
return {'OK'}
