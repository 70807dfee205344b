-- bench/payments.lua — wrk script: POST /payments, each with its own Idempotency-Key.
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  run = tostring(os.time())
end
function request()
  counter = counter + 1
  return wrk.format("POST", "/payments",
    {["Content-Type"] = "application/json",
     ["Idempotency-Key"] = "bench-" .. run .. "-" .. tid .. "-" .. counter},
    '{"customer_id":"bench","amount":"1.00","currency":"USD","description":"bench"}')
end
