-- stats_snapshot: read only. Every active camera's live leases counted by source and by
-- connected viewer, with its name and the metadata fields stats show, and the limits, in one
-- call: the stats snapshot costs one round trip and no Python work per lease.
--
-- KEYS[1] stream:leases   KEYS[2] stream:limit:TOTAL
-- then per camera, 4 keys: stream:leases:camera:<id>, stream:metadata:<id>,
--   stream:camera:<id>, stream:presence:<id>
-- then one stream:limit:<SOURCE> per source
-- ARGV[1] clock offset ms   ARGV[2] number of cameras   ARGV[3] lease member separator
-- ARGV[4..] the metadata fields to read
-- Returns {'OK', now, live leases, total limit or false, {camera...}, {limit or false...}}
--   each camera one JSON text (so a reader compares it with the last one as a whole):
--   [live leases, connected viewers, {source: live leases}, name or false,
--    [value or false of each field]]
-- | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
if offset == nil then return {'INVALID', 'offset'} end
local cameras = int_arg(ARGV[2], 0, 1e7)
if cameras == nil then return {'INVALID', 'cameras'} end
local sep = ARGV[3]
if sep == nil or #sep ~= 1 then return {'INVALID', 'separator'} end
if #KEYS < 2 + 4 * cameras then return {'INVALID', 'keys'} end
local fields = {}
for k = 4, #ARGV do fields[#fields + 1] = ARGV[k] end
if #fields == 0 then return {'INVALID', 'fields'} end

local now = now_ms(offset)
local live = '(' .. now

local rows = {}
for i = 0, cameras - 1 do
  local base = 3 + 4 * i
  local members = redis.call('ZRANGE', KEYS[base], live, '+inf', 'BYSCORE')
  local present = {}
  for _, rid in ipairs(redis.call('SMEMBERS', KEYS[base + 3])) do present[rid] = true end
  -- a member is <reservation id>|<camera id>|<source>; none of the three holds the separator
  local counts, connected = {}, 0
  for _, member in ipairs(members) do
    local first = string.find(member, sep, 1, true)
    if first ~= nil then
      local second = string.find(member, sep, first + 1, true) or first
      if present[string.sub(member, 1, first - 1)] then connected = connected + 1 end
      local source = string.sub(member, second + 1)
      counts[source] = (counts[source] or 0) + 1
    end
  end
  rows[i + 1] = cjson.encode({#members, connected, counts,
    redis.call('HGET', KEYS[base + 2], 'name'),
    redis.call('HMGET', KEYS[base + 1], unpack(fields))})
end

local limits = {}
for k = 3 + 4 * cameras, #KEYS do
  limits[#limits + 1] = redis.call('GET', KEYS[k])
end
return {'OK', now, live_count(KEYS[1], now), redis.call('GET', KEYS[2]), rows, limits}
