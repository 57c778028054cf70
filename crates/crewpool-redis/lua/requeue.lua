-- requeue.lua: move dead letters back to the queue as fresh jobs (attempt 1), each to
-- the back of its priority level's list.
--
-- KEYS[1]      dead     LIST   dead letters (JSON), newest first
-- KEYS[2..11]  pending  LISTs  job records waiting, of levels 0 (`pending`) to 9
-- ARGV[1] 'all' (every dead letter, oldest first) or 'ids'; then the job ids
--
-- Returns how many jobs went back to the queue. A dead letter whose record is
-- malformed goes back as it is (to level 0).
local function fresh(entry)
  local ok, letter = pcall(cjson.decode, entry)
  if not ok or type(letter) ~= 'table' or type(letter.record) ~= 'string' then
    return nil
  end
  local level = tonumber(letter.level) or 0
  if level < 0 or level > 9 or level ~= math.floor(level) then
    level = 0
  end
  local id, rest = string.match(letter.record, '^(%d+)|%d+|()')
  if not id then
    return letter.record, 0
  end
  return id .. '|1|' .. string.sub(letter.record, rest), level
end
local moved, woken = 0, false
local function back(record, level)
  redis.call('LPUSH', KEYS[2 + level], record)
  moved = moved + 1
  if level > 0 then woken = true end
end
if ARGV[1] == 'all' then
  local entry = redis.call('RPOP', KEYS[1])
  while entry do
    local record, level = fresh(entry)
    if record then
      back(record, level)
    end
    entry = redis.call('RPOP', KEYS[1])
  end
else
  local wanted = {}
  for i = 2, #ARGV do wanted[ARGV[i]] = true end
  local entries = redis.call('LRANGE', KEYS[1], 0, -1)
  -- Oldest first, like 'all'.
  for i = #entries, 1, -1 do
    local id = string.match(entries[i], '"record":"(%d+)|')
    if id and wanted[id] then
      wanted[id] = nil
      local record, level = fresh(entries[i])
      if record and redis.call('LREM', KEYS[1], 1, entries[i]) == 1 then
        back(record, level)
      end
    end
  end
end
if woken then
  wake(KEYS[2])
end
return moved
