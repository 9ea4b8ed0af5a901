-- codec_report: record what the camera's running pusher reports the camera encodes
-- (profile, level, size, frame rate, B-frames), fenced by the pusher's generation.
--
-- KEYS[1] stream:metadata:<camera>
-- ARGV[1] clock offset ms   ARGV[2] generation of the pusher that reported
-- ARGV[3] profile name   ARGV[4] level ('3.1')   ARGV[5] width px   ARGV[6] height px
-- ARGV[7] frames per second ('' when unknown)   ARGV[8] B-frames seen: '1' | '0'
-- Returns: {'OK'} | {'STALE', current generation} | {'INVALID', argument}
-- STALE: a newer generation holds the camera; its own pusher will report.

local offset = int_arg(ARGV[1], -1e13, 1e13)
local gen = int_arg(ARGV[2], 1, 1e15)
local width = int_arg(ARGV[5], 1, 16384)
local height = int_arg(ARGV[6], 1, 16384)
local fps = tonumber(ARGV[7])
if offset == nil then return {'INVALID', 'offset'} end
if gen == nil then return {'INVALID', 'generation'} end
if type(ARGV[3]) ~= 'string' or not string.match(ARGV[3], '^[%w :()]+$') or #ARGV[3] > 40 then
  return {'INVALID', 'profile'}
end
if type(ARGV[4]) ~= 'string' or not string.match(ARGV[4], '^[%w.]+$') or #ARGV[4] > 4 then
  return {'INVALID', 'level'}
end
if width == nil or height == nil then return {'INVALID', 'size'} end
if ARGV[7] ~= '' and (fps == nil or fps <= 0 or fps > 1000) then return {'INVALID', 'fps'} end
if ARGV[8] ~= '0' and ARGV[8] ~= '1' then return {'INVALID', 'b_frames'} end
if #KEYS ~= 1 then return {'INVALID', 'keys'} end

local current = tonumber(redis.call('HGET', KEYS[1], 'generation')) or 0
if current ~= gen then return {'STALE', current} end
redis.call('HSET', KEYS[1], 'codec_profile', ARGV[3], 'codec_level', ARGV[4],
  'codec_width', width, 'codec_height', height, 'codec_fps', ARGV[7],
  'codec_b_frames', ARGV[8], 'codec_generation', gen, 'codec_at', now_ms(offset))
return {'OK'}
