-- fire.lua: enqueue the job of one tick of a periodic schedule, once whichever of the
-- processes running the schedule calls first.
--
-- KEYS[1] schedules  HASH    name -> the schedule (JSON: {"version":n,...})
-- KEYS[2] ticks      HASH    name -> the last tick fired or passed (ms since the epoch)
-- KEYS[3] seq        STRING  the job-id counter (see `ids.lua`)
-- KEYS[4] list       LIST    the schedule's level's list (`pending` or `pending:<level>`)
-- KEYS[5] pending    LIST    level 0's list (wake markers)
-- KEYS[6] levels     SET     the levels other than 0 ever used
-- KEYS[7] fired      LIST    the last 1,000 fires, newest first:
--                            {"schedule":name,"tick":ms,"id":id,"at":ms}
-- ARGV[1] the name  ARGV[2] the tick (ms since the epoch)  ARGV[3] the version the
-- caller computed the tick from  ARGV[4] '' (fire however late) or the most a tick may
-- be late and still fire (ms)  ARGV[5] the level  ARGV[6] the job's envelope
--
-- The tick fires only if it is later than the last tick fired or passed (so each tick
-- fires once, whoever calls), the schedule still has that version, and the tick has
-- come by Redis's clock. Returns {code, value}: {1, id} fired as job id; {0, last} not
-- later than the last tick; {-1, 0} the schedule changed or was removed (reload it);
-- {-2, ms} the tick is still ms away; {-3, 0} too late: passed (recorded, not fired).
local name, tick = ARGV[1], tonumber(ARGV[2])
local spec = redis.call('HGET', KEYS[1], name)
if not spec or string.match(spec, '^{"version":(%d+),') ~= ARGV[3] then
  return {-1, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tick > now then
  return {-2, tick - now}
end
local last = tonumber(redis.call('HGET', KEYS[2], name)) or 0
if tick <= last then
  return {0, last}
end
redis.call('HSET', KEYS[2], name, string.format('%d', tick))
if ARGV[4] ~= '' and now - tick > tonumber(ARGV[4]) then
  return {-3, 0}
end
local level = tonumber(ARGV[5])
local id = take_ids(KEYS[3], 1)
redis.call('LPUSH', KEYS[4], string.format('%d|1|', id) .. ARGV[6])
if level > 0 then
  redis.call('SADD', KEYS[6], level)
  wake(KEYS[5])
end
-- Numbers written with %d: cjson would round ids past 14 digits.
redis.call('LPUSH', KEYS[7], string.format('{"schedule":%s,"tick":%d,"id":%d,"at":%d}',
  cjson.encode(name), tick, id, now))
redis.call('LTRIM', KEYS[7], 0, 999)
return {1, id}
