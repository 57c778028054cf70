-- requeue.lua: move dead letters back to the queue as fresh jobs (attempt 1).
--
-- KEYS[1] dead     LIST  dead letters (JSON), newest first
-- KEYS[2] pending  LIST  job records waiting
-- ARGV[1] 'all' (every dead letter, oldest first) or 'ids'; then the job ids
--
-- Returns how many jobs went back to the queue. A dead letter whose record is
-- malformed goes back as it is.
local function fresh(entry)
  local ok, letter = pcall(cjson.decode, entry)
  if not ok or type(letter) ~= 'table' or type(letter.record) ~= 'string' then
    return nil
  end
  local id, rest = string.match(letter.record, '^(%d+)|%d+|()')
  if not id then
    return letter.record
  end
  return id .. '|1|' .. string.sub(letter.record, rest)
end
local moved = 0
if ARGV[1] == 'all' then
  local entry = redis.call('RPOP', KEYS[1])
  while entry do
    local record = fresh(entry)
    if record then
      redis.call('LPUSH', KEYS[2], record)
      moved = moved + 1
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
      local record = fresh(entries[i])
      if record and redis.call('LREM', KEYS[1], 1, entries[i]) == 1 then
        redis.call('LPUSH', KEYS[2], record)
        moved = moved + 1
      end
    end
  end
end
return moved
