-- push.lua: add jobs with options: a priority level, a due time, a start deadline, a
-- uniqueness key. (`enqueue.lua` is the plain form: level 0, now, no options.) Runs
-- after `ids.lua`'s helpers.
--
-- KEYS[1] seq         STRING  the job-id counter (see `ids.lua`)
-- KEYS[2] pending     LIST    level 0's list (`pending`): wake markers
-- KEYS[3] list        LIST    the level's list (`pending` for 0, `pending:<level>` else)
-- KEYS[4] scheduled   ZSET    scheduled record (with level prefix) -> due time (ms)
-- KEYS[5] levels      SET     the levels other than 0 ever used
-- KEYS[6] unique      HASH    uniqueness key -> job id
-- KEYS[7] unique_ttl  ZSET    uniqueness key -> when it lapses (ms)
-- ARGV[1] the priority level, 0 to 9 (higher runs first)
-- ARGV[2] when the jobs are due: '' now; 'at:<ms>' at that time (ms since the Unix
--         epoch); 'in:<ms>' that long from now (Redis clock)
-- ARGV[3] the start deadline: '' none; 'by:<ms>' that time; 'within:<ms>' that long
--         after the jobs are due. A job not started by then is dead-lettered with the
--         reason "expired" instead of running.
-- ARGV[4] '' or the uniqueness TTL (ms): then each job is preceded by its key
-- ARGV[5..] the jobs: [uniqueness key,] envelope (a JSON object, e.g.
--           {"v":1,"job":{"to":"a@b.c"}})
--
-- The start deadline and the uniqueness key are written into each envelope, as
-- "start_by":<ms> and "unique":"<key>" (do not put them there yourself). A job with a
-- uniqueness key whose key names a job that is pending, scheduled, retrying or running
-- is not added: the existing job's id is returned instead, negated. The key is held
-- until its job is acknowledged, dead-lettered or deleted, or for the TTL at most.
--
-- Returns one number per job: its new id, or minus the id of the job holding its key.
--
-- Jobs of a level other than 0, and a job due before everything scheduled so far, are
-- announced to idle workers by the wake marker '~wake' at the front of the level-0
-- list, pushed only while that list is empty (see `levels.lua`).
local function wake(pending)
  if redis.call('LLEN', pending) == 0 then
    redis.call('RPUSH', pending, '~wake')
  end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local level = tonumber(ARGV[1])
if not level or level < 0 or level > 9 or level ~= math.floor(level) then
  return redis.error_reply('push.lua: the level must be 0 to 9, got ' .. tostring(ARGV[1]))
end

local due = now
local mode, value = string.match(ARGV[2], '^(%a+):(%d+)$')
if mode == 'at' then
  due = tonumber(value)
elseif mode == 'in' then
  due = now + tonumber(value)
elseif ARGV[2] ~= '' then
  return redis.error_reply('push.lua: the due time must be "", "at:<ms>" or "in:<ms>"')
end

local start_by
mode, value = string.match(ARGV[3], '^(%a+):(%d+)$')
if mode == 'by' then
  start_by = tonumber(value)
elseif mode == 'within' then
  start_by = math.max(due, now) + tonumber(value)
elseif ARGV[3] ~= '' then
  return redis.error_reply('push.lua: the deadline must be "", "by:<ms>" or "within:<ms>"')
end

local ttl = tonumber(ARGV[4])
local step = ttl and 2 or 1
local n = (#ARGV - 4) / step
if n ~= math.floor(n) then
  return redis.error_reply('push.lua: a uniqueness key without an envelope')
end

-- The envelope with the options written in front of its fields.
local function with_options(envelope, key)
  if string.sub(envelope, 1, 1) ~= '{' then
    return nil
  end
  local fields = {}
  if key then
    fields[#fields + 1] = '"unique":' .. cjson.encode(key)
  end
  if start_by then
    fields[#fields + 1] = '"start_by":' .. string.format('%d', start_by)
  end
  if #fields == 0 then
    return envelope
  end
  local rest = string.sub(envelope, 2)
  if string.match(rest, '^%s*}') then
    return '{' .. table.concat(fields, ',') .. rest
  end
  return '{' .. table.concat(fields, ',') .. ',' .. rest
end

local scheduled = due > now
local out, records = {}, {}
local fresh = 0
-- The jobs added get the ids first, first + 1, ... (a job whose key is held takes
-- none); the counter is written once, when the jobs are in or at an error (which
-- leaves the ids of the jobs before it taken, as their uniqueness keys may name them).
local first = next_number(KEYS[1])
local function keep_ids()
  if fresh > 0 then
    redis.call('SET', KEYS[1], string.format('%d', first + fresh - 1))
  end
end
for i = 1, n do
  local key = ttl and ARGV[4 + 2 * i - 1] or nil
  local envelope = ARGV[4 + step * i]
  local holder = key and redis.call('HGET', KEYS[6], key)
  if holder then
    local lapses = tonumber(redis.call('ZSCORE', KEYS[7], key))
    if lapses and lapses <= now then
      holder = nil
    end
  end
  if holder then
    out[i] = -tonumber(holder)
  else
    local body = with_options(envelope, key)
    if not body then
      keep_ids()
      return redis.error_reply('push.lua: an envelope must be a JSON object')
    end
    local id = first + fresh
    local record = string.format('%d|1|', id) .. body
    if key then
      redis.call('HSET', KEYS[6], key, string.format('%d', id))
      redis.call('ZADD', KEYS[7], now + ttl, key)
    end
    if scheduled then
      local member = record
      if level > 0 then
        member = level .. ':' .. record
      end
      records[#records + 1] = due
      records[#records + 1] = member
    else
      records[#records + 1] = record
    end
    out[i] = id
    fresh = fresh + 1
  end
end
keep_ids()

if fresh > 0 then
  if level > 0 then
    redis.call('SADD', KEYS[5], level)
  end
  if scheduled then
    -- A job due before everything scheduled so far: blocked fetchers re-arm their timers.
    local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    for i = 1, #records, 4000 do
      redis.call('ZADD', KEYS[4], unpack(records, i, math.min(i + 3999, #records)))
    end
    if #first == 0 or due < tonumber(first[2]) then
      wake(KEYS[2])
    end
  else
    for i = 1, #records, 1000 do
      redis.call('LPUSH', KEYS[3], unpack(records, i, math.min(i + 999, #records)))
    end
    if level > 0 then
      wake(KEYS[2])
    end
  end
end
return out
