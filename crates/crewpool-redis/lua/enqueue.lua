-- enqueue.lua: add jobs to the queue, numbering them.
--
-- KEYS[1] seq      STRING  the job-id counter
-- KEYS[2] jobs     HASH    id -> envelope (JSON)
-- KEYS[3] pending  LIST    ids waiting; producers LPUSH, consumers RPOP
-- ARGV    one envelope per job, e.g. {"v":1,"job":{"to":"a@b.c"}}
--
-- Returns {first id, pending length}; the jobs got ids first .. first + #ARGV - 1, in
-- ARGV order, and are delivered in that order (FIFO).
local n = #ARGV
if n == 0 then
  return {0, redis.call('LLEN', KEYS[3])}
end
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
local fields = {}
local ids = {}
for i = 1, n do
  local id = string.format('%d', first + i - 1)
  fields[2 * i - 1] = id
  fields[2 * i] = ARGV[i]
  ids[i] = id
end
redis.call('HSET', KEYS[2], unpack(fields))
local len = redis.call('LPUSH', KEYS[3], unpack(ids))
return {first, len}
