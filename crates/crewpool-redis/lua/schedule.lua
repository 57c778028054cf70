-- schedule.lua: add, replace or remove a periodic schedule.
--
-- KEYS[1] schedules  HASH    name -> the schedule (JSON, see below)
-- KEYS[2] ticks      HASH    name -> the last tick fired or passed (ms since the epoch)
-- KEYS[3] schedver   STRING  the schedules' version counter (every change increments it)
-- KEYS[4] pending    LIST    level 0's list: a wake marker tells idle workers to look
-- ARGV[1] 'set' or 'remove'  ARGV[2] the name
-- ARGV[3] for 'set': the schedule as a JSON object without "version" and "since", e.g.
--         {"cron":"0 */5 * * * *","level":0,"missed":"latest","job":{"report":"daily"}}
--
-- 'set' stores {"version":<n>,"since":<now>,...the rest}: the version is the counter's
-- new value, `since` Redis's clock now (an interval schedule's ticks count from it).
-- Ticks before now never fire: a new schedule starts now, a changed one from now on.
-- Returns the version. 'remove' returns 1 if the schedule existed, else 0.
local name = ARGV[2]
if ARGV[1] == 'remove' then
  local removed = redis.call('HDEL', KEYS[1], name)
  redis.call('HDEL', KEYS[2], name)
  if removed > 0 then
    redis.call('INCR', KEYS[3])
  end
  return removed
elseif ARGV[1] ~= 'set' then
  return redis.error_reply('schedule.lua: unknown operation ' .. tostring(ARGV[1]))
end
local spec = ARGV[3]
if not string.match(spec, '^{%s*"') then
  return redis.error_reply('schedule.lua: the schedule must be a non-empty JSON object')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local version = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], name, string.format('{"version":%d,"since":%d,', version, now)
  .. string.sub(spec, 2))
local last = tonumber(redis.call('HGET', KEYS[2], name)) or 0
if last < now then
  redis.call('HSET', KEYS[2], name, string.format('%d', now))
end
wake(KEYS[4])
return version
