-- POST one fixed body (file path after "--") and report exact figures as one JSON line.
-- Usage: wrk -s bench/lua/predict.lua <url> -- <body.json> ["Header: value" ...]
-- done() prints "BENCH_JSON {...}": requests, duration, socket errors, latency percentiles (µs),
-- counts per HTTP status and per X-Model-Version header (which version answered).

threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local file = assert(io.open(args[1], "rb"))
   local body = file:read("*a")
   file:close()
   statuses = {}
   versions = {}
   local headers = {["Content-Type"] = "application/json"}
   for i = 2, #args do  -- more headers after the body's path, each "Name: value"
      local name, value = args[i]:match("^([^:]+):%s*(.*)$")
      headers[name] = value
   end
   req = wrk.format("POST", nil, headers, body)
end

function request()
   return req
end

function response(status, headers, body)
   local s = tostring(status)
   statuses[s] = (statuses[s] or 0) + 1
   local v = headers["X-Model-Version"]
   if v then
      versions[v] = (versions[v] or 0) + 1
   end
end

local function merge(into, from)
   for k, n in pairs(from or {}) do
      into[k] = (into[k] or 0) + n
   end
end

local function counts_json(counts)
   local parts = {}
   for k, n in pairs(counts) do
      table.insert(parts, string.format('"%s":%d', k, n))
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
   local all_statuses, all_versions = {}, {}
   for _, thread in ipairs(threads) do
      merge(all_statuses, thread:get("statuses"))
      merge(all_versions, thread:get("versions"))
   end
   local e = summary.errors
   local p = function(q) return latency:percentile(q) end
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
      '"statuses":%s,"versions":%s}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max, p(50), p(90), p(99), p(99.9),
      counts_json(all_statuses), counts_json(all_versions)))
end
