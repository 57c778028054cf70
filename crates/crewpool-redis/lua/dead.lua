-- dead.lua: helpers prepended to the scripts that read job records and dead-letter
-- jobs (fetch, retry, bury, release, delete; see `scripts.rs`).

-- The documented bounds of a job record '<id>|<attempt>|<envelope>': ids 1 to 2^53 - 1
-- (exact in every language's numbers), attempts 1 to 2^32 - 1.
local MAX_ID = 9007199254740991
local MAX_ATTEMPT = 4294967295

-- A record's field, shortened for a message.
local function preview(field)
  if #field > 24 then
    return string.sub(field, 1, 24) .. '...'
  end
  return field
end

-- Splits a job record and checks it against the documented format (the same checks,
-- with the same reasons, as `Record::parse` in `wire.rs`). Returns the id (its digits),
-- the attempt (a number) and the position of the envelope's first byte; or nil and why
-- not. `max_envelope` (nil: no limit) bounds the envelope's size in bytes.
local function parse_record(record, max_envelope)
  local id, attempt, rest = string.match(record, '^(%d+)|(%d+)|()')
  if not id then
    return nil, 'malformed job record (expected <id>|<attempt>|<envelope>)'
  end
  local n = tonumber(id)
  if #id > 16 or n < 1 or n > MAX_ID then
    return nil, 'invalid job id ' .. preview(id) .. ' (ids are 1 to 2^53 - 1)'
  end
  local a = tonumber(attempt)
  if #attempt > 10 or a < 1 or a > MAX_ATTEMPT then
    return nil, 'invalid attempt ' .. preview(attempt) .. ' (attempts are 1 to 2^32 - 1)'
  end
  local size = #record - rest + 1
  if max_envelope and size > max_envelope then
    return nil, string.format("the envelope is %d bytes, over this worker's limit of %d bytes "
      .. '(`RedisConfig::max_payload`)', size, max_envelope)
  end
  return id, a, rest
end

-- A record outside its level's pending list (leased, delayed, scheduled) carries its
-- priority level as a prefix '<level>:' when the level is not 0. Returns the level (a
-- number) and the record without the prefix.
local function split_level(member)
  local level, rest = string.match(member, '^(%d):()')
  if level then
    return tonumber(level), string.sub(member, rest)
  end
  return 0, member
end

-- The record with its level prefix (none for level 0).
local function with_level(level, record)
  if level > 0 then
    return level .. ':' .. record
  end
  return record
end

-- Pushes a dead letter {"record":...,"reason":...,"attempt":n,"level":p,"at":ms} (newest
-- first) of a record that may carry its level prefix; `attempt` is left out when the
-- record does not have a valid one, `level` when it is 0.
local function dead_letter(key, member, reason, attempt, now)
  local level, record = split_level(member)
  if level == 0 then
    level = nil
  end
  redis.call('LPUSH', key, cjson.encode({record = record, reason = reason, attempt = attempt,
    level = level, at = now}))
end

-- Releases the uniqueness key of a job leaving the queue for good (dead-lettered or
-- deleted), if its envelope has one ("unique":"<key>") and the key still names this job.
-- Decodes the envelope only when it mentions "unique": plain jobs cost a substring search.
local function release_unique(member, unique, unique_ttl)
  local _, record = split_level(member)
  local id, _, rest = parse_record(record, nil)
  if not id or not string.find(record, '"unique"', rest, true) then
    return
  end
  local ok, envelope = pcall(cjson.decode, string.sub(record, rest))
  if ok and type(envelope) == 'table' and type(envelope.unique) == 'string'
      and redis.call('HGET', unique, envelope.unique) == id then
    redis.call('HDEL', unique, envelope.unique)
    redis.call('ZREM', unique_ttl, envelope.unique)
  end
end

-- The attempt of a record (which may carry its level prefix), when it is valid (for its
-- dead letter).
local function attempt_of(member)
  local _, record = split_level(member)
  local id, attempt = parse_record(record, nil)
  if id then
    return attempt
  end
  return nil
end

-- Bounds the dead-letter list: at most `max_count` entries, and the oldest dropped
-- while it takes more than `max_bytes` of Redis memory (MEMORY USAGE), the newest
-- always kept. A user whose ACL forbids MEMORY gets the count bound only.
local function trim_dead(key, max_count, max_bytes)
  redis.call('LTRIM', key, 0, max_count - 1)
  local len = redis.call('LLEN', key)
  if len <= 1 then
    return
  end
  local used = redis.pcall('MEMORY', 'USAGE', key, 'SAMPLES', '0')
  if type(used) ~= 'number' then
    return
  end
  while used > max_bytes and len > 1 do
    -- An entry takes at least its length: the estimate stays at or above the truth.
    used = used - #redis.call('RPOP', key)
    len = len - 1
  end
end

