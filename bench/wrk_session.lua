-- wrk script for bench/run.py: signed-in requests, statuses counted, a JSON summary.
--
-- Environment (set by bench/run.py):
--   BENCH_COOKIE   the Cookie header of a signed-in session (sessionid and csrftoken)
--   BENCH_BODIES   optional: a file of POSTs, one per line: "<path>\t<urlencoded body>".
--                  Each line is used once (each carries its workup's current version);
--                  threads take every n-th line. When the lines run out they are reused,
--                  which the server answers with 409 (counted as failures, never success).
--   BENCH_THREADS  the -t given to wrk, to share the lines between threads.
--   BENCH_CLOSE    "1": one connection per request ("Connection: close"), as a proxy
--                  that keeps no upstream connections open sends them; gunicorn then
--                  spreads requests over its workers instead of pinning each of wrk's
--                  few long-lived connections to one worker for the whole run.

local cookie = os.getenv("BENCH_COOKIE") or ""
local close = os.getenv("BENCH_CLOSE") == "1"
local bodies_file = os.getenv("BENCH_BODIES")
local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  wraps = 0
  wrk.headers["Cookie"] = cookie
  if close then
    wrk.headers["Connection"] = "close"
  end
  if bodies_file and bodies_file ~= "" then
    posts = {}
    local count = tonumber(os.getenv("BENCH_THREADS") or "1")
    local n = 0
    for line in io.lines(bodies_file) do
      if n % count == thread_index then
        local path, body = line:match("^(%S+)\t(.*)$")
        local headers = {
          ["Content-Type"] = "application/x-www-form-urlencoded",
          ["Cookie"] = cookie,
        }
        if close then
          headers["Connection"] = "close"
        end
        table.insert(posts, wrk.format("POST", path, headers, body))
      end
      n = n + 1
    end
    next_post = 1
  end
end

function request()
  if posts then
    local req = posts[next_post]
    next_post = next_post + 1
    if next_post > #posts then
      next_post = 1
      wraps = wraps + 1
    end
    return req
  end
  return wrk.format()
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local totals, wrapped = {}, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      totals[status] = (totals[status] or 0) + count
    end
    wrapped = wrapped + (thread:get("wraps") or 0)
  end
  local parts = {}
  for status, count in pairs(totals) do
    table.insert(parts, string.format('"%s": %d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "mean_us": %.1f, "socket_errors": %d, "timeouts": %d, "wraps": %d, '
      .. '"statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean,
    e.connect + e.read + e.write, e.timeout, wrapped, table.concat(parts, ", ")))
end
