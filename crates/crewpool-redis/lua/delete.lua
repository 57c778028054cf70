-- delete.lua: delete jobs by id from one state: waiting ('pending'), waiting for a
-- retry ('delayed') or dead-lettered ('dead').
--
-- KEYS[1] pending  LIST  job records '<id>|<attempt>|<envelope>'
-- KEYS[2] delayed  ZSET  record -> due time (ms)
-- KEYS[3] dead     LIST  dead letters (JSON) {"record":...,...}, newest first
-- ARGV[1] the state; then the job ids
--
-- Returns how many entries were deleted (every copy of an id goes). Reads the state's
-- whole key in slices of 1,000: O(n) in its length.
local wanted = {}
for i = 2, #ARGV do
  wanted[ARGV[i]] = true
end
local function id_of(record)
  return type(record) == 'string' and string.match(record, '^(%d+)|') or nil
end
local function dead_id(entry)
  local ok, letter = pcall(cjson.decode, entry)
  if ok and type(letter) == 'table' then
    return id_of(letter.record)
  end
  return nil
end

-- Collects the matching entries of a list first (deleting while reading would shift
-- the slices), then deletes each once.
local function from_list(key, id_for)
  local doomed = {}
  local len = redis.call('LLEN', key)
  for first = 0, len - 1, 1000 do
    for _, entry in ipairs(redis.call('LRANGE', key, first, first + 999)) do
      local id = id_for(entry)
      if id and wanted[id] then
        doomed[#doomed + 1] = entry
      end
    end
  end
  local deleted = 0
  for _, entry in ipairs(doomed) do
    deleted = deleted + redis.call('LREM', key, 1, entry)
  end
  return deleted
end

local state = ARGV[1]
if state == 'pending' then
  return from_list(KEYS[1], id_of)
elseif state == 'dead' then
  return from_list(KEYS[3], dead_id)
elseif state == 'delayed' then
  local deleted = 0
  local len = redis.call('ZCARD', KEYS[2])
  local doomed = {}
  for first = 0, len - 1, 1000 do
    for _, record in ipairs(redis.call('ZRANGE', KEYS[2], first, first + 999)) do
      local id = id_of(record)
      if id and wanted[id] then
        doomed[#doomed + 1] = record
      end
    end
  end
  for _, record in ipairs(doomed) do
    deleted = deleted + redis.call('ZREM', KEYS[2], record)
  end
  return deleted
end
return redis.error_reply('delete.lua: unknown state ' .. tostring(state))
