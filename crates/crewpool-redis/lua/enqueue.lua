-- enqueue.lua: add jobs to the queue, numbering them (after `ids.lua`'s helpers).
--
-- KEYS[1] seq      STRING  the job-id counter (see `ids.lua`)
-- KEYS[2] pending  LIST    job records waiting; producers LPUSH, workers RPOP
-- ARGV    one envelope per job, e.g. {"v":1,"job":{"to":"a@b.c"}}
--
-- Each job is pushed as the record '<id>|1|<envelope>' (attempt 1). Returns {first id,
-- pending length}; the jobs got ids first .. first + #ARGV - 1, in ARGV order, and are
-- delivered in that order (FIFO).
local n = #ARGV
if n == 0 then
  return {0, redis.call('LLEN', KEYS[2])}
end
local first = take_ids(KEYS[1], n)
local records = {}
local len = 0
for i = 1, n do
  records[#records + 1] = string.format('%d|1|', first + i - 1) .. ARGV[i]
  -- Lua's unpack has a stack limit: push in slices.
  if #records == 1000 or i == n then
    len = redis.call('LPUSH', KEYS[2], unpack(records))
    records = {}
  end
end
return {first, len}
