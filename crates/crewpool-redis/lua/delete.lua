-- delete.lua: delete jobs by id from one state: waiting ('pending', any level), waiting
-- for a retry ('delayed'), waiting for their time ('scheduled') or dead-lettered ('dead').
--
-- KEYS[1]      delayed     ZSET   retry record (with level prefix) -> due time (ms)
-- KEYS[2]      scheduled   ZSET   scheduled record (with level prefix) -> due time (ms)
-- KEYS[3]      dead        LIST   dead letters (JSON) {"record":...,...}, newest first
-- KEYS[4]      unique      HASH   uniqueness key -> job id
-- KEYS[5]      unique_ttl  ZSET   uniqueness key -> when it lapses (ms)
-- KEYS[6..15]  pending     LISTs  job records waiting, of levels 0 (`pending`) to 9
-- ARGV[1] the state; then the job ids
--
-- Returns how many entries were deleted (every copy of an id goes). A deleted job's
-- uniqueness key is released. Reads the state's whole keys in slices of 1,000: O(n) in
-- their length.
local wanted = {}
for i = 2, #ARGV do
  wanted[ARGV[i]] = true
end
local function id_of(member)
  if type(member) ~= 'string' then
    return nil
  end
  local _, record = split_level(member)
  return string.match(record, '^(%d+)|')
end
local function dead_id(entry)
  local ok, letter = pcall(cjson.decode, entry)
  if ok and type(letter) == 'table' then
    return id_of(letter.record)
  end
  return nil
end

-- Collects the matching entries of a key first (deleting while reading would shift
-- the slices), then deletes each once.
local function doomed_of(key, range, id_for)
  local doomed = {}
  local len = redis.call(range == 'LRANGE' and 'LLEN' or 'ZCARD', key)
  for first = 0, len - 1, 1000 do
    for _, entry in ipairs(redis.call(range, key, first, first + 999)) do
      local id = id_for(entry)
      if id and wanted[id] then
        doomed[#doomed + 1] = entry
      end
    end
  end
  return doomed
end

local state = ARGV[1]
local deleted = 0
if state == 'pending' then
  for level = 0, 9 do
    for _, record in ipairs(doomed_of(KEYS[6 + level], 'LRANGE', id_of)) do
      local n = redis.call('LREM', KEYS[6 + level], 1, record)
      if n > 0 then
        release_unique(record, KEYS[4], KEYS[5])
      end
      deleted = deleted + n
    end
  end
  return deleted
elseif state == 'dead' then
  for _, entry in ipairs(doomed_of(KEYS[3], 'LRANGE', dead_id)) do
    deleted = deleted + redis.call('LREM', KEYS[3], 1, entry)
  end
  return deleted
elseif state == 'delayed' or state == 'scheduled' then
  local key = state == 'delayed' and KEYS[1] or KEYS[2]
  for _, member in ipairs(doomed_of(key, 'ZRANGE', id_of)) do
    local n = redis.call('ZREM', key, member)
    if n > 0 then
      release_unique(member, KEYS[4], KEYS[5])
    end
    deleted = deleted + n
  end
  return deleted
end
return redis.error_reply('delete.lua: unknown state ' .. tostring(state))
