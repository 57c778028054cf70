-- ids.lua: the helpers of the counters that number jobs (`seq`) and leases (`fence`),
-- prepended to the scripts that add jobs (enqueue, push, fire, reserve) and, before
-- `fence.lua`, to those that take leases (fetch, abandon); see `scripts.rs`.

-- The next number of a counter (job ids, lease numbers): one more than the last it
-- gave, and never below Redis's clock in microseconds. A replica promoted by a failover
-- may lack the last increments of the counter (replication is asynchronous), and so
-- the last jobs' ids or the last deliveries' lease numbers; its clock has moved on by
-- the failover's length (seconds), so the numbers it gives are above every number the
-- old master gave, as long as the two clocks differ by less than that and numbers were
-- not given faster than one per microsecond on average (which would put the counter
-- ahead of the clock). The numbers stay below 2^53 (exact in Lua's doubles and in
-- every language's numbers) until the year 2255. The caller writes the counter.
local function next_number(counter)
  local t = redis.call('TIME')
  local clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
  return math.max((tonumber(redis.call('GET', counter)) or 0) + 1, clock)
end

-- Takes n job ids (n >= 1): returns the first; the call owns first .. first + n - 1.
local function take_ids(seq, n)
  local first = next_number(seq)
  redis.call('SET', seq, string.format('%d', first + n - 1))
  return first
end
