-- retry.lua: schedule a failed job's next attempt. The caller decided, with its retry
-- policy: no attempt limit applies here (one policy, applied once).
--
-- KEYS[1]  leased      HASH  '<lease>:<n>' -> job record '[<level>:]<id>|<attempt>|<envelope>'
-- KEYS[2]  active      ZSET  lease -> deadline
-- KEYS[3]  leases      HASH  '<lease>' -> jobs still leased under it; '<lease>:n' -> size
-- KEYS[4]  delayed     ZSET  retry record (with its level prefix) -> due time (ms)
-- KEYS[5]  pending     LIST  job records waiting, of the job's level
-- KEYS[6]  dead        LIST  dead letters (JSON), newest first
-- KEYS[7]  stats       HASH  totals: 'succeeded', 'failed', 'expired', 'missed_deadline'
-- KEYS[8]  pending     LIST  level 0's (wake markers)
-- KEYS[9]  unique      HASH  uniqueness key -> job id
-- KEYS[10] unique_ttl  ZSET  uniqueness key -> when it lapses (ms)
-- ARGV[1] field '<lease>:<n>'  ARGV[2] delay (ms)  ARGV[3] reason
-- ARGV[4] dead-letter bound (entries)  ARGV[5] dead-letter bound (bytes of memory)
--
-- Returns 1 scheduled; 2 dead-lettered (a record that breaks the format; its
-- uniqueness key is released); 0 lease lost.
local member = take(ARGV[1])
if not member then
  return 0
end
redis.call('HINCRBY', KEYS[7], 'failed', 1)
local now = now_ms()
local delay = tonumber(ARGV[2])
local level, record = split_level(member)
local id, attempt, rest = parse_record(record, nil)
if not id then
  dead_letter(KEYS[6], member, ARGV[3], nil, now)
  release_unique(member, KEYS[9], KEYS[10])
  trim_dead(KEYS[6], tonumber(ARGV[4]), tonumber(ARGV[5]))
  return 2
end
local next_record = id .. '|' .. (attempt + 1) .. '|' .. string.sub(record, rest)
if delay <= 0 then
  redis.call('LPUSH', KEYS[5], next_record)
  if level > 0 then
    wake(KEYS[8])
  end
else
  redis.call('ZADD', KEYS[4], now + delay, with_level(level, next_record))
end
return 1
