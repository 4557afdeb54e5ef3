-- paths.lua: wrk script for bench/warm/run.sh.
--
--   wrk -t2 -c64 -d15s -s bench/warm/paths.lua http://127.0.0.1:PORT -- PATHS_FILE
--
-- Each request is a GET of a path picked at random from PATHS_FILE (one
-- request path per line; a file of one line asks for the same path every
-- time). There is no response() callback on purpose: with one, wrk would copy
-- every response body (34 MiB zips) into Lua. Statuses >= 400 are counted by
-- wrk itself (summary.errors.status). done() prints one line:
--
--   WARM_RESULT requests=.. duration_us=.. bytes=.. connect=.. read=.. write=..
--               timeout=.. status=.. p50_us=.. p99_us=.. max_us=..

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_index", counter)
  table.insert(threads, thread)
end

local reqs = {}
thread_index = 0

function init(args)
  local file = args[1]
  if not file then
    error("paths.lua: give the paths file after --")
  end
  local f = assert(io.open(file, "r"))
  for line in f:lines() do
    if line ~= "" then
      table.insert(reqs, wrk.format("GET", line))
    end
  end
  f:close()
  if #reqs == 0 then
    error("paths.lua: no paths in " .. file)
  end
  math.randomseed(os.time() * 1000 + (thread_index or 0))
end

function request()
  return reqs[math.random(#reqs)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WARM_RESULT requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d timeout=%d status=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
