-- soak.lua: wrk script for bench/soak.sh.
--
--   wrk -t2 -c256 -d600s -s bench/soak.lua http://127.0.0.1:PORT -- URLS_FILE [MIX]
--
-- URLS_FILE is the list of request paths written by bench/genstore
-- (<store>/urls.txt, one path per line). Each request picks a kind at
-- random, weighted by MIX ("info,mod,zip,list" percentages, default
-- "30,30,30,10"), then a random path of that kind. Every answer whose status
-- is not 200 is counted; done() prints one machine-readable line
--
--   SOAK_RESULT requests=.. duration_s=.. rps=.. bytes=.. non200=.. non2xx=..
--               connect=.. read=.. write=.. timeout=.. p50_ms=.. p99_ms=.. max_ms=..
--
-- and one "SOAK_STATUS <code> <count>" line per status seen other than 200.

local kinds = { "info", "mod", "zip", "list" }

local function kind_of(path)
  if path:sub(-5) == ".info" then return "info" end
  if path:sub(-4) == ".mod" then return "mod" end
  if path:sub(-4) == ".zip" then return "zip" end
  if path:sub(-7) == "/@v/list" then return "list" end
  return nil
end

-- Runs in the setup environment: keep the threads to read their counters
-- in done().
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

-- The rest runs in each thread's own environment.
local reqs = {}     -- kind -> list of pre-formatted requests
local cum = {}      -- cumulative weights, in the order of kinds
local total_weight = 0
statuses = {}       -- status code (as a string) -> count; read by done()
non200 = 0
thread_index = 0    -- set by setup()

function init(args)
  local file = args[1] or os.getenv("SOAK_URLS")
  if not file then
    error("soak.lua: give the urls file after --")
  end
  local mix = args[2] or os.getenv("SOAK_MIX") or "30,30,30,10"
  local weights = {}
  for w in mix:gmatch("[^,]+") do
    table.insert(weights, tonumber(w))
  end
  if #weights ~= #kinds then
    error("soak.lua: MIX must be four numbers: info,mod,zip,list")
  end
  for _, k in ipairs(kinds) do
    reqs[k] = {}
  end
  local f = assert(io.open(file, "r"))
  for line in f:lines() do
    local k = kind_of(line)
    if k then
      table.insert(reqs[k], wrk.format("GET", line))
    end
  end
  f:close()
  for i, k in ipairs(kinds) do
    if #reqs[k] == 0 then
      weights[i] = 0
    end
    total_weight = total_weight + weights[i]
    cum[i] = total_weight
  end
  if total_weight <= 0 then
    error("soak.lua: no usable paths in " .. file)
  end
  -- A different sequence in each thread.
  math.randomseed(os.time() * 1000 + (thread_index or 0))
end

function request()
  local r = math.random() * total_weight
  for i, k in ipairs(kinds) do
    if r < cum[i] then
      local list = reqs[k]
      return list[math.random(#list)]
    end
  end
  local list = reqs[kinds[#kinds]]
  return list[math.random(#list)]
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    local s = tostring(status)
    statuses[s] = (statuses[s] or 0) + 1
  end
end

function done(summary, latency, requests)
  local n200 = 0
  local all = {}
  for _, t in ipairs(threads) do
    n200 = n200 + (t:get("non200") or 0)
    local st = t:get("statuses") or {}
    for code, n in pairs(st) do
      all[code] = (all[code] or 0) + n
    end
  end
  local non2xx = 0
  for code, n in pairs(all) do
    local c = tonumber(code)
    if c < 200 or c > 299 then
      non2xx = non2xx + n
    end
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "SOAK_RESULT requests=%d duration_s=%.3f rps=%.1f bytes=%d non200=%d non2xx=%d connect=%d read=%d write=%d timeout=%d status_gt399=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    summary.requests, secs, summary.requests / secs, summary.bytes, n200, non2xx,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  for code, n in pairs(all) do
    io.write(string.format("SOAK_STATUS %s %d\n", code, n))
  end
end
